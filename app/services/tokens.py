"""Tokens: create one (its secret returned once) and revoke one, each audited in its own
transaction; neither the secret nor its hash reaches the audit log."""

from __future__ import annotations

from typing import Any

from app.services.audit import audit
from app.services.errors import NotFound
from app.services.principals import Principal
from app.services.shell import Shell
from app.store import tokens as store

__all__ = ["create_token", "revoke_token"]


async def create_token(
    shell: Shell,
    actor: Principal,
    *,
    name: str,
    scope: str,
    push_rate_per_s: float | None = None,
    push_burst: int | None = None,
    audited: dict[str, Any],
) -> tuple[store.StoredToken, str]:
    """The stored token and its secret; `audited` is what the audit entry says was asked."""
    now_us = shell.clock.stamp_us()
    async with shell.db.transaction() as conn:
        stored, secret = await store.create_token(
            conn,
            name=name,
            scope=scope,
            now_us=now_us,
            push_rate_per_s=push_rate_per_s,
            push_burst=push_burst,
        )
        await audit(
            conn,
            actor,
            ts_us=now_us,
            action="token.create",
            target=f"token/{stored.id}",
            details=audited,
        )
    return stored, secret


async def revoke_token(shell: Shell, actor: Principal, token_id: str) -> None:
    """Revoked from now on (again: a no-op that is still audited); NotFound when unknown."""
    now_us = shell.clock.stamp_us()
    async with shell.db.transaction() as conn:
        found = await store.revoke_token(conn, token_id, now_us)
        if found is not None:
            await audit(
                conn,
                actor,
                ts_us=now_us,
                action="token.revoke",
                target=f"token/{token_id}",
                details={
                    "name": found.name,
                    "scope": found.scope,
                    "already_revoked": found.revoked_us is not None,
                },
            )
    if found is None:
        raise NotFound(f"no token with id {token_id!r}")
    shell.tokens.clear()  # this replica forgets at once; others within CACHE_TTL_S
