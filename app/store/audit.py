"""The audit log: who changed what, when. Rows are only ever added (retention keeps them).

`record` takes the connection of the change it records, so the two commit together or not at
all: no change without its row, no row for a change that was rolled back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.tables import audit_log

__all__ = ["AuditEntry", "diff_documents", "list_entries", "record"]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    ts_us: int
    actor: str
    scope: str
    action: str
    target: str
    details: dict[str, Any]


async def record(
    conn: AsyncConnection,
    *,
    ts_us: int,
    actor: str,
    scope: str,
    action: str,
    target: str,
    details: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        sa.insert(audit_log).values(
            ts_us=ts_us,
            actor=actor,
            scope=scope,
            action=action,
            target=target,
            details=json.dumps(details or {}, default=str),
        )
    )


async def list_entries(
    conn: AsyncConnection,
    *,
    since_us: int | None = None,
    until_us: int | None = None,
    actor: str | None = None,
    target: str | None = None,
    action: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Newest first; page with `before_id` = the last id of the previous page."""
    query = sa.select(audit_log)
    if since_us is not None:
        query = query.where(audit_log.c.ts_us >= since_us)
    if until_us is not None:
        query = query.where(audit_log.c.ts_us <= until_us)
    if actor is not None:
        query = query.where(audit_log.c.actor == actor)
    if target is not None:
        query = query.where(audit_log.c.target == target)
    if action is not None:
        query = query.where(audit_log.c.action == action)
    if before_id is not None:
        query = query.where(audit_log.c.id < before_id)
    query = query.order_by(audit_log.c.id.desc()).limit(limit)
    return [
        AuditEntry(
            id=int(r.id),
            ts_us=int(r.ts_us),
            actor=r.actor,
            scope=r.scope,
            action=r.action,
            target=r.target,
            details=json.loads(r.details),
        )
        for r in (await conn.execute(query)).all()
    ]


_MISSING = object()


def diff_documents(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    """What changed between two JSON documents: one `{path, before, after}` per leaf that
    differs (a key added or removed has no `before` / `after`). Lists compare whole."""
    if isinstance(before, dict) and isinstance(after, dict):
        changes: list[dict[str, Any]] = []
        for key in sorted(set(before) | set(after), key=str):
            child = f"{path}.{key}" if path else str(key)
            old, new = before.get(key, _MISSING), after.get(key, _MISSING)
            if old is _MISSING:
                changes.append({"path": child, "after": new})
            elif new is _MISSING:
                changes.append({"path": child, "before": old})
            else:
                changes.extend(diff_documents(old, new, child))
        return changes
    if before == after:
        return []
    return [{"path": path, "before": before, "after": after}]
