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

from app.errors import TooManyRequests
from app.store.tables import rollup_dirty, samples, series

__all__ = ["SampleRow", "SeriesKey", "SeriesStore", "WriteResult", "canonical_labels"]


def canonical_labels(labels: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(labels.items())), separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class SeriesKey:
    name: str
    labels: str  # canonical JSON

    @property
    def fingerprint(self) -> str:
        raw = f"{self.name}\x00{self.labels}".encode()
        return hashlib.blake2b(raw, digest_size=16).hexdigest()

    @property
    def job(self) -> str:
        value = json.loads(self.labels).get("job", "")
        return str(value)

    @classmethod
    def of(cls, name: str, labels: Mapping[str, str]) -> SeriesKey:
        return cls(name, canonical_labels(labels))


@dataclass(frozen=True, slots=True)
class SampleRow:
    key: SeriesKey
    ts_us: int
    value: float


@dataclass(slots=True)
class WriteResult:
    samples: int = 0
    new_series: dict[str, int] = field(default_factory=dict)  # fingerprint -> id, to cache


class SeriesStore:
    """Writes and reads series. One instance per process; safe to share across requests."""

    def __init__(
        self, *, max_series_per_job: int, lateness_us: int, cache_size: int = 500_000
    ) -> None:
        self.max_series_per_job = max_series_per_job
        self.lateness_us = lateness_us
        self._ids: dict[str, int] = {}
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
        """Append `rows` in the caller's transaction. Raises TooManyRequests when a job
        would exceed its series limit (nothing is written then: the caller rolls back)."""
        result = WriteResult()
        if not rows:
            return result
        ids = await self._resolve(conn, {r.key for r in rows}, now_us, result)
        # One value per (series, time): a batch repeating one keeps its last value.
        latest = {(ids[r.key.fingerprint], r.ts_us): r.value for r in rows}
        values: list[dict[str, object]] = [
            {"series_id": sid, "ts": ts, "value": v} for (sid, ts), v in latest.items()
        ]
        await self._insert_samples(conn, values)
        oldest = min(r.ts_us for r in rows)
        if oldest < now_us - self.lateness_us:
            # A backfill behind the rollup watermark: have those buckets re-aggregated.
            newest = max(r.ts_us for r in rows)
            await conn.execute(sa.insert(rollup_dirty).values(start_us=oldest, end_us=newest + 1))
        result.samples = len(values)
        return result

    async def _insert_samples(self, conn: AsyncConnection, values: list[dict[str, object]]) -> None:
        # The same (series, timestamp) sent twice (a retried request) keeps the last value.
        if conn.dialect.name == "postgresql":
            stmt_pg = postgresql.insert(samples)
            await conn.execute(
                stmt_pg.on_conflict_do_update(
                    index_elements=["series_id", "ts"], set_={"value": stmt_pg.excluded.value}
                ),
                values,
            )
        else:
            stmt_lite = sqlite.insert(samples)
            await conn.execute(
                stmt_lite.on_conflict_do_update(
                    index_elements=["series_id", "ts"], set_={"value": stmt_lite.excluded.value}
                ),
                values,
            )

    async def _resolve(
        self, conn: AsyncConnection, keys: set[SeriesKey], now_us: int, result: WriteResult
    ) -> dict[str, int]:
        by_fp = {k.fingerprint: k for k in keys}
        ids = {fp: self._ids[fp] for fp in by_fp if fp in self._ids}
        missing = [fp for fp in by_fp if fp not in ids]
        if not missing:
            return ids
        found = await self._lookup(conn, missing)
        ids.update(found)
        result.new_series.update(found)
        to_create = [by_fp[fp] for fp in missing if fp not in found]
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
        if conn.dialect.name == "postgresql":
            await conn.execute(
                postgresql.insert(series).on_conflict_do_nothing(index_elements=["fingerprint"]),
                rows,
            )
        else:
            await conn.execute(
                sqlite.insert(series).on_conflict_do_nothing(index_elements=["fingerprint"]), rows
            )
        created = await self._lookup(conn, [k.fingerprint for k in to_create])
        ids.update(created)
        result.new_series.update(created)
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
                raise TooManyRequests(
                    f"job {job!r} would have {int(existing or 0) + adding} series; the limit "
                    f"(CIUIC_MAX_SERIES_PER_JOB) is {self.max_series_per_job}",
                    code="series_limit",
                    details={
                        "job": job,
                        "limit": self.max_series_per_job,
                        "existing": int(existing or 0),
                    },
                )
