"""Rolling updates with a surge plan: start one on a scaler's target, follow it, cancel it.

The API only records the request (and checks it against the live template, so a container
that does not exist is a 422 now, not a failed rollout later); the leader's executor
(app.workers.rollouts) runs it. One active rollout per scaler: a second is a 409.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.api.audit import audit
from app.api.auth import RequireAdmin, RequireRead
from app.api.body import json_body, json_body_doc
from app.api.context import AppContext, Ctx
from app.api.responses import errors
from app.errors import Conflict, NotFound, UnprocessableEntity
from app.kube.cluster import ClusterError
from app.policy import SpecError, parse_spec
from app.store import rollouts as store
from app.store import scalers as scaler_store
from app.workers.rollouts import image_patch

__all__ = ["router"]

router = APIRouter(tags=["rollouts"])


class RolloutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: str | None = Field(
        None, min_length=1, max_length=1024, description="The new image of one container"
    )
    container: str | None = Field(
        None, min_length=1, max_length=253, description="Which container (default: the first)"
    )
    template_patch: dict[str, Any] | None = Field(
        None, description="A strategic merge patch of spec.template (instead of `image`)"
    )
    surge_percent: float = Field(50, ge=1, le=200, description="Extra replicas before the patch")
    stabilize_s: float = Field(60, ge=0, le=86400, description="Stable this long before release")
    timeout_s: float = Field(
        900, gt=0, le=86400, description="Limit for each waiting step (surge, follow, rollback)"
    )

    @model_validator(mode="after")
    def _one_change(self) -> RolloutIn:
        if (self.image is None) == (self.template_patch is None):
            raise ValueError("give either `image` or `template_patch` (exactly one)")
        if self.template_patch is not None and not self.template_patch:
            raise ValueError("`template_patch` is empty: it would change nothing")
        if self.container is not None and self.image is None:
            raise ValueError("`container` goes with `image`")
        return self


class StepOut(BaseModel):
    name: str
    status: str = Field(description="pending, running, done, failed, cancelled or skipped")
    started_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None
    details: dict[str, Any]


class RolloutOut(BaseModel):
    id: int
    scaler: str
    status: str = Field(
        description="pending, running, succeeded, failed, cancelled or rolling_back"
    )
    step: str
    steps: list[StepOut]
    request: dict[str, Any]
    dry_run: bool
    cancel_requested: bool
    original_template: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    error: str | None


class RolloutList(BaseModel):
    rollouts: list[RolloutOut]


def _time(us: int | None) -> datetime | None:
    return None if us is None else datetime.fromtimestamp(us / 1e6, tz=UTC)


def _details(stored: dict[str, Any]) -> dict[str, Any]:
    """Times in step details are stored as `<name>_us` microseconds; shown as `<name>_at`."""
    out: dict[str, Any] = {}
    for key, value in stored.items():
        if key == "begun":  # the executor's own bookkeeping
            continue
        when = _time(value) if key.endswith("_us") and isinstance(value, int) else None
        if when is None:
            out[key] = value
        else:
            out[key.removesuffix("_us") + "_at"] = when.isoformat()
    return out


def _out(r: store.StoredRollout) -> RolloutOut:
    steps = []
    for s in r.steps:
        started, ended = s.get("started_us"), s.get("ended_us")
        details = _details(s.get("details", {}))
        steps.append(
            StepOut(
                name=s["name"],
                status=s["status"],
                started_at=_time(started),
                ended_at=_time(ended),
                duration_s=None if started is None or ended is None else (ended - started) / 1e6,
                details=details,
            )
        )
    created, updated = _time(r.created_us), _time(r.updated_us)
    assert created is not None and updated is not None
    return RolloutOut(
        id=r.id,
        scaler=r.scaler,
        status=r.status,
        step=r.step,
        steps=steps,
        request=r.request,
        dry_run=r.dry_run,
        cancel_requested=r.cancel_requested,
        original_template=r.original_template,
        created_at=created,
        updated_at=updated,
        error=r.error,
    )


async def _scaler(ctx: AppContext, name: str) -> scaler_store.StoredScaler:
    async with ctx.db.read() as conn:
        found = await scaler_store.get_scaler(conn, name)
    if found is None:
        raise NotFound(f"no scaler named {name!r}")
    return found


async def _rollout(ctx: AppContext, rollout_id: int) -> store.StoredRollout:
    async with ctx.db.read() as conn:
        found = await store.get_rollout(conn, rollout_id)
    if found is None:
        raise NotFound(f"no rollout {rollout_id}")
    return found


@router.post(
    "/v1/scalers/{name}/rollouts",
    status_code=201,
    operation_id="create_rollout",
    response_model=RolloutOut,
    openapi_extra=json_body_doc(RolloutIn),
    responses={
        **errors(400, 413),
        404: {"description": "No such scaler"},
        409: {
            "description": "A rollout of this scaler is already active, or the target "
            "cannot be read"
        },
        422: {
            "description": "Invalid request (neither image nor patch, surge out of range, "
            "unknown container)"
        },
    },
)
async def create_rollout(
    ctx: Ctx,
    name: str,
    auth: RequireAdmin,
    body: Annotated[RolloutIn, Depends(json_body(RolloutIn))],
    response: Response,
) -> RolloutOut:
    """Surge, patch the template, follow, stabilise, hand back to the policy."""
    scaler = await _scaler(ctx, name)
    try:
        spec = parse_spec(scaler.document)
    except SpecError as exc:
        raise UnprocessableEntity(f"the scaler's spec is invalid: {exc}") from exc
    patch = body.template_patch
    if body.image is not None:
        try:
            template = await ctx.cluster.template(spec.target)
        except ClusterError as exc:
            raise Conflict(f"cannot read the target: {exc}", code="cluster_error") from exc
        try:
            patch = image_patch(template, body.image, body.container)
        except ValueError as exc:
            raise UnprocessableEntity(
                str(exc),
                code="invalid_rollout",
                details=[{"field": "container", "message": str(exc)}],
            ) from exc
    request = {**body.model_dump(mode="json"), "patch": patch}
    now_us = ctx.clock.stamp_us()
    async with ctx.db.transaction() as conn:
        # The scaler row lock (PostgreSQL) serialises two concurrent requests for one scaler.
        if await scaler_store.get_scaler(conn, name, for_update=True) is None:
            raise NotFound(f"no scaler named {name!r}")
        active = (await store.active_for(conn)).get(name)
        if active is not None:
            raise Conflict(
                f"rollout {active} of scaler {name!r} is still active; wait for it or cancel "
                f"it (POST /v1/rollouts/{active}/cancel)",
                code="rollout_active",
                details={"rollout": active},
            )
        dry_run = spec.mode == "dry_run"
        created = await store.create_rollout(conn, name, request, dry_run=dry_run, now_us=now_us)
        await scaler_store.add_event(
            conn,
            name,
            ts_us=now_us,
            kind="rollout",
            message=f"rollout {created.id}: requested ({body.surge_percent:g} % surge"
            f"{', dry run' if dry_run else ''})",
            payload={"rollout": created.id, "request": request, "actor": auth.token_id},
        )
        await audit(
            conn,
            auth,
            ts_us=now_us,
            action="rollout.start",
            target=f"scaler/{name}",
            details={"rollout": created.id, "dry_run": dry_run, "request": request},
        )
    ctx.rollout_kick.set()
    response.headers["Location"] = f"/v1/rollouts/{created.id}"
    return _out(created)


@router.get(
    "/v1/scalers/{name}/rollouts",
    operation_id="list_scaler_rollouts",
    response_model=RolloutList,
    responses=errors(404),
)
async def list_rollouts(
    ctx: Ctx,
    name: str,
    _auth: RequireRead,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> RolloutList:
    """Newest first."""
    await _scaler(ctx, name)
    async with ctx.db.read() as conn:
        found = await store.list_rollouts(conn, name, limit=limit)
    return RolloutList(rollouts=[_out(r) for r in found])


@router.get(
    "/v1/rollouts/{rollout_id}",
    operation_id="get_rollout",
    response_model=RolloutOut,
    responses=errors(404),
)
async def get_rollout(
    ctx: Ctx, rollout_id: Annotated[int, Path(ge=1)], _auth: RequireRead
) -> RolloutOut:
    """The rollout with each step's start, end and details."""
    return _out(await _rollout(ctx, rollout_id))


