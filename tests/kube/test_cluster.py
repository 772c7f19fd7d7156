"""KubernetesCluster through kubernetes-asyncio over real HTTP against the API emulator."""

from __future__ import annotations

import asyncio
import json
from itertools import pairwise
from pathlib import Path

import pytest

from app.kube.adapter import KubernetesCluster
from app.kube.cluster import (
    ClusterConflict,
    ClusterError,
    ClusterForbidden,
    ClusterUnavailable,
    DeploymentState,
    TargetNotFound,
)
from app.kube.config import build_cluster
from app.kube.pods import PodEvent
from app.policy.spec import TargetRef
from app.settings import Settings
from testkit.kube_emulator import KubeEmulator
from tests.kube.conftest import FAST, api_client, eventually

LLM = TargetRef(name="llm")


async def counts(cluster: KubernetesCluster, target: TargetRef = LLM) -> tuple[int, int, int]:
    state = await cluster.observe(target)
    return state.replicas, state.ready, state.starting


@pytest.mark.parametrize(
    "kind",
    [pytest.param("Deployment", id="deployment"), pytest.param("StatefulSet", id="statefulset")],
)
async def test_observe_then_scale_round_trip(
    kube: KubeEmulator, cluster: KubernetesCluster, kind: str
) -> None:
    kube.add_workload("llm", namespace="gpu", kind=kind, replicas=2, ready=True)
    target = TargetRef(kind=kind, namespace="gpu", name="llm")  # type: ignore[arg-type]

    observed = await cluster.observe(target)
    pods = {p["metadata"]["name"] for p in kube.pods(namespace="gpu", selector="app=llm")}
    # the Ready pods by name: their pushes are the load, a deleted one's last samples are not
    assert observed == DeploymentState(2, 2, 0, 0.0, ready_pods=frozenset(pods))

    await cluster.scale(target, 4)
    assert kube.workload("llm", namespace="gpu")["spec"]["replicas"] == 4
    plural = "deployments" if kind == "Deployment" else "statefulsets"
    patch = next(r for r in kube.requests if r.verb == "patch")
    assert (patch.resource, patch.content_type) == (
        f"{plural}/scale",
        "application/merge-patch+json",
    )
    # The two new pods are watched in: created, not Ready yet.
    await eventually(lambda: _counts(cluster, target) == (2, 2))
    state = await cluster.observe(target)
    assert (state.replicas, state.ready, state.starting) == (4, 2, 2)

    await cluster.scale(target, 4)  # already there: read, no second patch
    assert kube.count("patch", f"{plural}/scale") == 1


async def test_warm_caches_make_observe_free_of_requests(
    kube: KubeEmulator, cluster: KubernetesCluster
) -> None:
    kube.add_workload("llm", replicas=2, ready=True)
    kube.add_workload("other", replicas=1)
    assert await counts(cluster) == (2, 2, 0)  # the first observe reads the Deployment
    await eventually(lambda: all(w.synced.is_set() for w in cluster._workloads.values()))
    seen = len(kube.requests)
    for _ in range(5):
        assert await counts(cluster) == (2, 2, 0)
    assert len(kube.requests) == seen  # from the watch caches alone
    kube.set_replicas("llm", 3)  # kubectl scale: the Deployment watch brings it in
    deployments = cluster._workloads[("Deployment", "default")]
    # Two watches, two streams: wait for both (a reconcile in between sees either order).
    await eventually(lambda: _counts(cluster) == (2, 1) and deployments.items["llm"].replicas == 3)
    assert await counts(cluster) == (3, 2, 1)
    assert kube.count("get", "deployments") == 1
    # Another target in the same namespace shares the Deployment watch.
    assert await counts(cluster, TargetRef(name="other")) == (1, 0, 1)
    assert kube.count("get", "deployments") == 1
    assert kube.count("watch", "deployments") == 1


async def test_many_targets_share_two_watches_per_namespace(
    kube: KubeEmulator, cluster: KubernetesCluster
) -> None:
    """More targets than the client's 100 pooled connections: one watch per target would
    starve every other request."""
    names = [f"llm-{i}" for i in range(120)]
    for name in names:
        kube.add_workload(name, replicas=1, ready=True)
    states = await asyncio.gather(*(cluster.observe(TargetRef(name=n)) for n in names))
    assert {(s.replicas, s.ready, s.starting) for s in states} == {(1, 1, 0)}
    await asyncio.gather(*(cluster.scale(TargetRef(name=n), 2) for n in names[:20]))
    assert kube.count("patch", "deployments/scale") == 20
    assert (kube.count("watch", "pods"), kube.count("watch", "deployments")) == (1, 1)
    await eventually(lambda: _counts(cluster, TargetRef(name=names[0])) == (1, 1))
    assert _counts(cluster, TargetRef(name=names[-1])) == (1, 0)  # no pod of another target


