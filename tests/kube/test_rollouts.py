"""A rollout end to end through kubernetes-asyncio: the service (configured by a kubeconfig,
leading through a Lease) surges, patches and follows a Deployment of the API emulator, whose
controller rolls pods over to the new template after their cold start."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.settings import Settings
from app.store.migrate import upgrade
from testkit.kube_emulator import KubeEmulator
from tests.conftest import LiveServer, start_server


@pytest.fixture
def realtime_kube() -> Iterator[KubeEmulator]:
    with KubeEmulator(cold_start_s=0.3, realtime=True) as emulator:
        yield emulator


@pytest.fixture
def service(realtime_kube: KubeEmulator, tmp_path: Path) -> Iterator[LiveServer]:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps(realtime_kube.kubeconfig()))
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/ciuic.db",
        kubeconfig=str(kubeconfig),
        rollout_poll_s=0.05,
        reconcile_interval_s=30,
        lease_retry_period_s=0.1,
        lease_renew_deadline_s=0.5,
        lease_duration_s=1.0,
        kube_request_timeout_s=2.0,
    )
    asyncio.run(upgrade(settings.database_url))
    live = start_server(settings)
    yield live
    live.stop()


def wait_finished(url: str, rollout: int, timeout_s: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        body: dict[str, Any] = httpx.get(f"{url}/v1/rollouts/{rollout}").json()
        if body["status"] in ("succeeded", "failed", "cancelled"):
            return body
        assert time.monotonic() < deadline, json.dumps(body["steps"], indent=1)
        time.sleep(0.05)


def test_a_rollout_through_the_kubernetes_api(
    realtime_kube: KubeEmulator, service: LiveServer
) -> None:
    kube, url = realtime_kube, service.url
    kube.add_workload("llm", replicas=2, ready=True)
    spec = {
        "name": "llm",
        "target": "llm",
        "metrics": [{"name": "gpu_utilization", "target": "85%"}],
    }
    assert httpx.post(f"{url}/v1/scalers", json=spec).status_code == 201
    samples = [
        {"metric": "gpu_utilization", "labels": {"pod": f"p{i}"}, "value": 40.0} for i in range(2)
    ]
    assert httpx.post(f"{url}/v1/samples", json={"samples": samples}).status_code == 200
    r = httpx.post(
        f"{url}/v1/scalers/llm/rollouts",
        json={"image": "deepseek:7b-v2", "surge_percent": 50, "stabilize_s": 0.2},
    )
    assert r.status_code == 201, r.text
    body = wait_finished(url, r.json()["id"])
    assert body["status"] == "succeeded", body
    steps = {s["name"]: s for s in body["steps"]}
    assert (steps["surge"]["details"]["from"], steps["surge"]["details"]["to"]) == (2, 3)
    assert steps["surge"]["duration_s"] >= 0.25  # the surge pod's cold start
    follow = steps["follow"]["details"]
    assert follow["observed_generation"] >= follow["generation"]
    assert follow["updated"] == follow["available"] == follow["replicas"] == 3
    assert all(s["started_at"] and s["ended_at"] for s in body["steps"])
    # The Deployment runs the new image on every pod, and the surge was given back.
    workload = kube.workload("llm")
    assert workload["spec"]["template"]["spec"]["containers"][0]["image"] == "deepseek:7b-v2"
    assert workload["spec"]["replicas"] == 2
    pods = kube.pods(selector="app=llm")
    assert len(pods) == 2
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"deepseek:7b-v2"}
    # What went over the wire: the scale subresource for the surge and the release, one
    # strategic merge patch of the template.
    patches = [r for r in kube.requests if (r.verb, r.resource) == ("patch", "deployments")]
    assert len(patches) == 1
    assert patches[0].content_type.startswith("application/strategic-merge-patch+json")
    assert kube.count("patch", "deployments/scale") == 2  # 2 -> 3, then 3 -> 2


def test_cancel_restores_the_template_through_the_api(
    realtime_kube: KubeEmulator, service: LiveServer
) -> None:
    kube, url = realtime_kube, service.url
    kube.add_workload("llm", replicas=1, ready=True)
    original = kube.workload("llm")["spec"]["template"]
    spec = {"name": "llm", "target": "llm", "metrics": [{"name": "gpu_utilization", "target": 85}]}
    assert httpx.post(f"{url}/v1/scalers", json=spec).status_code == 201
    r = httpx.post(
        f"{url}/v1/scalers/llm/rollouts",
        json={
            "template_patch": {"metadata": {"annotations": {"release": "v2"}}},
            "stabilize_s": 60,
        },
    )
    rollout = r.json()["id"]
    deadline = time.monotonic() + 20
    while httpx.get(f"{url}/v1/rollouts/{rollout}").json()["step"] != "stabilize":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert kube.workload("llm")["spec"]["template"]["metadata"]["annotations"] == {"release": "v2"}
    assert httpx.post(f"{url}/v1/rollouts/{rollout}/cancel").status_code == 202
    body = wait_finished(url, rollout)
    assert body["status"] == "cancelled"
    assert kube.workload("llm")["spec"]["template"] == original
    merge = [
        r
        for r in kube.requests
        if (r.verb, r.resource) == ("patch", "deployments")
        and r.content_type.startswith("application/merge-patch+json")
    ]
    assert len(merge) == 1  # the rollback: a merge patch of the difference


def test_without_the_rollouts_grant_the_rollout_fails_and_says_what_to_grant(
    realtime_kube: KubeEmulator, service: LiveServer
) -> None:
    kube, url = realtime_kube, service.url
    kube.add_workload("llm", replicas=1, ready=True)
    kube.forbid("patch", "deployments")
    spec = {"name": "llm", "target": "llm", "metrics": [{"name": "gpu_utilization", "target": 85}]}
    assert httpx.post(f"{url}/v1/scalers", json=spec).status_code == 201
    r = httpx.post(f"{url}/v1/scalers/llm/rollouts", json={"image": "v2", "stabilize_s": 0})
    body = wait_finished(url, r.json()["id"])
    assert body["status"] == "failed"
    assert "may not patch deployments" in body["error"]
    steps = [(s["name"], s["status"]) for s in body["steps"]]
    assert steps[:2] == [("surge", "done"), ("patch", "failed")]
    assert steps[-2:] == [("rollback", "done"), ("release", "done")]
    assert kube.workload("llm")["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "deepseek:7b"
    )
