"""Scalers and their events, persisted.

The spec is stored as the document the operator sent (normalised to the example spec's shape), so
what `GET` returns reads like what was written; `generation` counts replacements and is the
ETag for optimistic concurrency.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.policy.types import Decision, ScalerState
from app.store.tables import forecasts, rollouts, scaler_events, scalers

__all__ = [
    "UNCHANGED",
    "EventKind",
    "StoredEvent",
    "StoredScaler",
    "Unchanged",
    "add_event",
    "decision_to_json",
    "delete_scaler",
    "forget_applied",
    "get_scaler",
    "list_events",
    "list_scalers",
    "record_outcome",
    "repeat_recent_event",
    "state_from_json",
    "state_to_json",
    "upsert_scaler",
]


EventKind = Literal[
    "decision", "action", "dry_run", "error", "spec", "backfill", "rollout", "skip", "drift"
]
"""What a scaler's event records: a decision, a scale applied (`action`) or only reported
(`dry_run`), an error, a spec change, pause or resume (`spec`), a backfill, a rollout's step,
a reconcile skipped, the target found at other replicas than Ciuic left it at (`drift`)."""


@dataclass(frozen=True, slots=True)
class StoredScaler:
    name: str
    document: dict[str, Any]
    generation: int
    created_us: int
    updated_us: int
    paused: bool
    state: ScalerState
    last_decision: dict[str, Any] | None
    last_decision_us: int | None
    last_error: str | None
    last_error_us: int | None
    # The replicas Ciuic last left its target at in `apply` mode (set, or found and kept) and
    # since when; None when it has none to stand by (see `record_outcome`).
    applied_replicas: int | None = None
    applied_us: int | None = None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: int
    scaler: str
    ts_us: int
    kind: str
    replicas: int | None
    message: str
    payload: dict[str, Any]


class Unchanged:
    """The type of UNCHANGED: a column `record_outcome` leaves as it is."""


UNCHANGED = Unchanged()


def state_to_json(state: ScalerState) -> str:
    return json.dumps(state.to_dict())


def state_from_json(text: str | None) -> ScalerState:
    if not text:
        return ScalerState()
    return ScalerState.from_dict(json.loads(text))


def decision_to_json(decision: Decision) -> dict[str, Any]:
    return {
        "need": decision.need,
        "replicas": decision.replicas,
        "valid": decision.valid,
        "plan": {"full": decision.plan.full, "partial": decision.plan.partial},
        "reasons": [
            {"code": r.code, "message": r.message, "values": dict(r.values)}
            for r in decision.reasons
        ],
    }


def _scaler(row: sa.Row[Any]) -> StoredScaler:
    m = row._mapping
    return StoredScaler(
        name=m["name"],
        document=json.loads(m["document"]),
        generation=int(m["generation"]),
        created_us=int(m["created_us"]),
        updated_us=int(m["updated_us"]),
        paused=bool(m["paused"]),
        state=state_from_json(m["state"]),
        last_decision=None if m["last_decision"] is None else json.loads(m["last_decision"]),
        last_decision_us=m["last_decision_us"],
        last_error=m["last_error"],
        last_error_us=m["last_error_us"],
        applied_replicas=m["applied_replicas"],
        applied_us=m["applied_us"],
    )


async def get_scaler(
    conn: AsyncConnection, name: str, *, for_update: bool = False
) -> StoredScaler | None:
    query = sa.select(scalers).where(scalers.c.name == name)
    if for_update and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return None if row is None else _scaler(row)


async def list_scalers(conn: AsyncConnection, names: set[str] | None = None) -> list[StoredScaler]:
    """Every scaler, or only those in `names` (a burst's few, without loading the rest)."""
    query = sa.select(scalers).order_by(scalers.c.name)
    if names is not None:
        query = query.where(scalers.c.name.in_(sorted(names)))
    rows = await conn.execute(query)
    return [_scaler(r) for r in rows.all()]


async def upsert_scaler(
    conn: AsyncConnection, name: str, document: dict[str, Any], *, now_us: int
) -> StoredScaler:
    """Create the scaler, or replace its spec and bump its generation (state is kept)."""
    existing = await get_scaler(conn, name, for_update=True)
    text = json.dumps(document)
    if existing is None:
        await conn.execute(
            sa.insert(scalers).values(
                name=name,
                document=text,
                generation=1,
                created_us=now_us,
                updated_us=now_us,
                paused=False,
            )
        )
    else:
        values: dict[str, Any] = {
            "document": text,
            "generation": existing.generation + 1,
            "updated_us": now_us,
        }
        if existing.document.get("target") != document.get("target"):
            # The count applied was another target's: the new one's is not drift.
            values.update(applied_replicas=None, applied_us=None)
        await conn.execute(sa.update(scalers).where(scalers.c.name == name).values(**values))
    stored = await get_scaler(conn, name)
    assert stored is not None
    return stored


async def delete_scaler(conn: AsyncConnection, name: str) -> None:
    await conn.execute(sa.delete(scalers).where(scalers.c.name == name))
    await conn.execute(sa.delete(scaler_events).where(scaler_events.c.scaler == name))
    await conn.execute(sa.delete(forecasts).where(forecasts.c.scaler == name))
    await conn.execute(sa.delete(rollouts).where(rollouts.c.scaler == name))


async def set_paused(conn: AsyncConnection, name: str, paused: bool, now_us: int) -> None:
    """A pause hands the target to the operator: the count Ciuic applied is forgotten, so
    what they set meanwhile is found and kept on resume, not reported as drift."""
    await conn.execute(
        sa.update(scalers)
        .where(scalers.c.name == name)
        .values(paused=paused, updated_us=now_us, applied_replicas=None, applied_us=None)
    )


async def forget_applied(conn: AsyncConnection, name: str) -> None:
    """Forget the count Ciuic applied (a rollout is about to surge the target on purpose):
    the next pass records the count it finds, never a drift."""
    await conn.execute(
        sa.update(scalers)
        .where(scalers.c.name == name)
        .values(applied_replicas=None, applied_us=None)
    )


async def record_outcome(
    conn: AsyncConnection,
    name: str,
    *,
    now_us: int,
    state: ScalerState | None = None,
    decision: dict[str, Any] | None = None,
    error: str | None = None,
    applied: tuple[int, int] | Unchanged | None = UNCHANGED,
) -> None:
    """`applied`: (replicas, since_us) the target was left at by an `apply` pass, None to
    forget it (a dry run applies nothing), UNCHANGED to keep it (the target was not read)."""
    values: dict[str, Any] = {}
    if not isinstance(applied, Unchanged):
        values["applied_replicas"] = None if applied is None else applied[0]
        values["applied_us"] = None if applied is None else applied[1]
    if state is not None:
        values["state"] = state_to_json(state)
    if decision is not None:
        values["last_decision"] = json.dumps(decision)
        values["last_decision_us"] = now_us
        values["last_error"] = None
        values["last_error_us"] = None
    if error is not None:
        values["last_error"] = error
        values["last_error_us"] = now_us
    if values:
        await conn.execute(sa.update(scalers).where(scalers.c.name == name).values(**values))


async def add_event(
    conn: AsyncConnection,
    scaler: str,
    *,
    ts_us: int,
    kind: str,
    message: str,
    replicas: int | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        sa.insert(scaler_events).values(
            scaler=scaler,
            ts_us=ts_us,
            kind=kind,
            replicas=replicas,
            message=message,
            payload=json.dumps(payload or {}),
        )
    )


async def repeat_recent_event(
    conn: AsyncConnection, scaler: str, *, kind: str, now_us: int, within_us: int, **last: Any
) -> bool:
    """Count this as a repeat of the scaler's latest event of `kind` when that one is less than
    `within_us` old (its payload's `repeats` and `last_us`, and `last`'s values as
    `last_<key>`), as Kubernetes counts a repeated Event; False, changing nothing, when there
    is none that recent."""
    row = (
        await conn.execute(
            sa.select(scaler_events.c.id, scaler_events.c.ts_us, scaler_events.c.payload)
            .where(scaler_events.c.scaler == scaler, scaler_events.c.kind == kind)
            .order_by(scaler_events.c.ts_us.desc(), scaler_events.c.id.desc())
            .limit(1)
        )
    ).first()
    if row is None or now_us - int(row.ts_us) >= within_us:
        return False
    payload = json.loads(row.payload)
    payload["repeats"] = int(payload.get("repeats", 0)) + 1
    payload["last_us"] = now_us
    payload.update({f"last_{key}": value for key, value in last.items()})
    await conn.execute(
        sa.update(scaler_events)
        .where(scaler_events.c.id == row.id)
        .values(payload=json.dumps(payload))
    )
    return True


async def list_events(
    conn: AsyncConnection,
    scaler: str,
    *,
    since_us: int | None = None,
    until_us: int | None = None,
    kinds: list[str] | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[StoredEvent]:
    """Newest first; page with `before_id` = the last id of the previous page."""
    query = sa.select(scaler_events).where(scaler_events.c.scaler == scaler)
    if since_us is not None:
        query = query.where(scaler_events.c.ts_us >= since_us)
    if until_us is not None:
        query = query.where(scaler_events.c.ts_us <= until_us)
    if kinds:
        query = query.where(scaler_events.c.kind.in_(kinds))
    if before_id is not None:
        query = query.where(scaler_events.c.id < before_id)
    query = query.order_by(scaler_events.c.id.desc()).limit(limit)
    return [
        StoredEvent(
            id=int(r.id),
            scaler=r.scaler,
            ts_us=int(r.ts_us),
            kind=r.kind,
            replicas=r.replicas,
            message=r.message,
            payload=json.loads(r.payload),
        )
        for r in (await conn.execute(query)).all()
    ]
