"""Ciuic's scaling policy: pure functions from (spec, observation, forecast, state, now) to a
`Decision` with its reasons. See `app.policy.decide` for the pipeline."""

from __future__ import annotations

from app.policy.codes import ALL_CODES, Code
from app.policy.decide import decide
from app.policy.spec import ScalerSpec, SpecError, SpecIssue, parse_spec
from app.policy.types import (
    Decision,
    FractionalPlan,
    LoadForecast,
    MetricReading,
    Observation,
    Reason,
    ScalerState,
)

__all__ = [
    "ALL_CODES",
    "Code",
    "Decision",
    "FractionalPlan",
    "LoadForecast",
    "MetricReading",
    "Observation",
    "Reason",
    "ScalerSpec",
    "ScalerState",
    "SpecError",
    "SpecIssue",
    "decide",
    "parse_spec",
]
