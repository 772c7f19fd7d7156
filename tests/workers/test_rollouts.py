"""Rolling updates with a surge plan, through the API, executed by the leader's workers on the
built-in simulated cluster (short cold starts): the steps and their times, one active rollout
per scaler, cancel and rollback, the reconciler holding off, a restart mid-rollout, dry run
and bad requests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.clock import SystemClock
from app.kube.cluster import (
    ClusterForbidden,
    ClusterUnavailable,
    DeploymentState,
    RecordingCluster,
)
from app.kube.simulated import SimulatedCluster
from app.main import create_app
from app.policy.spec import TargetRef
from app.settings import Settings
from app.store import rollouts as rollout_store
from app.store import scalers as scaler_store
from app.store.db import Database
from app.workers.rollouts import RolloutExecutor
from tests.conftest import LiveServer, decided_once, start_server, truncate_all

BRIEF: dict[str, Any] = yaml.safe_load(
    (Path(__file__).parents[1] / "policy" / "brief.yaml").read_text()
)
TARGET = TargetRef(name="deepseek-service")
TERMINAL = ("succeeded", "failed", "cancelled")


class CountingCluster(SimulatedCluster):
    """The simulated cluster, counting template patches (a resume must not repeat one)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(SystemClock(), **kwargs)
        self.patches = 0

    async def patch_template(self, target: TargetRef, patch: dict[str, Any]) -> None:
        self.patches += 1
        await super().patch_template(target, patch)


def settings_for(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        rollout_poll_s=0.05,
        reconcile_interval_s=30,  # the reconciler only acts when a test asks it to
        leader_interval_s=0.1,
    )


def serve(database_url: str, cluster: SimulatedCluster) -> LiveServer:
    settings = settings_for(database_url)
    return start_server(settings, create_app(settings, cluster=cluster))


@pytest.fixture
def cluster() -> CountingCluster:
    return CountingCluster(initial_replicas=2, cold_start_s=(0.2, 0.3))


@pytest.fixture
def live(database_url: str, cluster: CountingCluster) -> Iterator[LiveServer]:
    asyncio.run(truncate_all(database_url))
    server = serve(database_url, cluster)
    yield server
    server.stop()


def add_scaler(url: str, **changes: Any) -> None:
    # Each decision reads its own samples: the stable window (and the hold it gives scale-down)
    # has its own tests; here a hand-back must decide on what the load says now.
    doc = {
        **BRIEF,
        "schedule": [],
        "preheat": {"enabled": False},
        "reactive": {"window": "1s"},
        **changes,
    }
    r = httpx.post(f"{url}/v1/scalers", json=doc)
    assert r.status_code == 201, r.text


def wait_for(url: str, rollout: int, check: Any, timeout_s: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        body: dict[str, Any] = httpx.get(f"{url}/v1/rollouts/{rollout}").json()
        if check(body):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"rollout {rollout} never got there: {body}")
        time.sleep(0.03)


def finished(body: dict[str, Any]) -> bool:
    return body["status"] in TERMINAL


def start(url: str, **body: Any) -> dict[str, Any]:
    r = httpx.post(f"{url}/v1/scalers/deepseek-service/rollouts", json=body)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/v1/rollouts/{r.json()['id']}"
    out: dict[str, Any] = r.json()
    return out


def push(url: str, **values: float) -> None:
    samples = [
        {"metric": metric, "labels": {"pod": f"p{i}"}, "value": value}
        for metric, value in values.items()
        for i in range(2)
    ]
    assert httpx.post(f"{url}/v1/samples", json={"samples": samples}).status_code == 200


def events(url: str, kind: str) -> list[dict[str, Any]]:
    page = httpx.get(
        f"{url}/v1/scalers/deepseek-service/events", params={"kind": kind, "limit": 500}
    ).json()
    return list(reversed(page["events"]))


def image(cluster: SimulatedCluster) -> str:
    template = asyncio.run(cluster.template(TARGET))
    return str(template["spec"]["containers"][0]["image"])


