"""Simulation jobs are bounded per replica and never left running by a replica that is gone.

A replica takes at most CIUIC_MAX_PENDING_SIMULATIONS jobs queued or running (each holds its
trace in memory): one more is a 429 that creates nothing. Every job's owner refreshes its
heartbeat while it runs; any replica fails the jobs whose heartbeat is older than
CIUIC_SIMULATION_LOST_AFTER_S, at start-up and every heartbeat after, and never the jobs of a
replica that is alive.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from app.services.jobs import LOST, SimulationJobs
from app.settings import Settings
from app.store.db import Database
from app.store.tables import audit_log, simulations
from testkit.clock import FakeClock
from tests.api.test_simulations import count_trace
from tests.conftest import LiveServer, start_server, truncate_all

# Replicas that beat four times a second and give a silent owner two seconds: the rules at a
# pace a test can watch. Servers started with them are stopped after each test, so their quick
# sweep never meets the default replicas of other tests (which beat every 10 s).
FAST = {"simulation_heartbeat_s": 0.25, "simulation_lost_after_s": 2.0}


@pytest.fixture
def replicas(database_url: str) -> Iterator[Callable[..., LiveServer]]:
    """Start replicas of the service on one clean database; all stopped after the test."""
    asyncio.run(truncate_all(database_url))
    started: list[LiveServer] = []

    def start(**overrides: Any) -> LiveServer:
        settings = Settings(database_url=database_url, run_workers=False, **{**FAST, **overrides})
        started.append(start_server(settings))
        return started[-1]

    yield start
    for live in started:
        live.stop()


def simulate(server: LiveServer, *policies: str) -> httpx.Response:
    """A two-day trace: a second or more per policy in the worker process."""
    return httpx.post(
        f"{server.url}/v1/simulations",
        content=count_trace(2),
        headers={"Content-Type": "text/csv"},
        params=[("policy", p) for p in policies or ("hpa",)],
    )


def job(server: LiveServer, job_id: str) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/v1/simulations/{job_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_until(server: LiveServer, job_id: str, done: Callable[[dict[str, Any]], bool]) -> Any:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        body = job(server, job_id)
        if done(body):
            return body
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never got there: {body}")


def finished(body: dict[str, Any]) -> bool:
    return body["status"] in ("done", "failed")


def count_rows(url: str, table: sa.Table) -> int:
    async def count() -> int:
        db = Database(url)
        try:
            async with db.read() as conn:
                return int(await conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)
        finally:
            await db.dispose()

    return asyncio.run(count())


def insert_jobs(url: str, rows: list[dict[str, Any]]) -> None:
    async def insert() -> None:
        db = Database(url)
        try:
            async with db.transaction() as conn:
                await conn.execute(sa.insert(simulations), rows)
        finally:
            await db.dispose()

    asyncio.run(insert())


def a_job(job_id: str, status: str, **values: Any) -> dict[str, Any]:
    return {
        "id": job_id,
        "kind": "simulate",
        "scaler": None,
        "status": status,
        "request": "{}",
        "result": None,
        "error": None,
        "created_us": values.get("heartbeat_us") or values.get("created_us") or 0,
        "finished_us": None,
        "owner": None,
        "heartbeat_us": None,
        **values,
    }


# --- the limit -------------------------------------------------------------------------------


def test_a_replica_takes_at_most_its_limit_of_jobs_and_a_finished_job_frees_its_slot(
    replicas: Callable[..., LiveServer],
) -> None:
    server = replicas(max_pending_simulations=2)
    url = server.settings.database_url
    first, second = simulate(server), simulate(server)
    assert (first.status_code, second.status_code) == (202, 202), (first.text, second.text)

    # Both still queued or running (the worker process is only starting): a third is refused,
    # and so is a tune (before its scaler is even looked up), with nothing created.
    for refused in (
        simulate(server),
        httpx.post(f"{server.url}/v1/scalers/nope/tune", json={}),
    ):
        assert refused.status_code == 429, refused.text
        assert refused.headers["retry-after"] == "10"
        assert refused.headers["content-type"] == "application/json"
        error = refused.json()["error"]
        assert error["code"] == "too_many_simulations"
        assert error["details"] == {"pending": 2, "limit": 2, "retry_after_s": 10}
        assert "CIUIC_MAX_PENDING_SIMULATIONS" in error["message"]
    assert count_rows(url, simulations) == 2
    assert count_rows(url, audit_log) == 2  # one simulation.run per accepted job, no more
    assert job(server, first.json()["id"])["status"] in ("pending", "running")

    # A job that finishes frees its slot: the one who reads the outcome can submit again.
    assert wait_until(server, first.json()["id"], finished)["status"] == "done"
    third = simulate(server)
    assert third.status_code == 202, third.text
    for accepted in (second, third):
        assert wait_until(server, accepted.json()["id"], finished)["status"] == "done"
    assert count_rows(url, simulations) == 3


def test_a_refused_request_gives_its_slot_back(replicas: Callable[..., LiveServer]) -> None:
    server = replicas(max_pending_simulations=1)
    for _ in range(3):  # refused for its content after taking the only slot
        bad = httpx.post(
            f"{server.url}/v1/simulations",
            content="not,a\ntrace,at all\n",
            headers={"Content-Type": "text/csv"},
        )
        assert bad.status_code == 422, bad.text
    good = simulate(server)
    assert good.status_code == 202, good.text
    assert wait_until(server, good.json()["id"], finished)["status"] == "done"


# --- lost jobs -------------------------------------------------------------------------------


class HeldPool(Executor):
    """A replica's job pool that holds every job until the test releases it, so that a job
    outlives the heartbeat bound by construction, however fast the machine runs it."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self._threads = ThreadPoolExecutor(max_workers=1)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        def held() -> Any:
            if not self.release.wait(timeout=120):
                raise TimeoutError("the test never released the job")
            return fn(*args, **kwargs)

        return self._threads.submit(held)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.release.set()
        self._threads.shutdown(wait=wait, cancel_futures=cancel_futures)


