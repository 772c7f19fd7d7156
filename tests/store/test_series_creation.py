"""Creating series at fleet scale, on both backends: a push's new series in one statement,
concurrent pushes of the same new series (as many "workers", each with its own store and
connection pool, in opposite orders) agreeing on one id each without deadlock or error, and
the per-job series count cached: read once, kept up to date by committed creations only,
refreshed after its time-to-live (another worker's series), and never refusing on a stale
count (series deleted behind its back)."""

from __future__ import annotations

import asyncio
import random

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from app.store.db import Database, is_unavailable
from app.store.errors import SeriesLimitExceeded
from app.store.series import SampleRow, SeriesKey, SeriesStore
from app.store.tables import samples, series
from tests.conftest import truncate_all

NOW_US = 1_800_000_000_000_000


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def pod_rows(job: str, pod: str, n: int = 300, ts_us: int = NOW_US) -> list[SampleRow]:
    return [
        SampleRow(SeriesKey.of(f"m{i % 3}", {"job": job, "pod": pod, "model": f"x{i}"}), ts_us, i)
        for i in range(n)
    ]


async def write(db: Database, store: SeriesStore, rows: list[SampleRow]) -> dict[SeriesKey, int]:
    async with db.transaction() as conn:
        result = await store.write(conn, rows, now_us=NOW_US)
    store.remember(result)
    return result.new_series


async def count(db: Database, table: sa.Table) -> int:
    async with db.read() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


def counting_queries(db: Database) -> list[str]:
    """The per-job count statements the store sends from now on."""
    seen: list[str] = []

    def record(*args: object) -> None:
        statement = str(args[2])
        if "count(" in statement.lower():
            seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    return seen


async def test_concurrent_pushes_of_the_same_new_series_agree_on_one_id_each(
    db: Database, database_url: str
) -> None:
    # Eight workers, each its own store and pool, push the same new pod's 300 series (in
    # shuffled orders, plus series of their own) at the same time, twice over.
    workers = [Database(database_url) for _ in range(8)]
    stores = [SeriesStore(max_series_per_job=10_000, lateness_us=10**12) for _ in workers]
    shared = pod_rows("fleet", "new-pod")
    try:

        async def push(w: int, ts_us: int) -> dict[SeriesKey, int]:
            rows = shared + pod_rows("fleet", f"own-{w}", 20)
            rows = [SampleRow(r.key, ts_us, r.value) for r in rows]
            random.Random(w).shuffle(rows)
            return await write(workers[w], stores[w], rows)

        first = await asyncio.gather(*(push(w, NOW_US) for w in range(8)))
        again = await asyncio.gather(*(push(w, NOW_US + 1) for w in range(8)))
    finally:
        for worker in workers:
            await worker.dispose()
    ids = {r.key: first[0][r.key] for r in shared}
    for resolved in first:
        assert {k: resolved[k] for k in ids} == ids  # every worker got the same ids
    assert all(not resolved for resolved in again)  # the second round: all from the cache
    assert await count(db, series) == 300 + 8 * 20  # one row per series, none twice
    assert await count(db, samples) == 2 * 8 * 20 + 2 * 300  # same (series, time): one row


async def test_a_series_committed_while_another_push_creates_it_is_found(
    db: Database, database_url: str
) -> None:
    # Push A has created the pod's series but not committed; push B of the same series waits
    # on them, and once A commits, B finds A's rows instead of failing or duplicating them.
    other = Database(database_url)
    a, b = (SeriesStore(max_series_per_job=10_000, lateness_us=10**12) for _ in range(2))
    rows = pod_rows("fleet", "p1", 50)
    try:
        async with db.transaction() as conn:
            created = await a.write(conn, rows, now_us=NOW_US)
            late = [SampleRow(r.key, NOW_US + 1, r.value) for r in rows]
            waiting = asyncio.create_task(write(other, b, late))
            await asyncio.sleep(0.3)
            assert not waiting.done()  # held by A's uncommitted rows (or SQLite's write lock)
        found = await asyncio.wait_for(waiting, 10)
    finally:
        await other.dispose()
    assert found == created.new_series
    assert await count(db, series) == 50
    assert await count(db, samples) == 100


