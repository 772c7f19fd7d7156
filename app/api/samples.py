"""JSON ingestion: POST /v1/samples, all or nothing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from app.api.auth import RequirePush
from app.api.body import behind_receipt, check_sample_count, read_body, require_json
from app.api.context import Ctx
from app.api.errors import invalid_fields
from app.api.responses import errors
from app.errors import BadRequest, UnprocessableEntity
from app.services.ingest import ingest
from app.store.series import SampleRow, SeriesKey
from app.timetext import parse_rfc3339, parse_time

__all__ = ["SampleIn", "SamplesIn", "router"]

router = APIRouter(tags=["ingestion"])


# Checked by pydantic-core (Rust), not Python validators: a 1,000-sample batch stays cheap.
# A label name may not start with "__" (reserved), hence the two alternatives after "_".
MetricName = Annotated[
    str, StringConstraints(min_length=1, max_length=255, pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
]
LabelName = Annotated[
    str, StringConstraints(pattern=r"^(?:[a-zA-Z][a-zA-Z0-9_]*|_[a-zA-Z0-9][a-zA-Z0-9_]*|_)$")
]


class SampleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: MetricName = Field(examples=["gpu_utilization"])
    labels: dict[LabelName, str] = Field(default_factory=dict)
    # strict: a JSON number; "4.2" (text) or true is refused rather than read as one
    value: Annotated[float, Field(strict=True, allow_inf_nan=False)]
    timestamp: Annotated[float, Field(ge=0, allow_inf_nan=False)] | str | None = Field(
        None, description="RFC 3339 or unix seconds; the time of receipt when absent"
    )


def _seconds(value: float | str) -> float:
    """A sample's time: a number is unix seconds, text is RFC 3339 (TimeTextError, a
    ValueError, names the text); either up to the year 9999, so its microseconds fit the
    store (1e308 was a 500)."""
    return parse_time(value) if not isinstance(value, str) else parse_rfc3339(value)


class SamplesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    samples: list[SampleIn]


class SamplesAccepted(BaseModel):
    accepted: int


@router.post(
    "/v1/samples",
    operation_id="ingest_samples",
    summary="Append samples (all or nothing)",
    response_model=SamplesAccepted,
    responses=errors(400, 413, 415, 422, 429),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": SamplesIn.model_json_schema()}},
        }
    },
)
async def ingest_samples(ctx: Ctx, request: Request, _auth: RequirePush) -> SamplesAccepted:
    require_json(request)
    body = await read_body(request, ctx.settings.max_body_bytes)
    try:
        # Parsed and validated in one pass by pydantic-core (Rust): the hot path of JSON pushes.
        batch = SamplesIn.model_validate_json(body)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise BadRequest(
                f"the body is not valid JSON: {exc.errors()[0]['msg']}", code="invalid_json"
            ) from exc
        raise invalid_fields(exc, "the samples") from exc
    check_sample_count(len(batch.samples), ctx.settings.max_samples_per_push, "the request")
    now_us = ctx.clock.stamp_us()
    newest_ok = now_us + int(ctx.settings.max_future_skew_s * 1e6)
    oldest_ok = now_us - int(ctx.settings.raw_retention_days * 86400e6)
    rows: list[SampleRow] = []
    problems: list[dict[str, object]] = []
    newest_seen = 0
    for i, s in enumerate(batch.samples):
        if s.timestamp is None:
            ts_us = now_us
        else:
            try:
                ts_us = round(_seconds(s.timestamp) * 1e6)
            except ValueError as exc:
                problems.append(
                    {
                        "field": f"samples.{i}.timestamp",
                        "message": f"not a time: {exc}"
                        if not isinstance(s.timestamp, str)
                        else f"not an RFC 3339 time: {exc}",
                        "value": s.timestamp,
                    }
                )
                continue
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
        if ts_us > newest_seen:
            newest_seen = ts_us
    if problems:
        raise UnprocessableEntity(
            f"{len(problems)} sample(s) with invalid or out-of-range timestamps",
            details=problems,
        )
    if newest_seen > now_us:
        rows = behind_receipt(rows, now_us)
    return SamplesAccepted(accepted=await ingest(ctx, rows, now_us=now_us, protocol="json"))
