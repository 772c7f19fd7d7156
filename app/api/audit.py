"""The audit log through the API (admin scope): what the services recorded (app.services.audit),
each row in the transaction of its change. Targets read `scaler/<name>`, `token/<id>`,
`simulation/<id>`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from app.api.auth import RequireAdmin
from app.api.context import Ctx
from app.api.responses import MAX_ID, errors
from app.api.timeparams import optional_time_us
from app.store import audit as store

__all__ = ["router"]

router = APIRouter(prefix="/v1/audit", tags=["audit"])


class AuditEntryOut(BaseModel):
    id: int
    time: datetime
    actor: str = Field(description='Token id; "admin" is the bootstrap token')
    scope: str
    action: str = Field(examples=["scaler.replace"])
    target: str = Field(examples=["scaler/deepseek-service"])
    details: dict[str, Any]


class AuditPage(BaseModel):
    entries: list[AuditEntryOut]
    next_cursor: int | None = Field(None, description="Pass as `cursor` for the next page")


@router.get("", operation_id="list_audit_entries", response_model=AuditPage, responses=errors(400))
async def list_audit(
    ctx: Ctx,
    _auth: RequireAdmin,
    since: Annotated[str | None, Query(description="RFC 3339 or unix seconds")] = None,
    until: Annotated[str | None, Query(description="RFC 3339 or unix seconds")] = None,
    actor: Annotated[str | None, Query(description="A token id, or admin / anonymous")] = None,
    target: Annotated[str | None, Query(description="e.g. scaler/deepseek-service")] = None,
    action: Annotated[str | None, Query(description="e.g. scaler.replace, token.revoke")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> AuditPage:
    """Newest first."""
    since_us = optional_time_us(since, "since")
    until_us = optional_time_us(until, "until")
    async with ctx.db.read() as conn:
        found = await store.list_entries(
            conn,
            since_us=since_us,
            until_us=until_us,
            actor=actor,
            target=target,
            action=action,
            before_id=cursor,
            limit=limit + 1,
        )
    more = len(found) > limit
    found = found[:limit]
    return AuditPage(
        entries=[
            AuditEntryOut(
                id=e.id,
                time=datetime.fromtimestamp(e.ts_us / 1e6, tz=UTC),
                actor=e.actor,
                scope=e.scope,
                action=e.action,
                target=e.target,
                details=e.details,
            )
            for e in found
        ],
        next_cursor=found[-1].id if more and found else None,
    )
