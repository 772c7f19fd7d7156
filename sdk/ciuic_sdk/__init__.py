"""Ciuic's Python SDK: a typed client (sync and async), the pod metrics agent
(`ciuic-agent`, `ciuic_sdk.agent`), the warm-up helper (`ciuic_sdk.warmup`) and the
hold-and-forward proxy for scale to zero (`ciuic-hold`, `ciuic_sdk.hold`).

Depends only on httpx and pydantic; the agent's scraper needs the `agent` extra
(prometheus-client), GPU readings the `gpu` extra (nvidia-ml-py), the hold proxy the `hold`
extra (starlette, uvicorn).
"""

from __future__ import annotations

from ciuic_sdk._client import OPERATIONS, AsyncClient, Client, SpecInput, TimeInput
from ciuic_sdk._errors import (
    CiuicError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    PreconditionFailed,
    TooManyRequests,
    Unauthorized,
    Unavailable,
)
from ciuic_sdk._models import (
    AuditEntry,
    AuditPage,
    Decision,
    Event,
    EventPage,
    Forecast,
    ForecastAccuracy,
    ForecastPoint,
    Objective,
    ObjectiveAttainment,
    ObjectivePoint,
    Prediction,
    PredictionPoint,
    RangeResult,
    RangeSeries,
    Rollout,
    RolloutStep,
    Sample,
    Scaler,
    ScalerStatus,
    Series,
    Simulation,
    Token,
    TokenCreated,
    Validation,
)

__all__ = [
    "OPERATIONS",
    "AsyncClient",
    "AuditEntry",
    "AuditPage",
    "CiuicError",
    "Client",
    "Conflict",
    "Decision",
    "Event",
    "EventPage",
    "Forbidden",
    "Forecast",
    "ForecastAccuracy",
    "ForecastPoint",
    "Invalid",
    "NotFound",
    "Objective",
    "ObjectiveAttainment",
    "ObjectivePoint",
    "PreconditionFailed",
    "Prediction",
    "PredictionPoint",
    "RangeResult",
    "RangeSeries",
    "Rollout",
    "RolloutStep",
    "Sample",
    "Scaler",
    "ScalerStatus",
    "Series",
    "Simulation",
    "SpecInput",
    "TimeInput",
    "Token",
    "TokenCreated",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
    "Validation",
    "__version__",
    "get_ciuic_prediction",
]

__version__ = "0.1.0"


def get_ciuic_prediction(
    scaler: str,
    horizon: float | str = "1h",
    *,
    base_url: str = "http://127.0.0.1:8080",
    token: str | None = None,
    step: float | str | None = None,
) -> Prediction:
    """The brief's `get_ciuic_prediction()`: one call, one short-lived client."""
    with Client(base_url, token) as client:
        return client.get_prediction(scaler, horizon, step)
