"""`auto` picks per series by backtest at the lead, re-checks with hysteresis, degrades."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
import pytest

from app.forecasting import (
    AutoForecaster,
    BacktestScore,
    ConfigError,
    Forecast,
    Forecaster,
    History,
    make_forecaster,
    to_load_forecast,
)
from app.policy.types import LoadForecast

STEP = 300.0
DAY = 288


def hist(values: np.ndarray) -> History:
    return History(0.0, STEP, values)


class Fixed:
    """A stand-in model with a fixed backtest score (and an optional failure)."""

    def __init__(
        self, name: str, mae: float | None, fail: str | None = None, trimmed: float | None = None
    ) -> None:
        self.name = name
        self._mae = mae
        self._trimmed = mae if trimmed is None else trimmed
        self._fail = fail
        self.refreshed = 0

    def fit(self, history: History) -> Self:
        return self

    def refresh(self, history: History) -> Self:
        self.refreshed += 1
        return self

    def predict(self, horizon: int, quantiles: Sequence[float] = (0.5,)) -> Forecast:
        mean = np.full(horizon, float(len(self.name)))
        return Forecast(0.0, STEP, mean, {q: mean for q in quantiles}, model=self.name)

    @property
    def failed(self) -> str | None:
        return self._fail

    @property
    def backtest(self) -> BacktestScore | None:
        if self._mae is None:
            return None
        return BacktestScore(1, self._mae, 100, 1.0, trimmed=float(self._trimmed or 0.0))

    @property
    def notes(self) -> tuple[str, ...]:
        return ()


def _auto(scores: dict[str, float | None], fails: dict[str, str] | None = None) -> AutoForecaster:
    fails = fails or {}

    def factory(name: str) -> Forecaster:
        return Fixed(name, scores.get(name), fails.get(name))

    # lead 12: robust_seasonal is the general model there (adaptive one step ahead)
    return AutoForecaster(lead=12, candidates=tuple(scores), factory=factory)


def test_real_models_seasonal_series_picks_a_seasonal_model() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(6 * DAY)
    y = 100 + 60 * np.sin(2 * np.pi * t / DAY) + rng.normal(0, 3, t.size)
    m = make_forecaster("auto", lead=12).fit(hist(y))
    assert isinstance(m, AutoForecaster)
    assert m.chosen in ("robust_seasonal", "seasonal_naive")
    scores = m.scores
    assert scores["naive"] is not None and scores[m.chosen] is not None
    assert scores[m.chosen].mae < 0.5 * scores["naive"].mae
    f = m.predict(12)
    assert f.model == f"auto:{m.chosen}"


def test_real_models_random_walk_does_not_pick_seasonal_naive() -> None:
    rng = np.random.default_rng(2)
    y = 1000 + np.cumsum(rng.normal(0, 10, 4 * DAY))
    m = make_forecaster("auto", lead=1).fit(hist(y))
    assert isinstance(m, AutoForecaster)
    assert m.chosen in ("naive", "adaptive")
    s = m.scores
    assert s["seasonal_naive"] is not None and s["naive"] is not None
    assert s["naive"].mae < 0.5 * s["seasonal_naive"].mae


@pytest.mark.parametrize(
    ("first", "second", "expected", "why"),
    [
        ({"a": 1.0, "b": 2.0}, {"a": 1.0, "b": 0.97}, "a", "b better by 3 %: keep a"),
        ({"a": 1.0, "b": 2.0}, {"a": 1.0, "b": 0.90}, "b", "b better by 10 %: switch"),
        ({"a": 1.0, "b": 2.0}, {"a": None, "b": 2.0}, "b", "a no longer scorable"),
    ],
)
def test_refit_rechecks_the_choice_with_hysteresis(
    first: dict[str, float | None],
    second: dict[str, float | None],
    expected: str,
    why: str,
) -> None:
    current = dict(first)

    def factory(name: str) -> Forecaster:
        return Fixed(name, current[name])

    m = AutoForecaster(candidates=("a", "b"), factory=factory)
    m.fit(hist(np.ones(10)))
    assert m.chosen == "a"
    current.update(second)
    m.fit(hist(np.ones(11)))
    assert m.chosen == expected, why


def test_failed_candidates_are_skipped_with_a_note() -> None:
    m = _auto({"a": 1.0, "b": 2.0}, fails={"a": "boom"})
    m.fit(hist(np.ones(5)))
    assert m.chosen == "b"
    assert any("a: boom" in n for n in m.notes)


def test_all_candidates_failing_is_a_failed_forecast() -> None:
    m = _auto({"a": 1.0, "b": 2.0}, fails={"a": "boom", "b": "bust"})
    f = m.fit(hist(np.ones(5))).predict(3)
    assert f.failed is not None and "boom" in f.failed and "bust" in f.failed
    assert len(f) == 0


def test_refresh_goes_to_the_chosen_model() -> None:
    m = _auto({"a": 1.0})
    m.fit(hist(np.ones(5)))
    m.refresh(hist(np.ones(6)))
    assert m.chosen == "a"


def test_bad_configuration_raises_early() -> None:
    with pytest.raises(ConfigError):
        AutoForecaster(candidates=())
    with pytest.raises(ConfigError):
        AutoForecaster(candidates=("naive", "nope"))
    with pytest.raises(ConfigError):
        AutoForecaster(candidates=("auto",))


def test_to_load_forecast_gives_the_policy_plain_tuples() -> None:
    y = np.arange(1, 50, dtype=float)
    f = make_forecaster("naive").fit(hist(y)).predict(3, (0.5, 0.9))
    lf = to_load_forecast(f, None, made_at=123.0)
    assert isinstance(lf, LoadForecast)
    assert lf.model == "naive" and lf.made_at == 123.0 and lf.failed is None
    assert lf.mean == (49.0, 49.0, 49.0)
    assert set(lf.quantiles) == {0.5, 0.9} and all(isinstance(v, float) for v in lf.mean)
    stale = to_load_forecast(f, "auto:naive", made_at=200.0, failed="stale: fitted 2 h ago")
    assert stale.failed == "stale: fitted 2 h ago" and stale.mean == () and not stale.quantiles
    nodata = make_forecaster("auto").fit(hist(np.full(5, np.nan))).predict(3)
    assert to_load_forecast(nodata, "auto", 1.0).failed is not None


@pytest.mark.parametrize(
    ("scores", "expected", "why"),
    [
        ({"naive": 0.99, "robust_seasonal": 1.0}, "robust_seasonal", "naive 1 % better: keep"),
        # the general model more than 2 % worse than the last value is not served (NO_WORSE)
        ({"naive": 0.97, "robust_seasonal": 1.0}, "naive", "naive 3 % better: no skill"),
        ({"naive": 0.90, "robust_seasonal": 1.0}, "naive", "naive 10 % better on both: serve it"),
        ({"naive": 1.2, "robust_seasonal": 1.0}, "robust_seasonal", "robust is best anyway"),
        ({"naive": 1.0, "robust_seasonal": None}, "naive", "robust not scorable"),
    ],
)
def test_the_general_model_is_served_unless_a_simpler_one_clearly_beats_it(
    scores: dict[str, float | None], expected: str, why: str
) -> None:
    m = _auto(scores)
    assert m.prefer == "robust_seasonal"
    m.fit(hist(np.ones(10)))
    assert m.chosen == expected, why


@pytest.mark.parametrize(
    ("naive", "expected", "why"),
    [
        ((0.8, 1.2), "robust_seasonal", "better on typical steps, worse with the bursts: keep"),
        ((1.2, 0.99), "robust_seasonal", "better only with the bursts, by 1 %: keep"),
        ((0.8, 0.99), "robust_seasonal", "better with the bursts by less than 2 %: keep"),
        ((0.8, 0.9), "naive", "10 % or more better on both: serve it"),
        # MAE decides past NO_WORSE: a general model 3 % (or 25 %) worse than the last value
        # overall has no skill there, however it does on typical steps
        ((0.8, 0.97), "naive", "better with the bursts by 3 %: no skill"),
        ((1.2, 0.8), "naive", "better only with the bursts, by 25 %: no skill"),
    ],
)
def test_a_simpler_model_must_beat_the_general_one_on_trimmed_mae_and_mae(
    naive: tuple[float, float], expected: str, why: str
) -> None:
    """(trimmed MAE, MAE) against robust_seasonal's (1.0, 1.0)."""

    def factory(name: str) -> Forecaster:
        if name == "naive":
            return Fixed(name, naive[1], trimmed=naive[0])
        return Fixed(name, 1.0)

    m = AutoForecaster(lead=12, candidates=("naive", "robust_seasonal"), factory=factory)
    m.fit(hist(np.ones(10)))
    assert m.chosen == expected, why
    if expected == "robust_seasonal" and naive[0] < 1.0:  # naive was the best trimmed
        assert any("kept robust_seasonal" in n for n in m.notes)


