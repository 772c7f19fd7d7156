"""The reconcile loop: for every scaler, observe and decide (app.services.decisions), act (or,
in dry run, say what it would do), and record the decision, the carried state and any error.

An event is written when something happens (a scale action, a dry-run "would scale", an
error, a change of error), not on every tick: the status always holds the latest decision.

A pass in `apply` mode that finds the target at other replicas than Ciuic last left it at
(`StoredScaler.applied_replicas`) records a `drift` event first: someone ran `kubectl scale`,
another autoscaler (an HPA) scales the same target, or a leader died between scaling and
recording it. Then the pass decides and acts as always, and the count it leaves becomes the
one to compare with, so each drift is one event. There is nothing to compare with on a first
pass, in a dry run (Ciuic applies nothing), after a pause (the target was the operator's) or a
change of target; the rollout's hand-back does not compare either (its surge moved the count).

A scaler whose target is being rolled out (app.workers.rollouts) is skipped: the rollout holds
the replicas (its surge) until it hands back; the skip is an event once per rollout. The loop
sleeps on the `Wakeup` event with its interval as the timeout, so a pushed burst or a held
trigger coming due is reconciled at once, for the scalers concerned only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from app.clock import Clock
from app.kube.cluster import Cluster, ClusterError
from app.policy import ScalerSpec, SpecError
from app.policy.types import Decision, Reason
from app.prometheus import PrometheusClient
from app.services.decisions import observe_and_decide, read_inputs
from app.services.forecasts import ForecastCache
from app.services.objectives import Latency, measured_latency
from app.services.sources import Read, read_sources_many
from app.services.specs import SpecCache
from app.services.wakeup import Wakeup
from app.settings import Settings
from app.store import forecasts as forecast_store
from app.store import rollouts as rollout_store
from app.store import scalers as store
from app.store.db import Database, is_unavailable
from app.store.forecasts import StoredForecast
from app.store.observations import MetricsView, load_catalog, read_metrics, read_metrics_many
from app.telemetry import Telemetry
from app.timetext import format_duration

__all__ = ["drift_message", "reconcile_loop", "reconcile_once", "reconcile_scaler"]

log = logging.getLogger("ciuic.workers.reconciler")
# A drift within this long of the last one recorded is counted on it, not recorded anew: an HPA
# fighting over the target drifts at every pass (each is logged), one event per 5 minutes says so.
DRIFT_REPEAT_US = 300_000_000


Write = Callable[[AsyncConnection], Awaitable[None]]


async def reconcile_scaler(
    db: Database,
    cluster: Cluster,
    scaler: store.StoredScaler,
    now: float,
    now_us: int,
    forecasts: ForecastCache | None = None,
    wakeup: Wakeup | None = None,
    specs: SpecCache | None = None,
    prometheus: PrometheusClient | None = None,
    *,
    drift: bool = True,
) -> None:
    """Reconcile one scaler now (the rollout executor's hand-back; a pass uses the batch).
    `drift=False`: the count found is not compared with the one Ciuic applied (a rollout's
    surge moved it on purpose); it is only recorded as the one to compare with next."""
    try:
        spec = (specs or SpecCache()).spec_of(scaler)
    except SpecError as exc:  # a spec stored by an older version that no longer validates
        write = _error(scaler, now_us, f"invalid spec: {exc}")
    else:
        view, stored = await read_inputs(db, forecasts, scaler.name, spec, now)
        latency = await measured_latency(db, spec, now)
        write = await _reconcile(
            cluster,
            scaler,
            spec,
            view,
            stored,
            now,
            now_us,
            wakeup,
            prometheus,
            latency=latency,
            drift=drift,
        )
    async with db.transaction() as conn:
        await write(conn)


async def _reconcile(
    cluster: Cluster,
    scaler: store.StoredScaler,
    spec: ScalerSpec,
    view: MetricsView,
    stored: StoredForecast | None,
    now: float,
    now_us: int,
    wakeup: Wakeup | None,
    prometheus: PrometheusClient | None = None,
    sourced: Read | None = None,
    latency: Latency | None = None,
    drift: bool = True,
) -> Write:
    """Observe, decide and act; returns the writes that record it (the caller batches them
    into one transaction per pass)."""
    name = scaler.name
    if wakeup is not None:
        wakeup.update(name, spec)
    try:
        decided = await observe_and_decide(
            cluster, scaler, spec, view, stored, now, prometheus, sourced, latency
        )
    except ClusterError as exc:
        return _error(scaler, now_us, f"cannot read {spec.target.name}: {exc}")
    decision, cluster_state = decided.decision, decided.cluster
    drifted: str | None = None
    applied = scaler.applied_replicas
    if drift and spec.mode == "apply" and applied is not None and cluster_state.replicas != applied:
        drifted = drift_message(
            f"{spec.target.kind} {spec.target.name}",
            cluster_state.replicas,
            applied,
            scaler.applied_us,
            now_us,
        )
        log.warning(
            "%s",
            drifted,
            extra={
                "scaler": name,
                "target": spec.target.name,
                "found_replicas": cluster_state.replicas,
                "applied_replicas": applied,
            },
        )
    if wakeup is not None:
        wakeup.schedule(name, spec, decision.state, now)
    rendered = store.decision_to_json(decision)
    # an invalid decision (no fresh metrics) moves the count only to the spec's fallback or into
    # the bounds in force: a fallback, a cron floor or max_replicas holds without metrics too
    change = decision.replicas != cluster_state.replicas
    action_error: str | None = None
    deletion_note: str | None = None
    if change and spec.mode == "apply":
        if decision.replicas < cluster_state.replicas:
            # The idle pods are the ones to go: a failure to say so costs only the choice
            # (the controller's own order), never the scale-down itself.
            try:
                await cluster.prefer_deletion(spec.target, decided.metrics.per_pod())
            except ClusterError as exc:
                deletion_note = f"cannot mark the idle pods to go first: {exc}"
        try:
            await cluster.scale(spec.target, decision.replicas)
        except ClusterError as exc:
            action_error = f"cannot scale {spec.target.name}: {exc}"
    if change:
        _log_action(name, spec, cluster_state.replicas, decision, action_error)
    # A fractional plan's partial pod gets its share of CPU and memory in place; where the
    # cluster cannot, the plan stays rounded up (whole pods) and an event says why. A plan
    # back to whole pods (or fractional pods turned off) restores the pod left partial. In
    # dry run nothing is resized, and the event says what would be.
    partial_note: str | None = None
    partial_changed = False
    previous = (scaler.last_decision or {}).get("plan", {}).get("partial")
    if (spec.fractional.enabled or previous is not None) and not action_error and decision.valid:
        partial_changed = previous != decision.plan.partial
        if spec.mode == "apply" and scaler.applied_replicas is None:
            # No pass applied anything since (a dry run, a pause): the share the last decision
            # held may never have reached the pod, so this pass's resize is said again.
            partial_changed = partial_changed or decision.plan.partial is not None
        if spec.mode == "apply":
            try:
                partial_note = await cluster.resize_partial(spec.target, decision.plan.partial)
            except ClusterError as exc:
                partial_note = f"{_CANNOT_RESIZE}{exc}"
    dry_run = spec.mode == "dry_run"

    # The count the target is left at, to compare with at the next pass: the decision when it
    # was applied, else the count found (kept, or a failed scale left it). Its time moves only
    # when Ciuic set it, or found it elsewhere.
    applied_now: tuple[int, int] | None = None
    if spec.mode == "apply":
        acted = change and not action_error
        count = decision.replicas if acted else cluster_state.replicas
        since = scaler.applied_us
        if since is None or acted or count != applied:
            since = now_us
        applied_now = (count, since)

    async def write(conn: AsyncConnection) -> None:
        if drifted is not None and not await store.repeat_recent_event(
            conn,
            name,
            kind="drift",
            now_us=now_us,
            within_us=DRIFT_REPEAT_US,
            found=cluster_state.replicas,
            applied=applied,
        ):
            await store.add_event(
                conn,
                name,
                ts_us=now_us,
                kind="drift",
                replicas=cluster_state.replicas,
                message=drifted,
                payload={
                    "found": cluster_state.replicas,
                    "applied": applied,
                    "applied_us": scaler.applied_us,
                    "ready": cluster_state.ready,
                },
            )
        # The state assumes the decision is applied; a failed action keeps the old state so
        # rate limits are not charged for a change that did not happen.
        state = scaler.state if action_error else decision.state
        await store.record_outcome(
            conn, name, now_us=now_us, state=state, decision=rendered, applied=applied_now
        )
        if not change and _turn(rendered) != _turn(scaler.last_decision):
            # A decision that changes nothing but differs from the last one (its replicas or
            # its reasons' codes): recorded, so the history explains every turn; identical
            # ticks are not repeated (the status always holds the latest).
            codes = ", ".join(str(r["code"]) for r in rendered["reasons"])
            await store.add_event(
                conn,
                name,
                ts_us=now_us,
                kind="decision",
                replicas=decision.replicas,
                message=f"decided {decision.replicas} (need {decision.need:.2f}): {codes}",
                payload={"from": cluster_state.replicas, "ready": cluster_state.ready, **rendered},
            )
        if change:
            move = f"{spec.target.name} from {cluster_state.replicas} to {decision.replicas}"
            if action_error:
                kind, message = "error", action_error
            elif spec.mode == "apply":
                kind, message = "action", f"scaled {move}"
            else:
                kind, message = "dry_run", f"would scale {move}{_NOTHING_CHANGED}"
            await store.add_event(
                conn,
                name,
                ts_us=now_us,
                kind=kind,
                replicas=decision.replicas,
                message=message,
                payload={
                    "from": cluster_state.replicas,
                    "ready": cluster_state.ready,
                    **rendered,
                },
            )
        if partial_changed and decision.plan.partial is None:
            whole = "its full CPU and memory"
            if dry_run:
                restored = (
                    f"would restore the partial pod to {whole}: {decision.plan.full} whole "
                    f"pods{_NOTHING_CHANGED}"
                )
            elif partial_note:
                why = partial_note.removeprefix(_CANNOT_RESIZE)
                left = f"it stays at {float(previous):.0%}"
                restored = f"cannot restore the partial pod to {whole} ({left}): {why}"
            else:
                restored = f"partial pod restored to {whole}: {decision.plan.full} whole pods"
            await store.add_event(
                conn,
                name,
                ts_us=now_us,
                kind="dry_run" if dry_run else "error" if partial_note else "action",
                replicas=decision.replicas,
                message=restored,
                payload={"partial": None, "full": decision.plan.full},
            )
        if partial_changed and decision.plan.partial is not None:
            share = f"{decision.plan.partial:.0%}"
            if dry_run:
                resized = (
                    f"would resize the partial pod in place to {share} of its CPU and memory"
                    f"{_NOTHING_CHANGED}"
                )
            elif partial_note:
                resized = (
                    f"plan rounded up to {decision.replicas} whole pods instead of one at "
                    f"{share}: {partial_note}"
                )
            else:
                resized = f"partial pod resized in place to {share} of its CPU and memory"
            await store.add_event(
                conn,
                name,
                ts_us=now_us,
                kind="dry_run" if dry_run else "action",
                replicas=decision.replicas,
                message=resized,
                payload={"partial": decision.plan.partial, "full": decision.plan.full},
            )
        if deletion_note:
            await store.add_event(
                conn,
                name,
                ts_us=now_us,
                kind="error",
                replicas=decision.replicas,
                message=deletion_note,
            )
        if action_error:
            await store.record_outcome(conn, name, now_us=now_us, error=action_error)

    return write


_CANNOT_RESIZE = "cannot resize the partial pod: "
_NOTHING_CHANGED = " (dry run: nothing changed)"  # what each dry-run event's "would" ends with


def drift_message(
    target: str, found: int, applied: int, applied_us: int | None, now_us: int
) -> str:
    """What a drift event says: both counts, when Ciuic set its own, and the likely causes."""
    when = ""
    if applied_us is not None:
        stamp = datetime.fromtimestamp(applied_us // 1_000_000, tz=UTC)
        ago = format_duration(max(0, (now_us - applied_us) // 1_000_000))
        when = f" at {stamp.isoformat().replace('+00:00', 'Z')} ({ago} ago)"
    return (
        f"{target} had {found} replicas, not the {applied} Ciuic last set{when}: changed "
        "outside Ciuic (kubectl scale, another autoscaler such as an HPA) or by a decision of "
        "Ciuic's whose record was lost"
    )


# Reasons that bind the count, latest pipeline step first (bounds over behaviour over hold
# over the load): the one an operator asks about ("why 3?"). Preheat's spare pods come last:
# they ride on top of the load. Other codes (within range, disabled, idle, ...) bind nothing.
_BINDING = (
    ("bounds.", ("bounds.within",)),
    ("behavior.", ("behavior.within_range",)),
    ("hold.", ("hold.none",)),
    ("emergency.", ("emergency.disabled", "emergency.idle", "emergency.armed")),
    ("predictive.floor", ()),
    ("reactive.", ("reactive.in_tolerance",)),
    ("preheat.eager", ()),
)


def main_reason(decision: Decision) -> Reason | None:
    """The reason that set the count: the latest binding step of the pipeline."""
    for prefix, neutral in _BINDING:
        for reason in decision.reasons:
            if reason.code.startswith(prefix) and reason.code not in neutral:
                return reason
    return decision.reasons[0] if decision.reasons else None


def _log_action(
    name: str, spec: ScalerSpec, before: int, decision: Decision, error: str | None
) -> None:
    """One line per scale action, dry run or failure: who, from, to, and why."""
    target = spec.target.name if spec.target.name == name else f"{spec.target.name} ({name})"
    reason = main_reason(decision)
    why = f": {reason.message}" if reason is not None else ""
    fields = {
        "scaler": name,
        "target": spec.target.name,
        "from_replicas": before,
        "to_replicas": decision.replicas,
        "reason": reason.code if reason is not None else None,
    }
    if error is not None:
        log.warning(
            "failed to scale %s from %d to %d%s (%s)",
            target,
            before,
            decision.replicas,
            why,
            error,
            extra=fields,
        )
    elif spec.mode == "apply":
        log.info("scaled %s from %d to %d%s", target, before, decision.replicas, why, extra=fields)
    else:
        log.info(
            "would scale %s from %d to %d (dry run)%s",
            target,
            before,
            decision.replicas,
            why,
            extra=fields,
        )


def _turn(decision: dict[str, Any] | None) -> tuple[object, ...] | None:
    """What makes a decision a turn worth an event: its replicas and its reasons' codes."""
    if decision is None:
        return None
    return (decision.get("replicas"), tuple(r.get("code") for r in decision.get("reasons", [])))


def _error(scaler: store.StoredScaler, now_us: int, message: str) -> Write:
    async def write(conn: AsyncConnection) -> None:
        await store.record_outcome(conn, scaler.name, now_us=now_us, error=message)
        if message != scaler.last_error:
            await store.add_event(conn, scaler.name, ts_us=now_us, kind="error", message=message)

    return write


async def reconcile_once(
    db: Database,
    cluster: Cluster,
    clock: Clock,
    forecasts: ForecastCache | None = None,
    *,
    wakeup: Wakeup | None = None,
    only: set[str] | None = None,
    held: dict[str, int] | None = None,
    chunk: int = 100,
    specs: SpecCache | None = None,
    prometheus: PrometheusClient | None = None,
    prometheus_concurrency: int = 8,
) -> int:
    """One pass over every scaler (or those named in `only`); returns how many acted on.

    `held` remembers the rollout each skipped scaler was last reported held for, so the
    skip is an event once per rollout, not once per pass."""
    held = {} if held is None else held
    specs = SpecCache() if specs is None else specs
    now = clock.now()
    now_us = round(now * 1e6)
    async with db.read() as conn:
        found = await store.list_scalers(conn, only)
        rolling = await rollout_store.active_for(conn)
    seen: set[str] = set()
    todo: list[tuple[store.StoredScaler, ScalerSpec]] = []
    writes: list[Write] = []
    for scaler in found:
        if (only is not None and scaler.name not in only) or scaler.paused:
            continue
        seen.add(scaler.name)
        rollout_id = rolling.get(scaler.name)
        if rollout_id is not None:
            if held.get(scaler.name) != rollout_id:
                held[scaler.name] = rollout_id
                writes.append(_held(scaler.name, now_us, rollout_id))
            continue
        held.pop(scaler.name, None)
        try:
            todo.append((scaler, specs.spec_of(scaler)))
        except SpecError as exc:  # a spec stored by an older version that no longer validates
            writes.append(_error(scaler, now_us, f"invalid spec: {exc}"))
    # Per chunk of scalers: two reads for their metrics and one transaction for their
    # outcomes (per-scaler round trips are what a pass over 1,000 scalers would otherwise
    # spend its time on). Between chunks, scalers woken by a burst go first, so a long pass
    # delays a burst by one chunk at most.
    with_forecast: set[str] = set()
    if forecasts is not None and todo:
        async with db.read() as conn:
            with_forecast = await forecast_store.forecast_names(conn)
    catalog = None
    if only is None and todo:  # a full pass reads the series of its metrics once
        async with db.read() as conn:
            catalog = await load_catalog(conn, [spec for _, spec in todo])
    done = 0
    served: set[str] = set()
    for start in range(0, max(len(todo), 1), chunk):
        if start and wakeup is not None and only is None and wakeup.event.is_set():
            urgent = wakeup.take(clock.now())
            if urgent:
                done += await reconcile_once(
                    db,
                    cluster,
                    clock,
                    forecasts,
                    wakeup=wakeup,
                    only=urgent,
                    held=held,
                    specs=specs,
                    prometheus=prometheus,
                    prometheus_concurrency=prometheus_concurrency,
                )
                served |= urgent  # already decided with fresh metrics: not again this pass
        part = [(sc, sp) for sc, sp in todo[start : start + chunk] if sc.name not in served]
        now = clock.now()  # each chunk reads the metrics as they are when it starts
        now_us = round(now * 1e6)
        async with db.read() as conn:
            if catalog is None:  # a burst's few scalers: their own series, found in SQL
                views = [await read_metrics(conn, spec, now) for _, spec in part]
            else:
                views = await read_metrics_many(conn, [sp for _, sp in part], now, catalog)
        # The chunk's Prometheus queries at once (a few at a time), before any decision.
        sourced = await read_sources_many(
            prometheus,
            [(sc.name, sp, view) for (sc, sp), view in zip(part, views, strict=True)],
            now,
            limit=prometheus_concurrency,
        )
        for (scaler, spec), view in zip(part, views, strict=True):
            stored = None
            if forecasts is not None and scaler.name in with_forecast:
                stored = await forecasts.get(db, scaler.name)
            latency = await measured_latency(db, spec, now)  # None (no read) without objective
            writes.append(
                await _reconcile(
                    cluster,
                    scaler,
                    spec,
                    view,
                    stored,
                    now,
                    now_us,
                    wakeup,
                    prometheus,
                    sourced.get(scaler.name),
                    latency,
                )
            )
        done += len(part)
        if writes:
            async with db.transaction() as conn:
                for write in writes:
                    await write(conn)
            writes = []
    if only is None:
        specs.retain({s.name for s in found})  # deleted scalers' specs are forgotten
        if wakeup is not None:
            wakeup.retain(seen)  # deleted and paused scalers no longer wake the loop
    return done


def _held(name: str, now_us: int, rollout_id: int) -> Write:
    async def write(conn: AsyncConnection) -> None:
        await store.add_event(
            conn,
            name,
            ts_us=now_us,
            kind="skip",
            message=f"not reconciled: rollout {rollout_id} holds the replicas until it hands "
            "back to the policy",
            payload={"rollout": rollout_id},
        )

    return write


def reconcile_loop(
    db: Database,
    cluster: Cluster,
    settings: Settings,
    clock: Clock,
    telemetry: Telemetry,
    forecasts: ForecastCache | None = None,
    wakeup: Wakeup | None = None,
    specs: SpecCache | None = None,
    prometheus: PrometheusClient | None = None,
) -> Callable[[asyncio.Event], Awaitable[None]]:
    signal = wakeup if wakeup is not None else Wakeup()
    specs = SpecCache() if specs is None else specs
    held: dict[str, int] = {}

    async def loop(stop: asyncio.Event) -> None:
        next_full = clock.monotonic()  # of the next pass over every scaler: the first at once
        while not stop.is_set():
            names = signal.take(clock.now())
            try:
                if clock.monotonic() >= next_full:
                    next_full = clock.monotonic() + settings.reconcile_interval_s
                    await reconcile_once(
                        db,
                        cluster,
                        clock,
                        forecasts,
                        wakeup=signal,
                        held=held,
                        specs=specs,
                        prometheus=prometheus,
                        prometheus_concurrency=settings.prometheus_concurrency,
                    )
                elif names:
                    await reconcile_once(
                        db,
                        cluster,
                        clock,
                        forecasts,
                        wakeup=signal,
                        only=names,
                        held=held,
                        specs=specs,
                        prometheus=prometheus,
                        prometheus_concurrency=settings.prometheus_concurrency,
                    )
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                log.warning("reconcile skipped: database unavailable (%s)", exc)
            timeout = next_full - clock.monotonic()
            due = signal.next_due()
            if due is not None:
                timeout = min(timeout, due - clock.now())
            # Woken early by a burst (the wake-up event) or stopped.
            await clock.wait_for(stop, signal.event, timeout_s=timeout)

    return loop
