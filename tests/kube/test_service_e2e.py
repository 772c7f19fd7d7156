"""End to end: the service, configured with a kubeconfig, takes the leader Lease in the emulator
and drives its Deployment through kubernetes-asyncio over real HTTP; cluster errors (404, 403)
land on the scaler's status with their clear messages, and nothing is charged for them."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.settings import Settings
from testkit.kube_emulator import KubeEmulator
from tests.conftest import LiveServer, start_server, truncate_all

BRIEF: dict[str, Any] = yaml.safe_load(
    (Path(__file__).parents[1] / "policy" / "brief.yaml").read_text()
)


@pytest.fixture
def service(kube: KubeEmulator, sqlite_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    asyncio.run(truncate_all(sqlite_url))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps(kube.kubeconfig()))
    settings = Settings(
        database_url=sqlite_url,
        run_workers=True,
        kubeconfig=str(kubeconfig),
        namespace="ciuic",
        leader_identity="ciuic-0",
        reconcile_interval_s=0.1,
        lease_duration_s=1.0,
        lease_renew_deadline_s=0.6,
        lease_retry_period_s=0.1,
        kube_request_timeout_s=2.0,
    )
    live = start_server(settings)
    yield live
    live.stop()


def wait_for(check: Callable[[], object], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(0.05)


def add_scaler(service: LiveServer, name: str, target: str) -> None:
    spec = {
        **BRIEF,
        "name": name,
        "target": target,
        "schedule": [],
        "preheat": {"enabled": False},
    }
    response = httpx.post(f"{service.url}/v1/scalers", json=spec)
    assert response.status_code == 201, response.text


def push_load(service: LiveServer) -> None:
    body = "gpu_utilization 170\nrequest_queue 10\n"
    response = httpx.put(f"{service.url}/metrics/job/m/pod/p0", content=body)
    assert response.status_code == 200, response.text


def status(service: LiveServer, name: str) -> dict[str, Any]:
    found: dict[str, Any] = httpx.get(f"{service.url}/v1/scalers/{name}").json()["status"]
    return found


def test_the_leader_scales_the_deployment_and_errors_reach_the_status(
    kube: KubeEmulator, service: LiveServer
) -> None:
    kube.add_workload("deepseek-service", replicas=1, ready=True)
    # The service took the Lease in its namespace, under its identity.
    wait_for(
        lambda: (
            (kube.lease("ciuic-leader", namespace="ciuic") or {})
            .get("spec", {})
            .get("holderIdentity")
            == "ciuic-0"
        )
    )

    # A target that does not exist: the 404, worded like kubectl, on the status.
    add_scaler(service, "ghost", "ghost")
    wait_for(lambda: status(service, "ghost")["last_error"])
    assert (
        'deployments.apps "ghost" not found in namespace default'
        in status(service, "ghost")["last_error"]
    )

    # RBAC lacks patch on deployments/scale: the status names what to grant; nothing changed.
    kube.forbid("patch", "deployments/scale")
    add_scaler(service, "deepseek", "deepseek-service")
    push_load(service)
    wait_for(lambda: status(service, "deepseek")["last_error"])
    error = status(service, "deepseek")["last_error"]
    assert "may not patch deployments/scale" in error and "grant verb 'patch'" in error
    assert kube.workload("deepseek-service")["spec"]["replicas"] == 1

    # Granted: the next reconcile scales up through the scale subresource.
    kube.allow("patch", "deployments/scale")
    push_load(service)
    wait_for(lambda: kube.workload("deepseek-service")["spec"]["replicas"] == 2)
    patches = [r for r in kube.requests if r.verb == "patch"]
    assert patches[-1].resource == "deployments/scale"
    assert patches[-1].content_type == "application/merge-patch+json"
