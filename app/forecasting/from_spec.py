"""From a scaler spec to a forecaster: the one place that reads `algorithm` and `capacity`.

The live service and the simulator both build their models here, so a spec forecasts the same
way in production and in the benchmark. The brief's parameters (`seasonality: daily`,
`growth: logistic`) become the model's own; logistic growth is capped at the load the
deployment can serve at `max_replicas`.
"""

from __future__ import annotations

import math
from typing import Any

from app.forecasting.base import Forecaster
from app.forecasting.registry import make_forecaster
from app.forecasting.types import ConfigError
from app.forecasting.wake import WithWake
from app.policy.spec import DEFAULT_COLD_START_S, ScalerSpec
from app.policy.spec.algorithms import ALGORITHM_ALIASES

__all__ = [
    "HISTORY_S",
    "WAKE_HISTORY_S",
    "forecaster_for",
    "history_span",
    "lead_steps",
    "model_name",
]


# The load history a scaler's model is fitted on; a scaler allowed to sleep reads four weeks,
# for its wake (app.forecasting.wake) is judged on past weeks: with 14 days only the second
# week's mornings can be compared with the week before, about five wake-ups, and on seven
# draws of the corpus's scale_from_zero family one earned it; with three weeks all seven did.
HISTORY_S = 14 * 86400.0
WAKE_HISTORY_S = 28 * 86400.0


def history_span(spec: ScalerSpec) -> float:
    """Seconds of load history to read for `spec` (its model still fits the last 14 days)."""
    return WAKE_HISTORY_S if spec.min_replicas == 0 else HISTORY_S


def model_name(spec: ScalerSpec) -> str | None:
    """The forecasting model the spec asks for, or None when it asks for none."""
    if spec.scaler != "predictive" or spec.algorithm.name == "none":
        return None
    return ALGORITHM_ALIASES.get(spec.algorithm.name, spec.algorithm.name)


def lead_steps(spec: ScalerSpec, step_s: float, cold_start_s: float | None = None) -> int:
    """How far ahead the policy reads the forecast, in grid steps (cold start + buffer)."""
    cold = spec.cold_start if isinstance(spec.cold_start, float | int) else None
    cold = cold if cold is not None else cold_start_s
    lead_s = (cold if cold is not None else DEFAULT_COLD_START_S) + float(spec.forecast.buffer)
    return max(1, math.ceil(lead_s / step_s))


def _prophet_params(spec: ScalerSpec) -> dict[str, Any]:
    params = dict(spec.algorithm.params)
    out: dict[str, Any] = {}
    seasonality = params.pop("seasonality", None)
    if seasonality is not None:
        items = [seasonality] if isinstance(seasonality, str) else seasonality
        if not isinstance(items, list):
            raise ConfigError(f"seasonality must be daily and/or weekly, got {seasonality!r}")
        wanted = {str(i) for i in items}
        unknown = wanted - {"daily", "weekly"}
        if unknown:
            raise ConfigError(f"seasonality must be daily and/or weekly, got {sorted(unknown)}")
        out["daily_seasonality"] = "daily" in wanted
        out["weekly_seasonality"] = "weekly" in wanted
    growth = params.pop("growth", None)
    if growth is not None:
        out["growth"] = growth
        if growth == "logistic" and "cap" not in params:
            per_pod = spec.capacity.per_pod
            if per_pod is None:
                # A learned capacity is not known when the model is built: the cap (the load
                # max_replicas pods serve) cannot be set, so the trend grows without one.
                out["growth"] = "linear"
            else:
                out["cap"] = spec.max_replicas * per_pod * spec.capacity.utilization
    out.update(params)
    return out


def forecaster_for(spec: ScalerSpec, *, lead: int) -> Forecaster:
    """A new, unfitted model for `spec`; ConfigError when its parameters do not fit."""
    name = model_name(spec)
    if name is None:
        raise ConfigError("the spec asks for no forecast (reactive, or algorithm none)")
    params = _prophet_params(spec) if name == "prophet" else dict(spec.algorithm.params)
    model = make_forecaster(name, lead=lead, params=params)
    if spec.min_replicas == 0:  # allowed to sleep: its forecast also says when to wake it
        return WithWake(model, lead=lead, model_span_s=HISTORY_S)
    return model
