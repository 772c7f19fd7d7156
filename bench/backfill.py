"""How long backfilling a forecast's history from a real Prometheus takes.

Debian's `prometheus` is started on a TSDB that `promtool tsdb create-blocks-from openmetrics`
filled with two weeks of a per-pod request rate (a sample a minute per pod). Then, on a fresh
database of each backend: one scaler's first backfill on the forecast's grid (14 days at 5
minutes: 4,032 points, one query), the same at a 1-minute grid (20,160 points: two chunks
under Prometheus' 11,000-point cap), the top-up right after (nothing new: no query), and
`--scalers` new scalers at once through the Backfiller (its concurrency bound). Each figure is
the wall time of the run, the database write and the rollup of the range included.

Prints one JSON line and a markdown table. Run from the repository root:

    .venv/bin/python bench/backfill.py [--pods 8] [--scalers 20] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.policy import parse_spec
from app.prometheus import PrometheusClient
from app.services.backfill import Backfiller, backfill_load
from app.services.forecasts import HISTORY_S
from app.store.db import Database
from app.store.series import SeriesStore
from bench._common import drop_database, free_port, fresh_database
from testkit.programs import serving

QUERY = "sum(llm_request_rate)"


def spec(query: str = QUERY) -> Any:
    return parse_spec(
        {
            "target": "llm",
            "capacity": {"request_rate": "1/s"},
            "metrics": [
                {
                    "name": "request_rate",
                    "target": 1,
                    "aggregation": "sum",
                    "source": {"prometheus": query},
                }
            ],
        }
    )


def write_history(folder: Path, pods: int, now: float) -> None:
    end = int(now - now % 60) - 360
    lines = ["# TYPE llm_request_rate gauge"]
    for t in range(end - int(HISTORY_S) - 3600, end, 60):
        base = 4.0 + 2.0 * math.sin(2 * math.pi * t / 86400)
        lines += [f'llm_request_rate{{pod="llm-{p}"}} {base / pods:.6f} {t}' for p in range(pods)]
    lines.append("# EOF")
    (folder / "history.om").write_text("\n".join(lines) + "\n")
    promtool = shutil.which("promtool")
    if promtool is None:
        sys.exit("promtool not found (apt-get install prometheus)")
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet",
         "--max-block-duration=336h", str(folder / "history.om"), str(folder / "data")],
        check=True,
    )  # fmt: skip


async def measure(backend: str, tmp: Path, url: str, scalers: int) -> dict[str, Any]:
    db_url, name = await fresh_database(backend, tmp, tag=f"backfill-{backend}")
    db = Database(db_url)
    series = SeriesStore(max_series_per_job=10_000, lateness_us=120_000_000)
    client = PrometheusClient(url, timeout_s=30.0)
    now = time.time()
    out: dict[str, Any] = {"backend": backend}
    try:
        for label, step, query in (("grid_5m", 300.0, QUERY), ("grid_1m", 60.0, f"{QUERY} + 0")):
            started = time.perf_counter()
            done = await backfill_load(
                db, series, client, "one", spec(query), now, lateness_s=120.0, step_s=step
            )
            assert done is not None and done.error is None, done
            out[label] = {"points": done.points, "s": round(time.perf_counter() - started, 3)}
        started = time.perf_counter()
        again = await backfill_load(db, series, client, "one", spec(), now, lateness_s=120.0)
        assert again is not None and again.points == 0
        out["top_up_s"] = round(time.perf_counter() - started, 3)
        filler = Backfiller(db, series, client, lateness_s=120.0)
        due = [(f"s{i}", spec(f"{QUERY} * {i + 1}")) for i in range(scalers)]
        started = time.perf_counter()
        filled = await filler.run(due, now)
        assert all(d.error is None for d in filled.values()), filled
        out["many"] = {
            "scalers": scalers,
            "concurrency": filler.concurrency,
            "points": sum(d.points for d in filled.values()),
            "s": round(time.perf_counter() - started, 3),
        }
    finally:
        await client.aclose()
        await db.dispose()
        if name is not None:
            await drop_database(name)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=8)
    parser.add_argument("--scalers", type=int, default=20)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    binary = shutil.which("prometheus")
    if binary is None:
        sys.exit("prometheus not found (apt-get install prometheus)")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        write_history(tmp, args.pods, time.time())
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        (tmp / "prometheus.yml").write_text("global: {}\n")
        argv = [
            binary,
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        with serving(argv, url, tmp / "prometheus.log"):
            rows = [
                asyncio.run(measure(b, tmp, url, args.scalers)) for b in args.backends.split(",")
            ]
    print(json.dumps({"bench": "backfill", "pods": args.pods, "results": rows}))
    print()
    print("| backend | 14 d at 5 min (4,032 pts) | 14 d at 1 min (20,160 pts, 2 chunks) "
          "| top-up, nothing new | scalers at once |")  # fmt: skip
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        many = r["many"]
        print(
            f"| {r['backend']} | {r['grid_5m']['s']} s | {r['grid_1m']['s']} s | "
            f"{r['top_up_s']} s | {many['scalers']} in {many['s']} s "
            f"(at most {many['concurrency']} at once) |"
        )


if __name__ == "__main__":
    main()
