"""Leader election without a cluster: one leader at a time, and a new one when it dies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.store.db import Database
from app.workers.leader import AdvisoryLockElector, FileLockElector, Leadership, elector_for


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
    path = str(tmp_path / "db.leader")
    runs: list[str] = []

    def crew(name: str):  # type: ignore[no-untyped-def]
        async def body(stop: asyncio.Event) -> None:
            runs.append(name)
            await stop.wait()

        return lambda: {"work": body}

    a = Leadership(FileLockElector(path), crew("a"), interval_s=0.05)
    b = Leadership(FileLockElector(path), crew("b"), interval_s=0.05)
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    task_a = asyncio.create_task(a.run(stop_a))
    await asyncio.sleep(0.1)
    task_b = asyncio.create_task(b.run(stop_b))
    await asyncio.sleep(0.2)
    assert (a.is_leader, b.is_leader) == (True, False)
    assert runs == ["a"]
    stop_a.set()
    await task_a  # a steps down and releases the lock
    await asyncio.sleep(0.2)
    assert b.is_leader and runs == ["a", "b"]
    stop_b.set()
    await task_b
