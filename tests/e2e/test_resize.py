"""Fractional pods on a real API server: the partial pod's `pods/NAME/resize` request passes
the API server's own validation (QoS class kept, GPU untouched) and is stored in the pod's
spec. KWOK does not actuate a resize (no kubelet does here), so the stored spec is what is
checked, not the pod's status.

Since Kubernetes 1.35 the API server accepts a resize only for a pod whose kubelet reports
its containers' resources in the status (its sign of in-place resize support); KWOK's pods
do not, so the test first shows that refusal, then plays such a kubelet.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from app.kube.adapter import KubernetesCluster
from app.kube.cluster import ClusterError
from app.kube.resources import parse_quantity
from app.policy.spec import TargetRef
from tests.e2e.controlplane import Admin, deployment, pod_ready, wait_until

NAME = "llm"
GIB = 2**30
WHOLE = {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"}  # requests = limits: Guaranteed


def pods(admin: Admin, namespace: str) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: p for p in admin.pods(namespace, f"app={NAME}")}


def resources(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = pod["spec"]["containers"][0]["resources"]
    return found


def amounts(section: dict[str, Any]) -> dict[str, float]:
    return {k: float(parse_quantity(v)) for k, v in section.items()}


def play_resize_capable_kubelet(admin: Admin, namespace: str, pod: dict[str, Any]) -> None:
    """What a kubelet with in-place resize writes: each container's resources in its status."""
    statuses = pod["status"]["containerStatuses"]
    for status, container in zip(statuses, pod["spec"]["containers"], strict=True):
        status["resources"] = container["resources"]
    admin.patch("Pod", namespace, pod["metadata"]["name"],
                {"status": {"containerStatuses": statuses}}, sub="status")  # fmt: skip


async def test_the_partial_pods_resize_is_accepted_and_stored_with_the_gpu_untouched(
    admin: Admin, namespace: str, adapter: Callable[..., Awaitable[KubernetesCluster]]
) -> None:
    """Protects fractional plans on a real cluster: the resize request our adapter sends is
    valid for the API server (a Guaranteed pod stays Guaranteed: requests and limits shrink
    together), lands on exactly one pod, leaves nvidia.com/gpu as it was, and is undone by
    putting the pod back to whole."""
    resources_ = {"requests": WHOLE, "limits": WHOLE}
    admin.create(deployment(NAME, namespace, replicas=3, ready_s=0.2, resources=resources_))
    wait_until(
        lambda: len([p for p in pods(admin, namespace).values() if pod_ready(p)]) == 3,
        20,
        "3 pods Ready",
    )
    cluster = await adapter()
    target = TargetRef(namespace=namespace, name=NAME)
    assert (await cluster.observe(target)).ready == 3

    # KWOK's kubelet does not report resources: the API server refuses, and says why.
    with pytest.raises(ClusterError, match="Pod running on node without support for resize"):
        await cluster.resize_partial(target, 0.7)
    assert all(resources(p)["requests"] == WHOLE for p in pods(admin, namespace).values())

    for pod in pods(admin, namespace).values():
        play_resize_capable_kubelet(admin, namespace, pod)
    assert await cluster.resize_partial(target, 0.7) is None  # applied

    now = pods(admin, namespace)
    resized = [n for n, p in now.items() if resources(p)["requests"] != WHOLE]
    assert len(resized) == 1, resized
    pod = now[resized[0]]
    for section in ("requests", "limits"):
        got = amounts(resources(pod)[section])
        assert got == {
            "cpu": 2.8,
            "memory": math.ceil(16 * GIB * 0.7),
            "nvidia.com/gpu": 1.0,  # a GPU is not shared out
        }, (section, got)
    assert pod["status"]["qosClass"] == "Guaranteed"
    # The adapter's pick: the youngest serving pod (by creation, then name).
    youngest = max(now.values(), key=lambda p: (p["metadata"]["creationTimestamp"],
                                                 p["metadata"]["name"]))  # fmt: skip
    assert resized == [youngest["metadata"]["name"]]

    assert await cluster.resize_partial(target, None) is None  # whole again
    assert all(resources(p) == resources_ for p in pods(admin, namespace).values())
