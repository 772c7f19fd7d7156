"""Forecasts as the shell reads them: each scaler's load history from the store, and the
latest fitted forecast per scaler, cached in memory (the refits in app.workers.forecasts write
it; the reconciler, the prediction API and Grafana read it).
"""

from __future__ import annotations

import asyncio
import math

import numpy as np
from sqlalchemy.ext.asyncio import AsyncConnection

from app.forecasting import History
from app.policy import ScalerSpec
from app.store import forecasts as store
from app.store.db import Database
from app.store.query import find_series, read_range
from app.store.selector import Matcher, Selector

__all__ = ["GRID_STEP_S", "HISTORY_S", "ForecastCache", "load_history"]

GRID_STEP_S = 300.0
HISTORY_S = 14 * 86400.0


async def load_history(
    conn: AsyncConnection,
    spec: ScalerSpec,
    now: float,
    *,
    step_s: float = GRID_STEP_S,
    span_s: float = HISTORY_S,
    series: Selector | None = None,
) -> History | None:
    """The load signal (the capacity's signal, summed over pods) on a grid of complete
    buckets ending before `now`; None when nothing was stored. `series` selects where the
    history is (app.services.backfill: a signal read from Prometheus); by default the
    signal's series pushed with the first metric's selector."""
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
    finite = np.flatnonzero(np.isfinite(values))
    if finite.size == 0:
        return None
    first = int(finite[0])
    return History(result.start_us / 1e6 + first * step_s, step_s, values[first:])


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
