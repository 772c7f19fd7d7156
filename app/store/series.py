"""The time-series store: deduplicated series and their samples.

A write resolves each (metric name, label set) to a series id, creating missing series under
the per-job cardinality limit, then appends all samples in the caller's transaction. Series ids
are cached in memory only after their transaction commits, so a rollback never leaves the
cache pointing at rows that do not exist.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.errors import SeriesLimitExceeded
from app.store.tables import rollup_dirty, samples, series

_PG_INSERT = sa.text(
    "INSERT INTO samples (series_id, ts, value) "
    "SELECT * FROM unnest(CAST(:sids AS bigint[]), CAST(:ts AS bigint[]), "
    "CAST(:vals AS double precision[])) "
    "ON CONFLICT (series_id, ts) DO UPDATE SET value = EXCLUDED.value"
)

__all__ = ["SampleRow", "SeriesKey", "SeriesStore", "WriteResult", "canonical_labels"]


def canonical_labels(labels: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(labels.items())), separators=(",", ":"), ensure_ascii=False)


class SeriesKey:
    """A series' identity. Cheap to build and to hash (a string key, whose hash Python
    caches): the JSON form and the fingerprint are only computed for series the process has
    not seen yet."""

    __slots__ = ("ident", "label_items", "name")

    def __init__(self, name: str, label_items: tuple[tuple[str, str], ...]) -> None:
        self.name = name
        self.label_items = label_items  # sorted
        self.ident = f"{name}{label_items!r}"  # repr of a tuple of str pairs is unambiguous

    def __hash__(self) -> int:
        return hash(self.ident)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SeriesKey) and other.ident == self.ident

    def __repr__(self) -> str:
        return f"SeriesKey({self.name!r}, {dict(self.label_items)!r})"

    @property
    def labels(self) -> str:
        """Canonical JSON of the label set."""
        return json.dumps(dict(self.label_items), separators=(",", ":"), ensure_ascii=False)

    @property
    def fingerprint(self) -> str:
        raw = f"{self.name}\x00{self.labels}".encode()
        return hashlib.blake2b(raw, digest_size=16).hexdigest()

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


class SeriesStore:
    """Writes and reads series. One instance per process; safe to share across requests."""

    def __init__(
        self, *, max_series_per_job: int, lateness_us: int, cache_size: int = 500_000
    ) -> None:
        self.max_series_per_job = max_series_per_job
        self.lateness_us = lateness_us
        self._ids: dict[SeriesKey, int] = {}
        self._cache_size = cache_size

    def remember(self, result: WriteResult) -> None:
        """Cache the series a committed write created."""
        if len(self._ids) + len(result.new_series) > self._cache_size:
            self._ids.clear()
        self._ids.update(result.new_series)

    def forget(self) -> None:
        self._ids.clear()

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
        if conn.dialect.name == "postgresql":
            # One statement with three arrays: far cheaper than a multi-row VALUES list.
            keys = list(latest)
            await conn.execute(
                _PG_INSERT,
                {
                    "sids": [k[0] for k in keys],
                    "ts": [k[1] for k in keys],
                    "vals": list(latest.values()),
                },
            )
            return
        stmt = sqlite.insert(samples)
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["series_id", "ts"], set_={"value": stmt.excluded.value}
            ),
            [{"series_id": k[0], "ts": k[1], "value": v} for k, v in latest.items()],
        )

    async def _resolve(
        self, conn: AsyncConnection, keys: set[SeriesKey], now_us: int, result: WriteResult
    ) -> dict[SeriesKey, int]:
        cached = self._ids
        ids = {k: cached[k] for k in keys if k in cached}
        if len(ids) == len(keys):
            return ids
        by_fp = {k.fingerprint: k for k in keys if k not in ids}
        found = {by_fp[fp]: sid for fp, sid in (await self._lookup(conn, list(by_fp))).items()}
        ids.update(found)
        result.new_series.update(found)
        to_create = [k for k in by_fp.values() if k not in found]
        if not to_create:
            return ids
        await self._check_cardinality(conn, to_create)
        rows = [
            {
                "fingerprint": k.fingerprint,
                "name": k.name,
                "labels": k.labels,
                "job": k.job,
                "created_us": now_us,
            }
            for k in to_create
        ]
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        await conn.execute(
            insert(series).on_conflict_do_nothing(index_elements=["fingerprint"]), rows
        )
        by_new_fp = {k.fingerprint: k for k in to_create}
        created = await self._lookup(conn, list(by_new_fp))
        for fp, sid in created.items():
            ids[by_new_fp[fp]] = sid
            result.new_series[by_new_fp[fp]] = sid
        return ids

    async def _lookup(self, conn: AsyncConnection, fingerprints: list[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for start in range(0, len(fingerprints), 5000):
            chunk = fingerprints[start : start + 5000]
            res = await conn.execute(
                sa.select(series.c.fingerprint, series.c.id).where(series.c.fingerprint.in_(chunk))
            )
            out.update({fp: int(i) for fp, i in res.all()})
        return out

    async def _check_cardinality(self, conn: AsyncConnection, new: Iterable[SeriesKey]) -> None:
        per_job: dict[str, int] = {}
        for key in new:
            per_job[key.job] = per_job.get(key.job, 0) + 1
        for job, adding in per_job.items():
            existing = await conn.scalar(
                sa.select(sa.func.count()).select_from(series).where(series.c.job == job)
            )
            if int(existing or 0) + adding > self.max_series_per_job:
                raise SeriesLimitExceeded(
                    f"job {job!r} would have {int(existing or 0) + adding} series; the limit "
                    f"(CIUIC_MAX_SERIES_PER_JOB) is {self.max_series_per_job}",
                    details={
                        "job": job,
                        "limit": self.max_series_per_job,
                        "existing": int(existing or 0),
                    },
                )
