"""What can be queried: metric names, label keys and values, scaler events over a time range.

Read-only helpers for browsing UIs (the Grafana datasource's metric lists, ad-hoc filters,
annotations). Label sets are stored as JSON text, so keys and values are collected in Python
over a bounded number of series.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.scalers import StoredEvent
from app.store.tables import scaler_events, series

__all__ = ["events_between", "label_keys", "label_values", "last_event_before", "metric_names"]

SCAN_LIMIT = 50_000  # series read to collect label keys and values


async def metric_names(conn: AsyncConnection) -> list[str]:
    rows = await conn.execute(sa.select(series.c.name).distinct().order_by(series.c.name))
    return [str(r[0]) for r in rows.all()]


async def _label_sets(conn: AsyncConnection, name: str | None) -> list[dict[str, str]]:
    query = sa.select(series.c.labels).order_by(series.c.id).limit(SCAN_LIMIT)
    if name is not None:
        query = query.where(series.c.name == name)
    return [json.loads(r[0]) for r in (await conn.execute(query)).all()]


async def label_keys(conn: AsyncConnection, name: str | None = None) -> list[str]:
    keys: set[str] = set()
    for labels in await _label_sets(conn, name):
        keys.update(labels)
    return sorted(keys)


async def label_values(conn: AsyncConnection, key: str, name: str | None = None) -> list[str]:
    values: set[str] = set()
    for labels in await _label_sets(conn, name):
        if key in labels:
            values.add(labels[key])
    return sorted(values)


def _event(r: sa.Row[object]) -> StoredEvent:
    m = r._mapping
    return StoredEvent(
        id=int(m["id"]),
        scaler=str(m["scaler"]),
        ts_us=int(m["ts_us"]),
        kind=str(m["kind"]),
        replicas=None if m["replicas"] is None else int(m["replicas"]),
        message=str(m["message"]),
        payload=json.loads(str(m["payload"])),
    )


async def events_between(
    conn: AsyncConnection,
    *,
    start_us: int,
    end_us: int,
    scalers: Sequence[str] | None = None,
    kinds: Sequence[str] | None = None,
    limit: int = 10_000,
) -> list[StoredEvent]:
    """Events with start <= time <= end, oldest first (across scalers unless named)."""
    query = sa.select(scaler_events).where(
        scaler_events.c.ts_us >= start_us, scaler_events.c.ts_us <= end_us
    )
    if scalers is not None:
        query = query.where(scaler_events.c.scaler.in_(list(scalers)))
    if kinds is not None:
        query = query.where(scaler_events.c.kind.in_(list(kinds)))
    query = query.order_by(scaler_events.c.ts_us, scaler_events.c.id).limit(limit)
    return [_event(r) for r in (await conn.execute(query)).all()]


async def last_event_before(
    conn: AsyncConnection, scaler: str, before_us: int, kinds: Sequence[str]
) -> StoredEvent | None:
    query = (
        sa.select(scaler_events)
        .where(
            scaler_events.c.scaler == scaler,
            scaler_events.c.ts_us < before_us,
            scaler_events.c.kind.in_(list(kinds)),
        )
        .order_by(scaler_events.c.ts_us.desc(), scaler_events.c.id.desc())
        .limit(1)
    )
    row = (await conn.execute(query)).first()
    return None if row is None else _event(row)
