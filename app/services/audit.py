"""Who changed what: every service that changes something records it in its own transaction.

Recorded: scaler create / replace / delete / pause / resume, token create / revoke, rollout
start / cancel, simulation and tune runs. Targets read `scaler/<name>`, `token/<id>`,
`simulation/<id>`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from app.services.principals import Principal
from app.store import audit as store

__all__ = ["audit"]


async def audit(
    conn: AsyncConnection,
    actor: Principal,
    *,
    ts_us: int,
    action: str,
    target: str,
    details: dict[str, Any] | None = None,
) -> None:
    """Record `action` by `actor` on `target`, in the caller's transaction `conn`."""
    await store.record(
        conn,
        ts_us=ts_us,
        actor=actor.token_id,
        scope=actor.scope,
        action=action,
        target=target,
        details=details,
    )
