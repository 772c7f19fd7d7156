"""What the pods pushed, turned into the policy's input (`MetricReading`s, the load rate).

Per spec metric: the series of that name matching the metric's label selector, each pod's
newest sample within the metric's window, aggregated over pods as the spec says.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.policy.spec import ScalerSpec
from app.policy.types import MetricReading
from app.store.tables import samples, series

__all__ = ["MetricsView", "read_metrics"]


class MetricsView:
    """The readings for one scaler at one instant, plus the load signal's total."""

    def __init__(self, readings: Mapping[str, MetricReading], load_rate: float | None) -> None:
        self.readings = dict(readings)
        self.load_rate = load_rate


def _aggregate(values: Sequence[float], how: str) -> float:
    if how == "sum":
        return float(sum(values))
    if how == "max":
        return float(max(values))
    if how == "min":
        return float(min(values))
    return float(sum(values) / len(values))


async def _latest_per_series(
    conn: AsyncConnection, name: str, selector: Mapping[str, str], since_us: int, now_us: int
) -> list[tuple[int, float]]:
    """(timestamp, value) of each matching series' newest sample in [since, now]."""
    rows = (
        await conn.execute(sa.select(series.c.id, series.c.labels).where(series.c.name == name))
    ).all()
    ids = [
        int(sid)
        for sid, labels in rows
        if all(json.loads(labels).get(k) == v for k, v in selector.items())
    ]
    if not ids:
        return []
    latest: dict[int, tuple[int, float]] = {}
    result = await conn.execute(
        sa.select(samples.c.series_id, samples.c.ts, samples.c.value).where(
            samples.c.series_id.in_(ids), samples.c.ts >= since_us, samples.c.ts <= now_us
        )
    )
    for sid, ts, value in result.all():
        if int(sid) not in latest or int(ts) > latest[int(sid)][0]:
            latest[int(sid)] = (int(ts), float(value))
    return list(latest.values())


async def read_metrics(conn: AsyncConnection, spec: ScalerSpec, now: float) -> MetricsView:
    now_us = round(now * 1e6)
    readings: dict[str, MetricReading] = {}
    for metric in spec.metrics:
        found = await _latest_per_series(
            conn, metric.name, metric.selector, now_us - round(metric.window * 1e6), now_us
        )
        if not found:
            readings[metric.name] = MetricReading(value=None, pods_reporting=0)
            continue
        newest = max(ts for ts, _ in found)
        readings[metric.name] = MetricReading(
            value=_aggregate([v for _, v in found], metric.aggregation),
            pods_reporting=len(found),
            age_s=max(0.0, (now_us - newest) / 1e6),
        )
    load_rate: float | None = None
    if spec.capacity is not None:
        selector = spec.metrics[0].selector if spec.metrics else {}
        found = await _latest_per_series(
            conn, spec.capacity.signal, selector, now_us - 60_000_000, now_us
        )
        if found:
            load_rate = float(sum(v for _, v in found))
    return MetricsView(readings, load_rate)
