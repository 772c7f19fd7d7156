"""Fractional plans: the share of CPU and memory (never the GPU), and the plan rounded up where
the cluster cannot resize (no subresource before Kubernetes 1.33, which the emulator plays).
The resize itself, through a real API server's validation: tests/e2e/test_resize.py."""

from __future__ import annotations

from typing import Any

import pytest

from app.kube.adapter import KubernetesCluster
from app.kube.resources import parse_quantity, partial_resources, scale_quantity
from app.policy.spec import TargetRef
from testkit.kube_emulator import KubeEmulator

TARGET = TargetRef(name="llm")
RESOURCES = {
    "requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
    "limits": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"},
}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("1500m", "1.5", id="millicores"),
        pytest.param("2", "2", id="cores"),
        pytest.param("16Gi", str(16 * 2**30), id="gibibytes"),
        pytest.param("1e3", "1000", id="exponent"),
        pytest.param("500M", "500000000", id="megabytes"),
    ],
)
def test_quantities(text: str, value: str) -> None:
    assert parse_quantity(text) == parse_quantity(value)


def test_bad_quantity() -> None:
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        parse_quantity("lots")


def test_a_share_of_cpu_and_memory_rounds_up_and_leaves_the_gpu() -> None:
    template: dict[str, Any] = {"spec": {"containers": [{"name": "model", "resources": RESOURCES}]}}
    [patch] = partial_resources(template, 0.7)
    assert patch == {
        "name": "model",
        "resources": {
            "requests": {"cpu": "2800m", "memory": str(-(-16 * 2**30 * 7 // 10))},
            "limits": {"cpu": "5600m", "memory": str(-(-32 * 2**30 * 7 // 10))},
        },
    }
    assert scale_quantity("cpu", "1", 0.0001) == "1m"  # never zero


async def test_without_the_resize_subresource_the_plan_is_rounded_up(
    kube: KubeEmulator, cluster: KubernetesCluster
) -> None:
    kube.resize_supported = False
    kube.add_workload("llm", replicas=2, ready=True, resources=RESOURCES)
    await cluster.observe(TARGET)
    note = await cluster.resize_partial(TARGET, 0.7)
    assert note is not None and "pods/resize" in note and "runs whole" in note


async def test_a_template_without_cpu_or_memory_has_nothing_to_share(
    kube: KubeEmulator, cluster: KubernetesCluster
) -> None:
    kube.add_workload("llm", replicas=2, ready=True)
    await cluster.observe(TARGET)
    note = await cluster.resize_partial(TARGET, 0.7)
    assert note is not None and "no CPU or memory" in note
    assert kube.resizes == []