def test_the_preferred_model_is_the_anchor_even_after_a_simpler_one_was_served() -> None:
    """Hysteresis on the last choice would keep naive at 1 % better; the anchor is robust."""
    current: dict[str, float | None] = {"naive": 0.8, "robust_seasonal": 1.0}

    def factory(name: str) -> Forecaster:
        return Fixed(name, current[name])

    m = AutoForecaster(lead=12, candidates=tuple(current), factory=factory)
    m.fit(hist(np.ones(10)))
    assert m.chosen == "naive"
    current["naive"] = 0.99
    m.fit(hist(np.ones(11)))
    assert m.chosen == "robust_seasonal"
    assert any("switched from naive to robust_seasonal" in n for n in m.notes)


def test_prefer_must_be_a_candidate() -> None:
    with pytest.raises(ConfigError, match="prefer"):
        make_forecaster("auto", params={"candidates": ["naive"], "prefer": "seasonal_naive"})
    m = make_forecaster("auto", params={"candidates": ["naive", "seasonal_naive"]})
    assert isinstance(m, AutoForecaster) and m.prefer is None


def test_one_step_ahead_the_general_model_is_adaptive_further_robust_seasonal() -> None:
    one, hour = AutoForecaster(lead=1), AutoForecaster(lead=12)
    assert one.candidates == ("naive", "seasonal_naive", "adaptive") and one.prefer == "adaptive"
    assert hour.candidates[-1] == "robust_seasonal" and hour.prefer == "robust_seasonal"
    mixed = AutoForecaster(lead=1, candidates=("naive", "robust_seasonal"))
    assert mixed.prefer is None  # the general model of lead 1 is not among them
