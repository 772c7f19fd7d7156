"""Scale-down on the real ReplicaSet controller: the idle pods are the ones that go.

Left to itself the controller deletes the youngest pods first. Ciuic marks each pod with a
`controller.kubernetes.io/pod-deletion-cost` from its pushed load just before the scale, so
here, where the two youngest pods are the busy ones, only those marks can save them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from app.policy.deletion import DELETION_COST
from tests.conftest import LiveServer
from tests.e2e.controlplane import Admin, deployment, pod_ready, wait_until
from tests.e2e.test_scaling import NAME, events, push_queue, spec


def serving(admin: Admin, namespace: str) -> list[dict[str, Any]]:
    """The pods not being deleted (a deleted pod stays Ready until KWOK removes it)."""
    return [
        p
        for p in admin.pods(namespace, f"app={NAME}")
        if pod_ready(p) and not p["metadata"].get("deletionTimestamp")
    ]


def test_a_scale_down_deletes_the_idle_pods_and_keeps_the_busy_ones(
    admin: Admin, namespace: str, service: Callable[..., LiveServer]
) -> None:
    """Protects in-flight requests on scale-down: 4 pods, the 2 youngest busy (a queue of 5
    each) and the 2 oldest idle; the total asks for 2 pods, and the 2 idle ones are deleted."""
    admin.create(deployment(NAME, namespace, replicas=2, ready_s=0.2))
    wait_until(lambda: len(serving(admin, namespace)) == 2, 20, "the 2 old pods Ready")
    old = {p["metadata"]["name"] for p in serving(admin, namespace)}
    time.sleep(2.5)  # the young pods a few seconds younger: the controller would take them
    admin.patch("Deployment", namespace, NAME, {"spec": {"replicas": 4}})
    wait_until(lambda: len(serving(admin, namespace)) == 4, 20, "4 pods Ready")
    young = {p["metadata"]["name"] for p in serving(admin, namespace)} - old

    live = service()
    assert httpx.post(f"{live.url}/v1/scalers", json=spec(namespace)).status_code == 201

    def pushed_and_scaled() -> bool:
        for pod in old:
            push_queue(live, pod, 0.0)
        for pod in young:
            push_queue(live, pod, 5.0)  # busy: 10 in all asks for 2 pods
        return bool(admin.get("Deployment", namespace, NAME)["spec"]["replicas"] == 2)

    wait_until(pushed_and_scaled, 20, "the Deployment scaled to 2", interval_s=0.3)
    assert [e["message"] for e in events(live, "action")] == [f"scaled {NAME} from 4 to 2"]

    def two_left() -> list[dict[str, Any]] | None:
        pods = serving(admin, namespace)
        return pods if len(pods) == 2 else None

    left = wait_until(two_left, 20, "the ReplicaSet down to 2 pods")
    assert {p["metadata"]["name"] for p in left} == young
    # the busy pods carry the cost of their load (a queue of 5)
    assert {p["metadata"]["annotations"][DELETION_COST] for p in left} == {"5000"}
    assert not [e for e in events(live, "error")]


def test_a_pod_no_node_can_take_is_capacity_not_coming_and_blocks_no_scale_down(
    admin: Admin, namespace: str, service: Callable[..., LiveServer]
) -> None:
    """Protects the scale-down from a pod that will never run: 3 replicas of 8 GPUs on two
    8-GPU nodes, so one pod stays Pending (unschedulable). Past the 2 s cold start the
    decision says it is not coming, and the load's ask for 1 pod is applied: the Pending pod
    goes first, then one Ready pod."""
    gpus = {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "8"}
    admin.create(
        deployment(NAME, namespace, replicas=3, ready_s=0.2,
                   resources={"requests": gpus, "limits": gpus})
    )  # fmt: skip

    def unschedulable(p: dict[str, Any]) -> bool:
        return any(
            c["type"] == "PodScheduled" and c["status"] == "False"
            for c in p["status"].get("conditions", [])
        )

    wait_until(
        lambda: (
            len(serving(admin, namespace)) == 2
            and len([p for p in admin.pods(namespace, f"app={NAME}") if unschedulable(p)]) == 1
        ),
        20,
        "2 pods Ready, 1 Pending with no node",
    )
    live = service()
    body = spec(namespace, cold_start="2s")
    assert httpx.post(f"{live.url}/v1/scalers", json=body).status_code == 201
    [busy, *_] = [p["metadata"]["name"] for p in serving(admin, namespace)]

    def stuck_seen() -> bool:
        push_queue(live, busy, 15.0)  # asks for the 3 there are: nothing to do yet
        last = httpx.get(f"{live.url}/v1/scalers/{NAME}").json()["status"]["last_decision"]
        return bool(last) and "Pending with no node" in last["reasons"][0]["message"]

    # Once the service's pod cache has listed the Pending pod and it is past the cold start
    # (on a loaded machine the first decisions may come before either)
    wait_until(stuck_seen, 20, "a decision that sees the Pending pod", interval_s=0.3)

    def pushed_and_scaled() -> bool:
        push_queue(live, busy, 5.0)  # asks for 1 pod
        return bool(admin.get("Deployment", namespace, NAME)["spec"]["replicas"] == 1)

    wait_until(pushed_and_scaled, 20, "the Deployment scaled to 1", interval_s=0.3)
    [action] = events(live, "action")
    assert action["message"] == f"scaled {NAME} from 3 to 1"
    reactive = action["payload"]["reasons"][0]
    assert "1 pod Pending with no node" in reactive["message"], reactive
    assert reactive["values"]["stuck_pods"] == 1.0
    wait_until(
        lambda: [p for p in admin.pods(namespace, f"app={NAME}")
                 if not p["metadata"].get("deletionTimestamp")] == serving(admin, namespace)
        and len(serving(admin, namespace)) == 1,
        20,
        "1 Ready pod left, the Pending one gone",
    )  # fmt: skip
