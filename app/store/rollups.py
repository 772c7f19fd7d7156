"""Rollups (1-minute and 1-hour count/sum/min/max) and retention, run by a background loop.

Each resolution keeps a watermark: buckets below it are final. A pass aggregates from the
watermark up to `now - lateness`, in bounded chunks so no transaction runs long, and
re-aggregates any range a backfill marked dirty. Recomputing a bucket replaces it, so a pass
that is interrupted and repeated gives the same result. Passes run one at a time, whoever
starts them (the loop, a Prometheus backfill wanting its range rolled up at once, another
process): on PostgreSQL two passes upserting the same buckets in another order deadlock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.db import Database
from app.store.tables import (
    rollup_dirty,
    rollup_state,
    rollups_1h,
    rollups_1m,
    samples,
    scaler_events,
    simulations,
)

__all__ = ["RetentionPolicy", "RollupReport", "apply_retention", "roll_up"]

MINUTE_US = 60_000_000
HOUR_US = 3_600_000_000
CHUNK_US = 6 * HOUR_US
_PASS_LOCK = 0x63697569_63726F6C  # pg_advisory_lock key of a rollup pass ("ciuicrol")


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    raw_us: int
    rollup_1m_us: int
    rollup_1h_us: int
    events_us: int | None = None  # scalers' events; None: kept
    simulations_us: int | None = None  # finished simulation and tune jobs; None: kept


@dataclass(slots=True)
class RollupReport:
    minute_buckets: int = 0
    hour_buckets: int = 0
    dirty_ranges: int = 0
    deleted_samples: int = 0


def _insert(conn: AsyncConnection, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


async def _upsert_buckets(
    conn: AsyncConnection, target: sa.Table, start_us: int, end_us: int, width_us: int
) -> int:
    """Recompute `target`'s buckets in [start, end) from the next finer table."""
    if end_us <= start_us:
        return 0
    if target is rollups_1m:
        b = (samples.c.ts // width_us) * width_us
        source = sa.select(
            samples.c.series_id,
            b.label("b"),
            sa.func.count().label("count"),
            sa.func.sum(samples.c.value).label("sum"),
            sa.func.min(samples.c.value).label("min"),
            sa.func.max(samples.c.value).label("max"),
        ).where(samples.c.ts >= start_us, samples.c.ts < end_us)
        source = source.group_by(samples.c.series_id, sa.text("b"))
    else:
        fine = rollups_1m
        b = (fine.c.bucket // width_us) * width_us
        source = sa.select(
            fine.c.series_id,
            b.label("b"),
            sa.func.sum(fine.c.count).label("count"),
            sa.func.sum(fine.c.sum).label("sum"),
            sa.func.min(fine.c.min).label("min"),
            sa.func.max(fine.c.max).label("max"),
        ).where(fine.c.bucket >= start_us, fine.c.bucket < end_us)
        source = source.group_by(fine.c.series_id, sa.text("b"))
    stmt = _insert(conn, target).from_select(
        ["series_id", "bucket", "count", "sum", "min", "max"], source
    )
    excluded = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=["series_id", "bucket"],
        set_={
            "count": excluded["count"],
            "sum": excluded["sum"],
            "min": excluded["min"],
            "max": excluded["max"],
        },
    )
    result = await conn.execute(stmt)
    return max(int(result.rowcount or 0), 0)


async def _get_watermark(conn: AsyncConnection, resolution: str) -> int | None:
    value = await conn.scalar(
        sa.select(rollup_state.c.watermark_us).where(rollup_state.c.resolution == resolution)
    )
    return None if value is None else int(value)


async def _set_watermark(conn: AsyncConnection, resolution: str, value: int) -> None:
    stmt = _insert(conn, rollup_state).values(resolution=resolution, watermark_us=value)
    await conn.execute(
        stmt.on_conflict_do_update(index_elements=["resolution"], set_={"watermark_us": value})
    )


async def _advance(
    db: Database, resolution: str, target: sa.Table, width: int, until_us: int, first_us: int
) -> int:
    done = 0
    async with db.read() as conn:
        mark = await _get_watermark(conn, resolution)
    mark = first_us - first_us % width if mark is None else mark
    while mark < until_us:
        upto = min(until_us, mark + max(CHUNK_US, width))
        upto -= upto % width
        if upto <= mark:
            break
        async with db.transaction() as conn:
            done += await _upsert_buckets(conn, target, mark, upto, width)
            await _set_watermark(conn, resolution, upto)
        mark = upto
    return done


@asynccontextmanager
async def _one_pass_at_a_time(db: Database) -> AsyncIterator[None]:
    """A session-level advisory lock on PostgreSQL, held on a connection of its own for the
    pass (SQLite runs one writer at a time already)."""
    if db.engine.dialect.name != "postgresql":
        yield
        return
    async with db.engine.connect() as conn:
        await conn.execute(sa.select(sa.func.pg_advisory_lock(_PASS_LOCK)))
        await conn.commit()
        try:
            yield
        finally:
            await conn.execute(sa.select(sa.func.pg_advisory_unlock(_PASS_LOCK)))
            await conn.commit()


async def roll_up(db: Database, *, now_us: int, lateness_us: int) -> RollupReport:
    async with _one_pass_at_a_time(db):
        return await _roll_up(db, now_us=now_us, lateness_us=lateness_us)


async def _roll_up(db: Database, *, now_us: int, lateness_us: int) -> RollupReport:
    report = RollupReport()
    async with db.read() as conn:
        first = await conn.scalar(sa.select(sa.func.min(samples.c.ts)))
        dirty = (await conn.execute(sa.select(rollup_dirty))).all()
    if first is None:
        return report
    settled = now_us - lateness_us
    minute_until = settled - settled % MINUTE_US
    report.minute_buckets = await _advance(
        db, "1m", rollups_1m, MINUTE_US, minute_until, int(first)
    )
    hour_until = minute_until - minute_until % HOUR_US
    report.hour_buckets = await _advance(db, "1h", rollups_1h, HOUR_US, hour_until, int(first))
    for start, end, ids in _merged(dirty):
        async with db.transaction() as conn:
            report.minute_buckets += await _upsert_buckets(
                conn, rollups_1m, start, min(end, minute_until), MINUTE_US
            )
            report.hour_buckets += await _upsert_buckets(
                conn, rollups_1h, start, min(end, hour_until), HOUR_US
            )
            await conn.execute(sa.delete(rollup_dirty).where(rollup_dirty.c.id.in_(ids)))
        report.dirty_ranges += len(ids)
    return report


def _merged(dirty: Sequence[sa.Row[Any]]) -> list[tuple[int, int, list[int]]]:
    """The dirty ranges widened to whole hours, overlapping ones merged: each bucket is
    re-aggregated once per pass, however many backfills marked it (twenty scalers' histories
    backfilled at once mark the same two weeks twenty times)."""
    spans = sorted(
        (
            int(r.start_us) - int(r.start_us) % HOUR_US,
            int(r.end_us) + (-int(r.end_us)) % HOUR_US,
            int(r.id),
        )
        for r in dirty
    )
    merged: list[tuple[int, int, list[int]]] = []
    for start, end, ident in spans:
        if merged and start <= merged[-1][1]:
            last = merged[-1]
            merged[-1] = (last[0], max(last[1], end), [*last[2], ident])
        else:
            merged.append((start, end, [ident]))
    return merged


async def apply_retention(db: Database, *, now_us: int, policy: RetentionPolicy) -> int:
    async with db.transaction() as conn:
        deleted = await conn.execute(
            sa.delete(samples).where(samples.c.ts < now_us - policy.raw_us)
        )
        await conn.execute(
            sa.delete(rollups_1m).where(rollups_1m.c.bucket < now_us - policy.rollup_1m_us)
        )
        await conn.execute(
            sa.delete(rollups_1h).where(rollups_1h.c.bucket < now_us - policy.rollup_1h_us)
        )
        if policy.events_us is not None:
            await conn.execute(
                sa.delete(scaler_events).where(scaler_events.c.ts_us < now_us - policy.events_us)
            )
        if policy.simulations_us is not None:
            await conn.execute(
                sa.delete(simulations).where(
                    simulations.c.status.in_(("done", "failed")),
                    simulations.c.finished_us < now_us - policy.simulations_us,
                )
            )
    return max(int(deleted.rowcount or 0), 0)
