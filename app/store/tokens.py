"""API tokens: stored as SHA-256 hashes, the secret shown once at creation.

A token is found by the hash of the secret presented (an indexed equality in the database).
That comparison need not be constant-time: what its timing could leak is the stored hash, and
a hash does not authenticate — the secret behind it has 192 random bits.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.tables import tokens

__all__ = [
    "SCOPES",
    "StoredToken",
    "create_token",
    "find_by_secret",
    "hash_secret",
    "list_tokens",
    "revoke_token",
]

SCOPES = ("push", "read", "admin")


@dataclass(frozen=True, slots=True)
class StoredToken:
    id: str
    name: str
    scope: str
    created_us: int
    revoked_us: int | None
    push_rate_per_s: float | None = None  # None: the service's default
    push_burst: int | None = None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _row(r: sa.Row[tuple[object, ...]]) -> StoredToken:
    m = r._mapping
    return StoredToken(
        str(m["id"]),
        str(m["name"]),
        str(m["scope"]),
        int(m["created_us"]),
        None if m["revoked_us"] is None else int(m["revoked_us"]),
        None if m["push_rate_per_s"] is None else float(m["push_rate_per_s"]),
        None if m["push_burst"] is None else int(m["push_burst"]),
    )


async def create_token(
    conn: AsyncConnection,
    *,
    name: str,
    scope: str,
    now_us: int,
    push_rate_per_s: float | None = None,
    push_burst: int | None = None,
) -> tuple[StoredToken, str]:
    token_id = secrets.token_hex(6)
    secret = f"ciuic_{token_id}_{secrets.token_urlsafe(24)}"
    await conn.execute(
        sa.insert(tokens).values(
            id=token_id,
            name=name,
            scope=scope,
            secret_hash=hash_secret(secret),
            created_us=now_us,
            push_rate_per_s=push_rate_per_s,
            push_burst=push_burst,
        )
    )
    return StoredToken(token_id, name, scope, now_us, None, push_rate_per_s, push_burst), secret


async def find_by_secret(conn: AsyncConnection, secret: str) -> StoredToken | None:
    row = (
        await conn.execute(sa.select(tokens).where(tokens.c.secret_hash == hash_secret(secret)))
    ).first()
    return None if row is None else _row(row)


async def list_tokens(conn: AsyncConnection) -> list[StoredToken]:
    rows = await conn.execute(sa.select(tokens).order_by(tokens.c.created_us))
    return [_row(r) for r in rows.all()]


async def revoke_token(conn: AsyncConnection, token_id: str, now_us: int) -> StoredToken | None:
    row = (await conn.execute(sa.select(tokens).where(tokens.c.id == token_id))).first()
    if row is None:
        return None
    if row._mapping["revoked_us"] is None:
        await conn.execute(
            sa.update(tokens).where(tokens.c.id == token_id).values(revoked_us=now_us)
        )
    return _row(row)
