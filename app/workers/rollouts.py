"""The rollout executor: a rolling update with a surge plan, step by step, resumable.

The brief's sketch 8: scale up to 1.5x the current replicas, roll out, wait for stabilisation,
then scale down to the optimal count. The steps:

1. surge: scale to ceil(current x (1 + surge_percent/100)); done when that many pods are Ready;
2. patch: save the current template (for a rollback), then apply the template patch;
3. follow: until observedGeneration >= generation and every replica is updated and available;
4. stabilize: the rollout stays complete for `stabilize_s` (a pod lost restarts the wait);
5. release: the hold ends and the policy decides at once (one reconcile of the scaler); a
   paused scaler has no policy to decide, so its surge is given back instead (the count from
   before the surge, unless someone set another since).

The executor is a state machine over the stored row, ticked by the loop (every
`rollout_poll_s`, or at once when the API creates or cancels one): each tick looks at the
current step, acts or checks, and records what changed. A step records its start before it
acts and its end after, and every action is idempotent (scale to N, a patch already applied
changes nothing), so a restarted leader resumes from the recorded step without repeating a
finished one. Waiting steps time out after `timeout_s` (failed; a failed or cancelled rollout
whose template was patched restores the saved template, then releases). A dry-run scaler
records what each step would do and changes nothing. Every step is an event (`rollout`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from app.clock import Clock
from app.kube.cluster import (
    Cluster,
    ClusterError,
    ClusterForbidden,
    ClusterInvalid,
    TargetNotFound,
)
from app.policy import SpecError
from app.policy.spec import TargetRef
from app.prometheus import PrometheusClient
from app.services.forecasts import ForecastCache
from app.services.specs import SpecCache
from app.services.wakeup import Wakeup
from app.settings import Settings
from app.store import rollouts as store
from app.store import scalers as scaler_store
from app.store.db import Database, is_unavailable
from app.workers.reconciler import reconcile_scaler

__all__ = ["RolloutExecutor", "rollout_loop", "surge_target"]

log = logging.getLogger("ciuic.workers.rollouts")

StoredRollout = store.StoredRollout


def surge_target(current: int, surge_percent: float) -> int:
    """ceil(current x (1 + surge/100)), computed in integer percent points so 3 x 1.5 is
    exactly 5 rather than a float that ceil rounds up further."""
    return -(-current * round(100 + surge_percent) // 100)


class _Fatal(Exception):
    """A failure no retry will fix (the target is gone, RBAC forbids the write, the API
    server refuses the patch as invalid)."""


class RolloutExecutor:
    def __init__(
        self,
        db: Database,
        cluster: Cluster,
        clock: Clock,
        forecasts: ForecastCache | None = None,
        wakeup: Wakeup | None = None,
        specs: SpecCache | None = None,
        prometheus: PrometheusClient | None = None,
    ) -> None:
        self.db = db
        self.prometheus = prometheus
        self.cluster = cluster
        self.clock = clock
        self.forecasts = forecasts
        self.wakeup = wakeup
        self.specs = SpecCache() if specs is None else specs

    async def tick_all(self) -> int:
        """One tick of every active rollout; returns how many are still active."""
        async with self.db.read() as conn:
            active = await store.list_active(conn)
        left = 0
        for rollout in active:
            try:
                await self.tick(rollout)
            except Exception as exc:
                if is_unavailable(exc):
                    raise
                log.exception("rollout %s: tick failed", rollout.id)
            left += rollout.active
        return left

    async def tick(self, r: StoredRollout) -> None:
        async with self.db.read() as conn:
            scaler = await scaler_store.get_scaler(conn, r.scaler)
        if scaler is None:
            await self._finish(r, "failed", f"scaler {r.scaler!r} was deleted")
            return
        pinned = r.request.get("target")
        if pinned is not None:
            # The Deployment it started on, whatever the spec names now: a rollback restores
            # the template it saved onto that one, never onto another.
            target = TargetRef.model_validate(pinned)
        else:  # a rollout recorded before targets were pinned
            try:
                target = self.specs.spec_of(scaler).target
            except SpecError as exc:
                await self._finish(r, "failed", f"invalid spec: {exc}")
                return
        if r.dry_run:
            await self._dry_run(r, target)
            return
        if r.cancel_requested and r.status in ("pending", "running"):
            await self._unwind(r, "cancelled", "cancelled on request")
        for _ in range(len(r.steps) + 1):  # quick steps chain within one tick
            if not r.active:
                return
            step = r.current()
            try:
                moved = await self._step(r, step, target)
            except _Fatal as exc:
                await self._fail(r, step, str(exc))
                return
            except ClusterError as exc:
                # Transient (5xx, timeouts, conflicts): retried next tick, bounded by timeout_s.
                step["details"]["last_error"] = str(exc)
                if self._timed_out(r, step):
                    await self._fail(r, step, f"{step['name']}: {exc}")
                else:
                    await self._save(r)
                return
            if not moved:
                return

    # ---- steps -----------------------------------------------------------------------------

    async def _step(self, r: StoredRollout, step: dict[str, Any], target: TargetRef) -> bool:
        """Act on or check the current step; True when it finished (go on to the next)."""
        name = step["name"]
        # `begun`: the step's first action is recorded (set with the first save); a step
        # whose first attempt failed on the cluster is still running (its timeout counts from
        # the first attempt) but has not begun, so the next tick starts it again.
        started = bool(step["details"].get("begun"))
        if step["status"] == "pending":
            step["status"] = "running"
            step["started_us"] = self.clock.stamp_us()
            if r.status == "pending":
                r.status = "running"
        try:
            if name == "surge":
                return await self._surge(r, step, target, started)
            if name == "patch":
                return await self._patch(r, step, target, started)
            if name in ("follow", "rollback"):
                return await self._follow(r, step, target, started)
            if name == "stabilize":
                return await self._stabilize(r, step, target, started)
            if name == "release":
                return await self._release(r, step, target)
        except (TargetNotFound, ClusterForbidden, ClusterInvalid) as exc:
            raise _Fatal(str(exc)) from exc
        raise AssertionError(f"unknown step {name!r}")

    async def _surge(
        self, r: StoredRollout, step: dict[str, Any], target: TargetRef, started: bool
    ) -> bool:
        state = await self.cluster.observe(target)
        details = step["details"]
        if not started:
            want = surge_target(state.replicas, float(r.request["surge_percent"]))
            details.update({"from": state.replicas, "to": want, "begun": True})
            await self._save(
                r,
                f"surge: scaling {target.name} from {state.replicas} to {want} "
                f"({r.request['surge_percent']:g} % surge) and waiting for {want} ready pods",
                replicas=want,
            )
        want = int(details["to"])
        if state.replicas < want:
            await self.cluster.scale(target, want)
            state = await self.cluster.observe(target)
        details["ready"] = state.ready
        if state.ready >= want:
            return await self._done(r, step, f"surge: {state.ready} pods ready", replicas=want)
        if self._timed_out(r, step):
            raise _Fatal(
                f"surge: only {state.ready} of {want} pods ready after {r.request['timeout_s']:g} s"
            )
        return False

    async def _patch(
        self, r: StoredRollout, step: dict[str, Any], target: TargetRef, started: bool
    ) -> bool:
        patch: dict[str, Any] = r.request["patch"]
        if r.original_template is None:
            # Saved before the first write: on a resume the template may already be patched.
            r.original_template = await self.cluster.template(target)
        if not started:
            step["details"].update(patch=patch, begun=True)
            await self._save(r, "patch: applying the template patch")
        await self.cluster.patch_template(target, patch)
        status = await self.cluster.rollout_status(target)
        step["details"]["generation"] = status.generation
        return await self._done(r, step, f"patch: applied (generation {status.generation})")

    async def _follow(
        self, r: StoredRollout, step: dict[str, Any], target: TargetRef, started: bool
    ) -> bool:
        name = step["name"]
        if name == "rollback" and not started:
            original = r.original_template
            if original is None:
                return await self._done(r, step, "rollback: the template was never patched")
            await self.cluster.set_template(target, original)
            step["details"]["begun"] = True
            await self._save(r, "rollback: restored the original template; following it")
        elif not started:
            step["details"]["begun"] = True
            await self._save(r, "follow: waiting for every replica to run the new template")
        status = await self.cluster.rollout_status(target)
        if name == "follow":
            self._check_patched(r, target, status.generation)
        step["details"].update(
            generation=status.generation,
            observed_generation=status.observed_generation,
            replicas=status.replicas,
            updated=status.updated,
            available=status.available,
        )
        if status.complete:
            return await self._done(
                r,
                step,
                f"{name}: complete: {status.updated} of {status.replicas} replicas updated "
                f"and available",
            )
        if self._timed_out(r, step):
            raise _Fatal(
                f"{name}: not complete after {r.request['timeout_s']:g} s "
                f"({status.updated} updated, {status.available} available of {status.replicas})"
            )
        return False

    async def _stabilize(
        self, r: StoredRollout, step: dict[str, Any], target: TargetRef, started: bool
    ) -> bool:
        details = step["details"]
        now_us = self.clock.stamp_us()
        wait_s = float(r.request["stabilize_s"])
        if not started:
            details.update(stable_since_us=now_us, restarts=0, wait_s=wait_s, begun=True)
            await self._save(r, f"stabilize: waiting {wait_s:g} s with every replica ready")
        status = await self.cluster.rollout_status(target)
        self._check_patched(r, target, status.generation)
        if not status.complete:
            # A pod failed or restarted: stability is measured from when all are back.
            details["stable_since_us"] = now_us
            details["restarts"] = int(details.get("restarts", 0)) + 1
            await self._save(r)
            return False
        if (now_us - int(details["stable_since_us"])) / 1e6 >= wait_s:
            return await self._done(r, step, f"stabilize: stable for {wait_s:g} s")
        return False

    async def _give_surge_back(
        self, r: StoredRollout, target: TargetRef, replicas: int, details: dict[str, Any]
    ) -> int:
        """A paused scaler's release: no policy decides, so the surge's pods would run until
        someone resumed it. The count goes back to what it was before the surge, unless it is
        no longer the surge's (someone scaled the target by hand meanwhile: theirs stands)."""
        surge = next((s for s in r.steps if s["name"] == "surge"), None)
        if (
            surge is None
            or not surge["details"].get("begun")
            or replicas != int(surge["details"]["to"])
        ):
            details["handed_back"] = "scaler paused: the replicas stay as they are"
            return replicas
        before = int(surge["details"]["from"])
        if before < replicas:
            await self.cluster.scale(target, before)
        details["handed_back"] = (
            f"scaler paused: the surge given back, to the {before} replicas from before it"
        )
        return (await self.cluster.observe(target)).replicas

    async def _release(self, r: StoredRollout, step: dict[str, Any], target: TargetRef) -> bool:
        """Let the policy decide at once (one reconcile of the scaler), then end the hold.

        The reconcile comes first so the rollout is never seen finished without its outcome;
        repeated on a resume, it only decides again."""
        if r.error:  # a step failed, the rollback of a cancel included: not what was asked
            outcome = "failed"
        elif r.cancel_requested and r.status == "rolling_back":
            outcome = "cancelled"
        else:
            outcome = "succeeded"
        state = await self.cluster.observe(target)
        details = step["details"]
        details["replicas_before"] = state.replicas
        async with self.db.read() as conn:
            scaler = await scaler_store.get_scaler(conn, r.scaler)
        if scaler is None or scaler.paused:
            after = await self._give_surge_back(r, target, state.replicas, details)
        else:
            now = self.clock.now()
            await reconcile_scaler(
                self.db,
                self.cluster,
                scaler,
                now,
                round(now * 1e6),
                self.forecasts,
                self.wakeup,
                self.specs,
                self.prometheus,
                drift=False,  # the surge moved the count on purpose: the rollout's events say so
            )
            after = (await self.cluster.observe(target)).replicas
            async with self.db.read() as conn:
                decided = await scaler_store.get_scaler(conn, r.scaler)
            decision = decided.last_decision if decided is not None else None
            details.update(
                decided=None if decision is None else decision.get("replicas"),
                handed_back="the policy decided at once (reconciled on release)",
            )
        details["replicas_after"] = after
        step["status"] = "done"
        step["ended_us"] = self.clock.stamp_us()
        r.status = outcome
        await self._save(
            r,
            f"release: {outcome}; {target.name} handed back to the policy at {after} replicas "
            f"(was {state.replicas})",
            replicas=after,
        )
        return True

    def _check_patched(self, r: StoredRollout, target: TargetRef, generation: int) -> None:
        """The workload still carries the patch: its generation never goes below the one the
        patch made. Lower, it is another object (deleted and created again; on the built-in
        simulated cluster, a restart of the service), whose complete rollout is not this one's
        and must not be reported as succeeded."""
        patched = next((s for s in r.steps if s["name"] == "patch"), None)
        made = None if patched is None else patched["details"].get("generation")
        if made is not None and generation < int(made):
            raise _Fatal(
                f"{target.kind} {target.name!r} is at generation {generation}, below the "
                f"{made} the patch made: it was created again (on the built-in simulated "
                "cluster: the service restarted), so the patch is not on the target"
            )

    # ---- outcomes --------------------------------------------------------------------------

    def _timed_out(self, r: StoredRollout, step: dict[str, Any]) -> bool:
        started = step.get("started_us")
        if started is None:
            return False
        return (self.clock.stamp_us() - int(started)) / 1e6 > float(r.request["timeout_s"])

    def _next(self, r: StoredRollout) -> dict[str, Any] | None:
        at = max(i for i, s in enumerate(r.steps) if s["name"] == r.step)
        return next((s for s in r.steps[at + 1 :] if s["status"] == "pending"), None)

    async def _done(
        self, r: StoredRollout, step: dict[str, Any], message: str, replicas: int | None = None
    ) -> bool:
        step["status"] = "done"
        step["ended_us"] = self.clock.stamp_us()
        step["details"].pop("last_error", None)
        following = self._next(r)
        if following is not None:
            r.step = following["name"]
        await self._save(r, message, replicas=replicas)
        return True

    async def _unwind(self, r: StoredRollout, outcome: str, reason: str) -> None:
        """Stop where we are, restore the template when it was patched, then release."""
        now_us = self.clock.stamp_us()
        for s in r.steps:
            if s["status"] == "running":
                s.update(status=outcome, ended_us=now_us)
            elif s["status"] == "pending":
                s["status"] = "skipped"
        r.steps.append(_new_step("rollback"))
        r.steps.append(_new_step("release"))
        r.step = "rollback"
        r.status = "rolling_back"
        await self._save(r, f"{reason}: rolling back")

    async def _fail(self, r: StoredRollout, step: dict[str, Any], error: str) -> None:
        """A patched template is restored first; otherwise (or when the restore itself
        failed) the rollout releases the target as it stands. Either way it ends `failed`."""
        r.error = error
        if r.status != "rolling_back" and r.original_template is not None:
            await self._unwind(r, "failed", f"{step['name']} failed: {error}")
            return
        now_us = self.clock.stamp_us()
        step.update(status="failed", ended_us=now_us)
        release = next(
            (s for s in reversed(r.steps) if s["name"] == "release" and s["status"] == "pending"),
            None,
        )
        for s in r.steps:
            if s["status"] == "pending" and s is not release:
                s["status"] = "skipped"
        if release is None:
            r.steps.append(_new_step("release"))
        r.step = "release"
        await self._save(r, f"{step['name']} failed: {error}; releasing")

    async def _finish(self, r: StoredRollout, status: str, error: str | None) -> None:
        r.status = status
        r.error = error or r.error
        await self._save(r, f"{status}: {error}" if error else status)

    async def _dry_run(self, r: StoredRollout, target: TargetRef) -> None:
        """Record what each step would do; change nothing."""
        state = await self.cluster.observe(target)
        want = surge_target(state.replicas, float(r.request["surge_percent"]))
        would = {
            "surge": f"would scale {target.name} from {state.replicas} to {want} and wait for "
            f"{want} ready pods",
            "patch": f"would patch the pod template with {r.request['patch']}",
            "follow": "would follow the rollout until every replica is updated and available",
            "stabilize": f"would wait {r.request['stabilize_s']:g} s for stability",
            "release": "would hand back to the policy",
        }
        r.status = "running"
        for step in r.steps:
            now_us = self.clock.stamp_us()
            step.update(status="done", started_us=now_us, ended_us=now_us)
            step["details"] = {"dry_run": True, "would": would[step["name"]]}
            r.step = step["name"]
            await self._save(r, f"dry run: {would[step['name']]} (nothing changed)")
        r.status = "succeeded"
        # the end as an event too, as a live rollout's: the history (and the dashboard's
        # rollout annotations) show where the trial ended
        await self._save(r, "dry run: succeeded (nothing changed)")

    async def _save(
        self, r: StoredRollout, message: str | None = None, replicas: int | None = None
    ) -> None:
        now_us = self.clock.stamp_us()
        async with self.db.transaction() as conn:
            await store.save_rollout(conn, r, now_us=now_us)
            if message is not None:
                await scaler_store.add_event(
                    conn,
                    r.scaler,
                    ts_us=now_us,
                    kind="rollout",
                    replicas=replicas,
                    message=f"rollout {r.id}: {message}",
                    payload={
                        "rollout": r.id,
                        "step": r.step,
                        "status": r.status,
                        "dry_run": r.dry_run,
                    },
                )


def _new_step(name: str) -> dict[str, Any]:
    return {"name": name, "status": "pending", "started_us": None, "ended_us": None, "details": {}}


def rollout_loop(
    executor: RolloutExecutor, settings: Settings, kick: asyncio.Event
) -> Callable[[asyncio.Event], Awaitable[None]]:
    """Tick every active rollout each `rollout_poll_s`, or at once when `kick` is set."""

    async def loop(stop: asyncio.Event) -> None:
        while not stop.is_set():
            kick.clear()
            try:
                await executor.tick_all()
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                log.warning("rollouts not ticked: database unavailable (%s)", exc)
            await executor.clock.wait_for(stop, kick, timeout_s=settings.rollout_poll_s)

    return loop
