"""Each fast model on synthetic series with known answers, failures as values, the kernel's
backtest agreeing with the live forecast."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.forecasting import (
    AdaptiveForecaster,
    ConfigError,
    History,
    NaiveForecaster,
    NotFittedError,
    RobustSeasonalForecaster,
    SeasonalNaiveForecaster,
    make_forecaster,
)
from app.forecasting._kernels import (
    SeasonalConfig,
    SeriesCache,
    causal_fill,
    lead_forecast,
    warmup,
)

STEP = 300.0  # 5-minute grid
DAY = 288


def daily(n: int, base: float = 100.0, amp: float = 50.0) -> np.ndarray:
    return base + amp * np.sin(2 * np.pi * np.arange(n) / DAY)


def hist(values: np.ndarray, step: float = STEP) -> History:
    return History(0.0, step, values)


def test_naive_repeats_the_last_value_and_carries_it_over_a_trailing_gap() -> None:
    y = np.array([1.0, 2.0, 3.0, np.nan, np.nan])
    f = NaiveForecaster().fit(hist(y)).predict(3)
    assert f.mean.tolist() == [3.0, 3.0, 3.0]
    assert f.start == 5 * STEP  # the grid continues after the last (empty) point
    assert f.model == "naive"


def test_seasonal_naive_is_exact_on_a_pure_seasonal_series() -> None:
    y = daily(4 * DAY)
    f = SeasonalNaiveForecaster(lead=12).fit(hist(y)).predict(24)
    truth = daily(4 * DAY + 24)[-24:]
    np.testing.assert_allclose(f.mean, truth, atol=1e-9)


def test_seasonal_naive_falls_back_to_naive_on_less_than_a_season_and_says_so() -> None:
    y = daily(100)
    m = SeasonalNaiveForecaster().fit(hist(y))
    f = m.predict(2)
    assert f.mean.tolist() == [y[-1], y[-1]]
    assert any("too short" in n for n in m.notes)


def test_robust_on_pure_seasonal_series_is_near_exact() -> None:
    y = daily(5 * DAY)
    f = RobustSeasonalForecaster(lead=12).fit(hist(y)).predict(12)
    truth = daily(5 * DAY + 12)[-12:]
    np.testing.assert_allclose(f.mean, truth, atol=0.5)


def test_robust_extrapolates_a_linear_trend() -> None:
    y = 10.0 + 0.5 * np.arange(600)
    m = RobustSeasonalForecaster(lead=6).fit(hist(y))
    f = m.predict(6)
    truth = 10.0 + 0.5 * np.arange(600, 606)
    np.testing.assert_allclose(f.mean, truth, rtol=0.01)
    # The naive forecast lags by lead * slope; robust must do much better.
    naive = NaiveForecaster(lead=6).fit(hist(y))
    assert m.backtest is not None and naive.backtest is not None
    assert m.backtest.mae < 0.2 * naive.backtest.mae


def test_robust_follows_a_step_change_a_restart_or_a_level_shift() -> None:
    y = daily(4 * DAY)
    y[-36:] *= 2.0  # the load doubled three hours ago (e.g. a new client)
    f = RobustSeasonalForecaster(lead=6).fit(hist(y)).predict(6)
    truth = 2.0 * daily(4 * DAY + 6)[-6:]
    np.testing.assert_allclose(f.mean, truth, rtol=0.1)


def test_robust_profile_ignores_a_spike_in_one_past_day() -> None:
    rng = np.random.default_rng(7)
    y = daily(5 * DAY) + rng.normal(0, 2.0, 5 * DAY)
    for start in rng.integers(0, 4 * DAY, 6):  # bursts now and then, as on the real traces
        y[start : start + 6] += 1000.0
    target = 5 * DAY + 6  # forecast 6 steps ahead
    y[target - DAY - 3 : target - DAY + 3] += 1000.0  # a burst at the same phase yesterday
    snaive = SeasonalNaiveForecaster(lead=6).fit(hist(y)).predict(6)
    robust = RobustSeasonalForecaster(lead=6).fit(hist(y)).predict(6)
    truth = daily(target + 1)[-1]
    assert abs(snaive.mean[-1] - truth) > 500  # the baseline copies the spike
    assert abs(robust.mean[-1] - truth) < 15


def test_gaps_are_filled_from_the_season_and_the_forecast_stays_right() -> None:
    rng = np.random.default_rng(3)
    y = daily(5 * DAY)
    y[rng.random(y.size) < 0.1] = np.nan  # 10 % missing pushes
    y[-DAY // 2 : -DAY // 2 + 24] = np.nan  # a two-hour outage
    y[:5] = np.nan  # leading gap
    m = RobustSeasonalForecaster(lead=12).fit(hist(y))
    f = m.predict(12)
    truth = daily(5 * DAY + 12)[-12:]
    assert np.all(np.isfinite(f.mean))
    np.testing.assert_allclose(f.mean, truth, atol=2.0)
    assert any("empty points at the start" in n for n in m.notes)


def test_short_history_falls_back_to_level_only_with_a_reason() -> None:
    y = np.full(30, 7.0)
    m = RobustSeasonalForecaster(lead=3).fit(hist(y))
    f = m.predict(3)
    np.testing.assert_allclose(f.mean, 7.0)
    assert any("too short for a daily or weekly profile" in n for n in m.notes)
    assert all(c.season == 0 for c in m.config)


@pytest.mark.parametrize("name", ["naive", "seasonal_naive", "robust_seasonal", "adaptive", "auto"])
@pytest.mark.parametrize(
    "values",
    [np.full(50, np.nan), np.empty(0)],
    ids=["all-nan", "empty"],
)
def test_no_data_is_a_failed_forecast_not_an_exception(name: str, values: np.ndarray) -> None:
    m = make_forecaster(name, lead=2).fit(hist(values))
    assert m.failed is not None
    f = m.predict(4)
    assert f.failed is not None and len(f) == 0 and not f.quantiles


def test_one_point_is_a_forecast_with_uncalibrated_bands_noted() -> None:
    m = make_forecaster("auto", lead=1).fit(hist(np.array([5.0])))
    f = m.predict(2)
    assert f.failed is None
    assert f.mean.tolist() == [5.0, 5.0]
    assert any("uncalibrated" in n for n in f.notes)


def test_misuse_raises_documented_errors() -> None:
    with pytest.raises(NotFittedError):
        NaiveForecaster().predict(1)
    m = NaiveForecaster().fit(hist(np.ones(10)))
    with pytest.raises(ConfigError):
        m.predict(0)
    with pytest.raises(ConfigError):
        m.predict(1, (0.5, 1.5))
    with pytest.raises(ConfigError):
        make_forecaster("arima")
    with pytest.raises(ConfigError):
        make_forecaster("naive", params={"nonsense": 1})


def test_bands_are_ordered_non_negative_and_widen_with_noise() -> None:
    rng = np.random.default_rng(0)
    y = np.maximum(daily(5 * DAY, base=20, amp=18) + rng.normal(0, 4, 5 * DAY), 0)
    f = RobustSeasonalForecaster(lead=12).fit(hist(y)).predict(24, (0.1, 0.5, 0.9, 0.99))
    q = f.quantiles
    assert np.all(q[0.1] <= q[0.5]) and np.all(q[0.5] <= q[0.9]) and np.all(q[0.9] <= q[0.99])
    assert np.all(q[0.1] >= 0) and np.all(f.mean >= 0)
    assert np.all(q[0.9] > f.mean)


def test_refresh_follows_new_data_without_refitting() -> None:
    y = np.arange(100, dtype=float)
    m = NaiveForecaster().fit(hist(y))
    cfg = m.config
    m.refresh(hist(np.append(y, 500.0)))
    f = m.predict(1)
    assert f.mean.tolist() == [500.0]
    assert f.start == 101 * STEP
    assert m.config == cfg


_CFGS = st.builds(
    SeasonalConfig,
    season=st.sampled_from([0, 7, 12]),
    seasons=st.integers(1, 3),
    smooth=st.integers(0, 2),
    window=st.integers(0, 6),
    ratio=st.booleans(),
    trend=st.booleans(),
    clip=st.booleans(),
    robust=st.booleans(),
    damp=st.sampled_from([0.0, 0.8, 0.9]),
    reset=st.booleans(),
)


@settings(max_examples=60, deadline=None)
@given(cfg=_CFGS, lead=st.integers(1, 15), seed=st.integers(0, 10_000))
def test_backtest_equals_the_forecast_made_from_truncated_history(
    cfg: SeasonalConfig, lead: int, seed: int
) -> None:
    """The rolling-origin backtest must be leak-free: the vectorised forecast at origin `o`
    on the full series equals the live forecast from `y[: o + 1]`."""
    if cfg.window == 0 and cfg.season == 0:
        return
    rng = np.random.default_rng(seed)
    y = rng.gamma(2.0, 10.0, 120)
    y[rng.random(120) < 0.1] = np.nan
    y[0] = 1.0
    o = 100 - lead
    if o < warmup(cfg, lead):
        return
    full = SeriesCache(causal_fill(y, 7), extra=0)
    trunc = SeriesCache(causal_fill(y[: o + 1], 7), extra=lead)
    a = lead_forecast(full, np.array([o]), lead, cfg)
    b = lead_forecast(trunc, np.array([o]), lead, cfg)
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
    # The live path (every lead at once, as `predict` asks) agrees with the one-lead backtest.
    path = lead_forecast(trunc, np.full(lead, o), np.arange(1, lead + 1), cfg)
    np.testing.assert_allclose(path[-1], b[0], rtol=1e-9, atol=1e-9)


def test_clipped_single_season_profile_does_not_bring_back_last_seasons_burst() -> None:
    y = daily(3 * DAY)
    y[2 * DAY + 10 : 2 * DAY + 20] = 5000.0  # a burst exactly one season before the target
    cache = SeriesCache(causal_fill(y, DAY), extra=DAY)
    o = np.array([3 * DAY - 1])
    plain = SeasonalConfig(season=DAY, seasons=1, window=0)
    clipped = SeasonalConfig(season=DAY, seasons=1, window=0, clip=True)
    assert lead_forecast(cache, o, 15, plain)[0] == 5000.0
    assert lead_forecast(cache, o, 15, clipped)[0] < 0.2 * 5000.0  # capped at 4x the day mean


def test_median_level_forgets_a_burst_that_a_mean_level_carries_forward() -> None:
    """Tweets, LLM traffic: a short burst inside the level window. An hour ahead the mean of the
    window still holds a third of it; the median is the quiet level."""
    y = np.full(200, 40.0)
    y[190:194] = 400.0  # four points of burst in the last twelve
    cache = SeriesCache(causal_fill(y, 0), extra=12)
    o = np.array([199])
    mean_level = SeasonalConfig(window=12)
    median_level = SeasonalConfig(window=12, robust=True)
    assert lead_forecast(cache, o, 12, mean_level)[0] == pytest.approx(160.0)
    assert lead_forecast(cache, o, 12, median_level)[0] == 40.0


def test_a_damped_level_lets_an_excursion_decay_back_to_the_usual_level() -> None:
    """A crowd's first reading: the last value carries it whole an hour ahead, a mean level
    dilutes it at once; the damped level keeps what is left of it after 12 steps at 0.9 each
    above the window's median (the usual level, which the crowd does not move)."""
    y = np.full(200, 100.0)
    y[-1] = 1000.0
    cache = SeriesCache(causal_fill(y, 0), extra=12)
    o = np.array([199])
    damped = SeasonalConfig(window=32, robust=True, damp=0.9)
    assert lead_forecast(cache, o, 1, damped)[0] == pytest.approx(100.0 + 0.9 * 900.0)
    assert lead_forecast(cache, o, 12, damped)[0] == pytest.approx(100.0 + 0.9**12 * 900.0)
    assert lead_forecast(cache, o, 12, SeasonalConfig(window=1))[0] == 1000.0
    assert "damped 0.9" in damped.describe()


