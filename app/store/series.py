"""The time-series store: deduplicated series and their samples.

A write resolves each (metric name, label set) to a series id, creating missing series under
the per-job cardinality limit, then appends all samples in the caller's transaction. Series ids
are cached in memory only after their transaction commits, so a rollback never leaves the
cache pointing at rows that do not exist.

New series are created in one statement for the whole batch (`INSERT ... ON CONFLICT DO
NOTHING RETURNING`, which on PostgreSQL also returns the ids of those that already existed), in
fingerprint order so that two pushes creating overlapping series wait for each other instead
of deadlocking; a series another transaction committed while ours was looking is read by one
more SELECT. A pod's first push (300 new series) costs one round trip, not four.

Each job's series count (the cardinality limit's input) is cached per process: a job's count is
read once, then kept up to date by the creations this process commits. Other processes' (a
second worker's) creations are seen when the entry is refreshed, after `count_ttl_s`, and a
write the cached count would refuse is checked against a fresh count first, so a stale count
never refuses a push the database would accept.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.errors import SeriesLimitExceeded
from app.store.tables import rollup_dirty, samples, series

_PG_INSERT = sa.text(
    "INSERT INTO samples (series_id, ts, value) "
    "SELECT * FROM unnest(CAST(:sids AS bigint[]), CAST(:ts AS bigint[]), "
    "CAST(:vals AS double precision[])) "
    "ON CONFLICT (series_id, ts) DO UPDATE SET value = EXCLUDED.value"
)

# Create the missing series and return every one's id in one statement: the `created` branch
# holds the rows this statement inserted (in fingerprint order whatever join the planner picks:
# concurrent creators of the same series must lock them alike), the other those it found. A
# row that a concurrent transaction committed after this statement's snapshot is in neither
# (its insert conflicted, its row is not visible yet): the caller looks those up again.
_PG_CREATE = sa.text(
    "WITH wanted AS ("
    " SELECT * FROM unnest(CAST(:fps AS text[]), CAST(:names AS text[]),"
    " CAST(:labels AS text[]), CAST(:jobs AS text[])) AS w(fingerprint, name, labels, job)),"
    " created AS ("
    " INSERT INTO series (fingerprint, name, labels, job, created_us)"
    " SELECT fingerprint, name, labels, job, :now FROM wanted w WHERE NOT EXISTS"
    " (SELECT 1 FROM series s WHERE s.fingerprint = w.fingerprint) ORDER BY w.fingerprint"
    " ON CONFLICT (fingerprint) DO NOTHING RETURNING fingerprint, id, job)"
    " SELECT fingerprint, id, job, true AS new FROM created"
    " UNION ALL"
    " SELECT s.fingerprint, s.id, s.job, false FROM series s"
    " JOIN wanted w ON s.fingerprint = w.fingerprint"
)

# From this many samples a write tries COPY first (bench/sample_insert.py: faster than the
# upsert at 1,000 rows on 1 and on 4 connections); below it the savepoint's two round trips
# outweigh what COPY saves.
_COPY_FROM = 500
_UNIQUE_VIOLATION = "23505"

__all__ = ["SampleRow", "SeriesKey", "SeriesStore", "WriteResult", "canonical_labels"]


def canonical_labels(labels: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(labels.items())), separators=(",", ":"), ensure_ascii=False)


# One encoder for every label set: `json.dumps` with options builds a new encoder per call,
# which at 300 new series a push cost more than the encoding itself.
_LABELS_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


class SeriesKey:
    """A series' identity. Cheap to build and to hash (a string key, whose hash Python
    caches): the JSON form and the fingerprint are only computed for series the process has
    not seen yet, once each."""

    __slots__ = ("_fingerprint", "_labels", "ident", "label_items", "name")

    def __init__(self, name: str, label_items: tuple[tuple[str, str], ...]) -> None:
        self.name = name
        self.label_items = label_items  # sorted
        self.ident = f"{name}{label_items!r}"  # repr of a tuple of str pairs is unambiguous
        self._labels: str | None = None
        self._fingerprint: str | None = None

    def __hash__(self) -> int:
        return hash(self.ident)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SeriesKey) and other.ident == self.ident

    def __repr__(self) -> str:
        return f"SeriesKey({self.name!r}, {dict(self.label_items)!r})"

    @property
    def labels(self) -> str:
        """Canonical JSON of the label set."""
        if self._labels is None:
            self._labels = _LABELS_JSON.encode(dict(self.label_items))
        return self._labels

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            raw = f"{self.name}\x00{self.labels}".encode()
            self._fingerprint = hashlib.blake2b(raw, digest_size=16).hexdigest()
        return self._fingerprint

    @property
    def job(self) -> str:
        return dict(self.label_items).get("job", "")

    @classmethod
    def of(cls, name: str, labels: Mapping[str, str]) -> SeriesKey:
        return cls(name, tuple(sorted(labels.items())))


@dataclass(frozen=True, slots=True)
class SampleRow:
    key: SeriesKey
    ts_us: int
    value: float


@dataclass(slots=True)
class WriteResult:
    samples: int = 0
    new_series: dict[SeriesKey, int] = field(default_factory=dict)  # to cache after commit
    created: dict[str, int] = field(default_factory=dict)  # job -> series this write created


class SeriesStore:
    """Writes and reads series. One instance per process; safe to share across requests.

    `monotonic` (seconds) dates the cached per-job counts; `count_ttl_s` is how long one is
    trusted without reading the database again (see the module's note)."""

    def __init__(
        self,
        *,
        max_series_per_job: int,
        lateness_us: int,
        cache_size: int = 500_000,
        count_ttl_s: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_series_per_job = max_series_per_job
        self.lateness_us = lateness_us
        self._ids: dict[SeriesKey, int] = {}
        self._cache_size = cache_size
        self._counts: dict[str, tuple[int, float]] = {}  # job -> (series, read at)
        self._count_ttl_s = count_ttl_s
        self._monotonic = monotonic

    def remember(self, result: WriteResult) -> None:
        """Cache the series a committed write created (and count them in their jobs)."""
        if len(self._ids) + len(result.new_series) > self._cache_size:
            self._ids.clear()
        self._ids.update(result.new_series)
        for job, created in result.created.items():
            cached = self._counts.get(job)
            if cached is not None:
                self._counts[job] = (cached[0] + created, cached[1])

    def forget(self, job: str | None = None) -> None:
        """Drop what is cached (for one job's counts, or everything): after series are deleted."""
        if job is None:
            self._ids.clear()
            self._counts.clear()
        else:
            self._counts.pop(job, None)

    def cached_count(self, job: str) -> int | None:
        """The job's series count as this process knows it, if it has one."""
        cached = self._counts.get(job)
        return None if cached is None else cached[0]

    async def write(
        self, conn: AsyncConnection, rows: Sequence[SampleRow], *, now_us: int
    ) -> WriteResult:
        """Append `rows` in the caller's transaction. Raises SeriesLimitExceeded when a job
        would exceed its series limit (nothing is written then: the caller rolls back)."""
        result = WriteResult()
        if not rows:
            return result
        ids = await self._resolve(conn, {r.key for r in rows}, now_us, result)
        # One value per (series, time): a batch repeating one keeps its last value.
        latest = {(ids[r.key], r.ts_us): r.value for r in rows}
        await self._insert_samples(conn, latest)
        oldest = min(r.ts_us for r in rows)
        if oldest < now_us - self.lateness_us:
            # A backfill behind the rollup watermark: have those buckets re-aggregated.
            newest = max(r.ts_us for r in rows)
            await conn.execute(sa.insert(rollup_dirty).values(start_us=oldest, end_us=newest + 1))
        result.samples = len(latest)
        return result

    async def _insert_samples(
        self, conn: AsyncConnection, latest: dict[tuple[int, int], float]
    ) -> None:
        # The same (series, timestamp) sent twice (a retried request) keeps the last value.
        # In key order: two batches upserting the same keys then lock them in the same order.
        keys = sorted(latest)
        if conn.dialect.name == "postgresql":
            if len(keys) >= _COPY_FROM and await _copy_samples(conn, keys, latest):
                return
            # One statement with three arrays: far cheaper than a multi-row VALUES list.
            await conn.execute(
                _PG_INSERT,
                {
                    "sids": [k[0] for k in keys],
                    "ts": [k[1] for k in keys],
                    "vals": [latest[k] for k in keys],
                },
            )
            return
        stmt = sqlite.insert(samples)
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["series_id", "ts"], set_={"value": stmt.excluded.value}
            ),
            [{"series_id": k[0], "ts": k[1], "value": latest[k]} for k in keys],
        )

    async def _resolve(
        self, conn: AsyncConnection, keys: set[SeriesKey], now_us: int, result: WriteResult
    ) -> dict[SeriesKey, int]:
        cached = self._ids
        ids = {k: cached[k] for k in keys if k in cached}
        if len(ids) == len(keys):
            return ids
        # In fingerprint order: concurrent creators of the same series lock them alike.
        wanted = sorted(((k.fingerprint, k) for k in keys if k not in ids), key=lambda p: p[0])
        by_fp = dict(wanted)
        created: dict[str, int] = {}
        for fp, sid, job, new in await self._create(conn, [k for _, k in wanted], now_us):
            key = by_fp.pop(fp, None)
            if key is None:
                continue  # listed twice (found and created cannot both hold; be safe)
            ids[key] = sid
            result.new_series[key] = sid
            if new:
                created[job] = created.get(job, 0) + 1
        if by_fp:
            # Committed by a concurrent transaction after this statement's snapshot.
            for fp, sid in (await self._lookup(conn, list(by_fp))).items():
                ids[by_fp[fp]] = sid
                result.new_series[by_fp[fp]] = sid
        if created:
            await self._check_cardinality(conn, created)
            result.created = created
        return ids

    async def _create(
        self, conn: AsyncConnection, keys: list[SeriesKey], now_us: int
    ) -> list[tuple[str, int, str, bool]]:
        """Insert the series of `keys` that do not exist; (fingerprint, id, job, created) for
        each one created, and on PostgreSQL for each one found too."""
        if conn.dialect.name == "postgresql":
            rows = await conn.execute(
                _PG_CREATE,
                {
                    "fps": [k.fingerprint for k in keys],
                    "names": [k.name for k in keys],
                    "labels": [k.labels for k in keys],
                    "jobs": [k.job for k in keys],
                    "now": now_us,
                },
            )
            return [(str(fp), int(sid), str(job), bool(new)) for fp, sid, job, new in rows.all()]
        # SQLite: one writer at a time, so the one INSERT ... RETURNING (ids of the rows it
        # created) and the lookup of the others cannot race another creator.
        insert = sqlite.insert(series).on_conflict_do_nothing(index_elements=["fingerprint"])
        created = await conn.execute(
            insert.returning(series.c.fingerprint, series.c.id, series.c.job),
            [
                {
                    "fingerprint": k.fingerprint,
                    "name": k.name,
                    "labels": k.labels,
                    "job": k.job,
                    "created_us": now_us,
                }
                for k in keys
            ],
        )
        return [(str(fp), int(sid), str(job), True) for fp, sid, job in created.all()]

    async def _lookup(self, conn: AsyncConnection, fingerprints: list[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for start in range(0, len(fingerprints), 5000):
            chunk = fingerprints[start : start + 5000]
            res = await conn.execute(
                sa.select(series.c.fingerprint, series.c.id).where(series.c.fingerprint.in_(chunk))
            )
            out.update({fp: int(i) for fp, i in res.all()})
        return out

    async def _count(self, conn: AsyncConnection, job: str) -> int:
        """The job's series in the database, this transaction's own new ones included."""
        existing = await conn.scalar(
            sa.select(sa.func.count()).select_from(series).where(series.c.job == job)
        )
        return int(existing or 0)

    async def _check_cardinality(self, conn: AsyncConnection, created: dict[str, int]) -> None:
        """Refuse the write when a job would hold more series than the limit with those this
        write created (already inserted: a refusal rolls them back with the transaction)."""
        now = self._monotonic()
        for job, adding in created.items():
            cached = self._counts.get(job)
            fresh = cached is not None and now - cached[1] < self._count_ttl_s
            if fresh and cached is not None and cached[0] + adding <= self.max_series_per_job:
                continue
            # No count, an old one, or one that would refuse: ask the database (the count
            # includes this write's own series), and keep what existed before them.
            total = await self._count(conn, job)
            self._counts[job] = (total - adding, now)
            if total > self.max_series_per_job:
                raise SeriesLimitExceeded(
                    f"job {job!r} would have {total} series; the limit "
                    f"(CIUIC_MAX_SERIES_PER_JOB) is {self.max_series_per_job}",
                    details={
                        "job": job,
                        "limit": self.max_series_per_job,
                        "existing": total - adding,
                    },
                )


async def _copy_samples(
    conn: AsyncConnection, keys: list[tuple[int, int]], latest: dict[tuple[int, int], float]
) -> bool:
    """COPY the samples in a savepoint: True when they are in. False, with nothing written,
    when one of them repeats a stored (series, time) (a retried batch): COPY cannot update a
    row, so the caller upserts instead."""
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    try:
        async with conn.begin_nested():
            await driver.copy_records_to_table(
                "samples",
                records=[(sid, ts, latest[(sid, ts)]) for sid, ts in keys],
                columns=["series_id", "ts", "value"],
            )
    except Exception as exc:  # asyncpg's own error: the driver is called directly
        if getattr(exc, "sqlstate", None) != _UNIQUE_VIOLATION:
            raise
        return False
    return True
