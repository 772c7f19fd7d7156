"""Operations: liveness, readiness (checks the database), and our own Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.context import Ctx
from app.errors import ServiceUnavailable
from app.store.db import is_unavailable

__all__ = ["router"]

router = APIRouter(tags=["operations"])


@router.get("/healthz", operation_id="healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    operation_id="readyz",
    summary="Readiness: the database answers",
    responses={503: {"description": "The database is unavailable"}},
)
async def readyz(ctx: Ctx) -> dict[str, object]:
    try:
        await ctx.db.ping()
    except Exception as exc:
        ctx.telemetry.db_up.set(0)
        if is_unavailable(exc):
            raise ServiceUnavailable(
                f"database unavailable: {type(exc).__name__}",
                code="database_unavailable",
                headers={"Retry-After": str(ctx.settings.db_retry_after_s)},
            ) from exc
        raise
    ctx.telemetry.db_up.set(1)
    leadership = ctx.leadership
    body: dict[str, object] = {
        "status": "ready",
        "database": "ok",
        "leader": leadership is not None and leadership.is_leader,
    }
    # Why this replica cannot lead, when it cannot (e.g. RBAC refuses the Lease): with no
    # leader nothing reconciles, and no scaler's status could say why.
    error = leadership.error if leadership is not None else None
    if error:
        body["leader_error"] = error
    return body


@router.get(
    "/metrics",
    operation_id="service_metrics",
    summary="The service's own metrics, Prometheus text format",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def service_metrics(ctx: Ctx) -> Response:
    return Response(generate_latest(ctx.telemetry.registry), media_type=CONTENT_TYPE_LATEST)
