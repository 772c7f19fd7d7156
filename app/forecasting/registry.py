"""Build a forecaster from a model name and the spec's parameters (what the shell calls)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.forecasting.auto import AutoForecaster
from app.forecasting.base import Forecaster
from app.forecasting.models import (
    DEFAULT_EVAL_POINTS,
    AdaptiveForecaster,
    NaiveForecaster,
    RobustSeasonalForecaster,
    SeasonalNaiveForecaster,
)
from app.forecasting.skill import WithSkill
from app.forecasting.types import ConfigError
from app.policy.spec.algorithms import MODEL_NAMES

__all__ = ["MODEL_NAMES", "make_forecaster"]


def make_forecaster(
    name: str = "auto", *, lead: int = 1, params: Mapping[str, Any] | None = None
) -> Forecaster:
    """A new, unfitted model. `lead` is the lead time in grid steps that backtests (and so
    `auto`'s choice and the bands) are tuned for; `params` are the model's keyword arguments
    (prophet: growth, cap, floor, daily_seasonality, weekly_seasonality, …; auto:
    candidates, switch_margin, prefer; all: eval_points). Raises `ConfigError` on a bad name or key.
    """
    kwargs = dict(params or {})
    builders: dict[str, Any] = {
        "auto": AutoForecaster,
        "robust_seasonal": RobustSeasonalForecaster,
        "adaptive": AdaptiveForecaster,
        "seasonal_naive": SeasonalNaiveForecaster,
        "naive": NaiveForecaster,
    }
    if name == "prophet":
        from app.forecasting.prophet_model import ProphetForecaster

        builders["prophet"] = ProphetForecaster
    if name not in builders:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(MODEL_NAMES)}")
    try:
        model: Forecaster = builders[name](lead=lead, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"bad parameters for {name}: {exc}") from exc
    if name == "auto":
        return model  # its candidates include the last value: it measures its own skill
    eval_points = int(kwargs.get("eval_points", DEFAULT_EVAL_POINTS))
    return WithSkill(model, lead=lead, eval_points=eval_points)