@pytest.mark.parametrize(
    ("cold_starts", "expected"),
    [
        pytest.param([45], 45.0, id="one-pod-measured-exactly"),
        pytest.param([30, 40, 50, 60, 300], 300.0, id="p90-of-five-is-the-slowest"),
        pytest.param([40] * 9 + [500], 40.0, id="one-outlier-in-ten-ignored"),
    ],
)
async def test_pods_become_ready_after_the_cold_start_which_is_measured(
    kube: KubeEmulator, cluster: KubernetesCluster, cold_starts: list[int], expected: float
) -> None:
    kube.add_workload("llm", replicas=0)
    assert await counts(cluster) == (0, 0, 0)
    assert cluster.learned_cold_start_s(LLM) is None  # nothing measured: the policy's default
    for n, cold in enumerate(cold_starts, start=1):
        kube.cold_start_s = cold
        kube.set_replicas("llm", n)
        kube.advance(cold - 1)
        await settle(kube, cluster)
        assert _counts(cluster) == (n - 1, 1)  # a second early: still starting
        kube.advance(1)
        await eventually(lambda n=n: _counts(cluster) == (n, 0))
    state = await cluster.observe(LLM)
    assert state.learned_cold_start_s == expected


def _counts(cluster: KubernetesCluster, target: TargetRef = LLM) -> tuple[int, int]:
    """(ready, starting) as the watch cache has them now, without a request."""
    mine = cluster.cached_pods(target)
    assert mine is not None
    return mine.counts()


async def settle(kube: KubeEmulator, cluster: KubernetesCluster, target: TargetRef = LLM) -> None:
    """Until the watch has caught up with everything the emulator did so far: touch a pod and
    wait for that very version (a watch delivers in order)."""
    name = kube.pods(target.namespace)[0]["metadata"]["name"]
    version = kube.touch("pods", name, namespace=target.namespace)
    await eventually(
        lambda: (
            (p := cluster.cached_pod(target, name)) is not None and p.resource_version == version
        )
    )


@pytest.mark.parametrize(
    "gate",
    [
        pytest.param("annotation", id="annotation-warm-false"),
        pytest.param("readiness-gate", id="readiness-gate-condition"),
    ],
)
async def test_ready_pods_still_warming_up_count_as_starting(
    kube: KubeEmulator, cluster: KubernetesCluster, gate: str
) -> None:
    if gate == "annotation":
        kube.add_workload("llm", replicas=1, annotations={"ciuic.io/warm": "false"})
    else:
        kube.add_workload("llm", replicas=1, readiness_gates=("ciuic.io/warm",))
    assert await counts(cluster) == (1, 0, 1)
    kube.advance(30)  # containers Ready; the warm-up has not finished
    pod = kube.pods()[0]["metadata"]["name"]
    await settle(kube, cluster)
    assert kube.workload("llm")["status"]["readyReplicas"] == (1 if gate == "annotation" else 0)
    assert await counts(cluster) == (1, 0, 1)
    kube.advance(15)  # the warm-up queries take 15 s
    if gate == "annotation":
        kube.set_pod_annotation(pod, "ciuic.io/warm", "true")
    else:
        kube.set_pod_condition(pod, "ciuic.io/warm", True)
    await eventually(lambda: _counts(cluster) == (1, 0))
    learned = cluster.learned_cold_start_s(LLM)
    # A readiness gate moves Ready itself, so the warm-up is part of the cold start; the
    # annotation carries no time, so the measure stops at Ready.
    assert learned == (30.0 if gate == "annotation" else 45.0)


async def test_watch_restarts_after_410_gone_without_losing_or_repeating_events(
    kube: KubeEmulator, cluster: KubernetesCluster, events: list[PodEvent]
) -> None:
    kube.add_workload("llm", replicas=2)
    assert await counts(cluster) == (2, 0, 2)
    before = {p["metadata"]["name"] for p in kube.pods()}
    with kube.watches_stalled(expire=True):
        # While the watch is cut off: one pod dies (and is replaced), two are added, and the
        # survivor becomes Ready; then the history is compacted past our resourceVersion.
        victim = sorted(before)[0]
        kube.delete_pod(victim)
        kube.set_replicas("llm", 4)
        kube.advance(30)
    await eventually(lambda: cluster.watch_stats(LLM).expired == 1)  # type: ignore[union-attr]
    await eventually(lambda: _counts(cluster) == (4, 0))
    stats = cluster.watch_stats(LLM)
    assert stats is not None and stats.lists == 2  # the first list and one relist

    truth = {p["metadata"]["name"] for p in kube.pods()}
    added = [e.pod.name for e in events if e.type == "ADDED"]
    deleted = [e.pod.name for e in events if e.type == "DELETED"]
    assert sorted(added) == sorted(before | truth)  # every pod announced once, none twice
    assert deleted == [victim]
    # After the restart the watch goes on from the relist's version: later changes arrive.
    kube.set_replicas("llm", 5)
    await eventually(lambda: _counts(cluster) == (4, 1))
    assert len([e for e in events if e.type == "ADDED"]) == len(added) + 1