def test_surge_patch_follow_stabilize_release(live: LiveServer, cluster: CountingCluster) -> None:
    url = live.url
    add_scaler(url)
    # Load for about 2 replicas: after the rollout the policy takes the surge back (a scaler
    # that has decided for a window before: a new one gives nothing back before it has).
    push(url, gpu_utilization=40.0, request_queue=1.0)
    decided_once(live, "deepseek-service", after_s=1.1)
    created = start(url, image="deepseek:7b-v2", surge_percent=50, stabilize_s=0.3)
    assert created["status"] == "pending" and created["step"] == "surge"
    body = wait_for(url, created["id"], finished)
    assert body["status"] == "succeeded", body
    assert [s["name"] for s in body["steps"]] == [
        "surge",
        "patch",
        "follow",
        "stabilize",
        "release",
    ]
    for step in body["steps"]:
        assert step["status"] == "done"
        assert step["started_at"] and step["ended_at"] and step["duration_s"] >= 0
    surge, patch, follow, stabilize, release = body["steps"]
    assert (surge["details"]["from"], surge["details"]["to"]) == (2, 3)  # ceil(2 x 1.5)
    assert surge["duration_s"] >= 0.15  # the surge pod's cold start
    assert patch["details"]["patch"] == {
        "spec": {"containers": [{"name": "model", "image": "deepseek:7b-v2"}]}
    }
    assert follow["details"]["updated"] == follow["details"]["replicas"] == 3
    assert stabilize["duration_s"] >= 0.3
    # Steps run in order: each starts when the previous ended.
    for before, after in zip(body["steps"], body["steps"][1:], strict=False):
        assert before["ended_at"] <= after["started_at"]
    assert body["original_template"]["spec"]["containers"][0]["image"] == "deepseek-service:1"
    assert image(cluster) == "deepseek:7b-v2"
    assert cluster.patches == 1
    # Handed back: the policy decided at once and scaled the surge away.
    assert release["details"]["replicas_before"] == 3
    assert release["details"]["replicas_after"] == release["details"]["decided"] == 2
    assert asyncio.run(cluster.observe(TARGET)).replicas == 2
    messages = [e["message"] for e in events(url, "rollout")]
    for word in ("requested", "surge:", "patch:", "follow:", "stabilize:", "release:"):
        assert any(word in m for m in messages), (word, messages)
    listed = httpx.get(f"{url}/v1/scalers/deepseek-service/rollouts").json()["rollouts"]
    assert [r["id"] for r in listed] == [created["id"]]


def test_a_paused_scalers_rollout_gives_its_surge_back(
    live: LiveServer, cluster: CountingCluster
) -> None:
    """No policy decides for a paused scaler: the surge's pods used to run on, at 1.5 x the
    cost, until someone resumed it. The count goes back to the one it found."""
    url = live.url
    add_scaler(url)
    assert httpx.post(f"{url}/v1/scalers/deepseek-service/pause").status_code == 200
    created = start(url, image="deepseek:7b-v2", surge_percent=50, stabilize_s=0.1)
    body = wait_for(url, created["id"], finished)
    assert body["status"] == "succeeded", body
    surge, release = body["steps"][0], body["steps"][-1]
    assert (surge["details"]["from"], surge["details"]["to"]) == (2, 3)
    assert (release["details"]["replicas_before"], release["details"]["replicas_after"]) == (3, 2)
    assert "surge given back" in release["details"]["handed_back"]
    assert asyncio.run(cluster.observe(TARGET)).replicas == 2
    assert image(cluster) == "deepseek:7b-v2"


def test_a_paused_scalers_count_set_by_hand_mid_rollout_stands(
    live: LiveServer, cluster: CountingCluster
) -> None:
    url = live.url
    add_scaler(url)
    assert httpx.post(f"{url}/v1/scalers/deepseek-service/pause").status_code == 200
    created = start(url, image="deepseek:7b-v2", surge_percent=50, stabilize_s=1.0)
    wait_for(url, created["id"], lambda b: b["step"] == "stabilize")
    asyncio.run(cluster.scale(TARGET, 5))  # `kubectl scale` by its operator, while paused
    body = wait_for(url, created["id"], finished)
    assert body["status"] == "succeeded", body
    release = body["steps"][-1]
    assert release["details"]["replicas_after"] == 5
    assert release["details"]["handed_back"] == "scaler paused: the replicas stay as they are"
    assert asyncio.run(cluster.observe(TARGET)).replicas == 5


