"""Where a decision is made: observe the target, then ask the policy (app.policy.decide).

`observe_and_decide` is the one place that builds the policy's `Observation` and calls
`decide`: the reconciler (app.workers.reconciler) acts on its result, the decision endpoint
shows it. The metrics and the forecast are read by the caller (the reconciler reads a whole
pass's metrics in a few queries) or by `read_inputs` for one scaler; the metrics read from
Prometheus are read here, at each decision (app.services.sources).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from app.kube.cluster import Cluster, ClusterError, DeploymentState
from app.policy import Decision, ScalerSpec, decide
from app.policy.types import Observation
from app.prometheus import PrometheusClient
from app.services.errors import Conflict
from app.services.forecasts import ForecastCache
from app.services.objectives import Latency, measured_latency
from app.services.shell import Shell
from app.services.sources import Read, SourceNote, explain, read_sources
from app.store.db import Database
from app.store.forecasts import StoredForecast
from app.store.observations import MetricsView, read_metrics
from app.store.scalers import StoredScaler

__all__ = ["Decided", "observe_and_decide", "preview", "read_inputs"]


@dataclass(frozen=True, slots=True)
class Decided:
    """What one decision saw (the metrics, the target) and chose; `sources` says how each
    metric read from Prometheus was read (its series, its error)."""

    now: float
    metrics: MetricsView
    cluster: DeploymentState
    decision: Decision
    sources: Mapping[str, SourceNote] = field(default_factory=dict)


async def read_inputs(
    db: Database, forecasts: ForecastCache | None, scaler: str, spec: ScalerSpec, now: float
) -> tuple[MetricsView, StoredForecast | None]:
    """One scaler's metrics as of `now` and its latest forecast (None without a cache)."""
    async with db.read() as conn:
        metrics = await read_metrics(conn, spec, now)
    stored = await forecasts.get(db, scaler) if forecasts is not None else None
    return metrics, stored


async def observe_and_decide(
    cluster: Cluster,
    scaler: StoredScaler,
    spec: ScalerSpec,
    metrics: MetricsView,
    forecast: StoredForecast | None,
    now: float,
    prometheus: PrometheusClient | None = None,
    sourced: Read | None = None,
    latency: Latency | None = None,
) -> Decided:
    """Read the metrics sourced from Prometheus (unless `sourced` holds them, read with a
    pass's others: `read_sources_many`), the target's replicas and pods, and decide;
    ClusterError when the target cannot be read (nothing is decided then). `latency` is what
    the pods measured for the spec's objective (`measured_latency`)."""
    if sourced is None:
        sourced = await read_sources(prometheus, spec, metrics, now)
    metrics, sources = sourced
    state = await cluster.observe(spec.target)
    metrics = metrics.only(state.ready_pods)  # a deleted pod's last samples are no load
    observation = Observation(
        metrics=metrics.readings,
        by_aggregation=metrics.by_aggregation,
        current_replicas=state.replicas,
        ready_pods=state.ready,
        starting_pods=state.starting,
        load_rate=metrics.load_rate,
        cold_start_s=state.learned_cold_start_s,
        unscheduled_since=state.unscheduled_since,
        prefill_s=latency.prefill_s if latency else None,
        itl_p95_s=latency.itl_p95_s if latency else None,
    )
    decision = decide(spec, observation, forecast.forecast if forecast else None, scaler.state, now)
    return Decided(now, metrics, state, explain(decision, sources, prometheus), sources)


async def preview(shell: Shell, scaler: StoredScaler, spec: ScalerSpec) -> Decided:
    """What the policy decides now from the stored metrics; nothing is changed or recorded.
    Conflict (code cluster_error) when the target cannot be read."""
    now = shell.clock.now()
    metrics, stored = await read_inputs(shell.db, shell.forecasts, scaler.name, spec, now)
    latency = await measured_latency(shell.db, spec, now)
    try:
        return await observe_and_decide(
            shell.cluster, scaler, spec, metrics, stored, now, shell.prometheus, latency=latency
        )
    except ClusterError as exc:
        raise Conflict(f"cannot read the target: {exc}", code="cluster_error") from exc
