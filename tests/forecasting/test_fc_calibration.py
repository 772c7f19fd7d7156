"""Bands from backtest residuals cover what they claim, out of sample."""

from __future__ import annotations

import numpy as np
import pytest

from app.forecasting import History, Metrics, make_forecaster, metrics, rolling_origin
from app.forecasting.calibration import Calibration, conformal_level

DAY = 288


@pytest.mark.parametrize("lead", [1, 12])
def test_p90_band_covers_about_90_percent_of_a_noisy_series(lead: int) -> None:
    rng = np.random.default_rng(11)
    n = 8 * DAY
    level = 200 + 120 * np.sin(2 * np.pi * np.arange(n) / DAY)
    y = rng.poisson(level * rng.lognormal(0.0, 0.15, n)).astype(float)
    h = History(0.0, 300.0, y)
    origins = range(6 * DAY, n - lead, 3)
    r = rolling_origin(
        h,
        lambda: make_forecaster("auto", lead=lead),
        lead=lead,
        origins=origins,
        max_history=5 * DAY,
        refit_every=12,
    )
    m = metrics(r)
    assert r.failures == 0 and m.n > 150
    assert 0.85 <= m.coverage <= 0.95, m


def test_bands_interpolate_between_leads_and_widen_beyond() -> None:
    errs = (np.array([-0.1, 0.0, 0.1] * 10), np.array([-0.3, 0.0, 0.3] * 10))
    c = Calibration((1, 3), errs, floor=1.0)
    band = c.band(np.full(6, 100.0), 0.99)
    assert band[0] < band[1] < band[2] < band[5]
    q = conformal_level(0.99, errs[1].size)
    assert band[2] == pytest.approx(100 + 100 * float(np.quantile(errs[1], q)))


@pytest.mark.parametrize(
    ("q", "n", "expected"),
    [
        (0.9, 19, 18 / 19),  # the 18th smallest of 19, not the 17.1th
        (0.95, 10, 1.0),  # too few residuals for a 95 % band: the largest one
        (0.9, 99, 90 / 99),
        (0.9, 10_000, 9001 / 10_000),
        (0.1, 99, 1 - 90 / 99),  # lower bands mirror upper ones
        (0.5, 0, 0.5),
    ],
)
def test_conformal_level_widens_small_samples(q: float, n: int, expected: float) -> None:
    assert conformal_level(q, n) == pytest.approx(expected)


def test_too_few_residuals_leave_bands_at_the_mean() -> None:
    c = Calibration((1,), (np.array([0.5, 0.6]),), floor=1.0)
    assert not c.usable()
    np.testing.assert_array_equal(c.band(np.ones(3), 0.9), np.ones(3))


def test_metrics_on_known_numbers() -> None:
    from app.forecasting import EvalResult

    r = EvalResult(
        lead=1,
        quantile=0.9,
        origins=np.array([0.0, 1.0, 2.0, 3.0]),
        actual=np.array([10.0, 12.0, 20.0, 10.0]),
        mean=np.array([10.0, 10.0, 10.0, 10.0]),
        upper=np.array([11.0, 13.0, 15.0, 11.0]),
    )
    base = EvalResult(
        lead=1,
        quantile=0.9,
        origins=np.array([0.0, 1.0, 2.0, 3.0]),
        actual=r.actual,
        mean=np.array([5.0, 5.0, 5.0, 5.0]),
        upper=r.upper,
    )
    m = metrics(r, base)
    assert m == Metrics(n=4, mae=3.0, mase=pytest.approx(3.0 / 8.0), under=0.5, coverage=0.75)


def test_a_lead_with_too_few_residuals_is_dropped_and_the_band_widens_from_the_last_measured() -> (
    None
):
    short = np.array([0.9, 1.0])  # two residuals at lead 4: a guess, not a band
    c, dropped = Calibration(
        (1, 2, 4), (np.zeros(30) + 0.1, np.zeros(30) + 0.2, short), 1.0
    ).measured()
    assert dropped == (4,) and c.leads == (1, 2) and c.usable()
    band = c.band(np.full(4, 100.0), 0.9)
    assert band[1] == pytest.approx(120.0)
    assert band[3] == pytest.approx(100 + 20 * np.sqrt(2))  # sqrt(4 / 2) past lead 2


def test_a_history_too_short_for_its_lead_still_gets_a_band_from_shorter_leads() -> None:
    """A new scaler: 20 minutes of per-minute counts, a forecast 23 minutes ahead. No origin
    can be scored at lead 23, but leads 1 and 6 can: the P90 is above the mean, not equal."""
    rng = np.random.default_rng(3)
    y = rng.poisson(300.0, 20).astype(float)
    f = make_forecaster("auto", lead=23).fit(History(0.0, 60.0, y)).predict(23, (0.9,))
    assert f.failed is None
    assert float(f.quantiles[0.9][-1]) > float(f.mean[-1]) * 1.05
    assert any("widen like sqrt(lead)" in n for n in f.notes)
    assert not any("uncalibrated" in n for n in f.notes)
