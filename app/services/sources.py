"""Metrics read from Prometheus (a spec metric's `source: {prometheus: <query>}`): each query
evaluated at each decision, its answer turned into the metric's samples.

What an answer means: one sample (a scalar, or a vector of one series) is the metric's value
as the query computed it; several series are one per pod, each with a distinct `pod` label,
aggregated over the Ready pods as the metric says (`avg`, `max`, ...). Several series that are
not one per pod are refused: aggregate them in the query (`sum(...)`, `max(...)`). A query
that fails, times out or is refused is a missing reading: the policy holds (never scales down
on missing data), and the decision carries a `source.prometheus_failed` reason naming the
server and the error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from app.policy import Code, Decision, ScalerSpec
from app.policy.spec import MetricSpec
from app.policy.types import Reason
from app.prometheus import PrometheusClient, PrometheusError, Sample
from app.store.observations import Found, MetricsView

__all__ = [
    "SOURCE_FAILED",
    "Read",
    "SourceNote",
    "explain",
    "read_sources",
    "read_sources_many",
    "to_found",
]

# A reason code of the shell's, not the policy's: the policy sees only a missing reading.
SOURCE_FAILED = Code.SOURCE_PROMETHEUS_FAILED


@dataclass(frozen=True, slots=True)
class SourceNote:
    """How a metric read from Prometheus was read: its query, how many series the answer
    held, and why it gives no reading (None when it does)."""

    query: str
    series: int = 0
    error: str | None = None


def to_found(samples: Sequence[Sample]) -> Found:
    """The metric's samples from an instant query's answer (see the module's docstring)."""
    if not samples:
        raise PrometheusError("the query returned no series")
    if len(samples) == 1:
        s = samples[0]
        return [(round(s.ts * 1e6), s.value, None)]
    pods = [s.labels.get("pod") for s in samples]
    if None in pods or len(set(pods)) != len(pods):
        raise PrometheusError(
            f"the query returned {len(samples)} series, not one per pod (a distinct `pod` "
            "label each): aggregate them in the query, e.g. sum(...) or max(...)"
        )
    return [(round(s.ts * 1e6), s.value, s.labels["pod"]) for s in samples]


async def _read(
    client: PrometheusClient | None, metric: MetricSpec, now: float
) -> tuple[Found, SourceNote]:
    assert metric.source is not None
    query = metric.source.prometheus
    if client is None:
        return [], SourceNote(query, error="no Prometheus configured (set CIUIC_PROMETHEUS_URL)")
    samples: list[Sample] = []
    try:
        # The client's timeout bounds each request; this bounds the whole query (connect,
        # TLS, a slow body) so one dead server never stalls a reconcile pass.
        samples = await asyncio.wait_for(client.query(query, now), client.timeout_s + 1.0)
        return to_found(samples), SourceNote(query, series=len(samples))
    except TimeoutError:
        return [], SourceNote(query, error=f"no answer within {client.timeout_s:g}s")
    except PrometheusError as exc:
        return [], SourceNote(query, series=len(samples), error=str(exc))


async def read_sources(
    client: PrometheusClient | None, spec: ScalerSpec, view: MetricsView, now: float
) -> tuple[MetricsView, dict[str, SourceNote]]:
    """`view` with the Prometheus-sourced metrics of `spec` read now (all queries at once), and
    how each was read. The view itself when the spec has none."""
    sourced = [m for m in spec.metrics if m.source is not None]
    if not sourced:
        return view, {}
    answers = await asyncio.gather(*(_read(client, m, now) for m in sourced))
    found = {m.name: rows for m, (rows, _) in zip(sourced, answers, strict=True)}
    notes = {m.name: note for m, (_, note) in zip(sourced, answers, strict=True)}
    return view.with_found(found, frozenset(found)), notes


Read = tuple[MetricsView, dict[str, SourceNote]]


async def read_sources_many(
    client: PrometheusClient | None,
    scalers: Sequence[tuple[str, ScalerSpec, MetricsView]],
    now: float,
    *,
    limit: int,
) -> dict[str, Read]:
    """`read_sources` for each scaler (name, spec, view) that reads from Prometheus, at most
    `limit` at once: a pass over many such scalers on a slow server waits about one timeout
    per `limit` of them, not one per scaler. Keyed by name; the others are left out. The
    bound is kept outside each query's own deadline, so waiting for a turn is no timeout."""
    gate = asyncio.Semaphore(limit)

    async def one(spec: ScalerSpec, view: MetricsView) -> Read:
        async with gate:
            return await read_sources(client, spec, view, now)

    sourced = [(n, s, v) for n, s, v in scalers if any(m.source for m in s.metrics)]
    answers = await asyncio.gather(*(one(s, v) for _, s, v in sourced))
    return {name: read for (name, _, _), read in zip(sourced, answers, strict=True)}


def explain(
    decision: Decision, notes: Mapping[str, SourceNote], client: PrometheusClient | None
) -> Decision:
    """The decision with a first reason per metric Prometheus did not give: the policy only
    knows it is missing; the operator needs to know which server failed, and how."""
    where = f"Prometheus at {client.url}" if client is not None else "Prometheus"
    failed = tuple(
        Reason(
            SOURCE_FAILED,
            f"{name}: no reading from {where}: {note.error}",
            {f"{name}.series": float(note.series)},
        )
        for name, note in notes.items()
        if note.error is not None
    )
    return replace(decision, reasons=(*failed, *decision.reasons)) if failed else decision