def test_one_active_rollout_per_scaler_and_the_reconciler_holds_off(
    live: LiveServer, cluster: CountingCluster
) -> None:
    url = live.url
    add_scaler(url)
    first = start(url, image="deepseek:7b-v2", stabilize_s=60)
    wait_for(url, first["id"], lambda b: b["step"] == "stabilize")
    second = httpx.post(
        f"{url}/v1/scalers/deepseek-service/rollouts", json={"image": "deepseek:7b-v3"}
    )
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "rollout_active"
    assert second.json()["error"]["details"] == {"rollout": first["id"]}
    # Overload plus a burst over the emergency threshold: the reconciler is woken at once,
    # but the rollout holds the replicas, so it records why it stays away.
    push(url, gpu_utilization=170.0, request_queue=100.0)
    deadline = time.monotonic() + 5
    while not events(url, "skip") and time.monotonic() < deadline:
        time.sleep(0.03)
    [skip] = events(url, "skip")
    assert f"rollout {first['id']} holds the replicas" in skip["message"]
    assert events(url, "action") == []
    assert asyncio.run(cluster.observe(TARGET)).replicas == 3  # still the surge
    # Once released (here by a cancel) the policy acts on the load at once.
    assert httpx.post(f"{url}/v1/rollouts/{first['id']}/cancel").status_code == 202
    done = wait_for(url, first["id"], finished)
    assert done["status"] == "cancelled"
    assert done["steps"][-1]["details"]["replicas_after"] > 3
    assert len(events(url, "skip")) == 1  # once per rollout, not once per pass


def test_cancel_rolls_back_to_the_original_template(
    live: LiveServer, cluster: CountingCluster
) -> None:
    url = live.url
    add_scaler(url)
    created = start(url, template_patch={"metadata": {"annotations": {"v": "2"}}}, stabilize_s=60)
    wait_for(url, created["id"], lambda b: b["step"] == "stabilize")
    patched = asyncio.run(cluster.template(TARGET))
    assert patched["metadata"]["annotations"] == {"v": "2"}
    cancel = httpx.post(f"{url}/v1/rollouts/{created['id']}/cancel")
    assert cancel.status_code == 202 and cancel.json()["cancel_requested"] is True
    body = wait_for(url, created["id"], finished)
    assert body["status"] == "cancelled" and body["error"] is None
    assert [(s["name"], s["status"]) for s in body["steps"]] == [
        ("surge", "done"),
        ("patch", "done"),
        ("follow", "done"),
        ("stabilize", "cancelled"),
        ("release", "skipped"),
        ("rollback", "done"),
        ("release", "done"),
    ]
    rollback = body["steps"][5]
    assert rollback["details"]["updated"] == rollback["details"]["replicas"]
    # The template is exactly the original again: the added annotation is gone.
    assert asyncio.run(cluster.template(TARGET)) == body["original_template"]
    assert "annotations" not in body["original_template"]["metadata"]
    again = httpx.post(f"{url}/v1/rollouts/{created['id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "rollout_finished"


def test_a_restart_resumes_from_the_recorded_step(database_url: str) -> None:
    asyncio.run(truncate_all(database_url))
    # The cluster outlives the service, as a real one does; pods take 1 s to start so the
    # rollout is still being followed when the service stops.
    cluster = CountingCluster(initial_replicas=2, cold_start_s=(1.0, 1.0))
    first = serve(database_url, cluster)
    try:
        add_scaler(first.url)
        created = start(first.url, image="deepseek:7b-v2", stabilize_s=0.2)
        before = wait_for(first.url, created["id"], lambda b: b["step"] == "follow")
    finally:
        first.stop()
    assert [s["status"] for s in before["steps"][:2]] == ["done", "done"]
    assert cluster.patches == 1
    second = serve(database_url, cluster)
    try:
        after = wait_for(second.url, created["id"], finished)
    finally:
        second.stop()
    assert after["status"] == "succeeded", after
    assert cluster.patches == 1  # the patch was not repeated
    assert after["steps"][:2] == before["steps"][:2]  # surge and patch as recorded
    assert [s["status"] for s in after["steps"]] == ["done"] * 5
    assert image(cluster) == "deepseek:7b-v2"


def test_dry_run_records_what_it_would_do_and_changes_nothing(
    live: LiveServer, cluster: CountingCluster
) -> None:
    url = live.url
    add_scaler(url, mode="dry_run")
    created = start(url, image="deepseek:7b-v2")
    assert created["dry_run"] is True
    body = wait_for(url, created["id"], finished)
    assert body["status"] == "succeeded"
    assert all(s["details"]["dry_run"] and s["status"] == "done" for s in body["steps"])
    assert body["steps"][0]["details"]["would"].startswith(
        "would scale deepseek-service from 2 to 3"
    )
    assert cluster.patches == 0 and image(cluster) == "deepseek-service:1"
    assert asyncio.run(cluster.observe(TARGET)).replicas == 2
    messages = [e["message"] for e in events(url, "rollout")]
    assert sum("nothing changed" in m for m in messages) == 6  # each step, and the end
    assert messages[-1].endswith("dry run: succeeded (nothing changed)")


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        pytest.param({}, 422, "body", id="neither-image-nor-patch"),
        pytest.param({"image": "a", "template_patch": {"metadata": {}}}, 422, "body", id="both"),
        pytest.param({"template_patch": {}}, 422, "body", id="empty-patch"),
        # A pod template has metadata and spec: the API server drops anything else with a
        # warning, and the rollout would "succeed" having changed nothing.
        pytest.param(
            {"template_patch": {"replicas": 3}}, 422, "body.template_patch", id="not-a-template"
        ),
        pytest.param(
            {"template_patch": {"spec": ["x"]}}, 422, "body.template_patch", id="spec-not-object"
        ),
        pytest.param({"image": "a", "surge_percent": 0}, 422, "body.surge_percent", id="surge-0"),
        pytest.param(
            {"image": "a", "surge_percent": 201}, 422, "body.surge_percent", id="surge-201"
        ),
        pytest.param({"image": "a", "stabilize_s": -1}, 422, "body.stabilize_s", id="stabilize"),
        pytest.param({"image": "a", "replicas": 3}, 422, "body.replicas", id="unknown-field"),
        pytest.param({"image": "a", "container": "nope"}, 422, "container", id="no-container"),
    ],
)
def test_bad_requests(server: LiveServer, body: dict[str, Any], status: int, field: str) -> None:
    url = server.url
    add_scaler(url)
    r = httpx.post(f"{url}/v1/scalers/deepseek-service/rollouts", json=body)
    assert r.status_code == status, r.text
    assert field in {d["field"] for d in r.json()["error"]["details"]}
    assert httpx.get(f"{url}/v1/scalers/deepseek-service/rollouts").json()["rollouts"] == []