def test_a_restarted_replica_fails_the_jobs_of_a_dead_one_and_leaves_a_live_ones_alone(
    replicas: Callable[..., LiveServer],
) -> None:
    live = replicas()
    url = live.settings.database_url
    pool = HeldPool()
    live.app.state.ctx.simulations.pool = pool  # the live replica's jobs wait for the test
    running = simulate(live)
    assert running.status_code == 202, running.text
    now_us = time.time_ns() // 1000
    minute = 60_000_000
    insert_jobs(
        url,
        [
            # A replica that died ten minutes ago left these behind.
            a_job("dead-running", "running", owner="dead", heartbeat_us=now_us - 10 * minute),
            a_job("dead-pending", "pending", owner="dead", heartbeat_us=now_us - 10 * minute),
            # The version before owners and heartbeats: its creation time is all there is.
            a_job("before-0008", "running", created_us=now_us - 10 * minute),
            # A replica that beat a moment ago, then died.
            a_job("crashed-now", "running", owner="crashed", heartbeat_us=now_us),
            # Finished jobs are never touched, however old.
            a_job("done-long-ago", "done", owner="dead", heartbeat_us=now_us - 99 * minute),
        ],
    )
    before = time.time()
    restarted = replicas()
    after = time.time()

    # By the time the restarted replica answers (its start-up sweep, or the live replica's
    # latest: both apply the one rule), the jobs whose heartbeat is long gone are failed,
    # saying why and when.
    for job_id in ("dead-running", "dead-pending", "before-0008"):
        body = job(restarted, job_id)
        assert (body["status"], body["error"]) == ("failed", LOST), body
        assert before - 1 <= _epoch(body["finished_at"]) <= after + 1, body
    assert job(restarted, "done-long-ago")["status"] == "done"

    # A heartbeat that stops is noticed once it is older than the bound, by the sweeps after.
    failed = wait_until(restarted, "crashed-now", lambda b: b["status"] != "running")
    assert (failed["status"], failed["error"]) == ("failed", LOST)

    # The live replica's job, held open, runs on through the restarted replica's sweeps for
    # longer than the bound: its replica's heartbeat keeps it alive.
    bound = FAST["simulation_lost_after_s"] + FAST["simulation_heartbeat_s"]
    held = job(live, running.json()["id"])
    time.sleep(max(0.0, _epoch(held["created_at"]) + 2 * bound - time.time()))
    assert job(restarted, running.json()["id"])["status"] == "running"
    pool.release.set()
    body = wait_until(restarted, running.json()["id"], finished)
    assert (body["status"], body["error"]) == ("done", None)
    took = _epoch(body["finished_at"]) - _epoch(body["created_at"])
    assert took > 2 * bound, f"the job was released after only {took:.2f} s"


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


