"""Two `ciuic serve` processes, one PostgreSQL, one real Lease: leader election, and a rolling
update with its surge plan on the real Deployment controller, across a SIGKILL of the leader.

Measured on the API server's own objects, watched by the test: the Lease's holder, the
Deployment's spec.replicas as each write lands, the ReplicaSets the controller makes for each
template, and every pod (Ready, being deleted, of which ReplicaSet).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import truncate_all
from tests.e2e.controlplane import (
    Admin,
    ControlPlane,
    Recorder,
    deployment,
    kubeconfig,
    pod_ready,
    wait_until,
)
from tests.e2e.serve import Serve, events, push, rollout, serve_env

NAME = "llm"
LEASE_S, RETRY_S = 2.0, 0.2
FREE = {"stabilizationWindowSeconds": 0,
        "policies": [{"type": "Pods", "value": 100, "periodSeconds": 1}]}  # fmt: skip


@pytest.fixture
def replicas(
    control_plane: ControlPlane, namespace: str, pg_url: str, tmp_path: Path
) -> Iterator[Callable[[str], Serve]]:
    """Starts `ciuic serve` processes sharing a fresh PostgreSQL database and a Lease in the
    test's namespace (the admin's kubeconfig: RBAC is test_rbac.py's subject)."""
    asyncio.run(truncate_all(pg_url))
    config = tmp_path / "admin.kubeconfig"
    config.write_text(
        kubeconfig(control_plane.server, control_plane.admin_token, control_plane.ca_pem)
    )
    env = serve_env(
        kubeconfig=config,
        namespace=namespace,
        database_url=pg_url,
        lease_duration_s=LEASE_S,
        lease_renew_deadline_s=1.5,
        lease_retry_period_s=RETRY_S,
    )
    made: list[Serve] = []

    def start(identity: str) -> Serve:
        made.append(Serve(identity, env, tmp_path / f"{identity}.log"))
        return made[-1]

    yield start
    for replica in made:
        replica.stop()


def spec(namespace: str) -> dict[str, Any]:
    """Need = total queue / 5 pods, exactly; no stabilisation: each decision is applied."""
    return {
        "name": NAME,
        "target": {"kind": "Deployment", "namespace": namespace, "name": NAME},
        "scaler": "reactive",
        "metrics": [{"name": "request_queue", "target": "<5", "aggregation": "sum"}],
        "min_replicas": 1,
        "max_replicas": 8,
        "behavior": {"scaleUp": FREE, "scaleDown": FREE},
        # each decision on its own reading: the stable window and its hold on scale-down
        # have their own tests (tests/policy/test_windows.py)
        "reactive": {"window": "1s"},
    }


def holder(admin: Admin, namespace: str) -> str | None:
    lease = admin.find("Lease", namespace, "ciuic-leader") or {}
    found: str | None = lease.get("spec", {}).get("holderIdentity")
    return found


def leads(replica: Serve) -> bool:
    """What the replica says of itself (a dead one leads nothing)."""
    try:
        return bool(replica.readyz()["leader"])
    except httpx.HTTPError:
        return False


