"""Token management (admin scope): create (secret shown once), list, revoke; each audited.

Neither the secret nor its hash ever leaves in a listing, and neither is written to the audit
log.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from app.api.auth import RequireAdmin
from app.api.body import json_body, json_body_doc
from app.api.context import Ctx
from app.api.responses import errors
from app.services import tokens
from app.store import tokens as store

__all__ = ["router"]

router = APIRouter(prefix="/v1/tokens", tags=["tokens"])


# Far above any fleet, and within the database's integer column.
MAX_PUSH_RATE_PER_S = 1_000_000.0
MAX_PUSH_BURST = 10_000_000


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    name: Annotated[str, Field(min_length=1, max_length=255)]
    scope: Literal["push", "read", "admin"]
    push_rate_per_s: Annotated[float, Field(ge=0, le=MAX_PUSH_RATE_PER_S)] | None = Field(
        None,
        description="Ingestion requests per second for this token (0: unlimited); "
        "default CIUIC_PUSH_RATE_PER_S",
    )
    push_burst: Annotated[int, Field(ge=1, le=MAX_PUSH_BURST)] | None = Field(
        None, description="Requests allowed at once; default CIUIC_PUSH_BURST"
    )


class TokenOut(BaseModel):
    id: str
    name: str
    scope: str
    created_at: datetime
    revoked_at: datetime | None = None
    push_rate_per_s: float | None = None
    push_burst: int | None = None

    @classmethod
    def of(cls, t: store.StoredToken) -> TokenOut:
        created = _time(t.created_us)
        assert created is not None
        return cls(
            id=t.id,
            name=t.name,
            scope=t.scope,
            created_at=created,
            revoked_at=_time(t.revoked_us),
            push_rate_per_s=t.push_rate_per_s,
            push_burst=t.push_burst,
        )


class TokenCreated(TokenOut):
    token: str = Field(description="The secret. Shown only in this response; store it now.")


def _time(us: int | None) -> datetime | None:
    return None if us is None else datetime.fromtimestamp(us / 1e6, tz=UTC)


@router.post(
    "",
    status_code=201,
    operation_id="create_token",
    response_model=TokenCreated,
    openapi_extra=json_body_doc(TokenCreate),
    responses=errors(400, 413, 415, 422),
)
async def create_token(
    ctx: Ctx,
    auth: RequireAdmin,
    body: Annotated[TokenCreate, Depends(json_body(TokenCreate))],
) -> TokenCreated:
    stored, secret = await tokens.create_token(
        ctx,
        auth,
        name=body.name,
        scope=body.scope,
        push_rate_per_s=body.push_rate_per_s,
        push_burst=body.push_burst,
        audited=body.model_dump(exclude_none=True),
    )
    return TokenCreated(**TokenOut.of(stored).model_dump(), token=secret)


@router.get("", operation_id="list_tokens", response_model=list[TokenOut])
async def list_tokens(ctx: Ctx, _auth: RequireAdmin) -> list[TokenOut]:
    async with ctx.db.read() as conn:
        return [TokenOut.of(t) for t in await store.list_tokens(conn)]


@router.delete("/{token_id}", status_code=204, operation_id="revoke_token", responses=errors(404))
async def revoke_token(ctx: Ctx, token_id: str, auth: RequireAdmin) -> Response:
    await tokens.revoke_token(ctx, auth, token_id)
    return Response(status_code=204)
