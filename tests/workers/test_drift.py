"""Drift: the target found at other replicas than Ciuic last left it at, on the built-in
simulated cluster. Someone ran `kubectl scale`, a second autoscaler fights over the target, or
a leader died between scaling and recording it: the history says so once, in plain words, and
the pass then does what it always does. A first pass, a dry run, a pause and a rollout's surge
are no drift."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from app.kube.cluster import ClusterUnavailable, DeploymentState
from app.kube.simulated import SimulatedCluster
from app.policy.spec import TargetRef
from app.services import rollouts as rollout_service
from app.services.forecasts import ForecastCache
from app.services.jobs import SimulationJobs
from app.services.principals import Principal
from app.services.shell import Shell
from app.settings import Settings
from app.store import rollouts as rollout_store
from app.store import scalers as store
from app.store.db import Database
from app.store.series import SeriesStore
from app.telemetry import Telemetry
from app.workers.reconciler import reconcile_once
from app.workers.rollouts import RolloutExecutor
from testkit.clock import FakeClock

BRIEF: dict[str, Any] = yaml.safe_load(
    (Path(__file__).parents[1] / "policy" / "brief.yaml").read_text()
)
NAME = "deepseek-service"
TARGET = TargetRef(name=NAME)
NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
PATCH = {"spec": {"containers": [{"name": "model", "image": "deepseek-service:2"}]}}


async def add_scaler(db: Database, **changes: Any) -> None:
    """The brief's scaler without a schedule or preheat, at most 4 replicas. No load is ever
    pushed: each decision holds the count it finds, moved only into the bounds."""
    doc = {**BRIEF, "schedule": [], "preheat": {"enabled": False}, "max_replicas": 4, **changes}
    async with db.transaction() as conn:
        await store.upsert_scaler(conn, NAME, doc, now_us=0)


async def events(db: Database, *kinds: str) -> list[store.StoredEvent]:
    """The scaler's events (of these kinds), oldest first."""
    async with db.read() as conn:
        found = await store.list_events(conn, NAME, kinds=list(kinds) or None)
    return found[::-1]


async def replicas(cluster: SimulatedCluster) -> int:
    return (await cluster.observe(TARGET)).replicas


async def test_a_kubectl_scale_behind_ciuics_back_is_one_drift_event_then_the_usual_action(
    db: Database,
) -> None:
    await add_scaler(db)
    clock = FakeClock(NOW)
    cluster = SimulatedCluster(clock, initial_replicas=2)
    await reconcile_once(db, cluster, clock)  # holds 2
    clock.t += 60
    await cluster.scale(TARGET, 7)  # kubectl scale deployment/deepseek-service --replicas=7
    clock.t += 30
    await reconcile_once(db, cluster, clock)
    assert await replicas(cluster) == 4  # max_replicas, as always
    drift, action = await events(db, "drift", "action")
    assert (drift.kind, drift.replicas, drift.ts_us) == ("drift", 7, action.ts_us)
    assert drift.message == (
        "Deployment deepseek-service had 7 replicas, not the 2 Ciuic last set at "
        "2027-01-15T08:00:00Z (1m30s ago): changed outside Ciuic (kubectl scale, another "
        "autoscaler such as an HPA) or by a decision of Ciuic's whose record was lost"
    )
    assert drift.payload == {"found": 7, "applied": 2, "applied_us": round(NOW * 1e6), "ready": 2}
    assert drift.id < action.id  # the history reads in order: found 7, then scaled
    assert action.message == "scaled deepseek-service from 7 to 4"
    # The counts agree again: the next passes add no drift.
    for _ in range(3):
        clock.t += 15
        await reconcile_once(db, cluster, clock)
    assert len(await events(db, "drift")) == 1


async def test_a_count_ciuic_keeps_after_a_drift_is_reported_once(db: Database) -> None:
    """The pass does not act (3 is within the bounds and nothing asks for less): the count it
    found becomes the one to compare with, so passes that change nothing add nothing."""
    await add_scaler(db)
    clock = FakeClock(NOW)
    cluster = SimulatedCluster(clock, initial_replicas=2)
    await reconcile_once(db, cluster, clock)
    await cluster.scale(TARGET, 3)
    for _ in range(4):
        clock.t += 15
        await reconcile_once(db, cluster, clock)
    [drift] = await events(db, "drift")
    assert "had 3 replicas, not the 2 Ciuic last set at 2027-01-15T08:00:00Z (15s ago)" in (
        drift.message
    )
    assert not await events(db, "action") and await replicas(cluster) == 3
    # Another change behind its back, later, is another drift, against the 3 it kept since.
    await cluster.scale(TARGET, 1)
    clock.t += 300
    await reconcile_once(db, cluster, clock)
    assert [(e.payload["found"], e.payload["applied"]) for e in await events(db, "drift")] == [
        (3, 2),
        (1, 3),
    ]


