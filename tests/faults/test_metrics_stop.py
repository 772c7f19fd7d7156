"""Faults: metrics stop arriving; an operator pauses a scaler. Through the API and the
reconciler (with the recording cluster), on both backends.

- Pods push a load that asks for 4 pods, then fall silent. The reconciler holds 4: first
  because the readings are stale (older than `fallback.stale_after`, still in the window),
  then because there are none in the window at all. Never a scale to `min_replicas`.
- A paused scaler makes no scaling action while its metrics change (up, then down); resumed,
  the next pass acts on the metrics as they are then.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.kube.cluster import RecordingCluster
from app.policy import Code
from app.policy.spec import TargetRef
from app.store.db import Database
from app.workers.reconciler import reconcile_once
from testkit.clock import FakeClock
from tests.conftest import LiveServer

NAME = "llm"
SPEC: dict[str, Any] = {
    "name": NAME,
    "target": NAME,
    "scaler": "reactive",
    "metrics": [{"name": "gpu_utilization", "target": "85%", "window": "5m"}],
    "min_replicas": 1,
    "max_replicas": 10,
    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
}


@pytest.fixture
async def db(server: LiveServer) -> AsyncIterator[Database]:
    assert api(server, "POST", "/v1/scalers", json=SPEC).status_code == 201
    database = Database(server.settings.database_url)
    yield database
    await database.dispose()


def api(server: LiveServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request to the service (served by its own thread: blocking here is fine)."""
    return httpx.request(method, f"{server.url}{path}", **kwargs)


def push(server: LiveServer, gpu: float, pods: int = 2) -> None:
    samples = [
        {"metric": "gpu_utilization", "labels": {"pod": f"p{i}"}, "value": gpu} for i in range(pods)
    ]
    assert httpx.post(f"{server.url}/v1/samples", json={"samples": samples}).status_code == 200


async def tick(db: Database, cluster: RecordingCluster, at: float) -> int:
    await reconcile_once(db, cluster, FakeClock(at))
    return (await cluster.observe(TargetRef(name=NAME))).replicas


def reactive(server: LiveServer) -> dict[str, Any]:
    status = httpx.get(f"{server.url}/v1/scalers/{NAME}").json()["status"]
    reason: dict[str, Any] = status["last_decision"]["reasons"][0]
    return reason


async def test_silence_holds_the_count_and_says_the_metrics_are_stale(
    server: LiveServer, db: Database
) -> None:
    cluster = RecordingCluster(initial_replicas=2)
    push(server, 170.0)  # two pods at twice their target
    now = time.time()
    assert await tick(db, cluster, now) == 4
    # The pods stop pushing. 90 s later the readings are stale (> 60 s), still in the window.
    assert await tick(db, cluster, now + 90) == 4
    reason = reactive(server)
    assert reason["code"] == Code.REACTIVE_FALLBACK_HOLD
    assert "gpu_utilization: stale (90s old > 60s)" in reason["message"]
    # An hour of silence: nothing in the window at all. Still 4, never min_replicas (1).
    for minutes in (6, 30, 60):
        assert await tick(db, cluster, now + 60 * minutes) == 4
    reason = reactive(server)
    assert reason["code"] == Code.REACTIVE_FALLBACK_HOLD
    assert "gpu_utilization: no data" in reason["message"]


async def test_a_paused_scaler_makes_no_action_while_metrics_change_and_acts_once_resumed(
    server: LiveServer, db: Database
) -> None:
    cluster = RecordingCluster(initial_replicas=2)
    paused = api(server, "POST", f"/v1/scalers/{NAME}/pause")
    assert paused.status_code == 200 and paused.json()["status"]["paused"] is True
    push(server, 170.0)  # asks for 4
    assert await tick(db, cluster, time.time()) == 2
    push(server, 10.0)  # asks for 1
    assert await tick(db, cluster, time.time()) == 2
    assert cluster.replicas == {}  # not one scale call while paused

    resumed = api(server, "POST", f"/v1/scalers/{NAME}/resume")
    assert resumed.status_code == 200 and resumed.json()["status"]["paused"] is False
    push(server, 170.0)
    assert await tick(db, cluster, time.time()) == 4
    events = api(server, "GET", f"/v1/scalers/{NAME}/events").json()["events"]
    assert [e["kind"] for e in events if e["kind"] == "action"] == ["action"]
    assert [e["message"].split(":")[0] for e in events if e["kind"] != "decision"] == [
        f"scaled {NAME} from 2 to 4",
        "resumed",
        "paused",
        "created",
    ]