# The sweep's rule, row by row: a queued or running job is lost when its last heartbeat (or,
# before 0008, its creation) is older than the bound; finished jobs are never touched.
SWEEP = [
    pytest.param("running", 61, "failed", id="running-silent-61s"),
    pytest.param("pending", 61, "failed", id="queued-silent-61s"),
    pytest.param("running", 59, "running", id="running-beat-59s-ago"),
    pytest.param("pending", 0, "pending", id="queued-just-now"),
    pytest.param("running", None, "failed", id="no-heartbeat-created-61s-ago"),
    pytest.param("done", 3600, "done", id="done-stays-done"),
    pytest.param("failed", 3600, "failed", id="failed-stays-failed"),
]


@pytest.mark.parametrize(("status", "silent_s", "expected"), SWEEP)
async def test_the_sweep_fails_only_jobs_whose_heartbeat_is_older_than_the_bound(
    database_url: str, status: str, silent_s: int | None, expected: str
) -> None:
    await truncate_all(database_url)
    clock = FakeClock()
    stamp = clock.stamp_us() - (61 if silent_s is None else silent_s) * 1_000_000
    row = a_job("j", status, owner="other", heartbeat_us=None if silent_s is None else stamp)
    row["created_us"] = stamp
    db = Database(database_url)
    try:
        async with db.transaction() as conn:
            await conn.execute(sa.insert(simulations), [row])
        jobs = SimulationJobs(db, clock=clock, heartbeat_s=10, lost_after_s=60)
        assert await jobs.reap() == (1 if expected != status else 0)
        async with db.read() as conn:
            got = (await conn.execute(sa.select(simulations))).one()
    finally:
        await db.dispose()
    assert got.status == expected
    if expected != status:
        assert (got.error, got.finished_us) == (LOST, clock.stamp_us())


async def status_of(db: Database, job_id: str) -> str | None:
    async with db.read() as conn:
        found = await conn.scalar(sa.select(simulations.c.status).where(simulations.c.id == job_id))
    return None if found is None else str(found)


async def until_running(db: Database, job_id: str) -> None:
    for _ in range(3000):
        if await status_of(db, job_id) == "running":
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"job {job_id} never started")


async def test_an_owner_back_from_the_dead_does_not_overwrite_the_failure(
    database_url: str,
) -> None:
    """A replica that froze past the bound (a long pause, a partition) finds its job failed
    by another: the late result is dropped, and the slot is free again."""
    await truncate_all(database_url)
    clock = FakeClock()
    db = Database(database_url)
    owner = SimulationJobs(db, clock=clock, max_pending=1, lost_after_s=60)
    other = SimulationJobs(db, clock=clock, lost_after_s=60)
    try:
        async with db.transaction() as conn:
            row = a_job("j", "pending", owner=owner.owner, heartbeat_us=clock.stamp_us())
            await conn.execute(sa.insert(simulations), [row])
        with owner.reserve() as slot:
            slot.submit("j", time.sleep, 1.0)  # any picklable callable runs in the worker
        assert owner.pending == 1
        await until_running(db, "j")
        clock.t += 30
        await owner.beat()  # alive: the other replica's sweep leaves the job alone
        clock.t += 45
        assert await other.reap() == 0
        clock.t += 30  # the owner froze: 75 s without a beat
        assert await other.reap() == 1
        await owner.wait()
        assert owner.pending == 0
        async with db.read() as conn:
            got = (await conn.execute(sa.select(simulations))).one()
        assert (got.status, got.error, got.result) == ("failed", LOST, None)
    finally:
        await owner.close()
        await db.dispose()
