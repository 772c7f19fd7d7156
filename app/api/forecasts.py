"""Predictions: a scaler's forecast as points (the product's `get_ciuic_prediction`), its
accuracy per model, and what-if forecasts of an uploaded series."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.api.auth import RequireRead
from app.api.body import JSON_TYPE, body_type, read_body
from app.api.context import Ctx
from app.api.errors import invalid_fields
from app.api.responses import errors
from app.api.timeparams import parse_duration
from app.errors import BadRequest, UnprocessableEntity
from app.forecasting import MODEL_NAMES, History, make_forecaster, resample_to_grid
from app.policy import ScalerSpec
from app.policy.capacity import CapacityInUse
from app.policy.predictive import planned_pods, quantile_path
from app.policy.types import LoadForecast
from app.services.backfill import load_query
from app.services.scalers import capacity_in_use_of, spec_of
from app.timetext import MAX_DURATION_S, parse_rfc3339

__all__ = ["router"]

router = APIRouter(tags=["forecasts"])

QUANTILES = (0.5, 0.9, 0.99)


class PredictionPoint(BaseModel):
    time: datetime
    mean: float
    p50: float
    p90: float
    p99: float
    replicas: int | None = Field(description="Pods for the spec's quantile at planned utilisation")


class Prediction(BaseModel):
    scaler: str
    status: Literal["ok", "pending", "failed", "stale"]
    reason: str | None = None
    model: str | None = None
    fitted_at: datetime | None = None
    quantile: float
    step: float
    points: list[PredictionPoint]
    backtest: dict[str, Any] | None = Field(None, description="In-fit accuracy at the lead")
    notes: list[str] = []


def _value(path: tuple[float, ...], forecast: LoadForecast, t: float) -> float:
    k = math.floor((t - forecast.start) / forecast.step_s)
    return float(path[min(max(k, 0), len(path) - 1)])


def _pending_reason(spec: ScalerSpec, in_use: CapacityInUse) -> str:
    """Why there is no prediction yet, and what would give one: the forecast is of the
    capacity's load signal, and turning it into pods needs a capacity per pod."""
    signal = spec.capacity.signal
    reason = (
        f"no forecast yet: it is fitted in the background on {signal!r} (the capacity's load "
        "signal) once the pods have pushed some history of it"
    )
    if load_query(spec) is not None:
        reason = (
            f"no forecast yet: the history of {signal!r} (the capacity's load signal) is being "
            "backfilled from Prometheus, then fitted (the scaler's events of kind `backfill` "
            "say how it went)"
        )
    if in_use.per_pod is None:
        reason += (
            f"; no capacity per pod either ({in_use.how}): until one is learned a forecast "
            f"cannot be turned into replicas. Set `capacity: {{{signal}: 0.5/s}}` (what one "
            "pod serves) to predict without waiting"
        )
    return reason


@router.get(
    "/v1/scalers/{name}/prediction",
    operation_id="get_scaler_prediction",
    response_model=Prediction,
    responses=errors(400, 404),
)
async def get_prediction(
    ctx: Ctx,
    name: str,
    _auth: RequireRead,
    horizon: Annotated[str, Query(description="How far ahead: seconds or 1h")] = "3600",
    step: Annotated[str, Query(description="Spacing of the points: seconds or 5m")] = "60",
) -> Prediction:
    spec, in_use = await capacity_in_use_of(ctx, name)
    per_pod = in_use.per_pod
    horizon_s, step_s = parse_duration(horizon, "horizon"), parse_duration(step, "step")
    if horizon_s / step_s > 10_000:
        raise BadRequest("horizon / step is more than 10,000 points", code="too_many_points")
    q = spec.forecast.quantile
    stored = await ctx.forecasts.get(ctx.db, name)
    if stored is None:
        return Prediction(
            scaler=name,
            status="pending",
            quantile=q,
            step=step_s,
            points=[],
            reason=_pending_reason(spec, in_use),
        )
    fc = stored.forecast
    fitted_at = datetime.fromtimestamp(fc.made_at, tz=UTC)
    common = {
        "scaler": name,
        "model": fc.model,
        "fitted_at": fitted_at,
        "quantile": q,
        "step": step_s,
        "backtest": stored.details.get("backtest"),
        "notes": stored.details.get("notes", []),
    }
    if fc.failed is not None or not fc.mean:
        return Prediction(status="failed", reason=fc.failed, points=[], **common)
    now = ctx.clock.now()
    end = fc.start + fc.step_s * len(fc.mean)
    planned, _ = quantile_path(fc, q)
    points: list[PredictionPoint] = []
    t = now - now % step_s
    while t <= min(now + horizon_s, end - 1e-9):
        if t >= fc.start:
            pods = planned_pods(spec, _value(planned, fc, t), per_pod)
            replicas = (
                None
                if pods is None
                else min(spec.max_replicas, max(spec.min_replicas, math.ceil(pods - 1e-9)))
            )
            points.append(
                PredictionPoint(
                    time=datetime.fromtimestamp(t, tz=UTC),
                    mean=_value(fc.mean, fc, t),
                    p50=_value(fc.quantiles.get(0.5, fc.mean), fc, t),
                    p90=_value(fc.quantiles.get(0.9, fc.mean), fc, t),
                    p99=_value(fc.quantiles.get(0.99, fc.mean), fc, t),
                    replicas=replicas,
                )
            )
        t += step_s
    stale = now - fc.made_at > spec.forecast.max_age
    return Prediction(
        status="stale" if stale else "ok",
        reason=f"fitted {now - fc.made_at:.0f} s ago (max_age {spec.forecast.max_age:.0f} s)"
        if stale
        else None,
        points=points,
        **common,
    )