def test_crowds_that_decay_are_forecast_by_a_damped_member() -> None:
    """Flash crowds on a daily shape, each decaying by about a fifth every step: an hour
    ahead the fit picks a member that lets the crowd decay (the last value would carry it,
    the profile alone would ignore it), and beats the last value on the backtest."""
    rng = np.random.default_rng(3)
    y = daily(6 * DAY, base=200.0, amp=80.0) * np.exp(rng.normal(0.0, 0.03, 6 * DAY))
    for start in rng.integers(0, 6 * DAY - 60, 40):
        y[start:] += 600.0 * 0.8 ** np.arange(6 * DAY - start)
    fitted = RobustSeasonalForecaster(lead=12).fit(hist(y))
    assert any(cfg.damp for cfg in fitted.config), fitted.config
    naive = NaiveForecaster(lead=12).fit(hist(y))
    fc, base = fitted.backtest, naive.backtest
    assert fc is not None and base is not None
    assert fc.mae < 0.9 * base.mae


def test_a_reset_level_averages_while_a_level_holds_and_restarts_at_a_step() -> None:
    """A level that holds, then steps: the plain mean of the window lags the step for a whole
    window; the reset level takes the new level at once and averages the noise after it."""
    rng = np.random.default_rng(4)
    y = np.concatenate([np.full(100, 500.0), np.full(6, 1000.0)]) * np.exp(
        rng.normal(0.0, 0.04, 106)
    )
    cache = SeriesCache(causal_fill(y, 0), extra=4)
    o = np.array([105])
    reset = SeasonalConfig(window=16, reset=True)
    assert lead_forecast(cache, o, 4, reset)[0] == pytest.approx(y[100:].mean())
    assert lead_forecast(cache, o, 4, SeasonalConfig(window=16))[0] < 700.0  # ten old points
    # Before the step it is the plain mean of the window (the noise set off no jump).
    before = lead_forecast(cache, np.array([99]), 1, reset)[0]
    assert before == pytest.approx(y[84:100].mean())
    assert "since the last jump" in reset.describe()


