"""Rollups and retention: answers equal to raw samples, backfills redone, old data gone."""

from __future__ import annotations

import random

import pytest
import sqlalchemy as sa

from app.settings import Settings
from app.store.db import Database
from app.store.query import read_range
from app.store.rollups import RetentionPolicy, apply_retention, roll_up
from app.store.scalers import add_event
from app.store.series import SampleRow, SeriesKey, SeriesStore
from app.store.tables import (
    rollup_dirty,
    rollups_1h,
    rollups_1m,
    samples,
    scaler_events,
    simulations,
)
from app.workers.rollups import retention_policy
from tests.conftest import truncate_all

MIN = 60_000_000
HOUR = 60 * MIN
DAY = 24 * HOUR
NOW = 1_790_000_000_000_000 - 1_790_000_000_000_000 % HOUR  # an hour boundary


@pytest.fixture
async def db(database_url: str) -> Database:
    await truncate_all(database_url)
    database = Database(database_url)
    yield database  # type: ignore[misc]
    await database.dispose()


async def write(
    db: Database, rows: list[SampleRow], now_us: int = NOW, lateness_us: int = 30 * DAY
) -> None:
    store = SeriesStore(max_series_per_job=1000, lateness_us=lateness_us)
    async with db.transaction() as conn:
        await store.write(conn, rows, now_us=now_us)


async def count(db: Database, table: sa.Table) -> int:
    async with db.read() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


def rows_over(hours: int, *, end: int, seed: int = 1) -> list[SampleRow]:
    rng = random.Random(seed)
    keys = [SeriesKey.of("gpu_utilization", {"job": "j", "pod": f"p{i}"}) for i in range(3)]
    return [
        SampleRow(key, end - hours * HOUR + k * 15_000_000, rng.uniform(0, 100))
        for key in keys
        for k in range(hours * 240)
    ]


async def ranges(
    db: Database, step: int, start: int, end: int
) -> tuple[str, dict[int, dict[int, tuple[int, float, float, float]]]]:
    async with db.read() as conn:
        ids = [int(i) for i in (await conn.execute(sa.text("SELECT id FROM series"))).scalars()]
        result = await read_range(conn, ids, start_us=start, end_us=end, step_us=step)
    flat = {
        sid: {k: (b.count, round(b.sum, 6), b.min, b.max) for k, b in buckets.items()}
        for sid, buckets in result.buckets.items()
    }
    return result.source, flat


@pytest.mark.parametrize("step", [MIN, 5 * MIN, HOUR, 2 * HOUR], ids=["1m", "5m", "1h", "2h"])
async def test_rollups_answer_like_raw_samples(db: Database, step: int) -> None:
    rows = rows_over(5, end=NOW)
    await write(db, rows)
    await roll_up(db, now_us=NOW + 10 * MIN, lateness_us=2 * MIN)
    assert await count(db, rollups_1m) == 3 * 5 * 60
    assert await count(db, rollups_1h) == 3 * 5
    source, rolled = await ranges(db, step, NOW - 5 * HOUR, NOW)
    assert source == ("rollup_1h" if step % HOUR == 0 else "rollup_1m")
    expected: dict[str, dict[int, list[float]]] = {}
    aligned = (NOW - 5 * HOUR) - (NOW - 5 * HOUR) % step  # buckets are aligned to the epoch
    for r in rows:
        expected.setdefault(r.key.labels, {}).setdefault((r.ts_us - aligned) // step, []).append(
            r.value
        )
    got = sorted(sorted(per.items()) for per in rolled.values())
    want = sorted(
        sorted((k, (len(v), round(sum(v), 6), min(v), max(v))) for k, v in per.items())
        for per in expected.values()
    )
    assert [[(k, c, mn, mx) for k, (c, _, mn, mx) in s] for s in got] == [
        [(k, c, mn, mx) for k, (c, _, mn, mx) in s] for s in want
    ]
    for g, w in zip(got, want, strict=True):
        for (_, (_, gs, _, _)), (_, (_, ws, _, _)) in zip(g, w, strict=True):
            assert gs == pytest.approx(ws)


