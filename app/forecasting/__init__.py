"""Load forecasting (pure: numpy and, lazily, prophet; no I/O, no clock).

Fit a model on a regular grid (`History`), ask for `horizon` steps, get a `Forecast` with a mean
path and calibrated quantile paths; `to_load_forecast` hands it to the policy. `auto` (the
default) picks per series by backtest at the caller's lead time. Exceptions: `ConfigError`
(bad name/arguments) and `NotFittedError` (predict before fit), both `ForecastingError`; bad
data never raises, it comes back as `Forecast.failed`.
"""

from __future__ import annotations

from app.forecasting.auto import AutoForecaster, default_candidates, general_model
from app.forecasting.base import DEFAULT_QUANTILES, DEFAULT_SEASONS_S, Forecaster
from app.forecasting.convert import to_load_forecast
from app.forecasting.evaluate import EvalResult, Metrics, metrics, rolling_origin
from app.forecasting.grid import resample_to_grid
from app.forecasting.models import (
    AdaptiveForecaster,
    NaiveForecaster,
    RobustSeasonalForecaster,
    SeasonalNaiveForecaster,
)
from app.forecasting.prophet_model import ProphetForecaster
from app.forecasting.registry import MODEL_NAMES, make_forecaster
from app.forecasting.types import (
    BacktestScore,
    ConfigError,
    Forecast,
    ForecastingError,
    History,
    NotFittedError,
)

__all__ = [
    "DEFAULT_QUANTILES",
    "DEFAULT_SEASONS_S",
    "MODEL_NAMES",
    "AdaptiveForecaster",
    "AutoForecaster",
    "BacktestScore",
    "ConfigError",
    "EvalResult",
    "Forecast",
    "Forecaster",
    "ForecastingError",
    "History",
    "Metrics",
    "NaiveForecaster",
    "NotFittedError",
    "ProphetForecaster",
    "RobustSeasonalForecaster",
    "SeasonalNaiveForecaster",
    "default_candidates",
    "general_model",
    "make_forecaster",
    "metrics",
    "resample_to_grid",
    "rolling_origin",
    "to_load_forecast",
]
