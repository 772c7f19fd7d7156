"""Simulations and tuning: replay a trace or a scaler's stored load through the real policy
and the baselines (`POST /v1/simulations`), or search a scaler's targets for the cheapest spec
that keeps drops under a limit (`POST /v1/scalers/{name}/tune`). Both run in the background;
`GET /v1/simulations/{id}` returns the status and the report. A replica takes at most
CIUIC_MAX_PENDING_SIMULATIONS jobs at a time (429 beyond), and a job whose replica died is
failed, not left running (app.services.jobs)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.api.auth import Principal, RequireAdmin, RequireRead
from app.api.body import JSON_TYPE, body_type, json_body, json_body_doc, read_body
from app.api.context import AppContext, Ctx
from app.api.errors import invalid_fields
from app.api.responses import errors
from app.api.scalers import ScalerOut
from app.api.timeparams import parse_duration, parse_time
from app.errors import BadRequest, NotFound, UnprocessableEntity
from app.services import simulations as service
from app.services.jobs import Slot
from app.sim import DEFAULT_POLICIES, TraceError, build_workload, parse_trace
from app.store.tables import simulations

__all__ = ["router"]

router = APIRouter(tags=["simulations"])

Policy = Literal["ciuic", "hpa", "keda", "kpa", "oracle"]


def _all_policies() -> list[Policy]:
    return ["ciuic", "hpa", "keda", "kpa", "oracle"]


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scaler: str = Field(description="Replay this scaler's stored load with its spec")
    start: str | float | None = Field(None, description="Default: 7 days before end")
    end: str | float | None = Field(None, description="Default: now")
    policies: list[Policy] = Field(default_factory=_all_policies)
    seed: int = 0


class TuneRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: str | float | None = None
    end: str | float | None = None
    max_drop_rate: Annotated[float, Field(ge=0, le=1)] = 0.01
    monthly_budget_usd: Annotated[float, Field(gt=0)] | None = None
    seed: int = 0


class ApplyTuneRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["apply", "dry_run"] | None = Field(
        default=None,
        description="Also set the scaler's mode: `dry_run` shows the tuned decisions as "
        "events before they act; absent keeps the mode it has.",
    )


class AppliedTune(BaseModel):
    scaler: ScalerOut
    changes: dict[str, float] = Field(
        description="The knobs set: gpu_target (%), spare (warm pods), quantile, "
        "burst_threshold (queued requests)"
    )


class JobOut(BaseModel):
    id: str
    kind: str
    scaler: str | None
    status: str
    request: dict[str, Any]
    result: dict[str, Any] | None = Field(
        None,
        description="Once done. A simulation: `reports`, `markdown`. A tune: `best_spec`, "
        "`best`, `changes` (what apply sets) and `frontier`; `best_spec`, `best` and "
        "`changes` are null when no candidate met the limits, and `message` says which "
        "(null when there is a best)",
    )
    error: str | None = None
    created_at: datetime
    finished_at: datetime | None = None


def _time(us: int | None) -> datetime | None:
    return None if us is None else datetime.fromtimestamp(us / 1e6, tz=UTC)


_TOO_MANY = {
    429: "This replica already has CIUIC_MAX_PENDING_SIMULATIONS jobs queued or running; "
    "nothing was created. Retry after `Retry-After` s"
}


def _accepted(job_id: str) -> Response:
    body = json.dumps({"id": job_id, "status": "pending", "url": f"/v1/simulations/{job_id}"})
    return Response(
        body,
        status_code=202,
        media_type="application/json",
        headers={"Location": f"/v1/simulations/{job_id}"},
    )


def _range(
    ctx: AppContext, start: str | float | None, end: str | float | None
) -> tuple[float, float]:
    t1 = ctx.clock.now() if end is None else parse_time(str(end), "end")
    t0 = t1 - 7 * 86400 if start is None else parse_time(str(start), "start")
    if t1 - t0 < 3600:
        raise BadRequest("the range must span at least an hour", code="invalid_parameter")
    if t1 - t0 > 31 * 86400:
        raise BadRequest("the range may span at most 31 days", code="invalid_parameter")
    return t0, t1


# A trace is CSV (text/plain too); a replay request is JSON, as is a body without a type.
TRACE_TYPES = ("text/csv", "text/plain")
SIMULATION_TYPES = (JSON_TYPE, *TRACE_TYPES)
_FORM_HINT = (
    "add -H 'Content-Type: application/json', or for a trace "
    "-H 'Content-Type: text/csv' --data-binary @trace.csv"
)


@router.post(
    "/v1/simulations",
    status_code=202,
    operation_id="create_simulation",
    responses=errors(400, 404, 413, 415, 422, described=_TOO_MANY),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": ReplayRequest.model_json_schema()},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
async def create_simulation(
    ctx: Ctx,
    request: Request,
    auth: RequireRead,
    policy: Annotated[list[Policy] | None, Query(description="For trace uploads")] = None,
    window: Annotated[str | None, Query(description="Scored window, e.g. 14d")] = None,
    seed: Annotated[int, Query()] = 0,
    scaler: Annotated[str | None, Query(description="Use this scaler's spec for ciuic")] = None,
) -> Response:
    """A CSV trace (`timestamp,value` counts or a `TIMESTAMP,ContextTokens,GeneratedTokens`
    request log), or JSON naming a scaler whose stored load to replay."""
    trace = body_type(request, SIMULATION_TYPES, form_hint=_FORM_HINT) in TRACE_TYPES
    with ctx.simulations.reserve() as slot:  # before the body is read: it is what takes memory
        return await _create_simulation(
            ctx, request, auth, slot, trace, policy, window, seed, scaler
        )


def _check_trace(text: str, window_s: float | None) -> None:
    """Parse the trace and scale its window as the job will (a window with no load fails)."""
    build_workload(parse_trace(text.splitlines()), seed=0, window_s=window_s)


async def _create_simulation(
    ctx: AppContext,
    request: Request,
    auth: Principal,
    slot: Slot,
    trace: bool,
    policy: list[Policy] | None,
    window: str | None,
    seed: int,
    scaler: str | None,
) -> Response:
    body = await read_body(request, ctx.settings.max_body_bytes)
    if trace:
        text = body.decode("utf-8", errors="replace")
        window_s = None if window is None else parse_duration(window, "window")
        try:  # the job would fail on it later: refuse it now, with nothing stored
            await asyncio.to_thread(_check_trace, text, window_s)
        except TraceError as exc:
            raise UnprocessableEntity(
                f"the trace cannot be read: {exc}", code="invalid_trace"
            ) from exc
        job_id = await service.start_trace(
            ctx,
            slot,
            text,
            trace_bytes=len(body),
            policies=list(policy or DEFAULT_POLICIES),
            window_s=window_s,
            seed=seed,
            scaler=scaler,
            actor=auth,
        )
        return _accepted(job_id)
    try:
        req = ReplayRequest.model_validate_json(body)
    except ValidationError as exc:
        raise invalid_fields(exc) from exc
    t0, t1 = _range(ctx, req.start, req.end)
    job_id = await service.start_replay(
        ctx,
        slot,
        req.scaler,
        t0=t0,
        t1=t1,
        policies=list(req.policies),
        seed=req.seed,
        actor=auth,
    )
    return _accepted(job_id)


@router.post(
    "/v1/scalers/{name}/tune",
    status_code=202,
    operation_id="tune_scaler",
    openapi_extra=json_body_doc(TuneRequest),
    responses=errors(400, 404, 413, 415, described=_TOO_MANY),
)
async def tune_scaler(
    ctx: Ctx,
    name: str,
    auth: RequireAdmin,
    body: Annotated[TuneRequest, Depends(json_body(TuneRequest))],
) -> Response:
    """Replay the scaler's stored load with candidate GPU targets and keep the cheapest spec
    whose drop rate and monthly cost stay within the limits; the frontier comes with it."""
    with ctx.simulations.reserve() as slot:
        t0, t1 = _range(ctx, body.start, body.end)
        job_id = await service.start_tune(
            ctx,
            slot,
            name,
            t0=t0,
            t1=t1,
            seed=body.seed,
            max_drop_rate=body.max_drop_rate,
            monthly_budget_usd=body.monthly_budget_usd,
            request={**body.model_dump(), "start": t0, "end": t1},
            actor=auth,
        )
        return _accepted(job_id)


@router.post(
    "/v1/simulations/{job_id}/apply",
    operation_id="apply_tune",
    response_model=AppliedTune,
    openapi_extra=json_body_doc(ApplyTuneRequest, required=False),
    responses={
        **errors(400, 404, 409, 415),
        412: {"description": "The scaler's spec changed since the tune: tune again"},
    },
)
async def apply_tune(
    ctx: Ctx,
    job_id: str,
    auth: RequireAdmin,
    body: Annotated[ApplyTuneRequest, Depends(json_body(ApplyTuneRequest, optional=True))],
) -> AppliedTune:
    """Set a finished tune's best knobs on its scaler's spec (a new generation, audited); only
    onto the spec the tune searched from. With `"mode": "dry_run"` the scaler shows what the
    tuned spec would do before it acts."""
    saved, changes = await service.apply_tune(ctx, job_id, mode=body.mode, actor=auth)
    return AppliedTune(scaler=ScalerOut.of(saved), changes=changes)


@router.get(
    "/v1/simulations/{job_id}",
    operation_id="get_simulation",
    response_model=JobOut,
    responses=errors(404),
)
async def get_simulation(ctx: Ctx, job_id: str, _auth: RequireRead) -> JobOut:
    async with ctx.db.read() as conn:
        row = (await conn.execute(sa.select(simulations).where(simulations.c.id == job_id))).first()
    if row is None:
        raise NotFound(f"no simulation {job_id!r}")
    created = _time(int(row.created_us))
    assert created is not None
    return JobOut(
        id=row.id,
        kind=row.kind,
        scaler=row.scaler,
        status=row.status,
        request=json.loads(row.request),
        result=None if row.result is None else json.loads(row.result),
        error=row.error,
        created_at=created,
        finished_at=_time(row.finished_us),
    )