class Accuracy(BaseModel):
    scaler: str
    measured_at: datetime | None
    lead_steps: int | None
    step: float | None
    models: dict[str, dict[str, float | int | None]] = Field(
        description="Per model: n origins, mae, mase (vs seasonal naive), under, p90_coverage"
    )


@router.get(
    "/v1/scalers/{name}/forecast-accuracy",
    operation_id="get_forecast_accuracy",
    response_model=Accuracy,
    responses=errors(404),
)
async def get_accuracy(ctx: Ctx, name: str, _auth: RequireRead) -> Accuracy:
    await spec_of(ctx, name)
    stored = await ctx.forecasts.get(ctx.db, name)
    details = stored.details if stored else {}
    measured = details.get("accuracy_at")
    models = {
        model: {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in m.items()}
        for model, m in details.get("accuracy", {}).items()
    }
    return Accuracy(
        scaler=name,
        measured_at=None if measured is None else datetime.fromtimestamp(measured, tz=UTC),
        lead_steps=details.get("lead_steps"),
        step=stored.forecast.step_s if stored else None,
        models=models,
    )


class ForecastRequest(BaseModel):
    # Finite numbers only, and durations a clock can hold: NaN or 1e308 are a 422, not a 500.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    points: list[tuple[float, float]] = Field(min_length=2, max_length=200_000)
    horizon: Annotated[float, Field(gt=0, le=MAX_DURATION_S)] = 3600.0
    step: Annotated[float, Field(gt=0, le=MAX_DURATION_S)] = 300.0
    model: str = "auto"


class ForecastPoint(BaseModel):
    timestamp: float
    mean: float
    p50: float
    p90: float
    p99: float


class ForecastResponse(BaseModel):
    model: str
    failed: str | None = None
    notes: list[str] = []
    points: list[ForecastPoint]


def _what_if(req: ForecastRequest) -> ForecastResponse:
    ts = np.array([p[0] for p in req.points], dtype=np.float64)
    vs = np.array([p[1] for p in req.points], dtype=np.float64)
    history: History = resample_to_grid(ts, vs, req.step)
    horizon = max(1, math.ceil(req.horizon / req.step))
    model = make_forecaster(req.model, lead=horizon)
    fc = model.fit(history).predict(horizon, QUANTILES)
    if fc.failed is not None:
        return ForecastResponse(model=fc.model or req.model, failed=fc.failed, points=[])
    times = fc.timestamps()
    return ForecastResponse(
        model=fc.model or req.model,
        notes=list(fc.notes),
        points=[
            ForecastPoint(
                timestamp=float(times[i]),
                mean=float(fc.mean[i]),
                p50=float(fc.quantiles[0.5][i]),
                p90=float(fc.quantiles[0.9][i]),
                p99=float(fc.quantiles[0.99][i]),
            )
            for i in range(len(fc))
        ],
    )


def _csv_points(text: str) -> list[tuple[float, float]]:
    points: list[tuple[float, float]] = []
    for row_no, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or (row_no == 1 and not _is_number(row[0])):
            continue  # a header
        if len(row) < 2:
            raise BadRequest(f"CSV line {row_no}: expected timestamp,value", code="invalid_csv")
        stamp = row[0].strip()
        try:
            t = float(stamp) if _is_number(stamp) else parse_rfc3339(stamp, naive_is_utc=True)
            points.append((t, float(row[1])))
        except ValueError as exc:
            raise BadRequest(f"CSV line {row_no}: {exc}", code="invalid_csv") from exc
    return points


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


CSV_TYPE = "text/csv"
_FORM_HINT = (
    "add -H 'Content-Type: application/json', or for a CSV file "
    "-H 'Content-Type: text/csv' --data-binary @series.csv"
)


@router.post(
    "/v1/forecasts",
    operation_id="forecast_series",
    response_model=ForecastResponse,
    responses=errors(400, 413, 415, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": ForecastRequest.model_json_schema()},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
async def forecast_series(
    ctx: Ctx,
    request: Request,
    _auth: RequireRead,
    horizon: Annotated[
        float | None, Query(gt=0, le=MAX_DURATION_S, description="For CSV uploads: seconds")
    ] = None,
    step: Annotated[
        float | None, Query(gt=0, le=MAX_DURATION_S, description="For CSV uploads: seconds")
    ] = None,
    model: Annotated[str | None, Query(description="For CSV uploads")] = None,
) -> ForecastResponse:
    """Forecast an uploaded series without a scaler (what-if): JSON, or a CSV of
    `timestamp,value` rows (unix seconds or RFC 3339) with the options in the query."""
    content_type = body_type(request, (JSON_TYPE, CSV_TYPE), form_hint=_FORM_HINT)
    body = await read_body(request, ctx.settings.max_body_bytes)
    try:
        if content_type == CSV_TYPE:
            document: Any = {"points": _csv_points(body.decode("utf-8"))}
            for key, value in (("horizon", horizon), ("step", step), ("model", model)):
                if value is not None:
                    document[key] = value
        else:
            document = json.loads(body)
        req = ForecastRequest.model_validate(document)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON or CSV: {exc}", code="invalid_body") from exc
    except ValidationError as exc:
        raise invalid_fields(exc) from exc
    if req.model not in MODEL_NAMES:
        raise UnprocessableEntity(
            f"unknown model {req.model!r}",
            details=[{"field": "model", "message": f"one of {', '.join(MODEL_NAMES)}"}],
        )
    if (max(p[0] for p in req.points) - min(p[0] for p in req.points)) / req.step > 100_000:
        raise BadRequest("the series spans more than 100,000 steps", code="too_many_points")
    if req.horizon / req.step > 10_000:
        raise BadRequest("horizon / step is more than 10,000 points", code="too_many_points")
    return await asyncio.to_thread(_what_if, req)