async def test_a_second_autoscaler_fighting_over_the_target_is_one_drift_counted_per_5_minutes(
    db: Database,
) -> None:
    """An HPA on the same Deployment sets 6 between every two passes: each pass finds a change
    outside Ciuic and scales back to its bound. A drift at every 5-s pass would bury the
    history; the first is recorded and the next ones within 5 minutes are counted on it (as
    Kubernetes counts a repeated Event), the latest count found beside it."""
    await add_scaler(db)
    clock = FakeClock(NOW)
    cluster = SimulatedCluster(clock, initial_replicas=4)
    await reconcile_once(db, cluster, clock)

    async def tug(found: int) -> None:
        await cluster.scale(TARGET, found)  # the HPA
        clock.t += 15
        await reconcile_once(db, cluster, clock)

    for found in (6, 6, 7):
        await tug(found)
    history = [(e.kind, e.replicas) for e in await events(db, "drift", "action")]
    assert history == [("drift", 6), ("action", 4), ("action", 4), ("action", 4)]
    [drift] = await events(db, "drift")
    assert drift.payload["found"] == 6 and drift.payload["repeats"] == 2
    assert (drift.payload["last_found"], drift.payload["last_applied"]) == (7, 4)
    assert drift.payload["last_us"] == round(clock.t * 1e6)
    clock.t += 300  # five minutes on, the fight goes on: a new event
    await tug(6)
    assert [e.payload.get("repeats", 0) for e in await events(db, "drift")] == [2, 0]


async def test_the_first_pass_has_nothing_to_compare_with(db: Database) -> None:
    """A new scaler finds its target at 7 (more than its max of 4): that is where Ciuic starts,
    not a drift; it scales as usual, and only a later change outside it is a drift."""
    await add_scaler(db)
    clock = FakeClock(NOW)
    cluster = SimulatedCluster(clock, initial_replicas=7)
    await reconcile_once(db, cluster, clock)
    assert [e.kind for e in await events(db)] == ["action"]
    await cluster.scale(TARGET, 2)
    clock.t += 15
    await reconcile_once(db, cluster, clock)
    [drift] = await events(db, "drift")
    assert "had 2 replicas, not the 4 Ciuic last set" in drift.message


async def test_a_dry_run_reports_no_drift_and_apply_starts_from_what_it_finds(
    db: Database,
) -> None:
    """A dry run sets nothing, so there is no count of Ciuic's to drift from (a dry run beside
    an HPA would otherwise report every move of the HPA). Switched to apply, the first pass
    takes the count it finds; drift counts from there."""
    await add_scaler(db, mode="dry_run")
    clock = FakeClock(NOW)
    cluster = SimulatedCluster(clock, initial_replicas=7)
    for count in (7, 3, 6, 6):
        await cluster.scale(TARGET, count)
        await reconcile_once(db, cluster, clock)
        clock.t += 15
    assert not await events(db, "drift")
    assert len(await events(db, "dry_run")) == 3  # would scale 7 -> 4 and 6 -> 4 (twice)
    await add_scaler(db, mode="apply")  # the operator switches it on; the target is at 6
    await reconcile_once(db, cluster, clock)
    assert not await events(db, "drift")
    assert await replicas(cluster) == 4
    await cluster.scale(TARGET, 3)
    clock.t += 15
    await reconcile_once(db, cluster, clock)
    [drift] = await events(db, "drift")
    assert "had 3 replicas, not the 4 Ciuic last set" in drift.message


async def test_what_the_operator_set_during_a_pause_is_no_drift(db: Database) -> None:
    await add_scaler(db)
    clock = FakeClock(NOW)
    cluster = SimulatedCluster(clock, initial_replicas=2)
    await reconcile_once(db, cluster, clock)
    async with db.transaction() as conn:
        await store.set_paused(conn, NAME, True, clock.stamp_us())
    await cluster.scale(TARGET, 3)  # the target is the operator's while paused
    clock.t += 15
    await reconcile_once(db, cluster, clock)  # skipped: paused
    async with db.transaction() as conn:
        await store.set_paused(conn, NAME, False, clock.stamp_us())
    clock.t += 15
    await reconcile_once(db, cluster, clock)
    assert not await events(db, "drift") and await replicas(cluster) == 3
    await cluster.scale(TARGET, 1)  # resumed: Ciuic's again
    clock.t += 15
    await reconcile_once(db, cluster, clock)
    [drift] = await events(db, "drift")
    assert "had 1 replicas, not the 3 Ciuic last set" in drift.message


async def test_a_spec_pointed_at_another_deployment_starts_from_its_count(
    db: Database,
) -> None:
    """The count Ciuic left the old target at says nothing about the new one's."""
    await add_scaler(db)
    clock = FakeClock(NOW)
    cluster = SimulatedCluster(clock, initial_replicas=2)
    await reconcile_once(db, cluster, clock)  # deepseek-service at 2
    other = TargetRef(name="deepseek-v2")
    await cluster.scale(other, 3)
    await add_scaler(db, target="deepseek-v2")
    clock.t += 15
    await reconcile_once(db, cluster, clock)
    assert not await events(db, "drift")
    await cluster.scale(other, 1)
    clock.t += 15
    await reconcile_once(db, cluster, clock)
    [drift] = await events(db, "drift")
    assert drift.message.startswith("Deployment deepseek-v2 had 1 replicas, not the 3 Ciuic")


