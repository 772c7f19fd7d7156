"""Rolling updates with a surge plan: start one on a scaler's target, follow it, cancel it.

Starting only records the request (app.services.rollouts checks it against the live template,
so a container that does not exist, by `container` or named in `template_patch`, is a 422 now,
not a failed rollout later, nor a new container added to every pod); the leader's
executor (app.workers.rollouts) runs it. One active rollout per scaler: a second is a 409.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.api.auth import RequireAdmin, RequireRead
from app.api.body import json_body, json_body_doc
from app.api.context import Ctx
from app.api.responses import MAX_ID, errors
from app.services import rollouts, scalers
from app.store import rollouts as store

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
        None,
        description="A strategic merge patch of spec.template (instead of `image`): its "
        "`metadata` and/or `spec`. Containers and initContainers merge by name: each one it "
        "names must be one the target has (422 otherwise)",
    )
    surge_percent: float = Field(50, ge=1, le=200, description="Extra replicas before the patch")
    stabilize_s: float = Field(60, ge=0, le=86400, description="Stable this long before release")
    timeout_s: float = Field(
        900, gt=0, le=86400, description="Limit for each waiting step (surge, follow, rollback)"
    )

    @field_validator("template_patch")
    @classmethod
    def _pod_template(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        # A pod template has `metadata` and `spec`, each an object: the API server drops any
        # other key with a warning, and the rollout would "succeed" having changed nothing.
        if value is None:
            return value
        other = sorted(set(value) - {"metadata", "spec"})
        if other:
            raise ValueError(
                f"a patch of the pod template (spec.template) has only metadata and spec; "
                f"got {', '.join(map(repr, other))}"
            )
        for key in ("metadata", "spec"):
            if key in value and not isinstance(value[key], dict):
                raise ValueError(f"`{key}` of the pod template patch must be an object")
        return value

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

    @classmethod
    def of(cls, r: store.StoredRollout) -> RolloutOut:
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
                    duration_s=None
                    if started is None or ended is None
                    else (ended - started) / 1e6,
                    details=details,
                )
            )
        created, updated = _time(r.created_us), _time(r.updated_us)
        assert created is not None and updated is not None
        return cls(
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


@router.post(
    "/v1/scalers/{name}/rollouts",
    status_code=201,
    operation_id="create_rollout",
    response_model=RolloutOut,
    openapi_extra=json_body_doc(RolloutIn),
    responses={
        **errors(400, 413, 415),
        404: {"description": "No such scaler"},
        409: {
            "description": "A rollout of this scaler is already active, or the target "
            "cannot be read"
        },
        422: {
            "description": "Invalid request (neither image nor patch, surge out of range, "
            "a container the target does not have, by `container` or in `template_patch`)"
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
    created = await rollouts.start(
        ctx,
        name,
        body.model_dump(mode="json"),
        image=body.image,
        container=body.container,
        actor=auth,
    )
    response.headers["Location"] = f"/v1/rollouts/{created.id}"
    return RolloutOut.of(created)


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
    await scalers.get(ctx, name)
    async with ctx.db.read() as conn:
        found = await store.list_rollouts(conn, name, limit=limit)
    return RolloutList(rollouts=[RolloutOut.of(r) for r in found])


@router.get(
    "/v1/rollouts/{rollout_id}",
    operation_id="get_rollout",
    response_model=RolloutOut,
    responses=errors(404),
)
async def get_rollout(
    ctx: Ctx, rollout_id: Annotated[int, Path(ge=1, le=MAX_ID)], _auth: RequireRead
) -> RolloutOut:
    """The rollout with each step's start, end and details."""
    return RolloutOut.of(await rollouts.get(ctx, rollout_id))


@router.post(
    "/v1/rollouts/{rollout_id}/cancel",
    status_code=202,
    operation_id="cancel_rollout",
    response_model=RolloutOut,
    responses={**errors(404), 409: {"description": "The rollout has already finished"}},
)
async def cancel_rollout(
    ctx: Ctx, rollout_id: Annotated[int, Path(ge=1, le=MAX_ID)], auth: RequireAdmin
) -> RolloutOut:
    """Roll back: the original template is restored (when it was patched), then the target
    goes back to the policy. Accepted here, carried out by the executor."""
    return RolloutOut.of(await rollouts.cancel(ctx, rollout_id, actor=auth))