async def test_dropped_watch_resumes_from_its_resource_version_without_a_relist(
    kube: KubeEmulator, cluster: KubernetesCluster, events: list[PodEvent]
) -> None:
    kube.add_workload("llm", replicas=1)
    await counts(cluster)
    await eventually(lambda: kube.count("watch", "pods") == 1)
    kube.drop_watches()
    await eventually(lambda: kube.count("watch", "pods") == 2)
    kube.advance(30)
    await eventually(lambda: _counts(cluster) == (1, 0))
    stats = cluster.watch_stats(LLM)
    assert stats is not None and (stats.lists, stats.expired) == (1, 0)
    assert [e.type for e in events] == ["ADDED", "MODIFIED"]


@pytest.mark.parametrize(
    ("races", "outcome"),
    [
        pytest.param(1, "scaled", id="one-conflict-reread-and-retried"),
        pytest.param(3, "scaled", id="three-conflicts-still-within-bound"),
        pytest.param(4, "conflict", id="conflicts-outlast-the-bound"),
    ],
)
async def test_conflict_on_patch_rereads_and_retries_a_bounded_number_of_times(
    kube: KubeEmulator, cluster: KubernetesCluster, races: int, outcome: str
) -> None:
    kube.add_workload("llm", replicas=1)
    kube.race(races)  # another writer updates the Deployment just before each PATCH
    if outcome == "scaled":
        await cluster.scale(LLM, 3)
        assert kube.workload("llm")["spec"]["replicas"] == 3
        assert kube.count("patch", "deployments/scale") == races + 1
        assert kube.count("get", "deployments/scale") == races + 1
        # Each retry waits out the backoff first: the writes that raced ours settle.
        sent = [r.at for r in kube.requests if (r.verb, r.resource) == ("patch",
                "deployments/scale")]  # fmt: skip
        for attempt, (a, b) in enumerate(pairwise(sent)):
            assert b - a >= min(FAST.max_backoff_s, FAST.backoff_s * 2**attempt) / 2, sent
    else:
        with pytest.raises(ClusterConflict, match=r'deployments.apps "llm" .* kept changing'):
            await cluster.scale(LLM, 3)
        assert kube.workload("llm")["spec"]["replicas"] == 1


@pytest.mark.parametrize(
    ("target", "message"),
    [
        pytest.param(
            TargetRef(name="ghost"),
            'deployments.apps "ghost" not found in namespace default',
            id="deployment",
        ),
        pytest.param(
            TargetRef(kind="StatefulSet", namespace="gpu", name="ghost"),
            'statefulsets.apps "ghost" not found in namespace gpu',
            id="statefulset-other-namespace",
        ),
    ],
)
async def test_missing_target_is_target_not_found(
    kube: KubeEmulator, cluster: KubernetesCluster, target: TargetRef, message: str
) -> None:
    kube.add_workload("llm")
    with pytest.raises(TargetNotFound) as observed:
        await cluster.observe(target)
    assert str(observed.value) == message
    with pytest.raises(TargetNotFound, match=message):
        await cluster.scale(target, 2)
    assert kube.count("get", "deployments") + kube.count("get", "statefulsets") == 1  # no retry