async def run_rollout(
    db: Database, cluster: SimulatedCluster, clock: FakeClock, rollout_id: int
) -> None:
    """Tick the executor to the end, a reconcile pass (held off) at every tick, 30 s apart
    (each new pod is Ready 30-60 s after it is created)."""
    executor = RolloutExecutor(db, cluster, clock)
    for _ in range(40):
        await executor.tick_all()
        await reconcile_once(db, cluster, clock)
        async with db.read() as conn:
            rollout = await rollout_store.get_rollout(conn, rollout_id)
        assert rollout is not None
        if not rollout.active:
            assert rollout.status == "succeeded", rollout
            return
        clock.t += 30
    raise AssertionError(f"rollout {rollout_id} never finished")


async def test_a_rollouts_surge_is_no_drift(db: Database) -> None:
    """The surge scales 2 -> 3 on purpose and the hand-back finds 3: not a drift. After the
    hand-back, a change outside Ciuic is one again."""
    await add_scaler(db)
    clock = FakeClock(NOW)
    cluster = SimulatedCluster(clock, initial_replicas=2)
    await reconcile_once(db, cluster, clock)
    request = {"patch": PATCH, "surge_percent": 50, "stabilize_s": 30, "timeout_s": 600}
    async with db.transaction() as conn:
        created = await rollout_store.create_rollout(
            conn, NAME, request, dry_run=False, now_us=clock.stamp_us()
        )
    await run_rollout(db, cluster, clock, created.id)
    assert any("to 3" in e.message for e in await events(db, "rollout"))
    assert await replicas(cluster) == 3  # without load, the hand-back keeps what it finds
    clock.t += 15
    await reconcile_once(db, cluster, clock)
    assert not await events(db, "drift")
    await cluster.scale(TARGET, 2)
    clock.t += 15
    await reconcile_once(db, cluster, clock)
    [drift] = await events(db, "drift")
    assert "had 2 replicas, not the 3 Ciuic last set" in drift.message


class HandBackBlind(SimulatedCluster):
    """Refuses the `blind_at`-th read of the target from the moment it is set (an API server
    that blinks while the rollout hands back)."""

    blind_at: int | None = None

    async def observe(self, target: TargetRef) -> DeploymentState:
        if self.blind_at is not None:
            self.blind_at -= 1
            if self.blind_at == 0:
                raise ClusterUnavailable("get deployments.apps: HTTP 503")
        return await super().observe(target)


async def test_a_rollout_whose_hand_back_could_not_decide_is_no_drift_either(
    db: Database,
) -> None:
    """Started as the API starts it, a rollout forgets the count Ciuic applied: when the
    hand-back cannot read the target (it records the error), the next pass finds the surge's
    3 and starts from it instead of calling it a drift from the 2 before the rollout."""
    await add_scaler(db)
    clock = FakeClock(NOW)
    cluster = HandBackBlind(clock, initial_replicas=2)
    await reconcile_once(db, cluster, clock)
    shell = Shell(
        settings=Settings(database_url=db.url, run_workers=False),
        db=db,
        series=SeriesStore(max_series_per_job=3, lateness_us=10**12),
        clock=clock,
        telemetry=Telemetry(),
        cluster=cluster,
        forecasts=ForecastCache(),
        simulations=SimulationJobs(db, clock=clock),
    )
    request = {"template_patch": PATCH, "surge_percent": 50, "stabilize_s": 30, "timeout_s": 600}
    try:
        created = await rollout_service.start(
            shell, NAME, request, image=None, container=None, actor=Principal("admin", "admin")
        )
    finally:
        await shell.simulations.close()
    executor = RolloutExecutor(db, cluster, clock)
    for _ in range(40):
        async with db.read() as conn:
            rollout = await rollout_store.get_rollout(conn, created.id)
        assert rollout is not None
        if not rollout.active:
            break
        stabilizing = rollout.step == "stabilize" and rollout.current()["details"].get("begun")
        if stabilizing or rollout.step == "release":
            # This tick releases: its own read passes, the hand-back's decision cannot read.
            cluster.blind_at = 2
        await executor.tick_all()
        clock.t += 30
    async with db.read() as conn:
        scaler = await store.get_scaler(conn, NAME)
    assert scaler is not None and scaler.last_error == (
        "cannot read deepseek-service: get deployments.apps: HTTP 503"
    )
    assert await replicas(cluster) == 3
    await reconcile_once(db, cluster, clock)
    assert not await events(db, "drift")
    await cluster.scale(TARGET, 1)  # from here, a change outside Ciuic is a drift again
    clock.t += 15
    await reconcile_once(db, cluster, clock)
    [drift] = await events(db, "drift")
    assert "had 1 replicas, not the 3 Ciuic last set" in drift.message
