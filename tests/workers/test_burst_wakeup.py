"""Burst wake-up: a pushed sample over an emergency trigger's threshold wakes the reconcile loop
at once (its interval here is 30 s), and a held trigger is re-checked the moment its duration
elapses, not at the next interval."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.clock import SystemClock
from app.kube.cluster import DeploymentState, RecordingCluster
from app.kube.simulated import SimulatedCluster
from app.main import create_app
from app.policy import parse_spec
from app.policy.spec import TargetRef
from app.policy.types import ScalerState
from app.settings import Settings
from app.store import scalers as scaler_store
from app.store.db import Database
from app.store.series import SampleRow, SeriesKey
from app.workers.reconciler import reconcile_once
from app.workers.wakeup import Wakeup
from tests.conftest import LiveServer, start_server, truncate_all

TARGET = TargetRef(name="llm")


def spec(duration: str = "0s", threshold: float = 50, **changes: Any) -> dict[str, Any]:
    return {
        "name": "llm",
        "target": "llm",
        "metrics": [
            {"name": "gpu_utilization", "target": "85%"},
            {"name": "request_queue", "target": "<5"},
        ],
        "emergency": {
            "enabled": True,
            "burst_multiplier": 3.0,
            "triggers": [{"metric": "request_queue", "threshold": threshold, "duration": duration}],
        },
        **changes,
    }


def row(metric: str, value: float) -> SampleRow:
    return SampleRow(SeriesKey.of(metric, {"pod": "p0"}), 0, value)


def test_the_index_wakes_only_for_a_sample_over_a_threshold() -> None:
    wakeup = Wakeup()
    assert not wakeup.check([row("request_queue", 1e9)])  # no trigger anywhere: no work
    wakeup.update("a", parse_spec(spec(threshold=50) | {"name": "a"}))
    wakeup.update("b", parse_spec(spec(threshold=80) | {"name": "b"}))
    assert not wakeup.check([row("gpu_utilization", 99), row("request_queue", 50)])
    assert not wakeup.event.is_set()
    assert wakeup.check([row("request_queue", 60)])
    assert wakeup.event.is_set() and wakeup.take(0) == {"a"}
    assert not wakeup.event.is_set()
    assert wakeup.check([row("request_queue", 81)]) and wakeup.take(0) == {"a", "b"}
    wakeup.update("a", None)  # deleted or paused
    wakeup.retain({"b"})
    assert wakeup.check([row("request_queue", 81)]) and wakeup.take(0) == {"b"}


def test_a_held_trigger_schedules_a_wake_when_its_duration_elapses() -> None:
    wakeup = Wakeup()
    parsed = parse_spec(spec(duration="30s"))
    wakeup.update("llm", parsed)
    wakeup.schedule("llm", parsed, ScalerState(trigger_since={"0:request_queue": 100.0}), 110.0)
    assert wakeup.next_due() == 130.0
    assert wakeup.take(129.9) == set()
    assert wakeup.take(130.0) == {"llm"} and wakeup.next_due() is None
    # Not held (or already bursting): nothing to schedule.
    wakeup.schedule("llm", parsed, ScalerState(), 110.0)
    assert wakeup.next_due() is None


@pytest.fixture
def live(database_url: str) -> Iterator[LiveServer]:
    asyncio.run(truncate_all(database_url))
    settings = Settings(database_url=database_url, reconcile_interval_s=30, leader_interval_s=0.1)
    cluster = SimulatedCluster(SystemClock(), initial_replicas=1, cold_start_s=(0.2, 0.3))
    server = start_server(settings, create_app(settings, cluster=cluster))
    yield server
    server.stop()


def status(url: str) -> dict[str, Any]:
    found: dict[str, Any] = httpx.get(f"{url}/v1/scalers/llm").json()["status"]
    return found


def bursting(url: str) -> bool:
    decision = status(url)["last_decision"] or {}
    codes = {r["code"] for r in decision.get("reasons", [])}
    return bool(codes & {"emergency.start", "emergency.active"})


def push_queue(url: str, queue: float) -> float:
    samples = [{"metric": "request_queue", "labels": {"pod": "p0"}, "value": queue}]
    assert httpx.post(f"{url}/v1/samples", json={"samples": samples}).status_code == 200
    return time.monotonic()


@pytest.mark.parametrize(
    ("duration", "low", "high"),
    [
        pytest.param("0s", 0.0, 0.8, id="immediate-trigger"),
        pytest.param("1s", 0.95, 1.8, id="held-1s"),
    ],
)
def test_a_burst_is_acted_on_within_a_second(
    live: LiveServer, duration: str, low: float, high: float
) -> None:
    url = live.url
    assert httpx.post(f"{url}/v1/scalers", json=spec(duration)).status_code == 201
    time.sleep(0.3)  # the loop's first pass (at start) is over; the next is 30 s away
    # Below the threshold nothing wakes the loop: the scaler is not reconciled.
    push_queue(url, 10)
    time.sleep(0.5)
    assert status(url)["last_decision_at"] is None
    pushed = push_queue(url, 100)
    while not bursting(url):
        assert time.monotonic() - pushed < 5, status(url)
        time.sleep(0.01)
    took = time.monotonic() - pushed
    assert low <= took < high, took
    [action, *_] = httpx.get(f"{url}/v1/scalers/llm/events", params={"kind": "action"}).json()[
        "events"
    ]
    assert action["message"].startswith("scaled llm from ")
    assert action["replicas"] >= 3  # at least the burst: 1 x burst_multiplier 3


class OrderCluster(RecordingCluster):
    """Records the order targets are observed in; observing `a` wakes the loop for `c`."""

    def __init__(self, wakeup: Wakeup) -> None:
        super().__init__(initial_replicas=1)
        self.wakeup = wakeup
        self.order: list[str] = []

    async def observe(self, target: TargetRef) -> DeploymentState:
        self.order.append(target.name)
        if target.name == "a":
            self.wakeup.wake("c")
        return await super().observe(target)


async def test_a_burst_goes_ahead_of_the_rest_of_a_long_pass(database_url: str) -> None:
    await truncate_all(database_url)
    db = Database(database_url)
    try:
        async with db.transaction() as conn:
            for name in ("a", "b", "c"):
                doc = spec() | {"name": name, "target": name}
                await scaler_store.upsert_scaler(conn, name, doc, now_us=0)
        wakeup = Wakeup()
        cluster = OrderCluster(wakeup)
        done = await reconcile_once(db, cluster, SystemClock(), wakeup=wakeup, chunk=1)
        assert cluster.order == ["a", "c", "b"]  # c was woken while a was decided
        assert done == 3
    finally:
        await db.dispose()


def test_a_sample_wakes_only_the_scalers_its_labels_select() -> None:
    wakeup = Wakeup()
    for name, selector in (("a", {"app": "a"}), ("b", {"app": "b", "zone": "z1"}), ("c", {})):
        doc = spec(threshold=50) | {"name": name}
        doc["metrics"] = [{"name": "request_queue", "target": "<5", "selector": selector}]
        wakeup.update(name, parse_spec(doc))

    def labelled(**labels: str) -> SampleRow:
        return SampleRow(SeriesKey.of("request_queue", labels), 0, 100.0)

    assert wakeup.check([labelled(app="a", pod="p0")]) and wakeup.take(0) == {"a", "c"}
    assert wakeup.check([labelled(app="b", zone="z2")]) and wakeup.take(0) == {"c"}
    assert wakeup.check([labelled(app="b", zone="z1")]) and wakeup.take(0) == {"b", "c"}


@pytest.fixture
def live_fast(database_url: str) -> Iterator[LiveServer]:
    """The service reconciling every 0.5 s (the default is 5 s), so a test need not wait."""
    asyncio.run(truncate_all(database_url))
    settings = Settings(database_url=database_url, reconcile_interval_s=0.5, leader_interval_s=0.1)
    cluster = SimulatedCluster(SystemClock(), initial_replicas=1, cold_start_s=(0.2, 0.3))
    server = start_server(settings, create_app(settings, cluster=cluster))
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("aggregation", "bursts"),
    [
        # 4 pods x 20 waiting: 80 in all > 50
        pytest.param("sum", True, id="total-queue-bursts"),
        # the brief's trigger as written: the per-pod average, 20, is under 50
        pytest.param(None, False, id="per-pod-average-does-not"),
    ],
)
def test_per_pod_pushes_burst_a_trigger_on_the_total_queue(
    live_fast: LiveServer, aggregation: str | None, bursts: bool
) -> None:
    """No single pod's sample is over the threshold, so no push wakes the loop: the total is
    seen on the next reconcile (every interval), and the held trigger's timer fires it."""
    url = live_fast.url
    doc = spec("1s")
    if aggregation is not None:
        doc["emergency"]["triggers"][0]["aggregation"] = aggregation
    assert httpx.post(f"{url}/v1/scalers", json=doc).status_code == 201
    samples = [
        {"metric": "request_queue", "labels": {"pod": f"p{i}"}, "value": 20.0} for i in range(4)
    ]
    pushed = time.monotonic()
    while time.monotonic() - pushed < 4:
        assert httpx.post(f"{url}/v1/samples", json={"samples": samples}).status_code == 200
        if bursting(url):
            break
        time.sleep(0.2)
    assert bursting(url) is bursts, status(url)
    reasons = status(url)["last_decision"]["reasons"]
    [emergency] = [r for r in reasons if r["code"].startswith("emergency.")]
    if bursts:
        assert emergency["values"]["request_queue.sum"] == 80.0
        [action, *_] = httpx.get(f"{url}/v1/scalers/llm/events", params={"kind": "action"}).json()[
            "events"
        ]
        assert action["replicas"] >= 3  # 1 x burst_multiplier 3
    else:
        assert emergency["code"] == "emergency.idle"
        assert emergency["values"]["request_queue.avg"] == 20.0