async def test_the_job_count_is_read_once_then_kept_by_the_commits(db: Database) -> None:
    ticks = Ticks()
    store = SeriesStore(max_series_per_job=10, lateness_us=10**12, monotonic=ticks)
    counts = counting_queries(db)
    await write(db, store, pod_rows("llm", "p1", 6))
    assert store.cached_count("llm") == 6 and len(counts) == 1
    await write(db, store, pod_rows("llm", "p2", 4))  # exactly at the limit, from the cache
    assert store.cached_count("llm") == 10 and len(counts) == 1
    with pytest.raises(SeriesLimitExceeded) as refused:
        await write(db, store, pod_rows("llm", "p3", 1))
    assert len(counts) == 2  # a refusal is checked against the database first
    assert refused.value.details == {"job": "llm", "limit": 10, "existing": 10}
    assert store.cached_count("llm") == 10  # the refused series were rolled back, not counted
    assert await count(db, series) == 10


async def test_a_rolled_back_write_does_not_count(db: Database) -> None:
    store = SeriesStore(max_series_per_job=10, lateness_us=10**12)
    await write(db, store, pod_rows("llm", "p1", 5))
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            result = await store.write(conn, pod_rows("llm", "p2", 5), now_us=NOW_US)
            raise RuntimeError("the group's write failed after the series'")
    assert result.created == {"llm": 5}  # created in the transaction that rolled back
    assert store.cached_count("llm") == 5
    await write(db, store, pod_rows("llm", "p3", 5))  # room for them: nothing stale counted
    assert store.cached_count("llm") == 10


async def test_series_deleted_behind_the_cache_never_cause_a_refusal(db: Database) -> None:
    store = SeriesStore(max_series_per_job=10, lateness_us=10**12)
    await write(db, store, pod_rows("llm", "p1", 10))
    async with db.transaction() as conn:  # e.g. an operator's clean-up, or another worker's
        await conn.execute(sa.delete(samples))
        await conn.execute(sa.delete(series).where(series.c.labels.contains('"p1"')))
    assert store.cached_count("llm") == 10  # stale: the cache does not know
    await write(db, store, pod_rows("llm", "p2", 8))  # would be 18 by the cache: recounted
    assert store.cached_count("llm") == 8
    store.forget("llm")
    assert store.cached_count("llm") is None


async def test_another_workers_series_are_counted_once_the_count_is_refreshed(
    db: Database, database_url: str
) -> None:
    ticks = Ticks()
    mine = SeriesStore(max_series_per_job=10, lateness_us=10**12, monotonic=ticks, count_ttl_s=10)
    theirs = SeriesStore(max_series_per_job=10, lateness_us=10**12)
    second = Database(database_url)
    try:
        await write(db, mine, pod_rows("llm", "p1", 2))
        await write(second, theirs, pod_rows("llm", "p2", 8))  # the job is full now
    finally:
        await second.dispose()
    assert mine.cached_count("llm") == 2  # within its time to live, as it was read
    ticks.now = 11.0  # past it: the next creation reads the count again and is refused
    with pytest.raises(SeriesLimitExceeded):
        await write(db, mine, pod_rows("llm", "p3", 1))
    assert mine.cached_count("llm") == 10


async def test_a_connection_lost_mid_push_leaves_nothing_half_written(pg_url: str) -> None:
    # PostgreSQL only: SQLite runs in the process, there is no server connection to lose.
    await truncate_all(pg_url)
    db, killer = Database(pg_url), Database(pg_url)
    store = SeriesStore(max_series_per_job=10_000, lateness_us=10**12)
    try:
        with pytest.raises(Exception) as lost:
            async with db.transaction() as conn:
                await store.write(conn, pod_rows("llm", "p1"), now_us=NOW_US)  # series, samples
                pid = await conn.scalar(sa.text("SELECT pg_backend_pid()"))
                async with killer.transaction() as other:
                    await other.execute(sa.text(f"SELECT pg_terminate_backend({int(pid)})"))
                await conn.execute(sa.text("SELECT 1"))  # the server is gone before the commit
        assert is_unavailable(lost.value)  # what the API answers with a 503
        assert store.cached_count("llm") == 0  # what existed before: none of the lost ones
        assert await count(db, series) == 0 and await count(db, samples) == 0
        await write(db, store, pod_rows("llm", "p1"))  # the retry creates them as if new
        assert await count(db, series) == 300 and store.cached_count("llm") == 300
    finally:
        await killer.dispose()
        await db.dispose()
