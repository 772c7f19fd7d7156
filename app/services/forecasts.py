"""Forecasts as the shell reads them: each scaler's load history from the store, and the
latest fitted forecast per scaler, cached in memory (the refits in app.workers.forecasts write
it; the reconciler, the prediction API and Grafana read it).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import numpy as np
from sqlalchemy.ext.asyncio import AsyncConnection

from app.forecasting import History
from app.forecasting.from_spec import HISTORY_S
from app.policy import ScalerSpec
from app.store import catalog
from app.store import forecasts as store
from app.store.db import Database
from app.store.query import find_series, read_range
from app.store.selector import Matcher, Selector

__all__ = [
    "GRID_STEP_S",
    "HISTORY_S",
    "ForecastCache",
    "asleep_spans",
    "load_history",
    "zero_spans",
]

GRID_STEP_S = 300.0


async def load_history(
    conn: AsyncConnection,
    spec: ScalerSpec,
    now: float,
    *,
    step_s: float = GRID_STEP_S,
    span_s: float = HISTORY_S,
    series: Selector | None = None,
    asleep: Sequence[tuple[float, float]] = (),
) -> History | None:
    """The load signal (the capacity's signal, summed over pods) on a grid of complete
    buckets ending before `now`; None when nothing was stored. `series` selects where the
    history is (app.services.backfill: a signal read from Prometheus); by default the
    signal's series pushed with the first metric's selector. A bucket nobody pushed in is a
    gap, unless it lies wholly within one of the `asleep` spans (the target at zero pods:
    `asleep_spans`), where no pod could push and the load was none: there it is 0, so the
    forecast learns the quiet night that a deployment scaled to zero does not report."""
    if series is None:
        selector = spec.metrics[0].selector if spec.metrics else {}
        series = Selector(
            spec.capacity.signal, tuple(Matcher(k, "=", v) for k, v in selector.items())
        )
    found = await find_series(conn, series)
    if not found:
        return None
    end = now - now % step_s
    start = end - span_s
    step_us = round(step_s * 1e6)
    result = await read_range(
        conn,
        [s.id for s in found],
        start_us=round(start * 1e6),
        end_us=round(end * 1e6),
        step_us=step_us,
    )
    n = round(span_s / step_s)
    values = np.full(n, np.nan)
    for buckets in result.buckets.values():
        for k, bucket in buckets.items():
            if 0 <= k < n and bucket.count:
                mean = bucket.sum / bucket.count  # a pod's rate over the bucket
                values[k] = mean if math.isnan(values[k]) else values[k] + mean
    for lo, hi in asleep:
        first_k = max(0, math.ceil((lo - start) / step_s))
        last_k = min(n, math.floor((hi - start) / step_s))  # buckets ending by `hi`
        gaps = values[first_k:last_k]
        gaps[np.isnan(gaps)] = 0.0
    finite = np.flatnonzero(np.isfinite(values))
    if finite.size == 0:
        return None
    first = int(finite[0])
    return History(result.start_us / 1e6 + first * step_s, step_s, values[first:])


def zero_spans(changes: Sequence[tuple[float, int]], end: float) -> list[tuple[float, float]]:
    """The spans, up to `end`, in which the replica count was 0: `changes` are (time, count)
    in time order, each count holding until the next."""
    spans: list[tuple[float, float]] = []
    since: float | None = None
    for at, count in changes:
        if count == 0 and since is None:
            since = at
        elif count > 0 and since is not None:
            spans.append((since, at))
            since = None
    if since is not None and since < end:
        spans.append((since, end))
    return spans


async def asleep_spans(
    conn: AsyncConnection, scaler: str, start: float, end: float
) -> list[tuple[float, float]]:
    """When the scaler's target was at zero pods between `start` and `end`, by the scale
    actions it recorded (the count before `start` from the last one before it)."""
    start_us, end_us = round(start * 1e6), round(end * 1e6)
    before = await catalog.last_event_before(conn, scaler, start_us, ("action",))
    events = await catalog.events_between(
        conn, start_us=start_us, end_us=end_us, scalers=[scaler], kinds=("action",),
        limit=1_000_000,
    )  # fmt: skip
    changes = [(start, before.replicas)] if before and before.replicas is not None else []
    changes += [(e.ts_us / 1e6, e.replicas) for e in events if e.replicas is not None]
    return zero_spans(changes, end)


class ForecastCache:
    """The latest forecast per scaler in memory, and when each is due for a refit."""

    def __init__(self) -> None:
        self.latest: dict[str, store.StoredForecast] = {}
        self.next_fit: dict[str, float] = {}
        self.next_accuracy: dict[str, float] = {}
        self.kick = asyncio.Event()  # wakes the refit loop (in this process) for a due fit

    def due_now(self, scaler: str) -> None:
        """Refit `scaler` at the refit loop's next turn, which starts now: a scaler created or
        replaced forecasts at once (its history backfilled first where it is Prometheus')."""
        self.next_fit.pop(scaler, None)
        self.kick.set()

    async def get(self, db: Database, scaler: str) -> store.StoredForecast | None:
        hit = self.latest.get(scaler)
        if hit is None:
            async with db.read() as conn:
                hit = await store.get_forecast(conn, scaler)
            if hit is not None:
                self.latest[scaler] = hit
        return hit

    def clear(self) -> None:
        self.latest.clear()
        self.next_fit.clear()
        self.next_accuracy.clear()

    def forget(self, scaler: str) -> None:
        self.latest.pop(scaler, None)
        self.next_fit.pop(scaler, None)
        self.next_accuracy.pop(scaler, None)
