"""The reconcile loop: for every scaler, observe, decide, act (or, in dry run, say what it
would do), and record the decision, the carried state and any error.

An event is written when something happens (a scale action, a dry-run "would scale", an
error, a change of error), not on every tick: the status always holds the latest decision.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from app.clock import Clock
from app.kube.cluster import Cluster, ClusterError
from app.policy import SpecError, decide, parse_spec
from app.policy.types import Observation
from app.settings import Settings
from app.store import scalers as store
from app.store.db import Database, is_unavailable
from app.store.observations import read_metrics
from app.telemetry import Telemetry
from app.workers.forecasts import ForecastCache
from app.workers.supervisor import sleep_or_stop

__all__ = ["reconcile_loop", "reconcile_once", "reconcile_scaler"]

log = logging.getLogger("ciuic.workers.reconciler")


async def reconcile_scaler(
    db: Database,
    cluster: Cluster,
    scaler: store.StoredScaler,
    now: float,
    now_us: int,
    forecasts: ForecastCache | None = None,
) -> None:
    name = scaler.name
    try:
        spec = parse_spec(scaler.document)
    except SpecError as exc:  # a spec stored by an older version that no longer validates
        await _error(db, name, now_us, f"invalid spec: {exc}", scaler.last_error)
        return
    try:
        cluster_state = await cluster.observe(spec.target)
    except ClusterError as exc:
        await _error(db, name, now_us, f"cannot read {spec.target.name}: {exc}", scaler.last_error)
        return
    async with db.read() as conn:
        view = await read_metrics(conn, spec, now)
    observation = Observation(
        metrics=view.readings,
        current_replicas=cluster_state.replicas,
        ready_pods=cluster_state.ready,
        starting_pods=cluster_state.starting,
        load_rate=view.load_rate,
        cold_start_s=cluster_state.learned_cold_start_s,
    )
    stored = await forecasts.get(db, name) if forecasts is not None else None
    decision = decide(spec, observation, stored.forecast if stored else None, scaler.state, now)
    rendered = store.decision_to_json(decision)
    change = decision.valid and decision.replicas != cluster_state.replicas
    action_error: str | None = None
    if change and spec.mode == "apply":
        try:
            await cluster.scale(spec.target, decision.replicas)
        except ClusterError as exc:
            action_error = f"cannot scale {spec.target.name}: {exc}"
    async with db.transaction() as conn:
        # The state assumes the decision is applied; a failed action keeps the old state so
        # rate limits are not charged for a change that did not happen.
        state = scaler.state if action_error else decision.state
        await store.record_outcome(conn, name, now_us=now_us, state=state, decision=rendered)
        if change:
            move = f"{spec.target.name} from {cluster_state.replicas} to {decision.replicas}"
            if action_error:
                kind, message = "error", action_error
            elif spec.mode == "apply":
                kind, message = "action", f"scaled {move}"
            else:
                kind, message = "dry_run", f"would scale {move} (dry run: nothing changed)"
            await store.add_event(
                conn,
                name,
                ts_us=now_us,
                kind=kind,
                replicas=decision.replicas,
                message=message,
                payload={"from": cluster_state.replicas, **rendered},
            )
        if action_error:
            await store.record_outcome(conn, name, now_us=now_us, error=action_error)


async def _error(db: Database, name: str, now_us: int, message: str, previous: str | None) -> None:
    async with db.transaction() as conn:
        await store.record_outcome(conn, name, now_us=now_us, error=message)
        if message != previous:
            await store.add_event(conn, name, ts_us=now_us, kind="error", message=message)


async def reconcile_once(
    db: Database, cluster: Cluster, clock: Clock, forecasts: ForecastCache | None = None
) -> int:
    async with db.read() as conn:
        found = await store.list_scalers(conn)
    done = 0
    for scaler in found:
        if scaler.paused:
            continue
        now = clock.now()
        await reconcile_scaler(db, cluster, scaler, now, round(now * 1e6), forecasts)
        done += 1
    return done


def reconcile_loop(
    db: Database,
    cluster: Cluster,
    settings: Settings,
    clock: Clock,
    telemetry: Telemetry,
    forecasts: ForecastCache | None = None,
) -> Callable[[asyncio.Event], Awaitable[None]]:
    async def loop(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await reconcile_once(db, cluster, clock, forecasts)
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                log.warning("reconcile skipped: database unavailable (%s)", exc)
            if await sleep_or_stop(stop, settings.reconcile_interval_s):
                return

    return loop
