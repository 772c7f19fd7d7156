"""JSON ingestion: POST /v1/samples, all or nothing."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.api.auth import RequirePush
from app.api.body import read_body
from app.api.context import Ctx
from app.api.pushgateway.grouping import LABEL_NAME
from app.errors import BadRequest, PayloadTooLarge, UnprocessableEntity
from app.store.series import SampleRow, SeriesKey

__all__ = ["SampleIn", "SamplesIn", "router"]

router = APIRouter(tags=["ingestion"])

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


class SampleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: Annotated[str, Field(min_length=1, max_length=255, examples=["gpu_utilization"])]
    labels: dict[str, str] = Field(default_factory=dict)
    value: Annotated[float, Field(allow_inf_nan=False)]
    timestamp: float | str | None = Field(
        None, description="RFC 3339 or unix seconds; the time of receipt when absent"
    )

    @field_validator("metric")
    @classmethod
    def _metric_name(cls, value: str) -> str:
        if not METRIC_NAME.match(value):
            raise ValueError(f"{value!r} is not a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)")
        return value

    @field_validator("labels")
    @classmethod
    def _label_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not LABEL_NAME.match(name) or name.startswith("__"):
                raise ValueError(f"{name!r} is not a valid label name")
        return value

    @field_validator("timestamp")
    @classmethod
    def _timestamp(cls, value: float | str | None) -> float | None:
        if value is None:
            return None
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError as exc:
                raise ValueError(f"{value!r} is not an RFC 3339 time") from exc
            if parsed.tzinfo is None:
                raise ValueError(f"{value!r} has no time zone offset")
            return parsed.timestamp()
        if not math.isfinite(value) or value < 0:
            raise ValueError("a unix timestamp must be a finite, non-negative number")
        return float(value)


class SamplesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    samples: list[SampleIn]


class SamplesAccepted(BaseModel):
    accepted: int


def _validation_details(exc: ValidationError) -> list[dict[str, object]]:
    return [
        {
            "field": ".".join(str(p) for p in err["loc"]),
            "message": err["msg"],
            "value": err.get("input") if not isinstance(err.get("input"), dict | list) else None,
        }
        for err in exc.errors()
    ]


@router.post(
    "/v1/samples",
    operation_id="ingest_samples",
    summary="Append samples (all or nothing)",
    response_model=SamplesAccepted,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": SamplesIn.model_json_schema()}},
        }
    },
)
async def ingest_samples(ctx: Ctx, request: Request, _auth: RequirePush) -> SamplesAccepted:
    body = await read_body(request, ctx.settings.max_body_bytes)
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", code="invalid_json") from exc
    if isinstance(document, dict) and isinstance(document.get("samples"), list):
        count = len(document["samples"])
        if count > ctx.settings.max_samples_per_push:
            raise PayloadTooLarge(
                f"the request has {count} samples; the limit (CIUIC_MAX_SAMPLES_PER_PUSH) is "
                f"{ctx.settings.max_samples_per_push}",
                code="too_many_samples",
                details={"samples": count, "limit": ctx.settings.max_samples_per_push},
            )
    try:
        batch = SamplesIn.model_validate(document)
    except ValidationError as exc:
        raise UnprocessableEntity(
            f"{exc.error_count()} invalid field(s) in the samples",
            details=_validation_details(exc),
        ) from exc
    now_us = ctx.clock.stamp_us()
    newest_ok = now_us + int(ctx.settings.max_future_skew_s * 1e6)
    oldest_ok = now_us - int(ctx.settings.raw_retention_days * 86400e6)
    rows: list[SampleRow] = []
    problems: list[dict[str, object]] = []
    for i, s in enumerate(batch.samples):
        ts_us = now_us if s.timestamp is None else round(float(s.timestamp) * 1e6)
        if ts_us > newest_ok:
            problems.append(
                {
                    "field": f"samples.{i}.timestamp",
                    "message": "more than CIUIC_MAX_FUTURE_SKEW_S "
                    f"({ctx.settings.max_future_skew_s:g} s) in the future",
                    "value": s.timestamp,
                }
            )
        elif ts_us < oldest_ok:
            problems.append(
                {
                    "field": f"samples.{i}.timestamp",
                    "message": "older than the raw retention "
                    f"({ctx.settings.raw_retention_days:g} days)",
                    "value": s.timestamp,
                }
            )
        rows.append(SampleRow(SeriesKey.of(s.metric, s.labels), ts_us, s.value))
    if problems:
        raise UnprocessableEntity(
            f"{len(problems)} sample(s) with timestamps out of range", details=problems
        )
    async with ctx.db.transaction() as conn:
        written = await ctx.series.write(conn, rows, now_us=now_us)
    ctx.series.remember(written)
    ctx.telemetry.pushes.labels("json", "accepted").inc()
    ctx.telemetry.samples.labels("json").inc(written.samples)
    return SamplesAccepted(accepted=written.samples)
