"""Samples written in bulk, on both backends: a large batch (which PostgreSQL takes by COPY)
stores every sample; the same batch retried, or one overlapping stored samples, keeps one row
per (series, time) with the last value sent, as a small batch does; a refused batch, or one
whose connection is lost in the middle of its COPY, leaves nothing behind."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from app.store.db import Database, is_unavailable
from app.store.errors import SeriesLimitExceeded
from app.store.series import SampleRow, SeriesKey, SeriesStore
from app.store.tables import samples, series
from tests.conftest import truncate_all

NOW_US = 1_800_000_000_000_000


def batch(n: int, value: float, ts_us: int = NOW_US, first: int = 0) -> list[SampleRow]:
    return [
        SampleRow(SeriesKey.of("request_rate", {"job": "api", "pod": f"p{i}"}), ts_us, value)
        for i in range(first, first + n)
    ]


async def write(db: Database, store: SeriesStore, rows: list[SampleRow]) -> int:
    async with db.transaction() as conn:
        result = await store.write(conn, rows, now_us=NOW_US)
    store.remember(result)
    return result.samples


async def stored(db: Database) -> dict[float, int]:
    """How many sample rows hold each value."""
    async with db.read() as conn:
        rows = await conn.execute(
            sa.select(samples.c.value, sa.func.count()).group_by(samples.c.value)
        )
        return {float(v): int(n) for v, n in rows.all()}


@pytest.mark.parametrize("size", [20, 1_000], ids=["small", "bulk"])
async def test_a_retried_batch_keeps_one_row_per_sample_with_the_last_value(
    db: Database, size: int
) -> None:
    store = SeriesStore(max_series_per_job=10_000, lateness_us=10**12)
    assert await write(db, store, batch(size, 1.0)) == size
    assert await stored(db) == {1.0: size}
    assert await write(db, store, batch(size, 2.0)) == size  # the same times again
    assert await stored(db) == {2.0: size}
    # Half stored already, half new: the stored half updated, the new half added.
    assert await write(db, store, batch(size, 3.0, first=size // 2)) == size
    assert await stored(db) == {2.0: size // 2, 3.0: size}
    assert await write(db, store, batch(size, 4.0, ts_us=NOW_US + 1)) == size  # a new time
    assert await stored(db) == {2.0: size // 2, 3.0: size, 4.0: size}


async def test_a_bulk_batch_refused_for_its_series_leaves_nothing(db: Database) -> None:
    store = SeriesStore(max_series_per_job=999, lateness_us=10**12)
    with pytest.raises(SeriesLimitExceeded):
        await write(db, store, batch(1_000, 1.0))
    assert await stored(db) == {}
    async with db.read() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(series)) == 0


async def test_a_connection_lost_during_the_copy_leaves_nothing_half_written(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PostgreSQL only (SQLite has no COPY and no server): the server ends the connection
    # between the savepoint and the COPY of a bulk batch whose series were just created.
    await truncate_all(pg_url)
    db, killer = Database(pg_url), Database(pg_url)
    store = SeriesStore(max_series_per_job=10_000, lateness_us=10**12)
    try:
        async with db.transaction() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            pid = await conn.scalar(sa.text("SELECT pg_backend_pid()"))
        copy = type(driver).copy_records_to_table

        async def lost(self: Any, *args: Any, **kwargs: Any) -> Any:
            async with killer.transaction() as other:
                await other.execute(sa.text(f"SELECT pg_terminate_backend({int(pid)})"))
            return await copy(self, *args, **kwargs)

        monkeypatch.setattr(type(driver), "copy_records_to_table", lost)
        with pytest.raises(Exception) as raised:
            await write(db, store, batch(1_000, 1.0))
        assert is_unavailable(raised.value)  # what the API answers with a 503
        monkeypatch.undo()
        assert await stored(db) == {}
        async with db.read() as conn:
            assert await conn.scalar(sa.select(sa.func.count()).select_from(series)) == 0
        assert store.cached_count("api") == 0  # the lost series were never counted
        assert await write(db, store, batch(1_000, 2.0)) == 1_000  # the retry: all of it
        assert await stored(db) == {2.0: 1_000}
    finally:
        await killer.dispose()
        await db.dispose()