def test_levels_that_hold_for_hours_and_step_are_forecast_by_a_reset_member() -> None:
    """15-minute counts holding a level for 2-20 hours and then stepping by half or more,
    with 4 % noise: one step ahead the fit picks a level that restarts at each step, and
    beats the last value by more than 10 % (the last value carries each point's noise)."""
    rng = np.random.default_rng(7)
    level, n, current = [], 8 * 96, 500.0
    while len(level) < n:
        level += [current] * int(rng.uniform(8, 80))
        current *= float(rng.choice([0.6, 1.6]))  # a step worth the name, either way
    y = np.array(level[:n]) * np.exp(rng.normal(0.0, 0.04, n))
    fitted = RobustSeasonalForecaster(lead=1).fit(hist(y))
    assert any(cfg.reset for cfg in fitted.config), fitted.config
    naive = NaiveForecaster(lead=1).fit(hist(y))
    fc, base = fitted.backtest, naive.backtest
    assert fc is not None and base is not None
    assert fc.mae < 0.9 * base.mae


def _calm_then_burst(burst: bool) -> np.ndarray:
    """Two days of noisy counts on a daily shape; with `burst`, the last two hours are ten
    times busier (a sustained burst the daily profile never saw)."""
    rng = np.random.default_rng(5)
    y = rng.poisson(daily(3 * DAY, base=200.0, amp=80.0)).astype(float)
    if burst:
        y[-24:] = rng.poisson(2000.0, 24)
    return y


