"""Fault: clocks that disagree with the server's, in pushed timestamps.

- JSON samples further ahead than CIUIC_MAX_FUTURE_SKEW_S (300 s) are refused with a 422
  naming the sample, and nothing of the push is stored; a little ahead or behind is accepted.
- A pod whose clock runs fast: its samples are moved back so the newest is at the time of
  receipt (spacing kept). The reconciler sees them at once, and sees them go stale once the pod
  falls silent, not `skew` seconds later.
- A pod whose clock runs slow looks like late data: its samples age from their own time, so
  behind by more than `fallback.stale_after` they read as stale. The policy then holds (never
  a scale-down) and the reason says "stale": the safe side, and visible.
- Pushgateway pushes carry no timestamps (a timestamp is refused, as by the Pushgateway): they
  are stored at the time of receipt.
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
from app.store import scalers as store
from app.store.db import Database
from app.workers.reconciler import reconcile_once
from testkit.clock import FakeClock
from tests.conftest import LiveServer

NAME = "skewed"
SPEC: dict[str, Any] = {
    "target": NAME,
    "scaler": "reactive",
    "metrics": [{"name": "gpu_utilization", "target": "85%", "window": "10m"}],
    "min_replicas": 1,
    "max_replicas": 10,
}


def push(server: LiveServer, *samples: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/samples", json={"samples": list(samples)})


def points(server: LiveServer, metric: str, start: float, end: float) -> list[list[float]]:
    response = httpx.get(
        f"{server.url}/v1/query_range",
        params={"query": metric, "start": start, "end": end, "step": "1", "agg": "max"},
    )
    assert response.status_code == 200, response.text
    return [p for s in response.json()["series"] for p in s["points"]]


@pytest.mark.parametrize(
    ("ahead_s", "accepted"),
    [
        pytest.param(-3600, True, id="an-hour-behind"),
        pytest.param(-100, True, id="behind"),
        pytest.param(100, True, id="a-little-ahead"),
        pytest.param(290, True, id="just-within-the-skew"),
        pytest.param(310, False, id="just-beyond-the-skew"),
        pytest.param(86_400, False, id="a-day-ahead"),
    ],
)
def test_timestamps_ahead_beyond_the_skew_are_refused_and_nothing_stored(
    server: LiveServer, ahead_s: float, accepted: bool
) -> None:
    now = time.time()
    good = {"metric": "skew_probe", "labels": {"pod": "ok"}, "value": 1.0}
    skewed = {**good, "labels": {"pod": "skewed"}, "timestamp": now + ahead_s}
    response = push(server, good, skewed)
    if accepted:
        assert response.status_code == 200, response.text
        assert len(points(server, "skew_probe", now - 7200, now + 600)) == 2
        return
    assert response.status_code == 422, response.text
    [problem] = response.json()["error"]["details"]
    assert problem["field"] == "samples.1.timestamp"
    assert "more than CIUIC_MAX_FUTURE_SKEW_S (300 s) in the future" in problem["message"]
    assert httpx.get(f"{server.url}/v1/series", params={"match": "skew_probe"}).json() == {
        "series": []
    }


def test_a_fast_clock_is_taken_back_to_the_time_of_receipt(server: LiveServer) -> None:
    before = time.time()
    pod = {"metric": "fast_clock", "labels": {"pod": "p0"}}
    response = push(
        server,
        {**pod, "value": 1.0, "timestamp": before + 110},
        {**pod, "value": 2.0, "timestamp": before + 120},
        {"metric": "fast_clock", "labels": {"pod": "p1"}, "value": 3.0, "timestamp": before - 5},
    )
    after = time.time()
    assert response.status_code == 200, response.text
    stored = {v: t for t, v in points(server, "fast_clock", before - 60, after + 300)}
    assert before - 1 <= stored[2.0] <= after + 1  # the newest at the time of receipt
    assert stored[2.0] - stored[1.0] == pytest.approx(10, abs=1)  # spacing kept
    assert stored[3.0] == pytest.approx(before - 5, abs=1)  # the other pod as sent


def test_pushgateway_samples_are_stamped_on_receipt(server: LiveServer) -> None:
    before = time.time()
    response = httpx.put(f"{server.url}/metrics/job/m/pod/p0", content=b"pgw_probe 7\n")
    after = time.time()
    assert response.status_code == 200, response.text
    [(ts, value)] = points(server, "pgw_probe", before - 60, after + 60)
    assert value == 7 and before - 1 <= ts <= after + 1
    refused = httpx.put(f"{server.url}/metrics/job/m/pod/p0", content=b"pgw_probe 8 123\n")
    assert refused.status_code == 400


@pytest.fixture
async def db(server: LiveServer) -> AsyncIterator[Database]:
    database = Database(server.settings.database_url)
    async with database.transaction() as conn:
        await store.upsert_scaler(conn, NAME, SPEC, now_us=0)
    yield database
    await database.dispose()


async def reconcile(db: Database, at: float) -> tuple[int, store.StoredScaler]:
    cluster = RecordingCluster(initial_replicas=2)
    await reconcile_once(db, cluster, FakeClock(at))
    async with db.read() as conn:
        scaler = await store.get_scaler(conn, NAME)
    assert scaler is not None and scaler.last_decision is not None
    return (await cluster.observe(TargetRef(name=NAME))).replicas, scaler


def reactive(scaler: store.StoredScaler) -> dict[str, Any]:
    reason: dict[str, Any] = scaler.last_decision["reasons"][0]  # type: ignore[index]
    return reason


async def test_a_pod_with_a_fast_clock_is_seen_at_once_and_goes_stale_on_time(
    server: LiveServer, db: Database
) -> None:
    """Two pods 120 s ahead push 2x their target once, then fall silent."""
    now = time.time()
    samples = [
        {"metric": "gpu_utilization", "labels": {"pod": f"p{i}"}, "value": 170.0,
         "timestamp": now + 120}
        for i in (0, 1)
    ]  # fmt: skip
    assert push(server, *samples).status_code == 200
    replicas, scaler = await reconcile(db, time.time())
    assert replicas == 4, reactive(scaler)  # seen at once (stored as sent: invisible for 120 s)
    replicas, scaler = await reconcile(db, now + 90)
    assert replicas == 2  # silent for 90 s > stale_after 60 s: hold (RecordingCluster at 2)
    assert reactive(scaler)["code"] == Code.REACTIVE_FALLBACK_HOLD
    assert "gpu_utilization: stale" in reactive(scaler)["message"]


async def test_a_pod_with_a_slow_clock_reads_as_stale_and_the_policy_holds(
    server: LiveServer, db: Database
) -> None:
    now = time.time()
    samples = [
        {"metric": "gpu_utilization", "labels": {"pod": f"p{i}"}, "value": 10.0,
         "timestamp": now - 120}
        for i in (0, 1)
    ]  # fmt: skip
    assert push(server, *samples).status_code == 200
    replicas, scaler = await reconcile(db, now)
    assert replicas == 2  # idle-looking but 120 s old: no scale-down on it
    assert reactive(scaler)["code"] == Code.REACTIVE_FALLBACK_HOLD
    assert "gpu_utilization: stale (120s old > 60s)" in reactive(scaler)["message"]
