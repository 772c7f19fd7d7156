"""What the API returns, as pydantic models (unknown fields are ignored, so a newer service
does not break an older SDK)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AuditEntry",
    "AuditPage",
    "Decision",
    "Event",
    "EventPage",
    "Forecast",
    "ForecastAccuracy",
    "ForecastPoint",
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
    "Token",
    "TokenCreated",
    "Validation",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Sample(BaseModel):
    """One sample to push with `Client.push_samples`; `timestamp` is the time of receipt when
    absent (unix seconds or an aware datetime)."""

    model_config = ConfigDict(extra="forbid")
    metric: str
    value: float
    labels: dict[str, str] = Field(default_factory=dict)
    timestamp: float | datetime | None = None

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"metric": self.metric, "labels": self.labels, "value": self.value}
        if isinstance(self.timestamp, datetime):
            if self.timestamp.tzinfo is None:
                raise ValueError("a sample's datetime needs a time zone")
            out["timestamp"] = self.timestamp.isoformat()
        elif self.timestamp is not None:
            out["timestamp"] = self.timestamp
        return out


class ScalerStatus(_Model):
    generation: int
    created_at: datetime
    updated_at: datetime
    paused: bool
    last_decision: dict[str, Any] | None = None
    last_decision_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None


class Scaler(_Model):
    name: str
    spec: dict[str, Any]
    status: ScalerStatus


class Validation(_Model):
    valid: bool
    name: str
    spec: dict[str, Any]


class Decision(_Model):
    scaler: str
    time: datetime
    replicas: int
    need: float
    plan: dict[str, Any]
    reasons: list[dict[str, Any]]
    valid: bool
    observation: dict[str, Any] = Field(default_factory=dict)
    cluster: dict[str, Any] = Field(default_factory=dict)


class Event(_Model):
    id: int
    time: datetime
    kind: str
    replicas: int | None = None
    message: str
    payload: dict[str, Any] = Field(default_factory=dict)


class EventPage(_Model):
    events: list[Event]
    next_cursor: int | None = None


class Series(_Model):
    metric: str
    labels: dict[str, str]


class RangeSeries(_Model):
    metric: str
    labels: dict[str, str]
    points: list[tuple[float, float]]


class RangeResult(_Model):
    source: str
    step: float
    agg: str
    series: list[RangeSeries]


class Token(_Model):
    id: str
    name: str
    scope: str
    created_at: datetime
    revoked_at: datetime | None = None
    push_rate_per_s: float | None = None  # None: the service's default
    push_burst: int | None = None


class AuditEntry(_Model):
    id: int
    time: datetime
    actor: str
    scope: str
    action: str
    target: str
    details: dict[str, Any] = Field(default_factory=dict)


class AuditPage(_Model):
    entries: list[AuditEntry]
    next_cursor: int | None = None


class TokenCreated(Token):
    token: str


class PredictionPoint(_Model):
    time: datetime
    mean: float
    p50: float
    p90: float
    p99: float
    replicas: int | None = Field(None, description="Pods for the spec's quantile")


class Prediction(_Model):
    """GET /v1/scalers/{name}/prediction: the scaler's load forecast as points. `status` is
    ok, pending (no fit yet: `points` is empty and `reason` says why), failed or stale."""

    scaler: str
    status: Literal["ok", "pending", "failed", "stale"] | str
    reason: str | None = None
    model: str | None = None
    fitted_at: datetime | None = None
    quantile: float
    step: float
    points: list[PredictionPoint] = Field(default_factory=list)
    backtest: dict[str, Any] | None = None
    notes: list[str] = Field(default_factory=list)


class ObjectivePoint(_Model):
    time: datetime
    p95_s: float = Field(description="The worst pod's worst pushed p95 in this step")
    met: bool


class ObjectiveAttainment(_Model):
    objective: str = Field(description="ttft_p95, queue_wait_p95 or itl_p95")
    target_s: float
    met_share: float | None = Field(None, description="Share of the steps with data that met it")
    steps: int
    worst_p95_s: float | None = None
    points: list[ObjectivePoint] = Field(default_factory=list)


class Objective(_Model):
    """GET /v1/scalers/{name}/objective: whether the spec's latency objective was met, step by
    step, from the p95s the pods push (empty `attainment` when the spec states none)."""

    scaler: str
    objective: dict[str, Any] | None = None
    since: datetime
    until: datetime
    step_s: float
    attainment: list[ObjectiveAttainment] = Field(default_factory=list)


class ForecastAccuracy(_Model):
    """GET /v1/scalers/{name}/forecast-accuracy: per model, n origins, mae, mase, under and
    p90_coverage, measured on the scaler's own history."""

    scaler: str
    measured_at: datetime | None = None
    lead_steps: int | None = None
    step: float | None = None
    models: dict[str, dict[str, float | int | None]] = Field(default_factory=dict)


class ForecastPoint(_Model):
    timestamp: float
    mean: float
    p50: float
    p90: float
    p99: float


class Forecast(_Model):
    """POST /v1/forecasts: a what-if forecast of an uploaded series."""

    model: str
    failed: str | None = None
    notes: list[str] = Field(default_factory=list)
    points: list[ForecastPoint] = Field(default_factory=list)


class Simulation(_Model):
    """POST /v1/simulations, POST /v1/scalers/{name}/tune, GET /v1/simulations/{id}: a
    background job. `status` is pending, running, done or failed; `result` holds the report
    (`reports`, `markdown`) or the tuning (`best_spec`, `best`, `changes`, `frontier`, and
    `message`: why `best` is null when no candidate met the limits) once done."""

    id: str
    status: str
    kind: str | None = None
    scaler: str | None = None
    request: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: str | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")


class RolloutStep(_Model):
    name: str
    status: str
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_s: float | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class Rollout(_Model):
    """A rolling update with a surge plan: surge, patch, follow, stabilize, release."""

    id: int
    scaler: str
    status: str
    step: str
    steps: list[RolloutStep] = Field(default_factory=list)
    request: dict[str, Any] = Field(default_factory=dict)
    dry_run: bool = False
    cancel_requested: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None
    error: str | None = None
