"""A stored metric's series for a selector target: each step's samples reduced (`agg`), per
series or combined across series (`combine`), named by a legend template.
"""

from __future__ import annotations

import math

from app.api.context import AppContext
from app.api.grafana.frames import TimeSeries, Window, series_name
from app.api.grafana.inputs import choice, payload_of, target_selector
from app.api.grafana.schemas import Target
from app.store.query import AGGREGATIONS, find_series, read_range
from app.store.selector import Matcher

__all__ = ["COMBINE", "MAX_SERIES", "metric_series"]

MAX_SERIES = 1_000  # per target
COMBINE = ("none", "sum", "avg", "max", "min")


async def metric_series(
    ctx: AppContext,
    target: Target,
    text: str,
    extra: tuple[Matcher, ...],
    window: Window,
) -> list[TimeSeries]:
    payload = payload_of(target)
    agg = choice(payload, "agg", AGGREGATIONS, "avg")
    combine = choice(payload, "combine", COMBINE, "none")
    legend = payload.get("legend")
    legend = str(legend) if legend else None
    selector = target_selector(text, extra)
    step_us = window.step_ms * 1000
    async with ctx.db.read() as conn:
        found = await find_series(conn, selector, limit=MAX_SERIES)
        found.sort(key=lambda f: (f.name, sorted(f.labels.items())))
        result = await read_range(
            conn,
            [s.id for s in found],
            start_us=window.start_ms * 1000,
            end_us=window.end_ms * 1000 + 1,
            step_us=step_us,
        )
    first_kept = window.bucket_times()[:1]
    floor_ms = first_kept[0] if first_kept else window.end_ms + 1

    def points(s_id: int) -> list[tuple[float, int]]:
        buckets = result.buckets.get(s_id, {})
        out = []
        for k in sorted(buckets):
            t_ms = (result.start_us + k * step_us) // 1000
            if t_ms >= floor_ms:
                out.append((buckets[k].value(agg), t_ms))
        return out[-window.max_points :]

    if combine == "none":
        return [TimeSeries(series_name(s.name, s.labels, legend), points(s.id)) for s in found]
    by_time: dict[int, list[float]] = {}
    for s in found:
        for value, t_ms in points(s.id):
            by_time.setdefault(t_ms, []).append(value)
    combined: list[tuple[float, int]] = []
    for t_ms in sorted(by_time):
        values = by_time[t_ms]
        if combine == "sum":
            v = math.fsum(values)
        elif combine == "avg":
            v = math.fsum(values) / len(values)
        elif combine == "max":
            v = max(values)
        else:
            v = min(values)
        combined.append((v, t_ms))
    name = legend or f"{combine}({text})"
    return [TimeSeries(name, combined)] if found else []
