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

    def __init__(self, name: str, mae: float | None, fail: str | None = None) -> None:
        self.name = name
        self._mae = mae
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
        return None if self._mae is None else BacktestScore(1, self._mae, 100, 1.0)

    @property
    def notes(self) -> tuple[str, ...]:
        return ()


def _auto(scores: dict[str, float | None], fails: dict[str, str] | None = None) -> AutoForecaster:
    fails = fails or {}

    def factory(name: str) -> Forecaster:
        return Fixed(name, scores.get(name), fails.get(name))

    return AutoForecaster(candidates=tuple(scores), factory=factory)


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
    assert m.chosen in ("naive", "robust_seasonal")
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