async def test_rollup_and_raw_totals_agree_bucket_by_bucket(db: Database) -> None:
    await write(db, rows_over(2, end=NOW))
    await roll_up(db, now_us=NOW + 10 * MIN, lateness_us=2 * MIN)
    async with db.read() as conn:
        raw = (
            await conn.execute(
                sa.select(
                    sa.func.count(), sa.func.sum(samples.c.value), sa.func.max(samples.c.value)
                )
            )
        ).one()
        rolled = (
            await conn.execute(
                sa.select(
                    sa.func.sum(rollups_1h.c.count),
                    sa.func.sum(rollups_1h.c.sum),
                    sa.func.max(rollups_1h.c.max),
                )
            )
        ).one()
    assert int(raw[0]) == int(rolled[0])
    assert float(raw[1]) == pytest.approx(float(rolled[1]))
    assert float(raw[2]) == float(rolled[2])


async def test_newest_points_come_from_raw_above_the_watermark(db: Database) -> None:
    await write(db, rows_over(2, end=NOW))
    await roll_up(db, now_us=NOW - 30 * MIN, lateness_us=0)  # watermark half an hour back
    source, rolled = await ranges(db, MIN, NOW - 2 * HOUR, NOW)
    assert source == "rollup_1m"
    assert sum(c for per in rolled.values() for c, *_ in per.values()) == 3 * 2 * 240


async def test_a_backfill_behind_the_watermark_is_reaggregated(db: Database) -> None:
    await write(db, rows_over(2, end=NOW))
    await roll_up(db, now_us=NOW + 10 * MIN, lateness_us=2 * MIN)
    late = [
        SampleRow(
            SeriesKey.of("gpu_utilization", {"job": "j", "pod": "p0"}), NOW - HOUR + 1, 1000.0
        )
    ]
    await write(db, late, now_us=NOW + 20 * MIN, lateness_us=2 * MIN)
    async with db.read() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(rollup_dirty)) == 1
    report = await roll_up(db, now_us=NOW + 20 * MIN, lateness_us=2 * MIN)
    assert report.dirty_ranges == 1
    async with db.read() as conn:
        top = await conn.scalar(sa.select(sa.func.max(rollups_1h.c.max)))
        top_minute = await conn.scalar(sa.select(sa.func.max(rollups_1m.c.max)))
        assert await conn.scalar(sa.select(sa.func.count()).select_from(rollup_dirty)) == 0
    assert top == 1000.0 and top_minute == 1000.0


async def test_overlapping_backfills_are_reaggregated_once(db: Database) -> None:
    # Three late writes: two marking the same hours (two scalers' histories backfilled at
    # once), one a day earlier. Each minute is re-aggregated once, each backfill's value kept.
    await write(db, rows_over(2, end=NOW))
    await roll_up(db, now_us=NOW + 10 * MIN, lateness_us=2 * MIN)
    key = SeriesKey.of("gpu_utilization", {"job": "j", "pod": "late"})
    for at, value in ((NOW - HOUR + 1, 500.0), (NOW - HOUR + MIN, 700.0), (NOW - DAY, 900.0)):
        await write(db, [SampleRow(key, at, value)], now_us=NOW + 20 * MIN, lateness_us=2 * MIN)
    report = await roll_up(db, now_us=NOW + 20 * MIN, lateness_us=2 * MIN)
    assert report.dirty_ranges == 3
    async with db.read() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(rollup_dirty)) == 0
        in_the_two_hours = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(rollups_1m)
            .where(
                sa.or_(
                    rollups_1m.c.bucket.between(NOW - DAY, NOW - DAY + HOUR - 1),
                    rollups_1m.c.bucket.between(NOW - HOUR, NOW - 1),
                )
            )
        )
    # Each minute bucket of the two hours upserted once: the hour before NOW, marked twice,
    # is not redone.
    assert report.minute_buckets == in_the_two_hours
    async with db.read() as conn:
        late = (
            await conn.execute(
                sa.select(rollups_1m.c.bucket, rollups_1m.c.max)
                .where(rollups_1m.c.max >= 500.0)
                .order_by(rollups_1m.c.bucket)
            )
        ).all()
    assert [(int(b), float(m)) for b, m in late] == [
        (NOW - DAY, 900.0),
        (NOW - HOUR, 500.0),
        (NOW - HOUR + MIN, 700.0),
    ]


