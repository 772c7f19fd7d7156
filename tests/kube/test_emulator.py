"""The emulator answers like an API server, as seen by the bare kubernetes-asyncio client (so
the adapter's tests rest on API semantics, not on the emulator's quirks)."""

from __future__ import annotations

import json

import pytest
from kubernetes_asyncio import client, watch

from testkit.kube_emulator import KubeEmulator, Selector
from tests.kube.conftest import api_client


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        pytest.param("app=llm", {"app": "llm"}, True, id="equality"),
        pytest.param("app==llm,tier!=gpu", {"app": "llm", "tier": "cpu"}, True, id="and"),
        pytest.param("tier in (gpu, tpu)", {"tier": "cpu"}, False, id="in"),
        pytest.param("tier notin (gpu)", {}, True, id="notin-absent"),
        pytest.param("app,!canary", {"app": "x", "canary": "1"}, False, id="exists-not"),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], matches: bool) -> None:
    assert Selector(selector).matches(labels) is matches


async def test_replace_scale_with_a_stale_resource_version_is_409(kube: KubeEmulator) -> None:
    kube.add_workload("llm", replicas=1)
    async with api_client(kube.url) as api:
        apps = client.AppsV1Api(api)
        scale = await apps.read_namespaced_deployment_scale("llm", "default")
        kube.touch("deployments", "llm")
        scale.spec.replicas = 3
        with pytest.raises(client.ApiException) as raised:
            await apps.replace_namespaced_deployment_scale("llm", "default", scale)
        status = json.loads(raised.value.body)
        assert (raised.value.status, status["kind"], status["reason"]) == (
            409,
            "Status",
            "Conflict",
        )
        fresh = await apps.read_namespaced_deployment_scale("llm", "default")
        fresh.spec.replicas = 3
        done = await apps.replace_namespaced_deployment_scale("llm", "default", fresh)
        assert done.spec.replicas == 3 and int(done.metadata.resource_version) > int(
            fresh.metadata.resource_version
        )
    assert len(kube.pods()) == 3


async def test_watch_from_a_compacted_version_gets_410_expired(kube: KubeEmulator) -> None:
    kube.add_workload("llm", replicas=1)
    async with api_client(kube.url) as api:
        core = client.CoreV1Api(api)
        listed = await core.list_namespaced_pod("default", label_selector="app=llm")
        kube.set_replicas("llm", 2)
        kube.compact()
        with pytest.raises(client.ApiException) as raised:
            async with watch.Watch() as w:
                async for _ in w.stream(
                    core.list_namespaced_pod,
                    "default",
                    resource_version=listed.metadata.resource_version,
                    timeout_seconds=1,
                ):
                    pass
        assert raised.value.status == 410 and "Expired" in raised.value.reason


async def test_errors_are_status_objects(kube: KubeEmulator) -> None:
    kube.forbid("get", "deployments")
    async with api_client(kube.url) as api:
        apps = client.AppsV1Api(api)
        with pytest.raises(client.ApiException) as raised:
            await apps.read_namespaced_deployment("llm", "default")
    status = json.loads(raised.value.body)
    assert status["code"] == 403 and status["reason"] == "Forbidden"
    assert 'cannot get resource "deployments" in API group "apps"' in status["message"]


async def test_leases_create_once_and_replace_with_preconditions(kube: KubeEmulator) -> None:
    body = {
        "metadata": {"name": "l"},
        "spec": {"holderIdentity": "a", "renewTime": "2027-01-15T08:00:00.000000Z"},
    }
    async with api_client(kube.url) as api:
        coordination = client.CoordinationV1Api(api)
        created = await coordination.create_namespaced_lease("ns", body)
        with pytest.raises(client.ApiException) as again:
            await coordination.create_namespaced_lease("ns", body)
        assert again.value.status == 409
        stale = {**body, "metadata": {"name": "l", "resourceVersion": "1"}}
        with pytest.raises(client.ApiException) as conflict:
            await coordination.replace_namespaced_lease("l", "ns", stale)
        assert conflict.value.status == 409
        sloppy = {
            "metadata": {"name": "l", "resourceVersion": created.metadata.resource_version},
            "spec": {"renewTime": "2027-01-15T08:00:00Z"},  # MicroTime needs its six digits
        }
        with pytest.raises(client.ApiException) as invalid:
            await coordination.replace_namespaced_lease("l", "ns", sloppy)
        assert invalid.value.status == 400
