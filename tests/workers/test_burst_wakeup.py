"""Burst wake-up: a pushed sample over an emergency trigger's threshold wakes the reconcile loop
at once (its interval here is 30 s), and a held trigger is re-checked the moment its duration
elapses, not at the next interval.

The service runs on a fake clock: time moves only when a test moves it, so "at once" is "at the
push's instant" and "the moment" is "exactly the trigger's duration later", on any machine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.clock import SystemClock
from app.kube.cluster import DeploymentState, RecordingCluster
from app.kube.simulated import SimulatedCluster
from app.policy import parse_spec
from app.policy.spec import TargetRef
from app.policy.types import ScalerState
from app.services.wakeup import Wakeup
from app.settings import Settings
from app.store import scalers as scaler_store
from app.store.db import Database
from app.store.series import SampleRow, SeriesKey
from app.workers.reconciler import reconcile_once
from testkit.clock import FakeClock
from tests.conftest import app_in_process, truncate_all

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


INTERVAL_S = 30.0  # the loop's own pace: a burst must not wait for it
RECONCILER = "reconciler"  # the loop's task, as the supervisor names it


@dataclass
class Service:
    """The service in process on a fake clock: its HTTP API, its state, and the clock."""

    app: FastAPI
    http: httpx.AsyncClient
    clock: FakeClock

    async def status(self) -> dict[str, Any]:
        response = await self.http.get("/v1/scalers/llm")
        found: dict[str, Any] = response.json()["status"]
        return found

    async def codes(self) -> set[str]:
        decision = (await self.status())["last_decision"] or {}
        return {r["code"] for r in decision.get("reasons", [])}

    async def decided_at(self) -> datetime | None:
        at = (await self.status())["last_decision_at"]
        return None if at is None else datetime.fromisoformat(at)

    async def push(self, samples: list[dict[str, Any]]) -> None:
        response = await self.http.post("/v1/samples", json={"samples": samples})
        assert response.status_code == 200, response.text

    async def advance(self, seconds: float) -> None:
        """Move time on; when that reaches the loop's deadline, until it has reconciled and
        waits again."""
        mark = self.clock.mark()
        due = self.clock.waiting(RECONCILER)
        self.clock.advance(seconds)
        if due is not None and due <= self.clock.monotonic():
            await self.clock.waiting_again(RECONCILER, since=mark)

    def woken(self) -> bool:
        return bool(self.app.state.ctx.wakeup.event.is_set())


@asynccontextmanager
async def service(database_url: str, interval_s: float) -> AsyncIterator[Service]:
    await truncate_all(database_url)
    clock = FakeClock()
    settings = Settings(
        database_url=database_url, reconcile_interval_s=interval_s, leader_interval_s=0.1
    )
    cluster = SimulatedCluster(clock, initial_replicas=1, cold_start_s=(0.2, 0.3))
    async with app_in_process(settings, clock=clock, cluster=cluster) as (app, http):
        # The loop's first pass, at start, is over: the next is an interval away.
        await clock.waiting_again(RECONCILER, since=0)
        yield Service(app, http, clock)


def instant(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC)


def queue_of(value: float, pods: int = 1) -> list[dict[str, Any]]:
    return [
        {"metric": "request_queue", "labels": {"pod": f"p{i}"}, "value": value} for i in range(pods)
    ]


@pytest.mark.parametrize(
    ("duration", "held_s"),
    [
        pytest.param("0s", 0.0, id="immediate-trigger-acts-at-the-push"),
        pytest.param("1s", 1.0, id="held-1s-acts-the-moment-it-has-been-held"),
    ],
)
async def test_a_burst_is_acted_on_at_once_not_at_the_next_interval(
    database_url: str, duration: str, held_s: float
) -> None:
    async with service(database_url, INTERVAL_S) as svc:
        assert (await svc.http.post("/v1/scalers", json=spec(duration))).status_code == 201
        # Below the threshold nothing wakes the loop: the scaler is not reconciled.
        await svc.push(queue_of(10))
        assert not svc.woken()
        assert await svc.decided_at() is None

        pushed_at, mark = svc.clock.now(), svc.clock.mark()
        await svc.push(queue_of(100))
        assert svc.woken()
        deadline = await svc.clock.waiting_again(RECONCILER, since=mark)
        assert await svc.decided_at() == instant(pushed_at)  # no time has passed
        if held_s:
            # Over the threshold, not yet for its duration: the loop sleeps until it will be,
            # not for its interval.
            assert "emergency.armed" in await svc.codes()
            assert deadline == svc.clock.monotonic() + held_s
            await svc.advance(held_s / 2)
            assert await svc.decided_at() == instant(pushed_at)  # not woken early
            await svc.advance(held_s / 2)
        assert "emergency.start" in await svc.codes()
        assert await svc.decided_at() == instant(pushed_at + held_s)
        actions = await svc.http.get("/v1/scalers/llm/events", params={"kind": "action"})
        [action, *_] = actions.json()["events"]
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


@pytest.mark.parametrize(
    ("aggregation", "bursts"),
    [
        # 4 pods x 20 waiting: 80 in all > 50
        pytest.param("sum", True, id="total-queue-bursts"),
        # the brief's trigger as written: the per-pod average, 20, is under 50
        pytest.param(None, False, id="per-pod-average-does-not"),
    ],
)
async def test_per_pod_pushes_burst_a_trigger_on_the_total_queue(
    database_url: str, aggregation: str | None, bursts: bool
) -> None:
    """No single pod's sample is over the threshold, so no push wakes the loop: the total is
    seen on the next interval's pass, and the held trigger's timer fires it a second later."""
    interval_s = 0.5
    async with service(database_url, interval_s) as svc:
        doc = spec("1s")
        if aggregation is not None:
            doc["emergency"]["triggers"][0]["aggregation"] = aggregation
        assert (await svc.http.post("/v1/scalers", json=doc)).status_code == 201
        pushed_at = svc.clock.now()
        await svc.push(queue_of(20.0, pods=4))
        assert not svc.woken()
        await svc.advance(interval_s)  # the next pass reads the pods' samples together
        armed = "emergency.armed" in await svc.codes()
        assert armed is bursts
        await svc.advance(interval_s)
        assert "emergency.start" not in await svc.codes()  # held 0.5 s of its 1 s
        await svc.advance(interval_s)
        assert ("emergency.start" in await svc.codes()) is bursts
        assert await svc.decided_at() == instant(pushed_at + 3 * interval_s)
        reasons = (await svc.status())["last_decision"]["reasons"]
        [emergency] = [r for r in reasons if r["code"].startswith("emergency.")]
        if bursts:
            assert emergency["values"]["request_queue.sum"] == 80.0
            actions = await svc.http.get("/v1/scalers/llm/events", params={"kind": "action"})
            [action, *_] = actions.json()["events"]
            assert action["replicas"] >= 3  # 1 x burst_multiplier 3
        else:
            assert emergency["code"] == "emergency.idle"
            assert emergency["values"]["request_queue.avg"] == 20.0
