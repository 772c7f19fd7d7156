"""Rollouts, persisted: what was asked, which step the executor reached, each step's times.

The row is the executor's only memory: a restarted (or newly elected) leader resumes every
active rollout from `step`, so each step records its start before acting and its end after.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.tables import rollouts

__all__ = [
    "ACTIVE",
    "StoredRollout",
    "active_for",
    "create_rollout",
    "get_rollout",
    "list_active",
    "list_rollouts",
    "new_steps",
    "request_cancel",
    "save_rollout",
]

ACTIVE = ("pending", "running", "rolling_back")
STEPS = ("surge", "patch", "follow", "stabilize", "release")


@dataclass
class StoredRollout:
    id: int
    scaler: str
    status: str  # pending | running | succeeded | failed | cancelled | rolling_back
    step: str  # the step in progress (or the last one, once finished)
    steps: list[dict[str, Any]]
    request: dict[str, Any]
    original_template: dict[str, Any] | None
    dry_run: bool
    cancel_requested: bool
    created_us: int
    updated_us: int
    error: str | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def current(self) -> dict[str, Any]:
        """The step record named by `step`."""
        return next(s for s in reversed(self.steps) if s["name"] == self.step)


def _rollout(row: sa.Row[Any]) -> StoredRollout:
    m = row._mapping
    original = m["original_template"]
    return StoredRollout(
        id=int(m["id"]),
        scaler=m["scaler"],
        status=m["status"],
        step=m["step"],
        steps=json.loads(m["steps"]),
        request=json.loads(m["request"]),
        original_template=None if original is None else json.loads(original),
        dry_run=bool(m["dry_run"]),
        cancel_requested=bool(m["cancel_requested"]),
        created_us=int(m["created_us"]),
        updated_us=int(m["updated_us"]),
        error=m["error"],
    )


def new_steps() -> list[dict[str, Any]]:
    return [
        {"name": n, "status": "pending", "started_us": None, "ended_us": None, "details": {}}
        for n in STEPS
    ]


async def create_rollout(
    conn: AsyncConnection, scaler: str, request: dict[str, Any], *, dry_run: bool, now_us: int
) -> StoredRollout:
    result = await conn.execute(
        sa.insert(rollouts)
        .values(
            scaler=scaler,
            status="pending",
            step=STEPS[0],
            steps=json.dumps(new_steps()),
            request=json.dumps(request),
            dry_run=dry_run,
            cancel_requested=False,
            created_us=now_us,
            updated_us=now_us,
        )
        .returning(rollouts.c.id)
    )
    found = await get_rollout(conn, int(result.scalar_one()))
    assert found is not None
    return found


async def get_rollout(conn: AsyncConnection, rollout_id: int) -> StoredRollout | None:
    row = (await conn.execute(sa.select(rollouts).where(rollouts.c.id == rollout_id))).first()
    return None if row is None else _rollout(row)


async def list_rollouts(
    conn: AsyncConnection, scaler: str, *, limit: int = 50
) -> list[StoredRollout]:
    """Newest first."""
    rows = await conn.execute(
        sa.select(rollouts)
        .where(rollouts.c.scaler == scaler)
        .order_by(rollouts.c.id.desc())
        .limit(limit)
    )
    return [_rollout(r) for r in rows.all()]


async def list_active(conn: AsyncConnection) -> list[StoredRollout]:
    rows = await conn.execute(
        sa.select(rollouts).where(rollouts.c.status.in_(ACTIVE)).order_by(rollouts.c.id)
    )
    return [_rollout(r) for r in rows.all()]


async def active_for(conn: AsyncConnection) -> dict[str, int]:
    """Scaler name -> id of its active rollout (what the reconciler holds off for)."""
    rows = await conn.execute(
        sa.select(rollouts.c.scaler, rollouts.c.id).where(rollouts.c.status.in_(ACTIVE))
    )
    return {r.scaler: int(r.id) for r in rows.all()}


async def save_rollout(conn: AsyncConnection, rollout: StoredRollout, *, now_us: int) -> None:
    rollout.updated_us = now_us
    await conn.execute(
        sa.update(rollouts)
        .where(rollouts.c.id == rollout.id)
        .values(
            status=rollout.status,
            step=rollout.step,
            steps=json.dumps(rollout.steps),
            original_template=None
            if rollout.original_template is None
            else json.dumps(rollout.original_template),
            updated_us=now_us,
            error=rollout.error,
        )
    )


async def request_cancel(conn: AsyncConnection, rollout_id: int, *, now_us: int) -> bool:
    """Flag the rollout for the executor to roll back, in one statement that also checks it is
    still active and not flagged yet: False (nothing written) where it has ended or was flagged
    since it was read."""
    result = await conn.execute(
        sa.update(rollouts)
        .where(
            rollouts.c.id == rollout_id,
            rollouts.c.status.in_(ACTIVE),
            rollouts.c.cancel_requested.is_(False),
        )
        .values(cancel_requested=True, updated_us=now_us)
    )
    return result.rowcount == 1