@pytest.mark.parametrize(
    ("verb", "resource", "action"),
    [
        pytest.param("get", "deployments", "observe", id="get-deployments"),
        pytest.param("list", "pods", "observe", id="list-pods"),
        pytest.param("watch", "pods", "observe", id="watch-pods"),
        pytest.param("list", "deployments", "observe", id="list-deployments"),
        pytest.param("watch", "deployments", "observe", id="watch-deployments"),
        pytest.param("get", "deployments/scale", "scale", id="get-scale"),
        pytest.param("patch", "deployments/scale", "scale", id="patch-scale"),
    ],
)
async def test_missing_rbac_is_forbidden_naming_the_verb_and_resource(
    kube: KubeEmulator, cluster: KubernetesCluster, verb: str, resource: str, action: str
) -> None:
    kube.add_workload("llm", replicas=1)
    kube.forbid(verb, resource)
    if verb == "watch" or (verb, resource) == ("list", "deployments"):
        # The first observe has counts (the pods listed; the Deployment read with a GET);
        # the watch (or the Deployment list) fails after.
        assert await counts(cluster) == (1, 0, 1)
        informer = cluster._workloads[("Deployment", "default")] if resource == "deployments" \
            else cluster._pods["default"]  # fmt: skip
        await eventually(lambda: informer.stats.errors >= 1)
    with pytest.raises(ClusterForbidden) as raised:
        if action == "observe":
            await cluster.observe(LLM)
        else:
            await cluster.scale(LLM, 2)
    error = raised.value
    group = "" if resource == "pods" else "apps"
    assert (error.verb, error.resource, error.group) == (verb, resource, group)
    assert f"may not {verb} {resource}" in str(error)
    assert f"grant verb '{verb}' on '{resource}'" in str(error)
    assert kube.workload("llm")["spec"]["replicas"] == 1


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [
        pytest.param(("fail", 2, 500), "ok", id="two-500s-retried"),
        pytest.param(("fail", 2, 503), "ok", id="two-503s-retried"),
        pytest.param(("fail", 1, 429), "ok", id="429-retried"),
        pytest.param(("delay", 2, 1.0), "ok", id="two-timeouts-retried"),
        pytest.param(
            ("fail", 3, 500), "HTTP 500: injected failure (500)", id="500s-outlast-retries"
        ),
        pytest.param(("delay", 3, 1.0), "timed out after 0.5 s", id="timeouts-outlast-retries"),
    ],
)
async def test_server_errors_and_timeouts_are_retried_then_reported(
    kube: KubeEmulator, cluster: KubernetesCluster, fault: tuple[str, int, float], outcome: str
) -> None:
    kube.add_workload("llm", replicas=1, ready=True)
    how, n, value = fault
    if how == "fail":
        kube.fail(n, int(value), verb="get", resource="deployments")
    else:
        kube.delay(n, value, verb="get", resource="deployments")
    if outcome == "ok":
        assert await counts(cluster) == (1, 1, 0)
        assert kube.count("get", "deployments") == n + 1
    else:
        with pytest.raises(ClusterUnavailable) as raised:
            await cluster.observe(LLM)
        assert isinstance(raised.value, ClusterError)
        assert str(raised.value) == (
            f'get deployments.apps "llm" in namespace default failed after 3 attempts: {outcome}'
        )


async def test_pod_list_errors_back_off_and_recover(
    kube: KubeEmulator, cluster: KubernetesCluster
) -> None:
    kube.add_workload("llm", replicas=2, ready=True)
    kube.fail(4, 500, verb="list", resource="pods")  # more than one list call's retries
    assert await counts(cluster) == (2, 2, 0)
    stats = cluster.watch_stats(LLM)
    assert stats is not None and stats.errors == 1 and stats.lists == 1


async def test_realtime_emulator_pods_become_ready_on_the_wall_clock() -> None:
    """The mode end-to-end tests of the service use: no hand on the clock."""
    with KubeEmulator(cold_start_s=0.3, realtime=True) as kube:
        kube.add_workload("llm", replicas=2)
        adapter = KubernetesCluster(api_client(kube.url), retry=FAST)
        try:
            assert await counts(adapter) == (2, 0, 2)
            await eventually(lambda: _counts(adapter) == (2, 0))
        finally:
            await adapter.close()


async def test_unsynced_pods_fall_back_to_the_workload_status(kube: KubeEmulator) -> None:
    kube.add_workload("llm", replicas=3, ready=True)
    kube.fail(100, 503, verb="list", resource="pods")
    adapter = KubernetesCluster(api_client(kube.url), retry=FAST, sync_timeout_s=0.3)
    try:
        assert await counts(adapter) == (3, 3, 0)
    finally:
        await adapter.close()


@pytest.mark.parametrize(
    ("token", "ok"),
    [
        pytest.param("s3cret", True, id="right-token"),
        pytest.param("wrong", False, id="wrong-token"),
    ],
)
async def test_build_cluster_from_a_kubeconfig_file(tmp_path: Path, token: str, ok: bool) -> None:
    with KubeEmulator(token="s3cret") as kube:
        kube.add_workload("llm", replicas=2, ready=True)
        path = tmp_path / "kubeconfig"
        path.write_text(json.dumps(kube.kubeconfig(token=token)))  # JSON is YAML
        built = await build_cluster(Settings(kubeconfig=str(path), kube_request_timeout_s=2))
        assert built is not None
        try:
            if ok:
                assert await counts(built) == (2, 2, 0)
            else:
                with pytest.raises(ClusterError, match="unauthorized: the API server rejected"):
                    await built.observe(LLM)
        finally:
            await built.close()


async def test_build_cluster_without_configuration_is_none(tmp_path: Path) -> None:
    assert await build_cluster(Settings(kubeconfig=None, in_cluster=False)) is None
    with pytest.raises(ClusterError, match="cannot load the Kubernetes configuration"):
        await build_cluster(Settings(kubeconfig=str(tmp_path / "missing")))


def test_fast_retry_policy_is_what_the_messages_assume() -> None:
    assert (FAST.attempts, FAST.timeout_s) == (3, 0.5)
