"""What the pods pushed, turned into the policy's input (`MetricReading`s, the load rate).

Per spec metric: the series of that name matching the metric's label selector, each pod's
newest sample within the metric's window, aggregated over pods as the spec says; and, for an
emergency trigger with its own `aggregation`, the same samples aggregated the trigger's way
(`ScalerSpec.extra_readings`, `Observation.by_aggregation`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from app.policy.spec import ScalerSpec
from app.policy.types import MetricReading
from app.store.tables import samples, series

__all__ = ["MetricsView", "SeriesCatalog", "load_catalog", "read_metrics", "read_metrics_many"]


class MetricsView:
    """The readings for one scaler at one instant, plus the load signal's total.

    `by_aggregation` holds the metrics emergency triggers read another way than `readings`,
    keyed (metric, aggregation), for `Observation.by_aggregation`. `only(pods)` is the same
    view over the samples of those pods alone (and of series that name no pod)."""

    def __init__(
        self,
        readings: Mapping[str, MetricReading],
        load_rate: float | None,
        by_aggregation: Mapping[tuple[str, str], MetricReading] | None = None,
        source: tuple[ScalerSpec, int, Mapping[str, Found], Found, frozenset[str]] | None = None,
    ) -> None:
        self.readings = dict(readings)
        self.load_rate = load_rate
        self.by_aggregation = dict(by_aggregation or {})
        self._source = source

    def only(self, pods: frozenset[str] | None) -> MetricsView:
        """The view over the samples of `pods` (the target's Ready pods) and of series with
        no `pod` label. A pod just deleted keeps its last samples in the store for the
        metric's window: they are no load any more. Itself when the pods are not known, or
        when no series names one of them: a `pod` label that is not the cluster's pod name
        (a gateway's, a sidecar's) must not make the whole load vanish."""
        if pods is None or self._source is None:
            return self
        spec, now_us, found, load, whole = self._source
        named = {r[2] for rows in (*found.values(), load) for r in rows if r[2] is not None}
        if not named & pods:
            return self

        def keep(rows: Found) -> Found:
            return [r for r in rows if r[2] is None or r[2] in pods]

        return _view(spec, now_us, {k: keep(v) for k, v in found.items()}, keep(load), whole)

    def with_found(self, found: Mapping[str, Found], whole: frozenset[str]) -> MetricsView:
        """The view with the samples of some metrics read elsewhere (from Prometheus) in place
        of the store's, the load signal's included (`load_rate`); `whole` names those whose one
        sample without a `pod` label stands for every Ready pod (a query's average, not one
        pod's). Itself without a source."""
        if self._source is None:
            return self
        spec, now_us, mine, load, _ = self._source
        # the load signal read from Prometheus is the load: what capacity is learned from
        load = found.get(spec.capacity.signal, load)
        return _view(spec, now_us, {**mine, **found}, load, whole)

    def per_pod(self) -> dict[str, float]:
        """Each pod's busy-ness, by its `pod` label: its newest sample of the load signal
        (requests), else of the first of the scaler's metrics whose series name pods. What a
        scale-down reads to take the idle pods first."""
        if self._source is None:
            return {}
        spec, _, found, load, _ = self._source
        for rows in (load, *(found[m.name] for m in spec.metrics)):
            named = {r[2]: r[1] for r in sorted(rows) if r[2] is not None}
            if named:
                return named
        return {}


def _aggregate(values: Sequence[float], how: str) -> float:
    if how == "sum":
        return float(sum(values))
    if how == "max":
        return float(max(values))
    if how == "min":
        return float(min(values))
    return float(sum(values) / len(values))


# (timestamp in µs, value, the series' `pod` label or None): each series' newest sample
Found = list[tuple[int, float, str | None]]


def _reading(found: Found, how: str, now_us: int, whole: bool = False) -> MetricReading:
    if not found:
        return MetricReading(value=None, pods_reporting=0)
    newest = max(r[0] for r in found)
    alone = whole and len(found) == 1 and found[0][2] is None
    return MetricReading(
        value=_aggregate([r[1] for r in found], how),
        pods_reporting=0 if alone else len(found),  # 0: every Ready pod (the policy's rule)
        age_s=max(0.0, (now_us - newest) / 1e6),
    )


def _view(
    spec: ScalerSpec,
    now_us: int,
    found: Mapping[str, Found],
    load: Found,
    whole: frozenset[str] = frozenset(),
) -> MetricsView:
    """The readings from each metric's newest samples per pod (`found`, by metric name) and
    from the load signal's (`load`); see `MetricsView.with_found` for `whole`."""
    readings = {
        m.name: _reading(found[m.name], m.aggregation, now_us, m.name in whole)
        for m in spec.metrics
    }
    extra: dict[tuple[str, str], MetricReading] = {
        (name, how): _reading(found[name], how, now_us, name in whole)
        for name, how in spec.extra_readings
    }
    load_rate = float(sum(r[1] for r in load)) if load else None
    return MetricsView(readings, load_rate, extra, (spec, now_us, found, load, whole))


def _label(conn: AsyncConnection, key: str) -> sa.ColumnElement[str]:
    """The value of label `key` in the canonical JSON labels column (NULL when absent)."""
    if conn.dialect.name == "postgresql":
        found: sa.ColumnElement[str] = sa.cast(series.c.labels, JSONB)[key].astext
    else:
        found = sa.func.json_extract(series.c.labels, f'$."{key}"')
    return found


async def _latest_per_series(
    conn: AsyncConnection, name: str, selector: Mapping[str, str], since_us: int, now_us: int
) -> Found:
    """(timestamp, value, pod) of each matching series' newest sample in [since, now].

    The selector is matched in SQL (a JSON lookup per label), so a scaler reads only its own
    series: decoding every series of a shared metric name in Python made each reconcile
    pass quadratic in the number of scalers."""
    query = sa.select(series.c.id, _label(conn, "pod")).where(series.c.name == name)
    for key, value in selector.items():
        query = query.where(_label(conn, key) == value)
    pod_of = {int(sid): pod for sid, pod in (await conn.execute(query)).all()}
    ids = list(pod_of)
    if not ids:
        return []
    latest: dict[int, tuple[int, float, str | None]] = {}
    result = await conn.execute(
        sa.select(samples.c.series_id, samples.c.ts, samples.c.value).where(
            samples.c.series_id.in_(ids), samples.c.ts >= since_us, samples.c.ts <= now_us
        )
    )
    for sid, ts, value in result.all():
        if int(sid) not in latest or int(ts) > latest[int(sid)][0]:
            latest[int(sid)] = (int(ts), float(value), pod_of[int(sid)])
    return list(latest.values())


async def read_metrics(conn: AsyncConnection, spec: ScalerSpec, now: float) -> MetricsView:
    now_us = round(now * 1e6)
    found: dict[str, Found] = {}
    for metric in spec.metrics:
        found[metric.name] = await _latest_per_series(
            conn, metric.name, metric.selector, now_us - round(metric.window * 1e6), now_us
        )
    load: Found = []
    if spec.capacity is not None:
        selector = spec.metrics[0].selector if spec.metrics else {}
        load = await _latest_per_series(
            conn, spec.capacity.signal, selector, now_us - 60_000_000, now_us
        )
    return _view(spec, now_us, found, load)


class SeriesCatalog:
    """Every series of some metric names, indexed by label pair, with each one's newest
    sample: what a reconcile pass over many scalers reads in two queries instead of a few
    per scaler."""

    def __init__(self) -> None:
        self.all: dict[str, set[int]] = {}  # name -> series ids
        self.pairs: dict[tuple[str, str, str], set[int]] = {}  # (name, key, value) -> ids
        self.latest: dict[int, tuple[int, float]] = {}  # id -> (ts, value)
        self.pod: dict[int, str] = {}  # id -> its `pod` label, where it has one

    def matching(self, name: str, selector: Mapping[str, str]) -> set[int]:
        ids = self.all.get(name, set())
        for key, value in selector.items():
            ids = ids & self.pairs.get((name, key, value), set())
        return ids

    def newest(self, name: str, selector: Mapping[str, str], since_us: int) -> Found:
        latest, pod = self.latest, self.pod
        return [
            (*latest[sid], pod.get(sid))
            for sid in self.matching(name, selector)
            if sid in latest and latest[sid][0] >= since_us
        ]


async def load_catalog(conn: AsyncConnection, specs: Sequence[ScalerSpec]) -> SeriesCatalog:
    """Every series of the metrics `specs` name, indexed by label pair (once per pass)."""
    catalog = SeriesCatalog()
    names = sorted(
        {m.name for spec in specs for m in spec.metrics}
        | {spec.capacity.signal for spec in specs if spec.capacity is not None}
    )
    if names:
        rows = await conn.execute(
            sa.select(series.c.id, series.c.name, series.c.labels).where(series.c.name.in_(names))
        )
        for sid, name, labels in rows.all():
            sid = int(sid)
            catalog.all.setdefault(name, set()).add(sid)
            for key, value in json.loads(labels).items():
                catalog.pairs.setdefault((name, key, value), set()).add(sid)
                if key == "pod":
                    catalog.pod[sid] = value
    return catalog


async def read_metrics_many(
    conn: AsyncConnection,
    specs: Sequence[ScalerSpec],
    now: float,
    catalog: SeriesCatalog | None = None,
) -> list[MetricsView]:
    """`read_metrics` for many scalers at once (same readings, same order as `specs`): the
    newest sample of each of their series in one query. `catalog` (from `load_catalog` over
    a superset of `specs`) lets a pass read its series once for all its chunks."""
    now_us = round(now * 1e6)
    if catalog is None:
        catalog = await load_catalog(conn, specs)
    longest = 60.0
    wanted: set[int] = set()
    for spec in specs:
        for metric in spec.metrics:
            longest = max(longest, metric.window)
            wanted |= catalog.matching(metric.name, metric.selector)
        if spec.capacity is not None:
            selector = spec.metrics[0].selector if spec.metrics else {}
            wanted |= catalog.matching(spec.capacity.signal, selector)
    if wanted:
        ids = sorted(wanted)
        newest = (
            sa.select(samples.c.series_id, sa.func.max(samples.c.ts).label("ts"))
            .where(
                samples.c.series_id.in_(ids),
                samples.c.ts >= now_us - round(longest * 1e6),
                samples.c.ts <= now_us,
            )
            .group_by(samples.c.series_id)
            .subquery()
        )
        rows = await conn.execute(
            sa.select(samples.c.series_id, samples.c.ts, samples.c.value).join(
                newest,
                sa.and_(samples.c.series_id == newest.c.series_id, samples.c.ts == newest.c.ts),
            )
        )
        catalog.latest.update({int(sid): (int(ts), float(v)) for sid, ts, v in rows.all()})
    views = []
    for spec in specs:
        found = {
            m.name: catalog.newest(m.name, m.selector, now_us - round(m.window * 1e6))
            for m in spec.metrics
        }
        load: Found = []
        if spec.capacity is not None:
            selector = spec.metrics[0].selector if spec.metrics else {}
            load = catalog.newest(spec.capacity.signal, selector, now_us - 60_000_000)
        views.append(_view(spec, now_us, found, load))
    return views
