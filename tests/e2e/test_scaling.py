"""End to end on real objects: the service and its adapter against a real API server, real
Deployment and ReplicaSet controllers, and pods that KWOK makes Ready after a set delay.

What the emulator could not show: the scale subresource as the API server implements it, pods
created and deleted by the real controllers (which pods go is theirs to pick), real
creation/Ready timestamps (whole seconds), terminating pods that stay Ready until their grace
period ends, watches the server itself ends, and a real 409 on a stale resourceVersion.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial
from typing import Any

import httpx
from kubernetes_asyncio.client.exceptions import ApiException

from app.kube.adapter import KubernetesCluster
from app.kube.pods import PodEvent
from app.policy.spec import TargetRef
from tests.conftest import LiveServer
from tests.e2e.conftest import eventually
from tests.e2e.controlplane import Admin, deployment, pod_ready, wait_until

NAME = "llm"
QUEUE_PER_POD = 5  # the spec's target: a total queue of 5 per pod


def spec(namespace: str, **extra: Any) -> dict[str, Any]:
    """Need = total queue / 5, exactly (KEDA's AverageValue); no stabilisation, no rate limit:
    each reconcile does what the load asks."""
    free = {"stabilizationWindowSeconds": 0,
            "policies": [{"type": "Pods", "value": 100, "periodSeconds": 1}]}  # fmt: skip
    return {
        "name": NAME,
        "target": {"kind": "Deployment", "namespace": namespace, "name": NAME},
        "scaler": "reactive",
        "metrics": [{"name": "request_queue", "target": "<5", "aggregation": "sum"}],
        "min_replicas": 1,
        "max_replicas": 8,
        "cold_start": "learn",
        "behavior": {"scaleUp": free, "scaleDown": free},
        # each decision on its own reading: the stable window and its hold on scale-down
        # have their own tests (tests/policy/test_windows.py)
        "reactive": {"window": "1s"},
        **extra,
    }


def push_queue(service: LiveServer, pod: str, total: float) -> None:
    """One pod reports the whole queue (its real name as the pod label)."""
    sample = {"metric": "request_queue", "labels": {"pod": pod}, "value": total}
    response = httpx.post(f"{service.url}/v1/samples", json={"samples": [sample]})
    assert response.status_code == 200, response.text


def events(service: LiveServer, kind: str) -> list[dict[str, Any]]:
    """The scaler's events of one kind, oldest first."""
    body = httpx.get(f"{service.url}/v1/scalers/{NAME}/events", params={"kind": kind}).json()
    found: list[dict[str, Any]] = body["events"][::-1]
    return found


def decision(service: LiveServer) -> dict[str, Any]:
    found: dict[str, Any] = httpx.get(f"{service.url}/v1/scalers/{NAME}/decision").json()
    return found


def stable(admin: Admin, namespace: str, replicas: int) -> dict[str, Any] | None:
    """The Deployment once its controller is done: every replica Ready, status current."""
    obj = admin.get("Deployment", namespace, NAME)
    status = obj.get("status", {})
    done = (
        obj["spec"]["replicas"] == replicas
        and status.get("observedGeneration") == obj["metadata"]["generation"]
        and status.get("readyReplicas") == replicas == status.get("replicas")
        and len([p for p in admin.pods(namespace, f"app={NAME}") if pod_ready(p)]) == replicas
    )
    return obj if done else None


def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def cold_starts(pods: list[dict[str, Any]]) -> list[float]:
    """Creation -> Ready per pod, from the API server's own timestamps."""
    out = []
    for pod in pods:
        ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
        out.append(epoch(ready["lastTransitionTime"]) - epoch(pod["metadata"]["creationTimestamp"]))
    return out


def test_a_scaler_scales_a_real_deployment_and_learns_its_cold_start(
    admin: Admin, namespace: str, service: Callable[..., LiveServer]
) -> None:
    """Protects the whole path on real objects: pushed load -> decision -> the scale
    subresource -> the Deployment controller's pods -> Ready after KWOK's delay, counted as
    starting until then; and `cold_start: learn` measured from the pods' real timestamps."""
    ready_s = 2.0
    admin.create(deployment(NAME, namespace, replicas=1, ready_s=ready_s))
    wait_until(lambda: stable(admin, namespace, 1), 20, "the first pod Ready")
    [first] = admin.pods(namespace, f"app={NAME}")
    live = service()
    assert httpx.post(f"{live.url}/v1/scalers", json=spec(namespace)).status_code == 201

    push_queue(live, first["metadata"]["name"], 3 * QUEUE_PER_POD)  # asks for 3 pods
    wait_until(lambda: admin.get("Deployment", namespace, NAME)["spec"]["replicas"] == 3, 10,
               "the Deployment scaled to 3")  # fmt: skip
    scaled = events(live, "action")
    assert [e["message"] for e in scaled] == [f"scaled {NAME} from 1 to 3"]
    # Through the scale subresource: the API server records the write against it.
    managed = admin.get("Deployment", namespace, NAME)["metadata"]["managedFields"]
    assert any(
        m.get("subresource") == "scale" and "f:replicas" in str(m.get("fieldsV1")) for m in managed
    ), managed

    # The new pods count as starting until KWOK makes them Ready, then as ready.
    seen = decision(live)["cluster"]
    assert (seen["replicas"], seen["ready"], seen["starting"]) == (3, 1, 2)
    wait_until(lambda: stable(admin, namespace, 3), 10 + ready_s, "3 pods Ready")
    wait_until(lambda: decision(live)["cluster"]["ready"] == 3, 5, "the service sees 3 ready")
    pods = admin.pods(namespace, f"app={NAME}")
    assert len(pods) == 3 and all(pod_ready(p) for p in pods)

    # Learned: the 90th percentile (nearest rank) of creation -> Ready over these pods.
    measured = sorted(cold_starts(pods))
    p90 = measured[math.ceil(0.9 * len(measured)) - 1]
    learned = decision(live)["cluster"]["cold_start_s"]
    assert learned == p90, (learned, measured)
    assert abs(learned - ready_s) <= 1.0, measured  # whole-second timestamps


def test_a_missing_target_is_on_the_status_as_kubectl_words_it(
    namespace: str, service: Callable[..., LiveServer]
) -> None:
    """Protects the operator's first mistake: a scaler whose Deployment does not exist says
    so on its status, in the API server's own words (the 404 as kubectl reports it)."""
    live = service()
    assert httpx.post(f"{live.url}/v1/scalers", json=spec(namespace)).status_code == 201
    error = wait_until(
        lambda: httpx.get(f"{live.url}/v1/scalers/{NAME}").json()["status"]["last_error"],
        10,
        "an error on the status",
    )
    assert error == (
        f'cannot read {NAME}: deployments.apps "{NAME}" not found in namespace {namespace}'
    )
    assert events(live, "error")[0]["message"] == error  # once, not once per reconcile
    assert len(events(live, "error")) == 1


async def test_terminating_pods_are_not_counted(
    admin: Admin, namespace: str, adapter: Callable[..., Awaitable[KubernetesCluster]]
) -> None:
    """Protects the counts against the real scale-down: the pods the controller deletes keep
    reporting Ready, with a deletionTimestamp, for their grace period; they are neither ready
    nor starting, or a scale-down would look like spare capacity."""
    admin.create(deployment(NAME, namespace, replicas=3, ready_s=0.5, grace_s=60))
    wait_until(lambda: stable(admin, namespace, 3), 20, "3 pods Ready")
    cluster = await adapter()
    target = TargetRef(namespace=namespace, name=NAME)
    assert (await cluster.observe(target)).ready == 3

    admin.scale("Deployment", namespace, NAME, 1)  # kubectl scale --replicas=1

    def leaving() -> list[dict[str, Any]]:
        pods = admin.pods(namespace, f"app={NAME}")
        return [p for p in pods if p["metadata"].get("deletionTimestamp") and pod_ready(p)]

    async def observed() -> tuple[int, int, int] | None:
        state = await cluster.observe(target)
        tracked = cluster.cached_pods(target)
        leaving = [p for p in (tracked.pods.values() if tracked else ()) if p.terminating]
        counts = (state.replicas, state.ready, state.starting)
        return counts if len(leaving) == 2 and state.replicas == 1 else None

    counts = await eventually(observed, 10, "the watch has the two pods being deleted")
    assert len(leaving()) == 2  # still there, still Ready, being deleted: the real behaviour
    assert counts == (1, 1, 0)


async def test_a_watch_the_server_ends_resumes_from_its_resource_version(
    admin: Admin, namespace: str, adapter: Callable[..., Awaitable[KubernetesCluster]]
) -> None:
    """Protects the watch loop: the API server closes each watch after timeoutSeconds (here
    1 s); the adapter watches again from the last resourceVersion it saw, never lists again,
    and loses no event: every pod created and deleted meanwhile is reported, once each."""
    admin.create(deployment(NAME, namespace, replicas=1, ready_s=0.2))
    wait_until(lambda: stable(admin, namespace, 1), 20, "the first pod Ready")
    seen: list[PodEvent] = []
    cluster = await adapter(watch_timeout_s=1.0, pod_listener=seen.append)
    target = TargetRef(namespace=namespace, name=NAME)
    await cluster.observe(target)
    stats = cluster.watch_stats(target)
    assert stats is not None

    for replicas in (3, 1, 2):  # each change lands, then the watch ends and restarts
        admin.scale("Deployment", namespace, NAME, replicas)
        restarted = partial(lambda before: stats.watches > before, stats.watches)
        await eventually(restarted, 10, "a watch restarted")

    async def settled() -> bool:
        api = {
            p["metadata"]["name"]: p["metadata"]["resourceVersion"]
            for p in admin.pods(namespace, f"app={NAME}")
        }
        pods = cluster.cached_pods(target)
        mine = {name: p.resource_version for name, p in (pods.pods if pods else {}).items()}
        return len(api) == 2 and mine == api

    await eventually(settled, 10, "the cache equals the API server's pods")
    assert (stats.lists, stats.expired, stats.errors) == (1, 0, 0)  # resumed, never relisted
    assert stats.watches >= 4
    added = [e.pod.name for e in seen if e.type == "ADDED"]
    deleted = [e.pod.name for e in seen if e.type == "DELETED"]
    assert len(added) == len(set(added)) == 1 + 2 + 1  # the first pod, then 2 and 1 more
    assert len(deleted) == len(set(deleted)) == 2  # 3 -> 1
    tracked = cluster.cached_pods(target)
    assert tracked is not None and set(added) - set(deleted) == set(tracked.pods)


def test_kubectl_scale_is_seen_and_the_next_decision_starts_from_it(
    admin: Admin, namespace: str, service: Callable[..., LiveServer]
) -> None:
    """Protects what the README promises of a manual change: someone's `kubectl scale` is
    seen through the watch and is the current count the next decision starts from; the
    history says so first (one `drift` event naming kubectl's count and Ciuic's); the
    policy, not kubectl, has the last word (as with the HPA), in one write."""
    admin.create(deployment(NAME, namespace, replicas=2, ready_s=0.2))
    wait_until(lambda: stable(admin, namespace, 2), 20, "2 pods Ready")
    pod = admin.pods(namespace, f"app={NAME}")[0]["metadata"]["name"]
    live = service()
    assert httpx.post(f"{live.url}/v1/scalers", json=spec(namespace)).status_code == 201
    push_queue(live, pod, 2 * QUEUE_PER_POD)  # the load asks for what runs: nothing to do
    wait_until(lambda: httpx.get(f"{live.url}/v1/scalers/{NAME}").json()["status"]
               ["last_decision"], 10, "a first decision")  # fmt: skip
    generation = admin.get("Deployment", namespace, NAME)["metadata"]["generation"]

    admin.scale("Deployment", namespace, NAME, 5)  # kubectl scale --replicas=5
    wait_until(lambda: events(live, "action"), 10, "the policy acting")
    assert [e["message"] for e in events(live, "action")] == [f"scaled {NAME} from 5 to 2"]
    assert events(live, "action")[0]["payload"]["from"] == 5
    [drift] = events(live, "drift")
    assert drift["message"].startswith(
        f"Deployment {NAME} had 5 replicas, not the 2 Ciuic last set at "
    ), drift
    assert (drift["replicas"], drift["payload"]["found"], drift["payload"]["applied"]) == (5, 5, 2)
    assert drift["id"] < events(live, "action")[0]["id"]  # found 5, then scaled back
    deployment_now = admin.get("Deployment", namespace, NAME)
    assert deployment_now["spec"]["replicas"] == 2
    assert deployment_now["metadata"]["generation"] == generation + 2  # kubectl's, then ours


async def test_a_write_racing_ours_gets_409_and_ours_is_retried_on_top(
    admin: Admin, namespace: str, adapter: Callable[..., Awaitable[KubernetesCluster]]
) -> None:
    """Protects the scale write against a concurrent writer: ours carries the resourceVersion
    it read, the real API server answers 409 when someone wrote in between, and the adapter
    reads again and writes once more: nobody's write is silently lost or doubled.

    The Deployment controller's own status writes move the resourceVersion too (right after
    kubectl's change they race ours), so the retry may meet a second 409; the generation,
    which only spec changes move, shows exactly two writes."""
    admin.create(deployment(NAME, namespace, replicas=1, ready_s=0.2))
    cluster = await adapter()
    apps = cluster._apps
    read, write = apps.read_namespaced_deployment_scale, apps.patch_namespaced_deployment_scale
    answers: list[int] = []

    async def read_then_kubectl(*args: Any, **kwargs: Any) -> Any:
        found = await read(*args, **kwargs)
        if not answers:  # kubectl scales between our first read and our write
            admin.scale("Deployment", namespace, NAME, 2)
        return found

    async def counted_write(*args: Any, **kwargs: Any) -> Any:
        try:
            result = await write(*args, **kwargs)
        except ApiException as exc:
            answers.append(int(exc.status))
            raise
        answers.append(200)
        return result

    apps.read_namespaced_deployment_scale = read_then_kubectl  # type: ignore[method-assign]
    apps.patch_namespaced_deployment_scale = counted_write  # type: ignore[method-assign]
    before = admin.get("Deployment", namespace, NAME)["metadata"]["generation"]

    await cluster.scale(TargetRef(namespace=namespace, name=NAME), 4)

    # The real server refused the stale write; a fresh read and a retry landed, within the
    # adapter's bound on conflicts.
    assert answers[0] == 409 and answers[-1] == 200, answers
    assert set(answers[1:-1]) <= {409} and len(answers) <= cluster.conflict_retries + 1
    after = admin.get("Deployment", namespace, NAME)
    assert after["spec"]["replicas"] == 4
    assert after["metadata"]["generation"] == before + 2  # kubectl's write and ours, once each


def test_dry_run_writes_nothing(
    admin: Admin, namespace: str, service: Callable[..., LiveServer]
) -> None:
    """Protects `mode: dry_run`: it decides and says what it would do, and no object of the
    cluster changes; asserted through the API server's own resourceVersions (the Deployment's
    and every pod's: a resize would change a pod)."""
    resources = {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"cpu": "2", "memory": "8Gi"}}
    admin.create(deployment(NAME, namespace, replicas=1, ready_s=0.2, resources=resources))
    wait_until(lambda: stable(admin, namespace, 1), 20, "the pod Ready")

    def versions() -> dict[str, str]:
        objs = [admin.get("Deployment", namespace, NAME), *admin.pods(namespace, f"app={NAME}")]
        return {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in objs}

    before = versions()
    live = service()
    body = spec(namespace, mode="dry_run", fractional={"enabled": True})
    assert httpx.post(f"{live.url}/v1/scalers", json=body).status_code == 201
    push_queue(live, "p0", 3.5 * QUEUE_PER_POD)  # 3.5 pods: 3 whole and one at half
    # each dry-run pass says it again (nothing changed): the first one is the one to read
    would = wait_until(lambda: events(live, "dry_run"), 10, "a dry-run decision")[0]
    assert would["message"] == f"would scale {NAME} from 1 to 4 (dry run: nothing changed)"
    assert would["payload"]["plan"]["partial"] == 0.5
    first = httpx.get(f"{live.url}/v1/scalers/{NAME}").json()["status"]["last_decision_at"]
    wait_until(lambda: httpx.get(f"{live.url}/v1/scalers/{NAME}").json()["status"]
               ["last_decision_at"] > first, 10, "another reconcile")  # fmt: skip
    assert versions() == before
    assert events(live, "action") == [] and events(live, "error") == []
