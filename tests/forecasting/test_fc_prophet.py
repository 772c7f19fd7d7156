"""Prophet fits offline with the bundled cmdstan, quietly; bad input and misuse are values or
documented errors. Kept to two small fits: each runs a cmdstan child process."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from app.forecasting import ConfigError, History, ProphetForecaster, make_forecaster

STEP = 1800.0  # 30-minute grid keeps the fit small
DAY = 48


def test_prophet_fits_offline_and_forecasts_the_daily_shape(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rng = np.random.default_rng(5)
    n = 7 * DAY
    t = np.arange(n + 6)
    y = 100 + 40 * np.sin(2 * np.pi * t / DAY) + rng.normal(0, 2, t.size)
    y_hist = y[:n].copy()
    y_hist[50:60] = np.nan  # gaps are dropped, not fed as zeros
    with caplog.at_level(logging.INFO):
        m = make_forecaster("prophet", lead=6, params={"weekly_seasonality": False})
        m.fit(History(0.0, STEP, y_hist))
    assert m.failed is None, m.failed
    assert not [r for r in caplog.records if r.name.startswith("cmdstanpy")]
    f = m.predict(6, (0.5, 0.9))
    assert f.model == "prophet" and len(f) == 6 and f.start == n * STEP
    np.testing.assert_allclose(f.mean, y[n:], atol=10.0)
    assert np.all(f.quantiles[0.9] >= f.quantiles[0.5])
    assert m.backtest is not None and m.backtest.mae < 10.0
    m.refresh(History(0.0, STEP, y[: n + 1]))
    assert m.predict(1).start == (n + 1) * STEP


def test_prophet_logistic_growth_with_the_cap_and_failure_as_value() -> None:
    y = np.linspace(10, 60, 3 * DAY)
    m = ProphetForecaster(growth="logistic", cap=80.0, weekly_seasonality=False).fit(
        History(0.0, STEP, y)
    )
    f = m.predict(4)
    assert m.failed is None and np.all(f.mean <= 80.0 + 1e-6)
    bad = ProphetForecaster().fit(History(0.0, STEP, np.full(20, np.nan)))
    assert bad.failed is not None and bad.predict(3).failed is not None
    with pytest.raises(ConfigError):
        ProphetForecaster(growth="logistic")  # a cap is required