async def test_rollup_passes_are_idempotent(db: Database) -> None:
    await write(db, rows_over(1, end=NOW))
    await roll_up(db, now_us=NOW + 10 * MIN, lateness_us=2 * MIN)
    before = (await count(db, rollups_1m), await count(db, rollups_1h))
    await roll_up(db, now_us=NOW + 10 * MIN, lateness_us=2 * MIN)
    assert (await count(db, rollups_1m), await count(db, rollups_1h)) == before
    _, first = await ranges(db, MIN, NOW - HOUR, NOW)
    assert sum(c for per in first.values() for c, *_ in per.values()) == 3 * 240


async def test_retention_drops_old_raw_samples_but_keeps_rollups(db: Database) -> None:
    await write(db, rows_over(2, end=NOW - 15 * DAY), now_us=NOW - 15 * DAY)
    await write(db, rows_over(1, end=NOW))
    await roll_up(db, now_us=NOW + 10 * MIN, lateness_us=2 * MIN)
    deleted = await apply_retention(
        db,
        now_us=NOW,
        policy=RetentionPolicy(raw_us=14 * DAY, rollup_1m_us=90 * DAY, rollup_1h_us=800 * DAY),
    )
    assert deleted == 3 * 2 * 240
    async with db.read() as conn:
        oldest_raw = await conn.scalar(sa.select(sa.func.min(samples.c.ts)))
        oldest_hour = await conn.scalar(sa.select(sa.func.min(rollups_1h.c.bucket)))
    assert oldest_raw >= NOW - 14 * DAY
    assert oldest_hour == NOW - 15 * DAY - 2 * HOUR


async def test_retention_drops_events_past_their_days_and_keeps_the_rest(db: Database) -> None:
    """A scaler acting every few minutes wrote events for good: the retention pass keeps
    `CIUIC_EVENT_RETENTION_DAYS` of them, across every scaler, and deletes nothing else."""
    async with db.transaction() as conn:
        for scaler, days_ago in (("a", 91), ("a", 89), ("b", 120), ("b", 1)):
            await add_event(
                conn, scaler, ts_us=NOW - days_ago * DAY, kind="action", message=f"{days_ago}"
            )
    await write(db, rows_over(1, end=NOW))
    policy = retention_policy(Settings(event_retention_days=90))
    await apply_retention(db, now_us=NOW, policy=policy)
    async with db.read() as conn:
        left = await conn.execute(sa.select(scaler_events.c.scaler, scaler_events.c.message))
        kept = sorted(tuple(row) for row in left)
    assert kept == [("a", "89"), ("b", "1")]
    assert await count(db, samples) == 3 * 240


async def test_retention_drops_finished_jobs_past_their_days_never_a_running_one(
    db: Database,
) -> None:
    async with db.transaction() as conn:
        for ident, status, finished_days_ago in (
            ("old-done", "done", 31),
            ("old-failed", "failed", 40),
            ("new-done", "done", 29),
            ("running", "running", None),
        ):
            await conn.execute(
                sa.insert(simulations).values(
                    id=ident,
                    kind="simulate",
                    status=status,
                    request="{}",
                    created_us=NOW - 60 * DAY,
                    finished_us=None
                    if finished_days_ago is None
                    else NOW - finished_days_ago * DAY,
                )
            )
    policy = retention_policy(Settings(simulation_retention_days=30))
    await apply_retention(db, now_us=NOW, policy=policy)
    async with db.read() as conn:
        left = sorted(await conn.scalars(sa.select(simulations.c.id)))
    assert left == ["new-done", "running"]
