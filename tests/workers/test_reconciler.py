"""The reconcile loop against the store and a cluster: act, dry-run, and errors on status."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.kube.cluster import ClusterForbidden, DeploymentState, RecordingCluster, TargetNotFound
from app.policy.spec import TargetRef
from app.prometheus import PrometheusClient
from app.store import scalers as store
from app.store.db import Database
from app.store.series import SampleRow, SeriesKey, SeriesStore
from app.workers.reconciler import reconcile_once
from testkit.clock import FakeClock

BRIEF: dict[str, Any] = yaml.safe_load(
    (Path(__file__).parents[1] / "policy" / "brief.yaml").read_text()
)
NOW = 1_800_000_000.0


class MissingCluster(RecordingCluster):
    name = "missing"

    async def observe(self, target: TargetRef) -> DeploymentState:
        raise TargetNotFound(f"deployments.apps {target.name!r} not found")


async def add_scaler(db: Database, **changes: Any) -> None:
    doc = {**BRIEF, "schedule": [], "preheat": {"enabled": False}, **changes}
    async with db.transaction() as conn:
        await store.upsert_scaler(conn, "deepseek-service", doc, now_us=0)


async def push(db: Database, at: float, util: float, queue: float, pod: str = "p0") -> None:
    series = SeriesStore(max_series_per_job=100, lateness_us=10**12)
    rows = [
        SampleRow(SeriesKey.of("gpu_utilization", {"job": "m", "pod": pod}), round(at * 1e6), util),
        SampleRow(SeriesKey.of("request_queue", {"job": "m", "pod": pod}), round(at * 1e6), queue),
    ]
    async with db.transaction() as conn:
        await series.write(conn, rows, now_us=round(at * 1e6))


async def events(db: Database) -> list[store.StoredEvent]:
    async with db.read() as conn:
        return await store.list_events(conn, "deepseek-service")


async def test_overload_scales_up_and_records_why(db: Database) -> None:
    await add_scaler(db)
    await push(db, NOW - 2, util=170.0, queue=10.0)
    cluster = RecordingCluster(initial_replicas=1)
    assert await reconcile_once(db, cluster, FakeClock(NOW)) == 1
    target = TargetRef(name="deepseek-service")
    assert (await cluster.observe(target)).replicas == 2
    [event] = await events(db)
    assert event.kind == "action" and event.replicas == 2
    assert event.message == "scaled deepseek-service from 1 to 2"
    assert len(event.payload["reasons"]) == 9
    async with db.read() as conn:
        scaler = await store.get_scaler(conn, "deepseek-service")
    assert scaler is not None and scaler.last_decision is not None
    assert scaler.last_decision["replicas"] == 2
    assert scaler.state.recommendations  # the policy's history is carried for the next tick
    # The next ticks keep 2 replicas: no more actions; a decision whose reasons differ from
    # the last one is recorded once, and an identical tick adds nothing.
    await reconcile_once(db, cluster, FakeClock(NOW + 5))
    after = await events(db)
    assert [e.kind for e in after if e.kind == "action"] == ["action"]
    assert all(e.replicas == 2 for e in after)
    await reconcile_once(db, cluster, FakeClock(NOW + 10))
    assert len(await events(db)) == len(after)


async def test_dry_run_changes_nothing_and_says_what_it_would_do(db: Database) -> None:
    await add_scaler(db, mode="dry_run")
    await push(db, NOW - 2, util=170.0, queue=10.0)
    cluster = RecordingCluster(initial_replicas=1)
    await reconcile_once(db, cluster, FakeClock(NOW))
    assert cluster.replicas == {}
    [event] = await events(db)
    assert event.kind == "dry_run" and event.replicas == 2
    assert "would scale deepseek-service from 1 to 2" in event.message


async def test_a_missing_target_is_an_error_on_status_once(db: Database) -> None:
    await add_scaler(db)
    for tick in range(3):
        await reconcile_once(db, MissingCluster(), FakeClock(NOW + 5 * tick))
    [event] = await events(db)
    assert event.kind == "error" and "not found" in event.message
    async with db.read() as conn:
        scaler = await store.get_scaler(conn, "deepseek-service")
    assert scaler is not None and scaler.last_error is not None
    assert "not found" in scaler.last_error


async def test_silence_never_scales_to_the_minimum(db: Database) -> None:
    await add_scaler(db, min_replicas=1)
    cluster = RecordingCluster(initial_replicas=5)
    await reconcile_once(db, cluster, FakeClock(NOW))  # no metrics at all
    assert (await cluster.observe(TargetRef(name="deepseek-service"))).replicas == 5
    [event] = await events(db)  # the first decision is recorded: it holds, and says why
    assert event.kind == "decision" and event.replicas == 5
    assert any("fallback" in r["code"] or "missing" in r["code"] for r in event.payload["reasons"])


@pytest.mark.parametrize(
    ("changes", "initial", "expected"),
    [
        # 08:00: the floor since 07:00 is 6, and nothing has pushed yet (a restart, a new pod)
        pytest.param({"schedule": [{"time": "0 7 * * *", "min_replicas": 6}]}, 1, 6, id="floor"),
        # a rollout's surge left more than the spec allows
        pytest.param({"max_replicas": 10}, 15, 10, id="max"),
    ],
)
async def test_silence_still_moves_the_count_into_the_bounds(
    db: Database, changes: dict[str, Any], initial: int, expected: int
) -> None:
    """A cron floor and max_replicas hold with or without metrics: a decision with nothing
    fresh to read is applied when the bounds move the count, and only then."""
    await add_scaler(db, **changes)
    cluster = RecordingCluster(initial_replicas=initial)
    for tick in range(3):
        await reconcile_once(db, cluster, FakeClock(NOW + 5 * tick))
    assert (await cluster.observe(TargetRef(name="deepseek-service"))).replicas == expected
    actions = [e for e in await events(db) if e.kind == "action"]
    assert [(a.replicas, a.message) for a in actions] == [
        (expected, f"scaled deepseek-service from {initial} to {expected}")
    ]


async def test_a_stale_metric_does_not_grow_the_warm_pool_at_every_tick(db: Database) -> None:
    """GPU utilisation stopped arriving; the queue is pushed, low. Eager preheat's spare pod
    is not added again on top of the held count at each reconcile (it climbed to the max)."""
    await add_scaler(db, preheat={"enabled": True, "strategy": "eager", "min_ready": 1})
    await push(db, NOW - 600, util=40.0, queue=1.0)  # GPU utilisation's last push: stale now
    cluster = RecordingCluster(initial_replicas=4)
    series = SeriesStore(max_series_per_job=100, lateness_us=10**12)
    for tick in range(6):
        at = NOW + 5 * tick
        row = SampleRow(
            SeriesKey.of("request_queue", {"job": "m", "pod": "p0"}), round(at * 1e6), 1.0
        )
        async with db.transaction() as conn:
            await series.write(conn, [row], now_us=round(at * 1e6))
        await reconcile_once(db, cluster, FakeClock(at + 1))
    assert (await cluster.observe(TargetRef(name="deepseek-service"))).replicas == 4
    assert not [e for e in await events(db) if e.kind == "action"]


async def test_a_paused_scaler_is_left_alone(db: Database) -> None:
    await add_scaler(db)
    async with db.transaction() as conn:
        await store.set_paused(conn, "deepseek-service", True, 0)
    await push(db, NOW - 2, util=170.0, queue=10.0)
    cluster = RecordingCluster(initial_replicas=1)
    assert await reconcile_once(db, cluster, FakeClock(NOW)) == 0
    assert cluster.replicas == {}


class NoResizeCluster(RecordingCluster):
    async def resize_partial(self, target: TargetRef, fraction: float | None) -> str | None:
        return None if fraction is None else "in-place pod resize is not available"


@pytest.mark.parametrize(
    ("cluster_type", "message"),
    [
        pytest.param(
            RecordingCluster,
            "partial pod resized in place to 70% of its CPU and memory",
            id="resized",
        ),
        pytest.param(
            NoResizeCluster,
            "plan rounded up to 4 whole pods instead of one at 70%: "
            "in-place pod resize is not available",
            id="rounded-up",
        ),
    ],
)
async def test_a_fractional_plan_reaches_the_partial_pod(
    db: Database, cluster_type: type[RecordingCluster], message: str
) -> None:
    await add_scaler(db, fractional={"enabled": True, "step": 0.1, "min_fraction": 0.3})
    for pod in ("p0", "p1"):  # 2 pods, each at 1.85 x its targets: 3.7 pods needed
        await push(db, NOW - 2, util=85 * 1.85, queue=5 * 1.85, pod=pod)
    cluster = cluster_type(initial_replicas=2)
    await reconcile_once(db, cluster, FakeClock(NOW))
    assert (await cluster.observe(TargetRef(name="deepseek-service"))).replicas == 4
    kinds = {e.message: e for e in await events(db)}
    assert message in kinds
    assert kinds[message].payload == {"partial": 0.7, "full": 3}
    expected = {("Deployment", "default", "deepseek-service"): 0.7}
    assert cluster.partial == (expected if cluster_type is RecordingCluster else {})


class NoRestoreCluster(RecordingCluster):
    """Resizes a pod down, but is refused putting it back to whole (RBAC, a 5xx)."""

    async def resize_partial(self, target: TargetRef, fraction: float | None) -> str | None:
        if fraction is None and self.partial:
            raise ClusterForbidden("may not patch pods/resize: grant verb 'patch' on 'pods/resize'")
        return await super().resize_partial(target, fraction)


@pytest.mark.parametrize(
    ("cluster_type", "fractional", "kind", "message", "partial"),
    [
        # The load grows to 4 whole pods: the partial pod gets its whole share back.
        pytest.param(
            RecordingCluster,
            {"enabled": True, "step": 0.1, "min_fraction": 0.3},
            "action",
            "partial pod restored to its full CPU and memory: 4 whole pods",
            {},
            id="restored",
        ),
        # The operator turns fractional pods off: the pod left at 70 % is restored too.
        pytest.param(
            RecordingCluster,
            {"enabled": False},
            "action",
            "partial pod restored to its full CPU and memory: 4 whole pods",
            {},
            id="fractional-turned-off",
        ),
        # The cluster refuses the restore: the pod stays at 70 %, and the events say so.
        pytest.param(
            NoRestoreCluster,
            {"enabled": True, "step": 0.1, "min_fraction": 0.3},
            "error",
            "cannot restore the partial pod to its full CPU and memory (it stays at 70%): "
            "may not patch pods/resize: grant verb 'patch' on 'pods/resize'",
            {("Deployment", "default", "deepseek-service"): 0.7},
            id="restore-refused",
        ),
    ],
)
async def test_a_partial_pod_back_to_whole_is_restored_and_said(
    db: Database,
    cluster_type: type[RecordingCluster],
    fractional: dict[str, Any],
    kind: str,
    message: str,
    partial: dict[tuple[str, str, str], float],
) -> None:
    window = {"window": "1s"}  # each decision on its own reading
    await add_scaler(
        db, reactive=window, fractional={"enabled": True, "step": 0.1, "min_fraction": 0.3}
    )
    for pod in ("p0", "p1"):  # 3.7 pods: 3 whole and one at 70 %
        await push(db, NOW - 2, util=85 * 1.85, queue=5 * 1.85, pod=pod)
    cluster = cluster_type(initial_replicas=2)
    await reconcile_once(db, cluster, FakeClock(NOW))
    assert cluster.partial == {("Deployment", "default", "deepseek-service"): 0.7}
    await add_scaler(db, reactive=window, fractional=fractional)
    for pod in ("p0", "p1", "p2", "p3"):  # 4 pods at their targets: 4 whole pods
        await push(db, NOW + 8, util=85.0, queue=5.0, pod=pod)
    await reconcile_once(db, cluster, FakeClock(NOW + 10))
    assert (await cluster.observe(TargetRef(name="deepseek-service"))).replicas == 4
    found = [e for e in await events(db) if e.message == message]
    assert [e.kind for e in found] == [kind], [(e.kind, e.message) for e in await events(db)]
    assert found[0].payload == {"partial": None, "full": 4}
    assert cluster.partial == partial


WINDOW = {"window": "1s"}  # each decision on its own reading
FRACTIONAL = {"enabled": True, "step": 0.1, "min_fraction": 0.3}


async def _dry_run_at_3_7_pods(db: Database) -> RecordingCluster:
    """A dry-run scaler with fractional pods has decided once on 3.7 pods' worth of load (3
    whole and one at 70 %), on a cluster of 2."""
    await add_scaler(db, mode="dry_run", reactive=WINDOW, fractional=FRACTIONAL)
    for pod in ("p0", "p1"):
        await push(db, NOW - 2, util=85 * 1.85, queue=5 * 1.85, pod=pod)
    cluster = RecordingCluster(initial_replicas=2)
    await reconcile_once(db, cluster, FakeClock(NOW))
    return cluster


async def test_dry_run_says_it_would_resize_and_restore_the_partial_pod(db: Database) -> None:
    """In dry run the partial pod is neither resized nor restored, and the events say what a
    live scaler would do, in the words of its dry-run scale ("would ..., dry run: nothing
    changed"), with the same payload as the live event."""
    cluster = await _dry_run_at_3_7_pods(db)
    dry = [(e.message, e.payload.get("partial", "-")) for e in await events(db)]
    assert (
        "would resize the partial pod in place to 70% of its CPU and memory "
        "(dry run: nothing changed)",
        0.7,
    ) in dry, dry
    # The operator turns fractional pods off: a live scaler would restore the pod.
    await add_scaler(db, mode="dry_run", reactive=WINDOW, fractional={"enabled": False})
    for pod in ("p0", "p1"):
        await push(db, NOW + 8, util=85 * 1.85, queue=5 * 1.85, pod=pod)
    await reconcile_once(db, cluster, FakeClock(NOW + 10))
    restore = [e for e in await events(db) if "restore" in e.message]
    assert [(e.kind, e.message, e.payload) for e in restore] == [
        (
            "dry_run",
            "would restore the partial pod to its full CPU and memory: 4 whole pods "
            "(dry run: nothing changed)",
            {"partial": None, "full": 4},
        )
    ]
    resize = [e for e in await events(db) if "resize" in e.message]
    assert [e.kind for e in resize] == ["dry_run"]
    assert cluster.partial == {} and cluster.replicas == {}


async def test_the_first_real_resize_after_a_dry_run_is_said(db: Database) -> None:
    """The dry run's decision held the same 70 % share, so the first live pass saw no change
    of plan and resized the pod without a word."""
    cluster = await _dry_run_at_3_7_pods(db)
    await add_scaler(db, mode="apply", reactive=WINDOW, fractional=FRACTIONAL)
    for pod in ("p0", "p1"):
        await push(db, NOW + 8, util=85 * 1.85, queue=5 * 1.85, pod=pod)
    await reconcile_once(db, cluster, FakeClock(NOW + 10))
    assert cluster.partial == {("Deployment", "default", "deepseek-service"): 0.7}
    resized = [e for e in await events(db) if e.message.startswith("partial pod resized")]
    assert [(e.kind, e.payload) for e in resized] == [("action", {"partial": 0.7, "full": 3})]


@pytest.mark.parametrize(
    ("aggregation", "replicas", "code"),
    [
        # 4 pods x 15 waiting = 60 in all > 50 for 30 s: burst, 4 x 3 at once
        pytest.param("sum", 12, "emergency.start", id="total-over-50-bursts"),
        # the brief's trigger as written reads the per-pod average, 15: never over 50
        pytest.param(None, 4, "emergency.idle", id="per-pod-average-under-50"),
    ],
)
async def test_a_trigger_on_the_total_queue_bursts_from_per_pod_pushes(
    db: Database, aggregation: str | None, replicas: int, code: str
) -> None:
    trigger: dict[str, Any] = {"metric": "request_queue", "threshold": 50, "duration": "30s"}
    if aggregation is not None:
        trigger["aggregation"] = aggregation
    await add_scaler(
        db,
        # the GPU on target decides the count; the queue (weight 0) only triggers
        metrics=[
            {"name": "gpu_utilization", "weight": 1.0, "target": "85%"},
            {"name": "request_queue", "weight": 0.0, "target": "<5"},
        ],
        max_replicas=20,
        emergency={"enabled": True, "burst_multiplier": 3.0, "triggers": [trigger]},
    )
    cluster = RecordingCluster(initial_replicas=4)
    for t in (0, 30):
        for pod in ("p0", "p1", "p2", "p3"):
            await push(db, NOW + t - 2, util=85.0, queue=15.0, pod=pod)
        await reconcile_once(db, cluster, FakeClock(NOW + t))
    assert (await cluster.observe(TargetRef(name="deepseek-service"))).replicas == replicas
    async with db.read() as conn:
        scaler = await store.get_scaler(conn, "deepseek-service")
    assert scaler is not None and scaler.last_decision is not None
    [emergency] = [r for r in scaler.last_decision["reasons"] if r["code"].startswith("emerg")]
    assert emergency["code"] == code
    # the reason names the reading it compared, aggregated the trigger's way
    if aggregation == "sum":
        assert emergency["values"]["request_queue.sum"] == 60.0
        assert "request_queue (sum) 60 > 50" in emergency["message"]
    else:
        assert emergency["values"]["request_queue.avg"] == 15.0


FREE = {"stabilizationWindowSeconds": 0, "policies": [{"type": "Pods", "value": 100,
        "periodSeconds": 1}]}  # fmt: skip
QUEUE_ONLY: dict[str, Any] = {
    "scaler": "reactive",
    "metrics": [{"name": "request_queue", "target": "<5", "aggregation": "sum"}],
    "behavior": {"scaleUp": FREE, "scaleDown": FREE},
    "reactive": {"window": "1s"},
    "emergency": {"enabled": False},
    "min_replicas": 1,
}


class MarkingCluster(RecordingCluster):
    """Records the replicas each deletion-cost call saw (it must come before the scale)."""

    def __init__(self, *args: Any, refuse: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, pod_names=True, **kwargs)
        self.refuse = refuse
        self.marked_at: list[int] = []

    async def prefer_deletion(self, target: TargetRef, busy: Mapping[str, float]) -> int:
        self.marked_at.append((await self.observe(target)).replicas)
        if self.refuse:
            raise ClusterForbidden("the service account may not patch pods")
        return await super().prefer_deletion(target, busy)


async def test_a_scale_down_first_marks_the_idle_pods_to_go(db: Database) -> None:
    """Two of four pods busy, two idle: the total asks for 2, and before the scale the idle
    pods get the lowest deletion cost (the ReplicaSet controller deletes those first)."""
    await add_scaler(db, **QUEUE_ONLY)
    cluster = MarkingCluster(initial_replicas=4)
    for t in (0, 5):  # the first tick holds: no scale-down on under a window of data
        for pod, queue in (("0", 5.0), ("1", 0.0), ("2", 5.0), ("3", 0.0)):
            await push(db, NOW + t - 2, util=0.0, queue=queue, pod=f"deepseek-service-{pod}")
        await reconcile_once(db, cluster, FakeClock(NOW + t))
    target = TargetRef(name="deepseek-service")
    assert (await cluster.observe(target)).replicas == 2
    assert cluster.marked_at == [4]
    assert cluster.deletion_costs[("Deployment", "default", "deepseek-service")] == {
        "deepseek-service-0": 5000,
        "deepseek-service-1": 0,
        "deepseek-service-2": 5000,
        "deepseek-service-3": 0,
    }


async def test_pods_are_marked_only_for_an_applied_scale_down(db: Database) -> None:
    """A scale-up, a steady tick and a dry run change no pod's annotation."""
    await add_scaler(db, **QUEUE_ONLY)
    cluster = MarkingCluster(initial_replicas=2)
    await push(db, NOW - 2, util=0.0, queue=20.0, pod="deepseek-service-0")  # asks for 4
    await reconcile_once(db, cluster, FakeClock(NOW))
    await reconcile_once(db, cluster, FakeClock(NOW + 5))
    assert (await cluster.observe(TargetRef(name="deepseek-service"))).replicas == 4
    async with db.transaction() as conn:
        await store.upsert_scaler(conn, "deepseek-service", {**BRIEF, "schedule": [],
                                  "preheat": {"enabled": False}, **QUEUE_ONLY,
                                  "mode": "dry_run"}, now_us=0)  # fmt: skip
    await push(db, NOW + 8, util=0.0, queue=5.0, pod="deepseek-service-0")  # asks for 1
    await reconcile_once(db, cluster, FakeClock(NOW + 10))
    assert (await cluster.observe(TargetRef(name="deepseek-service"))).replicas == 4
    assert cluster.marked_at == []


async def test_a_refused_mark_still_scales_down_and_says_why(db: Database) -> None:
    """Without `patch` on pods the controller picks the pods itself: the scale-down goes
    ahead and an event names the grant."""
    await add_scaler(db, **QUEUE_ONLY)
    cluster = MarkingCluster(initial_replicas=4, refuse=True)
    for t in (0, 5):
        await push(db, NOW + t - 2, util=0.0, queue=10.0, pod="deepseek-service-0")
        await reconcile_once(db, cluster, FakeClock(NOW + t))
    assert (await cluster.observe(TargetRef(name="deepseek-service"))).replicas == 2
    messages = [(e.kind, e.message) for e in await events(db)]
    assert ("action", "scaled deepseek-service from 4 to 2") in messages
    assert (
        "error",
        "cannot mark the idle pods to go first: the service account may not patch pods",
    ) in messages


class SlowPrometheus:
    """A Prometheus that answers every instant query after `delay_s` with a queue of 20,
    counting the queries in flight at once."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.in_flight = self.most_in_flight = self.answered = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.in_flight -= 1
        self.answered += 1
        result = [{"metric": {}, "value": [NOW, "20"]}]
        return httpx.Response(
            200, json={"status": "success", "data": {"resultType": "vector", "result": result}}
        )


async def test_a_pass_reads_many_scalers_prometheus_queries_a_few_at_a_time(
    db: Database,
) -> None:
    # Twelve scalers on one slow Prometheus: their queries go out together, four at a time
    # (one after another, a 5 s timeout each would make a dead server cost a pass a minute).
    for i in range(12):
        doc = {
            "target": f"llm-{i}",
            "metrics": [
                {
                    "name": "request_queue",
                    "target": "<5",
                    "aggregation": "sum",
                    "source": {"prometheus": f'sum(vllm:num_requests_waiting{{app="llm-{i}"}})'},
                }
            ],
        }
        async with db.transaction() as conn:
            await store.upsert_scaler(conn, f"llm-{i}", doc, now_us=0)
    server = SlowPrometheus(delay_s=0.05)
    client = PrometheusClient("http://prometheus:9090", transport=httpx.MockTransport(server))
    cluster = RecordingCluster(initial_replicas=1)
    done = await reconcile_once(
        db, cluster, FakeClock(NOW), prometheus=client, prometheus_concurrency=4
    )
    assert done == 12 and server.answered == 12
    assert server.most_in_flight == 4
    for i in range(12):  # each decided on its own reading: 20 waiting at 5 per pod
        assert (await cluster.observe(TargetRef(name=f"llm-{i}"))).replicas == 4