@pytest.mark.parametrize(
    ("patch", "field", "unknown", "has"),
    [
        # A typo: containers merge by name, so the API server would add a second container,
        # "modle", to every pod, beside the model server it meant to update.
        pytest.param(
            {"spec": {"containers": [{"name": "modle", "image": "deepseek:7b-v2"}]}},
            "template_patch.spec.containers",
            ["modle"],
            ["model"],
            id="misspelt-container",
        ),
        # The right container and a new one: refused whole, the right one is not updated alone.
        pytest.param(
            {
                "spec": {
                    "containers": [
                        {"name": "model", "image": "deepseek:7b-v2"},
                        {"name": "envoy", "image": "envoy:1.30"},
                    ]
                }
            },
            "template_patch.spec.containers",
            ["envoy"],
            ["model"],
            id="one-of-two-unknown",
        ),
        # Init containers merge by name the same way; the pod template has none.
        pytest.param(
            {"spec": {"initContainers": [{"name": "fetch-weights", "image": "fetch:2"}]}},
            "template_patch.spec.initContainers",
            ["fetch-weights"],
            [],
            id="init-container",
        ),
    ],
)
def test_a_patch_naming_a_container_the_target_lacks_is_refused_and_writes_nothing(
    server: LiveServer, patch: dict[str, Any], field: str, unknown: list[str], has: list[str]
) -> None:
    """A template_patch is checked against the live pod template before anything is
    recorded: a container name the Deployment does not have is a 422 naming it and listing
    the containers it has; no rollout, no event, no audit entry, the template untouched."""
    url = server.url
    add_scaler(url)
    cluster: SimulatedCluster = server.app.state.ctx.cluster
    template = asyncio.run(cluster.template(TARGET))
    before = httpx.get(f"{url}/v1/scalers/deepseek-service/events").json()["events"]
    audited = httpx.get(f"{url}/v1/audit").json()["entries"]
    r = httpx.post(f"{url}/v1/scalers/deepseek-service/rollouts", json={"template_patch": patch})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_rollout"
    assert all(repr(name) in error["message"] for name in unknown + has), error["message"]
    [detail] = error["details"]
    assert detail["field"] == field
    assert detail["unknown"] == unknown and detail["containers"] == has
    assert httpx.get(f"{url}/v1/scalers/deepseek-service/rollouts").json()["rollouts"] == []
    assert httpx.get(f"{url}/v1/scalers/deepseek-service/events").json()["events"] == before
    assert httpx.get(f"{url}/v1/audit").json()["entries"] == audited
    assert asyncio.run(cluster.template(TARGET)) == template


