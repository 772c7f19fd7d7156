"""Resampling irregular points onto the grid and the `History` contract."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.forecasting import ConfigError, History, resample_to_grid


def test_mean_per_bucket_with_gaps_as_nan() -> None:
    ts = [0.0, 10.0, 59.0, 130.0, 179.9]
    vs = [1.0, 3.0, 5.0, 7.0, 9.0]
    h = resample_to_grid(ts, vs, 60.0)
    assert h.start == 0.0 and h.step_s == 60.0
    assert h.values[0] == pytest.approx(3.0)  # mean of 1, 3, 5
    assert math.isnan(h.values[1])  # no sample in [60, 120): a gap, not a zero
    assert h.values[2] == pytest.approx(8.0)


def test_buckets_align_to_the_epoch_grid() -> None:
    h = resample_to_grid([125.0, 250.0], [1.0, 2.0], 60.0)
    assert h.start == 120.0
    assert len(h) == 3


def test_count_turns_a_request_log_into_counts_with_zeros() -> None:
    h = resample_to_grid([0.5, 1.0, 1.5, 130.0], None, 60.0, how="count")
    assert h.values.tolist() == [3.0, 0.0, 1.0]


def test_sum_and_explicit_window_drop_points_outside() -> None:
    h = resample_to_grid([0, 30, 70, 500], [1, 2, 4, 100], 60.0, how="sum", start=0.0, end=119.0)
    assert h.values.tolist() == [3.0, 4.0]


def test_non_finite_points_are_ignored() -> None:
    h = resample_to_grid([0.0, 1.0, float("nan")], [float("inf"), 2.0, 3.0], 60.0)
    assert h.values.tolist() == [2.0]


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"step_s": 0.0}, "zero step"),
        ({"step_s": -5.0}, "negative step"),
        ({"step_s": 60.0, "how": "mean", "values": None}, "values needed for mean"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs: dict[str, object], why: str) -> None:
    args: dict[str, object] = {"timestamps": [0.0], "values": [1.0], **kwargs}
    with pytest.raises(ConfigError):
        resample_to_grid(**args)  # type: ignore[arg-type]


def test_history_is_read_only_and_maps_inf_to_gaps() -> None:
    h = History(0.0, 60.0, np.array([1.0, np.inf, 3.0]))
    assert np.isnan(h.values[1])
    with pytest.raises(ValueError):
        h.values[0] = 5.0
    assert h.end == 120.0
    assert h.tail(2).start == 60.0
    with pytest.raises(ConfigError):
        History(0.0, 0.0, np.zeros(3))