class LeaderSampler:
    """Who says they lead, every 20 ms, from a thread: any overlap shows."""

    def __init__(self, *replicas: Serve) -> None:
        self.replicas = replicas
        self.samples: list[tuple[float, list[str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            now = [r.identity for r in self.replicas if leads(r)]
            self.samples.append((time.monotonic(), now))

    def stop(self) -> list[tuple[float, list[str]]]:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.samples


def replicas_written(recorded: Recorder) -> list[int]:
    """The Deployment's spec.replicas, each value once, in the order the writes landed."""
    out: list[int] = []
    for _, _, obj in recorded.events:
        replicas = obj["spec"]["replicas"]
        if not out or out[-1] != replicas:
            out.append(replicas)
    return out


def test_one_of_two_processes_leads_and_the_other_takes_over_after_a_sigkill(
    admin: Admin, namespace: str, replicas: Callable[[str], Serve]
) -> None:
    """Protects leader election on a real Lease: one process leads and acts, the other only
    serves the API; after a SIGKILL (no release) the other takes over once the lease expires,
    within the lease duration and a retry or two; never two leaders; every scaling decision
    applied once, by whoever led."""
    admin.create(deployment(NAME, namespace, replicas=1, ready_s=0.3))
    a = replicas("ciuic-a")
    wait_until(lambda: holder(admin, namespace) == "ciuic-a", 10, "ciuic-a leads")
    b = replicas("ciuic-b")
    sampler = LeaderSampler(a, b)
    wait_until(lambda: b.readyz()["leader"] is False and leads(a), 5, "b follows")

    assert httpx.post(f"{b.url}/v1/scalers", json=spec(namespace)).status_code == 201
    push(b.url, "request_queue", 3 * 5)  # any replica takes pushes; the leader acts
    wait_until(lambda: admin.get("Deployment", namespace, NAME)["spec"]["replicas"] == 3, 10,
               "the leader scaled to 3")  # fmt: skip
    # The kill must land after the first action is recorded too: a SIGKILL between the scale
    # and its transaction's commit loses that event (the one window where history can lag
    # the cluster; the next leader reads the cluster, so only the record is lost).
    wait_until(lambda: len(events(b.url, NAME, "action")) == 1, 10, "the action recorded")

    renewed = admin.get("Lease", namespace, "ciuic-leader")["spec"]["renewTime"]
    wait_until(  # kill right after a renewal, so the takeover time is the whole lease
        lambda: admin.get("Lease", namespace, "ciuic-leader")["spec"]["renewTime"] != renewed,
        5,
        "a renewal",
    )
    killed = time.monotonic()
    a.kill()  # SIGKILL: no release, no goodbye
    wait_until(lambda: leads(b), 3 * LEASE_S, "ciuic-b takes over")
    took = time.monotonic() - killed
    assert holder(admin, namespace) == "ciuic-b"
    assert LEASE_S - 2 * RETRY_S <= took <= LEASE_S + 3 * RETRY_S + 1.0, took  # +1 s: CI

    push(b.url, "request_queue", 5 * 5)
    wait_until(lambda: admin.get("Deployment", namespace, NAME)["spec"]["replicas"] == 5, 10,
               "the new leader scaled to 5")  # fmt: skip
    samples = sampler.stop()
    assert all(len(who) <= 1 for _, who in samples), "two leaders at once"
    leaders = [who for _, who in samples if who]
    assert (leaders[0], leaders[-1]) == (["ciuic-a"], ["ciuic-b"])
    lease = admin.get("Lease", namespace, "ciuic-leader")["spec"]
    assert (lease["holderIdentity"], lease["leaseTransitions"]) == ("ciuic-b", 1)
    # Each decision applied once: two actions, two spec writes (generation 1 is the create).
    assert [e["message"] for e in events(b.url, NAME, "action")] == [
        f"scaled {NAME} from 1 to 3",
        f"scaled {NAME} from 3 to 5",
    ], f"ciuic-a's log:\n{a.tail()}\nciuic-b's log:\n{b.tail()}"
    assert admin.get("Deployment", namespace, NAME)["metadata"]["generation"] == 3

    # The killed process comes back: for a whole lease duration and more it follows; the
    # Lease and the Deployment are not touched by it.
    back = replicas("ciuic-a")
    watching = LeaderSampler(back, b)
    wait_until(lambda: len(watching.samples) and time.monotonic() - watching.samples[0][0]
               > LEASE_S + 2 * RETRY_S, 3 * LEASE_S, "a lease duration watched")  # fmt: skip
    assert {tuple(who) for _, who in watching.stop()} == {("ciuic-b",)}
    lease = admin.get("Lease", namespace, "ciuic-leader")["spec"]
    assert (lease["holderIdentity"], lease["leaseTransitions"]) == ("ciuic-b", 1)
    assert admin.get("Deployment", namespace, NAME)["metadata"]["generation"] == 3


def pod_counts(pods: dict[str, dict[str, Any]]) -> tuple[int, int]:
    """(Ready pods serving, pods not being deleted)."""
    live = [p for p in pods.values() if not p["metadata"].get("deletionTimestamp")]
    return len([p for p in live if pod_ready(p)]), len(live)


def test_a_rollout_surges_on_real_replicasets_and_resumes_after_the_leader_is_killed(
    admin: Admin, namespace: str, replicas: Callable[[str], Serve]
) -> None:
    """Protects the surge plan on the real Deployment controller: Ciuic surges 2 -> 3 and
    waits for 3 Ready pods of the old template, patches the template once, and the controller
    rolls 3 pods over without ever serving with fewer than 3 Ready; the leader is SIGKILLed
    mid-rollout and the other process resumes the plan (no second surge, no second patch);
    in the end the old ReplicaSet is drained and the policy's count (2) runs the new image."""
    admin.create(deployment(NAME, namespace, replicas=2, ready_s=0.5, grace_s=1))
    wait_until(lambda: len([p for p in admin.pods(namespace, f"app={NAME}") if pod_ready(p)])
               == 2, 20, "2 pods Ready")  # fmt: skip
    a = replicas("ciuic-a")
    wait_until(lambda: holder(admin, namespace) == "ciuic-a", 10, "ciuic-a leads")
    b = replicas("ciuic-b")
    assert httpx.post(f"{a.url}/v1/scalers", json=spec(namespace)).status_code == 201
    push(a.url, "request_queue", 2 * 5)  # the policy wants 2: the surge is given back after

    with admin.watch("Deployment", namespace) as deployments, \
            admin.watch("Pod", namespace) as pods_seen:  # fmt: skip
        created = httpx.post(f"{a.url}/v1/scalers/{NAME}/rollouts",
                             json={"image": "deepseek:7b-v2", "surge_percent": 50,
                                   "stabilize_s": 0.5})  # fmt: skip
        assert created.status_code == 201, created.text
        rid = created.json()["id"]
        wait_until(lambda: rollout(b.url, rid)["step"] == "follow", 20, "the template patched")
        a.kill()  # mid-rollout: ciuic-b must resume from the recorded step
        killed = time.monotonic()
        body = wait_until(
            lambda: (r := rollout(b.url, rid))["status"] in ("succeeded", "failed") and r,
            30,
            "the rollout finished",
        )
        wait_until(lambda: _drained(admin, namespace), 10, "the old pods gone")
    assert body["status"] == "succeeded", body
    assert holder(admin, namespace) == "ciuic-b"
    ended = {s["name"]: s for s in body["steps"]}
    assert (ended["surge"]["details"]["from"], ended["surge"]["details"]["to"]) == (2, 3)

    # The ReplicaSets: one per template (patched once), the old one drained, the new one at
    # the policy's count, every pod on the new image.
    sets = admin.items("ReplicaSet", namespace, f"app={NAME}")
    by_revision = {
        int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]): rs for rs in sets
    }
    assert sorted(by_revision) == [1, 2]
    old, new = by_revision[1], by_revision[2]
    image = lambda rs: rs["spec"]["template"]["spec"]["containers"][0]["image"]  # noqa: E731
    assert (image(old), image(new)) == ("deepseek:7b", "deepseek:7b-v2")
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (0, 2)
    final = admin.pods(namespace, f"app={NAME}")
    assert len(final) == 2 and all(pod_ready(p) for p in final)
    assert {p["spec"]["containers"][0]["image"] for p in final} == {"deepseek:7b-v2"}

    # spec.replicas as the writes landed: the surge once, given back once (by the resumed
    # plan's release), nothing repeated after the kill.
    assert replicas_written(deployments) == [2, 3, 2]

    # The surge plan, pod by pod: from the surge on, never fewer than 3 Ready pods serving
    # until the release gives the surge back; at most 4 pods (3 + maxSurge 1) at once.
    state: dict[str, dict[str, Any]] = {}
    surged = released = None
    floor, peak = 99, 0
    release_at = _given_back(deployments)
    for t, kind, pod in pods_seen.events:
        name = pod["metadata"]["name"]
        if kind == "DELETED":
            state.pop(name, None)
        else:
            state[name] = pod
        ready, live = pod_counts(state)
        if surged is None and ready == 3:
            surged = t
        if surged is not None and released is None:
            if t >= release_at:
                released = t
            else:
                floor, peak = min(floor, ready), max(peak, live)
    assert surged is not None and surged < killed
    assert floor == 3, floor
    assert peak == 4, peak


def _drained(admin: Admin, namespace: str) -> bool:
    """Only the new template's pods left, none being deleted."""
    pods = admin.pods(namespace, f"app={NAME}")
    images = {p["spec"]["containers"][0]["image"] for p in pods}
    return len(pods) == 2 and images == {"deepseek:7b-v2"}


def _given_back(deployments: Recorder) -> float:
    """When the Deployment's replicas came back from the surge (3) to 2."""
    surged = False
    for t, _, obj in deployments.events:
        replicas = obj["spec"]["replicas"]
        surged = surged or replicas == 3
        if surged and replicas == 2:
            return t
    raise AssertionError("the surge was never given back")
