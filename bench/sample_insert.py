"""Which statement PostgreSQL takes fastest for a batch of samples: the choice behind the store's
JSON path (issue 17: "JSON through the fastest path PostgreSQL offers").

On a fresh migrated database, batches of 1,000 samples (1,000 series, one new timestamp each)
in one transaction each, for `--seconds` per path, on 1 and on 4 connections at once (the
ingest bench's JSON clients), `--rounds` times each:
  - unnest:      INSERT ... SELECT FROM unnest(3 arrays) ON CONFLICT DO UPDATE (the store's)
  - copy:        COPY (asyncpg copy_records_to_table) in a savepoint, the upsert's fallback
                 when a retried batch repeats a (series, time): COPY cannot skip or update one
  - executemany: a prepared INSERT ... VALUES ($1, $2, $3) ON CONFLICT DO UPDATE, per row

    .venv/bin/python bench/sample_insert.py [--seconds 3] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import drop_database, fresh_database  # noqa: E402

UNNEST = (
    "INSERT INTO samples (series_id, ts, value) SELECT * FROM unnest($1::bigint[], "
    "$2::bigint[], $3::float8[]) ON CONFLICT (series_id, ts) DO UPDATE SET value = EXCLUDED.value"
)
ROW = (
    "INSERT INTO samples (series_id, ts, value) VALUES ($1, $2, $3) "
    "ON CONFLICT (series_id, ts) DO UPDATE SET value = EXCLUDED.value"
)


async def measure(dsn: str, seconds: float, rounds: int) -> list[dict[str, Any]]:
    conns = [await asyncpg.connect(dsn) for _ in range(4)]
    await conns[0].execute(
        "INSERT INTO series (fingerprint, name, labels, job, created_us) "
        "SELECT 'f' || g, 'bench', '{}', 'bench', 0 FROM generate_series(1, 1000) g"
    )
    ids = [int(r[0]) for r in await conns[0].fetch("SELECT id FROM series ORDER BY id")]
    stamps = itertools.count(time.time_ns() // 1000)

    async def unnest(conn: Any) -> None:
        ts = next(stamps)
        async with conn.transaction():
            await conn.execute(UNNEST, ids, [ts] * len(ids), [1.0] * len(ids))

    async def copy(conn: Any) -> None:
        ts = next(stamps)
        async with conn.transaction(), conn.transaction():  # the savepoint
            await conn.copy_records_to_table(
                "samples", records=[(i, ts, 1.0) for i in ids], columns=["series_id", "ts", "value"]
            )

    async def executemany(conn: Any) -> None:
        ts = next(stamps)
        async with conn.transaction():
            await conn.executemany(ROW, [(i, ts, 1.0) for i in ids])

    paths: list[tuple[str, Callable[[Any], Awaitable[None]]]] = [
        ("unnest", unnest),
        ("copy", copy),
        ("executemany", executemany),
    ]
    results = []
    # Rounds interleaved: the machine's load drifts, and each path should see the same drift.
    for round_, (name, path), parallel in itertools.product(range(rounds), paths, (1, 4)):
        batches = 0
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()

        async def loop(
            conn: Any, path: Callable[[Any], Awaitable[None]] = path, until: float = deadline
        ) -> None:
            nonlocal batches
            while time.perf_counter() < until:
                await path(conn)
                batches += 1

        await asyncio.gather(*(loop(c) for c in conns[:parallel]))
        rate = batches * len(ids) / (time.perf_counter() - started)
        results.append(
            {"path": name, "connections": parallel, "round": round_, "rows_per_s": int(rate)}
        )
    for conn in conns:
        await conn.close()
    return results


async def main(seconds: float, rounds: int) -> None:
    url, name = await fresh_database("postgresql", Path(tempfile.mkdtemp()), "inserts")
    try:
        results = await measure(
            url.replace("postgresql+asyncpg://", "postgresql://"), seconds, rounds
        )
    finally:
        await drop_database(name)
    for r in results:
        print(json.dumps({"bench": "sample_insert", **r}))
    print("\n| path | connections | rows/s, each round |\n|---|---|---|")
    order = ["unnest", "copy", "executemany"]
    ranked = sorted(results, key=lambda r: (order.index(r["path"]), r["connections"], r["round"]))
    for (path, parallel), rows in itertools.groupby(
        ranked, key=lambda r: (r["path"], r["connections"])
    ):
        print(f"| {path} | {parallel} | {' / '.join(str(r['rows_per_s']) for r in rows)} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2, help="repeats of each measurement")
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.rounds))
