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
from app.kube.simulated import SimulatedCluster
from app.main import create_app
from app.policy.spec import TargetRef
from app.settings import Settings
from tests.conftest import LiveServer, start_server, truncate_all

BRIEF: dict[str, Any] = yaml.safe_load(
    (Path(__file__).parent / "policy" / "brief.yaml").read_text()
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
    doc = {**BRIEF, "schedule": [], "preheat": {"enabled": False}, **changes}
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
    # Load for about 2 replicas: after the rollout the policy takes the surge back.
    push(url, gpu_utilization=40.0, request_queue=1.0)
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
