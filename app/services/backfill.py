"""The forecast's history of a load signal read from Prometheus, filled from `query_range`.

Which query: the spec metric named as the capacity's signal (`request_rate` unless the spec's
`capacity` names another) when it has a `source: {prometheus: ...}`. Its history is what the
forecast is fitted on, so a new scaler forecasts at once instead of after days of readings.

Where it lands: one series in the store, the signal's name with the labels
`job="ciuic-prometheus"`, `ciuic_scaler` and `ciuic_query` (a hash of the query), on the grid
the forecast reads (`GRID_STEP_S`, `HISTORY_S` back). The point Prometheus evaluates at `t`
is stored at `t - step`, in the bucket that ends at `t`: a `rate(x[5m])` at `t` is the mean over
that bucket. Several series in the answer (one per pod) are summed, as the load is.

When: before each refit of the scaler (app.workers.forecasts), from the newest point stored
to now, so the first run fills the whole history and later ones only the steps since; a
changed query is a new series, filled from scratch. A failed run writes nothing and is
retried at the next refit. Points are upserted by (series, time): a run repeated never
duplicates one.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.policy import ScalerSpec
from app.prometheus import MAX_POINTS, PrometheusClient, PrometheusError
from app.services.forecasts import GRID_STEP_S, HISTORY_S
from app.store import scalers as scaler_store
from app.store.db import Database
from app.store.errors import SeriesLimitExceeded
from app.store.query import find_series, newest_sample_us
from app.store.rollups import roll_up
from app.store.selector import Matcher, Selector
from app.store.series import SampleRow, SeriesKey, SeriesStore

__all__ = [
    "LOAD_JOB",
    "Backfilled",
    "Backfiller",
    "backfill_load",
    "history_selector",
    "load_query",
]

LOAD_JOB = "ciuic-prometheus"


@dataclass(frozen=True, slots=True)
class Backfilled:
    """What one run did: the query, the points written and the span they cover (seconds), or
    why it wrote nothing (`error`)."""

    query: str
    points: int = 0
    start: float | None = None
    end: float | None = None
    error: str | None = None


def load_query(spec: ScalerSpec) -> str | None:
    """The Prometheus query of the spec's load signal, None when it is not read from one."""
    for metric in spec.metrics:
        if metric.name == spec.capacity.signal and metric.source is not None:
            return metric.source.prometheus
    return None


def _labels(scaler: str, query: str) -> dict[str, str]:
    digest = hashlib.sha256(query.encode()).hexdigest()[:16]
    return {"job": LOAD_JOB, "ciuic_scaler": scaler, "ciuic_query": digest}


def history_selector(scaler: str, spec: ScalerSpec) -> Selector | None:
    """The store's series that holds the backfilled history of `scaler`'s load signal; None
    when the signal is not read from Prometheus (its history is what was pushed)."""
    query = load_query(spec)
    if query is None:
        return None
    labels = _labels(scaler, query)
    return Selector(spec.capacity.signal, tuple(Matcher(k, "=", v) for k, v in labels.items()))


async def backfill_load(
    db: Database,
    series: SeriesStore,
    client: PrometheusClient | None,
    scaler: str,
    spec: ScalerSpec,
    now: float,
    *,
    lateness_s: float,
    step_s: float = GRID_STEP_S,
    span_s: float = HISTORY_S,
    roll: bool = True,
) -> Backfilled | None:
    """Bring the backfilled history of `scaler`'s load up to `now` (see the module's
    docstring); None when its load is not read from Prometheus. `roll`: roll the range up
    now (False: the caller does, once for many)."""
    query = load_query(spec)
    selector = history_selector(scaler, spec)
    if query is None or selector is None:
        return None
    if client is None:
        return Backfilled(query, error="no Prometheus configured (set CIUIC_PROMETHEUS_URL)")
    end = now - now % step_s  # the newest complete bucket ends here
    first = end - span_s  # the oldest bucket the forecast reads starts here
    async with db.read() as conn:
        found = await find_series(conn, selector)
        newest = await newest_sample_us(conn, [s.id for s in found])
    if newest is not None:
        first = max(first, newest / 1e6 + step_s)
    if first + step_s > end:
        return Backfilled(query)  # up to date
    # Every chunk under the client's timeout, plus a second for a slow body: a dead server
    # costs one timeout per chunk, never a stalled loop.
    chunks = math.ceil((end - first) / step_s / MAX_POINTS)
    try:
        answer = await asyncio.wait_for(
            client.query_range(query, first + step_s, end, step_s),
            chunks * (client.timeout_s + 1.0),
        )
    except TimeoutError:
        return Backfilled(query, error=f"no answer within {client.timeout_s:g}s")
    except PrometheusError as exc:
        return Backfilled(query, error=str(exc))
    totals: dict[float, float] = {}
    for one in answer:
        for t, value in one.points:
            if math.isfinite(value):
                totals[t] = totals.get(t, 0.0) + value
    if not totals:
        return Backfilled(query, start=first, end=end)
    key = SeriesKey.of(spec.capacity.signal, _labels(scaler, query))
    rows = [SampleRow(key, round((t - step_s) * 1e6), v) for t, v in sorted(totals.items())]
    try:
        async with db.transaction() as conn:
            written = await series.write(conn, rows, now_us=round(now * 1e6))
    except SeriesLimitExceeded as exc:  # CIUIC_MAX_SERIES_PER_JOB counts job ciuic-prometheus
        return Backfilled(query, error=exc.message)
    series.remember(written)
    if roll:
        await _roll_up_now(db, now, lateness_s)
    return Backfilled(query, points=len(rows), start=rows[0].ts_us / 1e6, end=end)


