"""Leader election without a cluster: one leader at a time, and a new one when it dies."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.store.db import Database
from app.workers.leader import (
    AdvisoryLockElector,
    FileLockElector,
    Leadership,
    WorkerFactory,
    elector_for,
)
from app.workers.supervisor import Supervisor
from testkit.clock import FakeClock


@pytest.fixture
async def pg(pg_url: str) -> AsyncIterator[Database]:
    db = Database(pg_url)
    yield db
    await db.dispose()


async def test_advisory_lock_admits_one_leader_and_fails_over(pg: Database) -> None:
    first, second = AdvisoryLockElector(pg, key=4242), AdvisoryLockElector(pg, key=4242)
    assert await first.try_acquire()
    assert not await second.try_acquire()
    assert await first.still_leader()
    # The leader's connection dies (a crashed replica): the lock goes with it.
    async with pg.transaction() as conn:
        await conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks "
                "WHERE locktype = 'advisory' AND objid = 4242"
            )
        )
    assert not await first.still_leader()
    assert await second.try_acquire()
    await second.release()
    assert await first.try_acquire()
    await first.release()


async def test_file_lock_admits_one_leader(tmp_path: Path) -> None:
    path = str(tmp_path / "ciuic.db.leader")
    first, second = FileLockElector(path), FileLockElector(path)
    assert await first.try_acquire()
    assert not await second.try_acquire()
    await first.release()
    assert await second.try_acquire()
    await second.release()


async def test_elector_follows_the_backend(tmp_path: Path) -> None:
    lite = Database(f"sqlite+aiosqlite:///{tmp_path}/x.db")
    elector = elector_for(lite)
    assert isinstance(elector, FileLockElector) and elector.path == f"{tmp_path}/x.db.leader"
    await lite.dispose()


async def test_only_the_leader_runs_the_workers(tmp_path: Path) -> None:
    """On a fake clock: each Leadership acts at start and then every interval, and a test
    step is "until both have acted and wait again", never a sleep."""
    path = str(tmp_path / "db.leader")
    clock = FakeClock()
    runs: list[str] = []

    def crew(name: str) -> WorkerFactory:
        async def body(stop: asyncio.Event) -> None:
            runs.append(name)
            await clock.wait_for(stop, timeout_s=math.inf)

        return lambda: {f"work-{name}": body}

    a = Leadership(FileLockElector(path), crew("a"), interval_s=0.05, clock=clock)
    b = Leadership(FileLockElector(path), crew("b"), interval_s=0.05, clock=clock)
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    task_a = asyncio.create_task(a.run(stop_a), name="lead-a")
    await clock.waiting_again("work-a", since=0)  # a took the lock and started its crew
    mark = clock.mark()
    task_b = asyncio.create_task(b.run(stop_b), name="lead-b")
    await clock.waiting_again("lead-b", since=mark)  # b tried once
    for _ in range(3):  # and keeps trying, every interval, while a keeps leading
        assert (a.is_leader, b.is_leader) == (True, False)
        await clock.jump("lead-a", "lead-b")
    assert runs == ["a"]  # a's crew runs once: not restarted at each of a's checks
    stop_a.set()
    await task_a  # a steps down and releases the lock
    mark = clock.mark()
    await clock.jump("lead-b")  # b's next attempt
    await clock.waiting_again("work-b", since=mark)
    assert b.is_leader and runs == ["a", "b"]
    stop_b.set()
    await task_b


async def test_a_leader_cancelled_while_its_workers_stop_still_releases_the_lock(
    tmp_path: Path,
) -> None:
    """The service stops Leadership with a deadline (its Supervisor cancels what overruns it):
    a worker slow to stop must not leave the lock held by a leadership that is gone, or no
    other Leadership in this process (a restarted app) could ever lead."""
    path = str(tmp_path / "db.leader")
    clock = FakeClock()
    let_go, gone = asyncio.Event(), asyncio.Event()

    async def slow_to_stop(stop: asyncio.Event) -> None:
        await stop.wait()
        await let_go.wait()  # still flushing when the service's patience runs out
        gone.set()

    leadership = Leadership(
        FileLockElector(path), lambda: {"slow": slow_to_stop}, interval_s=0.05, clock=clock
    )
    service = Supervisor(clock=clock)
    service.start("leadership", leadership.run)
    await clock.waiting_again("leadership", since=0)
    assert leadership.is_leader
    await service.stop(timeout_s=0.01)  # overrun: the leadership task is cancelled
    assert await FileLockElector(path).try_acquire()  # the lock went with it
    let_go.set()
    await gone.wait()