def test_unknown_scaler_and_rollout_are_404(server: LiveServer) -> None:
    url = server.url
    r = httpx.post(f"{url}/v1/scalers/nope/rollouts", json={"image": "a"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert httpx.get(f"{url}/v1/scalers/nope/rollouts").status_code == 404
    assert httpx.get(f"{url}/v1/rollouts/12345").status_code == 404
    assert httpx.post(f"{url}/v1/rollouts/12345/cancel").status_code == 404


class FlakyCluster(RecordingCluster):
    """Unreachable for the first `failures` observations (an API server restart)."""

    def __init__(self, failures: int) -> None:
        super().__init__(initial_replicas=2)
        self.failures = failures

    async def observe(self, target: TargetRef) -> DeploymentState:
        if self.failures:
            self.failures -= 1
            raise ClusterUnavailable("get deployments.apps: failed after 4 attempts: HTTP 503")
        return await super().observe(target)


async def stored_rollout(db: Database, *, stabilize_s: float) -> rollout_store.StoredRollout:
    """The brief's scaler (no schedule, no preheat) and a pending rollout of image v2 on it."""
    doc = {**BRIEF, "schedule": [], "preheat": {"enabled": False}}
    request = {"patch": {"spec": {"containers": [{"name": "main", "image": "v2"}]}}}
    request |= {"surge_percent": 50, "stabilize_s": stabilize_s, "timeout_s": 60}
    async with db.transaction() as conn:
        await scaler_store.upsert_scaler(conn, "deepseek-service", doc, now_us=0)
        return await rollout_store.create_rollout(
            conn, "deepseek-service", request, dry_run=False, now_us=0
        )


async def test_a_cluster_outage_at_a_steps_start_is_retried(database_url: str) -> None:
    await truncate_all(database_url)
    db = Database(database_url)
    try:
        created = await stored_rollout(db, stabilize_s=0)
        cluster = FlakyCluster(failures=1)
        executor = RolloutExecutor(db, cluster, SystemClock())
        assert await executor.tick_all() == 1
        async with db.read() as conn:
            first = await rollout_store.get_rollout(conn, created.id)
        assert first is not None and first.status == "running"
        surge = first.steps[0]
        assert surge["status"] == "running" and "HTTP 503" in surge["details"]["last_error"]
        assert "to" not in surge["details"]  # not begun: the next tick starts it again
        for _ in range(5):
            if not await executor.tick_all():
                break
        async with db.read() as conn:
            done = await rollout_store.get_rollout(conn, created.id)
        assert done is not None and done.status == "succeeded", done
        assert (done.steps[0]["details"]["from"], done.steps[0]["details"]["to"]) == (2, 3)
        assert cluster.template_patches == [created.request["patch"]]
    finally:
        await db.dispose()


def test_a_scaler_with_an_active_rollout_cannot_be_deleted(
    live: LiveServer, cluster: CountingCluster
) -> None:
    url = live.url
    add_scaler(url)
    created = start(url, image="deepseek:7b-v2", stabilize_s=60)
    wait_for(url, created["id"], lambda b: b["step"] == "stabilize")
    r = httpx.delete(f"{url}/v1/scalers/deepseek-service")
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "rollout_active"
    assert r.json()["error"]["details"] == {"rollout": created["id"]}
    # Nothing was deleted: the scaler, its rollout and its events are all there.
    assert httpx.get(f"{url}/v1/scalers/deepseek-service").status_code == 200
    assert httpx.get(f"{url}/v1/rollouts/{created['id']}").json()["status"] == "running"
    assert httpx.post(f"{url}/v1/rollouts/{created['id']}/cancel").status_code == 202
    assert wait_for(url, created["id"], finished)["status"] == "cancelled"
    assert image(cluster) == "deepseek-service:1"
    assert httpx.delete(f"{url}/v1/scalers/deepseek-service").status_code == 204


def test_a_rollout_keeps_the_target_it_started_on(
    live: LiveServer, cluster: CountingCluster
) -> None:
    url = live.url
    add_scaler(url)
    created = start(url, image="deepseek:7b-v2", stabilize_s=60)
    wait_for(url, created["id"], lambda b: b["step"] == "stabilize")
    other = TargetRef(name="other-llm")
    before = asyncio.run(cluster.template(other))
    # The spec is pointed at another Deployment mid-rollout; the rollback restores the
    # Deployment that was patched, and leaves the other one alone.
    doc = httpx.get(f"{url}/v1/scalers/deepseek-service").json()["spec"]
    r = httpx.put(f"{url}/v1/scalers/deepseek-service", json={**doc, "target": "other-llm"})
    assert r.status_code == 200, r.text
    assert httpx.post(f"{url}/v1/rollouts/{created['id']}/cancel").status_code == 202
    body = wait_for(url, created["id"], finished)
    assert body["status"] == "cancelled", body
    assert image(cluster) == "deepseek-service:1"
    assert asyncio.run(cluster.template(other)) == before
    assert cluster.patches == 1


def test_a_target_forgotten_mid_rollout_fails_it_instead_of_claiming_success(
    database_url: str,
) -> None:
    # `make serve`'s simulated cluster lives in the service's memory: after a restart every
    # target is back at its original template (as a Deployment deleted and created again is
    # on a real cluster). The resumed rollout must not follow that template to "succeeded":
    # the new image never ran.
    asyncio.run(truncate_all(database_url))
    first = serve(database_url, CountingCluster(initial_replicas=2, cold_start_s=(1.0, 1.0)))
    try:
        add_scaler(first.url)
        created = start(first.url, image="deepseek:7b-v2", stabilize_s=0.2)
        wait_for(first.url, created["id"], lambda b: b["step"] == "follow")
    finally:
        first.stop()
    fresh = CountingCluster(initial_replicas=1, cold_start_s=(0.2, 0.3))
    second = serve(database_url, fresh)
    try:
        after = wait_for(second.url, created["id"], finished)
        messages = [e["message"] for e in events(second.url, "rollout")]
    finally:
        second.stop()
    assert after["status"] == "failed", after
    assert "generation" in after["error"] and "not on the target" in after["error"], after
    assert image(fresh) == "deepseek-service:1"
    assert fresh.patches == 0
    assert any("failed" in m and "generation" in m for m in messages), messages


class NoRollbackCluster(RecordingCluster):
    """Takes the template patch, then refuses the rollback's write (a revoked grant)."""

    refuse = False

    async def set_template(self, target: TargetRef, template: dict[str, Any]) -> None:
        if self.refuse:
            raise ClusterForbidden(
                "may not patch deployments: grant verb 'patch' on 'deployments'",
                verb="patch",
                resource="deployments",
            )
        await super().set_template(target, template)


async def test_a_cancel_whose_rollback_fails_ends_failed_not_cancelled(
    database_url: str,
) -> None:
    await truncate_all(database_url)
    db = Database(database_url)
    try:
        created = await stored_rollout(db, stabilize_s=60)
        cluster = NoRollbackCluster(initial_replicas=2)
        executor = RolloutExecutor(db, cluster, SystemClock())
        await executor.tick_all()
        async with db.read() as conn:
            running = await rollout_store.get_rollout(conn, created.id)
        assert running is not None and running.step == "stabilize", running
        cluster.refuse = True
        async with db.transaction() as conn:
            await rollout_store.request_cancel(conn, created.id, now_us=1)
        for _ in range(5):
            if not await executor.tick_all():
                break
        async with db.read() as conn:
            done = await rollout_store.get_rollout(conn, created.id)
        assert done is not None
        # The new template is still on the target: that is no cancelled rollout.
        assert (await cluster.template(TARGET))["spec"]["containers"][0]["image"] == "v2"
        assert done.status == "failed", (done.status, done.error)
        assert done.error is not None and "may not patch deployments" in done.error
    finally:
        await db.dispose()
