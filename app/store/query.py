"""Reading the time series back: find series by selector, aggregate samples over steps.

A range read is served from the coarsest table whose buckets divide the step (1-hour or
1-minute rollups, or raw samples), and from raw samples above the rollup's watermark, so the
newest points are never missing while weeks of history stay cheap.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.selector import Selector
from app.store.tables import rollup_state, rollups_1h, rollups_1m, samples, series

__all__ = [
    "AGGREGATIONS",
    "Bucket",
    "FoundSeries",
    "RangeResult",
    "find_series",
    "newest_sample_us",
    "read_range",
]

AGGREGATIONS = ("avg", "sum", "min", "max", "count")
MINUTE_US = 60_000_000
HOUR_US = 3_600_000_000


@dataclass(frozen=True, slots=True)
class FoundSeries:
    id: int
    name: str
    labels: dict[str, str]


@dataclass(slots=True)
class Bucket:
    count: int
    sum: float
    min: float
    max: float

    def merge(self, other: Bucket) -> None:
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def value(self, agg: str) -> float:
        if agg == "avg":
            return self.sum / self.count
        if agg == "sum":
            return self.sum
        if agg == "min":
            return self.min
        if agg == "max":
            return self.max
        return float(self.count)


@dataclass(frozen=True, slots=True)
class RangeResult:
    source: str  # raw, rollup_1m or rollup_1h (plus raw above the watermark)
    start_us: int  # aligned start: bucket k covers [start + k*step, start + (k+1)*step)
    step_us: int
    buckets: dict[int, dict[int, Bucket]]  # series id -> bucket index -> aggregate


async def find_series(
    conn: AsyncConnection, selector: Selector, *, limit: int = 10_000
) -> list[FoundSeries]:
    query = sa.select(series.c.id, series.c.name, series.c.labels)
    if selector.name is not None:
        query = query.where(series.c.name == selector.name)
    for m in selector.matchers:
        # Equality on job narrows through its index; the rest is checked in Python.
        if m.label == "job" and m.op == "=":
            query = query.where(series.c.job == m.value)
    found: list[FoundSeries] = []
    for sid, name, labels_json in (await conn.execute(query.order_by(series.c.id))).all():
        labels = json.loads(labels_json)
        if selector.matches(name, labels):
            found.append(FoundSeries(int(sid), name, labels))
            if len(found) >= limit:
                break
    return found


async def newest_sample_us(conn: AsyncConnection, series_ids: Sequence[int]) -> int | None:
    """The time of the newest raw sample of these series, None when they have none."""
    if not series_ids:
        return None
    newest = await conn.scalar(
        sa.select(sa.func.max(samples.c.ts)).where(samples.c.series_id.in_(series_ids))
    )
    return None if newest is None else int(newest)


async def _watermark(conn: AsyncConnection, resolution: str) -> int:
    value = await conn.scalar(
        sa.select(rollup_state.c.watermark_us).where(rollup_state.c.resolution == resolution)
    )
    return int(value or 0)


async def _aggregate(
    conn: AsyncConnection,
    query: sa.Select[Any],
    into: dict[int, dict[int, Bucket]],
) -> None:
    for sid, b, count, total, low, high in (await conn.execute(query)).all():
        bucket = Bucket(int(count), float(total), float(low), float(high))
        per_series = into.setdefault(int(sid), {})
        if int(b) in per_series:
            per_series[int(b)].merge(bucket)
        else:
            per_series[int(b)] = bucket


async def read_range(
    conn: AsyncConnection,
    series_ids: Sequence[int],
    *,
    start_us: int,
    end_us: int,
    step_us: int,
) -> RangeResult:
    """Aggregates of each series over [start, end) in buckets of `step_us`, aligned to the
    epoch (so the same step always yields the same bucket boundaries)."""
    aligned = start_us - start_us % step_us
    out: dict[int, dict[int, Bucket]] = {}
    if not series_ids:
        return RangeResult("raw", aligned, step_us, out)
    source, raw_from = "raw", aligned
    table: sa.Table | None = None
    if step_us % HOUR_US == 0:
        source, table = "rollup_1h", rollups_1h
    elif step_us % MINUTE_US == 0:
        source, table = "rollup_1m", rollups_1m
    if table is not None:
        watermark = await _watermark(conn, source.removeprefix("rollup_"))
        rolled_to = min(max(watermark, aligned), end_us)
        raw_from = rolled_to
        if rolled_to > aligned:
            b = ((table.c.bucket - aligned) // step_us).label("b")
            await _aggregate(
                conn,
                sa.select(
                    table.c.series_id,
                    b,
                    sa.func.sum(table.c.count),
                    sa.func.sum(table.c.sum),
                    sa.func.min(table.c.min),
                    sa.func.max(table.c.max),
                )
                .where(
                    table.c.series_id.in_(series_ids),
                    table.c.bucket >= aligned,
                    table.c.bucket < rolled_to,
                )
                .group_by(table.c.series_id, sa.text("b")),
                out,
            )
    if raw_from < end_us:
        b = ((samples.c.ts - aligned) // step_us).label("b")
        await _aggregate(
            conn,
            sa.select(
                samples.c.series_id,
                b,
                sa.func.count(),
                sa.func.sum(samples.c.value),
                sa.func.min(samples.c.value),
                sa.func.max(samples.c.value),
            )
            .where(
                samples.c.series_id.in_(series_ids),
                samples.c.ts >= raw_from,
                samples.c.ts < end_us,
            )
            .group_by(samples.c.series_id, sa.text("b")),
            out,
        )
    return RangeResult(source, aligned, step_us, out)