@router.post(
    "/v1/rollouts/{rollout_id}/cancel",
    status_code=202,
    operation_id="cancel_rollout",
    response_model=RolloutOut,
    responses={**errors(404), 409: {"description": "The rollout has already finished"}},
)
async def cancel_rollout(
    ctx: Ctx, rollout_id: Annotated[int, Path(ge=1)], auth: RequireAdmin
) -> RolloutOut:
    """Roll back: the original template is restored (when it was patched), then the target
    goes back to the policy. Accepted here, carried out by the executor."""
    found = await _rollout(ctx, rollout_id)
    if not found.active:
        raise Conflict(
            f"rollout {rollout_id} is {found.status}; only an active rollout can be cancelled",
            code="rollout_finished",
            details={"status": found.status},
        )
    now_us = ctx.clock.stamp_us()
    if not found.cancel_requested:
        async with ctx.db.transaction() as conn:
            await store.request_cancel(conn, rollout_id, now_us=now_us)
            await scaler_store.add_event(
                conn,
                found.scaler,
                ts_us=now_us,
                kind="rollout",
                message=f"rollout {rollout_id}: cancel requested",
                payload={"rollout": rollout_id, "actor": auth.token_id},
            )
            await audit(
                conn,
                auth,
                ts_us=now_us,
                action="rollout.cancel",
                target=f"scaler/{found.scaler}",
                details={
                    "rollout": rollout_id,
                    "before": {"status": found.status, "cancel_requested": False},
                    "after": {"status": found.status, "cancel_requested": True},
                },
            )
    ctx.rollout_kick.set()
    return _out(await _rollout(ctx, rollout_id))