async def _roll_up_now(db: Database, now: float, lateness_s: float) -> None:
    """The forecast reads 5-minute buckets from the minute rollups: the backfilled range is
    rolled up now, not at the rollup loop's next pass, so the very next fit sees it."""
    await roll_up(db, now_us=round(now * 1e6), lateness_us=round(lateness_s * 1e6))


@dataclass
class Backfiller:
    """Runs the backfills of the refit loop, a few at a time, and tells the operator: an
    event (`kind: backfill`) when a run fills more than the one step since the last (the
    first fill, a gap refilled) and when a run fails with an error it did not fail with
    just before; the regular one-step top-ups stay quiet."""

    db: Database
    series: SeriesStore
    client: PrometheusClient | None
    lateness_s: float
    concurrency: int = 8
    failing: dict[str, str] = field(default_factory=dict)  # scaler -> its last error

    async def run(self, due: Sequence[tuple[str, ScalerSpec]], now: float) -> dict[str, Backfilled]:
        """The backfill of each scaler in `due` whose load is read from Prometheus, at most
        `concurrency` queries at once (a slow server costs one timeout per pass, not one
        per scaler)."""
        limit = asyncio.Semaphore(self.concurrency)

        async def one(name: str, spec: ScalerSpec) -> Backfilled | None:
            async with limit:
                return await backfill_load(
                    self.db,
                    self.series,
                    self.client,
                    name,
                    spec,
                    now,
                    lateness_s=self.lateness_s,
                    roll=False,
                )

        sourced = [(n, s) for n, s in due if load_query(s) is not None]
        done = await asyncio.gather(*(one(n, s) for n, s in sourced))
        out = {n: d for (n, _), d in zip(sourced, done, strict=True) if d is not None}
        if any(d.points for d in out.values()):
            await _roll_up_now(self.db, now, self.lateness_s)
        for name, result in out.items():
            await self._tell(name, dict(sourced)[name], result, now)
        return out

    def where(self) -> str:
        return f"Prometheus at {self.client.url}" if self.client is not None else "Prometheus"

    async def _tell(self, name: str, spec: ScalerSpec, result: Backfilled, now: float) -> None:
        signal = spec.capacity.signal
        if result.error is not None:
            if self.failing.get(name) == result.error:
                return
            self.failing[name] = result.error
            message = (
                f"backfill of {signal} from {self.where()} failed: {result.error}; the scaler "
                "scales on its readings meanwhile, and the backfill is retried at each refit"
            )
        else:
            recovered = self.failing.pop(name, None) is not None
            if result.points <= 1 and not recovered:
                return
            span = ""
            if result.start is not None and result.end is not None:
                span = f", {(result.end - result.start) / 3600:.3g} h of history"
            message = f"backfilled {result.points} points of {signal} from {self.where()}{span}"
        async with self.db.transaction() as conn:
            await scaler_store.add_event(
                conn,
                name,
                ts_us=round(now * 1e6),
                kind="backfill",
                message=message,
                payload={
                    "query": result.query,
                    "points": result.points,
                    "start": result.start,
                    "end": result.end,
                    "error": result.error,
                },
            )