def test_adaptive_smooths_calm_noise_and_tracks_a_sustained_burst_one_step_ahead() -> None:
    calm = AdaptiveForecaster(lead=1).fit(hist(_calm_then_burst(burst=False)))
    y = _calm_then_burst(burst=True)
    burst = AdaptiveForecaster(lead=1).fit(hist(y))
    smooth = RobustSeasonalForecaster(lead=1).fit(hist(y))
    assert burst.config == smooth.config  # the same smoothed arm; only the switch differs
    # In the burst the last value has lately been the better forecast: it is served.
    assert burst.predict(1).mean[0] == y[-1]
    assert abs(smooth.predict(1).mean[0] - y[-1]) > 1.0
    # On calm noise the smoothed arm is served (not the last value).
    last = _calm_then_burst(burst=False)[-1]
    assert calm.predict(1).mean[0] != last


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), back=st.integers(1, 40))
def test_adaptive_backtest_equals_the_forecast_made_from_truncated_history(
    seed: int, back: int
) -> None:
    """The switch reads only errors on targets already seen: the backtest forecast at origin
    `o` equals the live forecast from `y[: o + 1]` with the same configuration."""
    rng = np.random.default_rng(seed)
    y = rng.poisson(daily(2 * DAY, base=100.0, amp=40.0)).astype(float)
    y[-60:-30] *= rng.uniform(3, 10)
    m = AdaptiveForecaster(lead=1).fit(hist(y))
    cfgs = m.config
    o = len(y) - 1 - back
    full = SeriesCache(causal_fill(y, DAY), extra=1)
    trunc = SeriesCache(causal_fill(y[: o + 1], DAY), extra=1)
    a = m._forecast(full, np.array([o]), 1, cfgs)
    b = m._forecast(trunc, np.array([o]), 1, cfgs)
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
