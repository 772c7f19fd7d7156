"""Ingestion benchmark: JSON batches and Pushgateway text pushes against a running service.

For each backend (PostgreSQL, SQLite) it migrates a fresh database, starts `ciuic serve` in its
own process, and measures in one run, side by side:
  - json:     samples/s, 1,000 samples a request, 4 concurrent clients
  - text:     samples/s, 300 samples a push, 50 concurrent clients (one grouping key each):
              steady re-pushes, every series already known
  - text-new: samples/s, the same pushes when every one is a new pod's first (a rolling
              update renames every pod): 300 new series a push, 50 clients in 50 jobs
  - paced:    p50/p99 push latency at a steady 20 pushes/s (300 samples each)
  - ceiling:  the store's own insert rate for the same rows, in process, no HTTP
Targets (issue 17, PostgreSQL, 2 cores, one worker): json >= 100,000/s, text >= 40,000/s,
text-new >= 20,000/s, paced p99 < 50 ms (issue 2's, kept).

    .venv/bin/python bench/ingest.py [--backend postgresql|sqlite|both] [--seconds 10] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.store.db import Database  # noqa: E402
from app.store.series import SampleRow, SeriesKey, SeriesStore  # noqa: E402
from bench._common import drop_database, fresh_database, pct, start_service  # noqa: E402

TARGETS = {
    "json_samples_per_s": 100_000,
    "text_samples_per_s": 40_000,
    "text_new_samples_per_s": 20_000,
    "paced_p99_ms": 50,
}


def text_body(pod: int, tick: int) -> bytes:
    """300 samples: 3 gauges x 100 label sets, as a multi-model pod would push."""
    lines = []
    for metric in ("gpu_utilization", "gpu_memory", "request_queue"):
        lines.append(f"# TYPE {metric} gauge")
        for i in range(100):
            lines.append(f'{metric}{{model="m{i}"}} {(pod * 7 + i + tick) % 100}')
    return ("\n".join(lines) + "\n").encode()


def json_body(batch: int) -> bytes:
    """1,000 samples stamped at receipt (so a body sent twice adds new points)."""
    rng = random.Random(batch)
    return json.dumps(
        {
            "samples": [
                {
                    "metric": "request_rate",
                    "labels": {"pod": f"p{i % 100}", "model": f"m{i // 100}"},
                    "value": rng.random() * 10,
                }
                for i in range(1000)
            ]
        }
    ).encode()


async def closed_loop(
    url: str, clients: int, seconds: float, make: object, method: str
) -> tuple[int, list[float]]:
    latencies: list[float] = []
    sent = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker(w: int) -> None:
            nonlocal sent
            tick = 0
            while time.perf_counter() < deadline:
                path, kwargs, count = make(w, tick)  # type: ignore[operator]
                started = time.perf_counter()
                response = await client.request(method, path, **kwargs)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"{response.status_code}: {response.text[:200]}")
                sent += count
                tick += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(clients)))
        elapsed = time.perf_counter() - started
    return int(sent / elapsed), latencies


async def paced(url: str, rate: float, seconds: float) -> list[float]:
    """Steady-state latency: every pod pushes once first (creating its 300 series is a one-off
    cost per pod), then pushes arrive at `rate` per second."""
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for pod in range(50):
            warm = await client.put(f"/metrics/job/paced/pod/p{pod}", content=text_body(pod, 0))
            assert warm.status_code == 200, warm.text

        async def one(i: int) -> None:
            started = time.perf_counter()
            response = await client.put(
                f"/metrics/job/paced/pod/p{i % 50}", content=text_body(i, i)
            )
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text

        tasks = []
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return latencies


async def ceiling(database_url: str, seconds: float) -> int:
    db = Database(database_url)
    store = SeriesStore(max_series_per_job=1_000_000, lateness_us=10**12)
    keys = [
        SeriesKey.of("ceiling", {"pod": f"p{i % 100}", "model": f"m{i // 100}"})
        for i in range(1000)
    ]
    written = 0
    ts = time.time_ns() // 1000
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        ts += 1
        rows = [SampleRow(k, ts, 1.0) for k in keys]
        async with db.transaction() as conn:
            result = await store.write(conn, rows, now_us=ts)
        store.remember(result)
        written += len(rows)
    elapsed = time.perf_counter() - started
    await db.dispose()
    return int(written / elapsed)


async def load(base: str, seconds: float) -> dict[str, list[float] | int]:
    # Bodies are built before the clock starts: the load generator shares the two cores with
    # the service and PostgreSQL, and should spend them sending, not serialising.
    json_bodies = [json_body(i) for i in range(16)]
    text_bodies = {(w, t): text_body(w, t) for w in range(50) for t in range(4)}
    json_headers = {"Content-Type": "application/json"}

    def make_json(w: int, tick: int) -> tuple[str, dict[str, object], int]:
        body = json_bodies[(tick * 4 + w) % len(json_bodies)]
        return "/v1/samples", {"content": body, "headers": json_headers}, 1000

    def make_text(w: int, tick: int) -> tuple[str, dict[str, object], int]:
        return f"/metrics/job/bench/pod/p{w}", {"content": text_bodies[(w, tick % 4)]}, 300

    def make_new_pod(w: int, tick: int) -> tuple[str, dict[str, object], int]:
        # A pod name never pushed before: the grouping key's labels make all 300 series new.
        path = f"/metrics/job/fleet-{w}/pod/w{w}-t{tick}"
        return path, {"content": text_bodies[(w, tick % 4)]}, 300

    json_rate, json_lat = await closed_loop(base, 4, seconds, make_json, "POST")
    text_rate, text_lat = await closed_loop(base, 50, seconds, make_text, "PUT")
    new_rate, new_lat = await closed_loop(base, 50, seconds, make_new_pod, "PUT")
    paced_lat = await paced(base, 20.0, seconds)
    return {
        "json_rate": json_rate,
        "json_lat": json_lat,
        "text_rate": text_rate,
        "text_lat": text_lat,
        "new_rate": new_rate,
        "new_lat": new_lat,
        "paced_lat": paced_lat,
    }


def run_backend(backend: str, seconds: float, workers: int) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp())
    url, name = asyncio.run(fresh_database(backend, tmp))
    server, base = start_service(url, workers=workers, env={"CIUIC_MAX_SERIES_PER_JOB": "1000000"})
    try:
        m = asyncio.run(load(base, seconds))
    finally:
        server.terminate()
        server.wait(timeout=30)
    store_rate = asyncio.run(ceiling(url, seconds / 2))
    asyncio.run(drop_database(name))
    json_lat, text_lat, paced_lat = m["json_lat"], m["text_lat"], m["paced_lat"]
    new_lat = m["new_lat"]
    json_rate, text_rate = int(m["json_rate"]), int(m["text_rate"])  # type: ignore[call-overload]
    new_rate = int(m["new_rate"])  # type: ignore[call-overload]
    assert isinstance(json_lat, list) and isinstance(text_lat, list)
    assert isinstance(paced_lat, list) and isinstance(new_lat, list)
    return {
        "backend": backend,
        "workers": workers,
        "json_samples_per_s": json_rate,
        "json_p99_ms": pct(json_lat, 0.99),
        "text_samples_per_s": text_rate,
        "text_p50_ms": pct(text_lat, 0.5),
        "text_p99_ms": pct(text_lat, 0.99),
        "text_new_samples_per_s": new_rate,
        "text_new_p50_ms": pct(new_lat, 0.5),
        "text_new_p99_ms": pct(new_lat, 0.99),
        "paced_p50_ms": pct(paced_lat, 0.5),
        "paced_p99_ms": pct(paced_lat, 0.99),
        "store_ceiling_samples_per_s": store_rate,
        "json_vs_ceiling": round(json_rate / store_rate, 2),
        "text_vs_ceiling": round(text_rate / store_rate, 2),
        "text_new_vs_ceiling": round(new_rate / store_rate, 2),
        "mean_text_latency_ms": round(1000 * statistics.mean(text_lat), 1),
    }


def checks(r: dict[str, object]) -> dict[str, bool]:
    """Each target met or not (the targets are PostgreSQL's; SQLite is reported beside)."""
    return {
        name: (r[name] <= limit if name.endswith("_ms") else r[name] >= limit)  # type: ignore[operator]
        for name, limit in TARGETS.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["postgresql", "sqlite", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=1, help="service worker processes")
    args = parser.parse_args()
    backends = ["postgresql", "sqlite"] if args.backend == "both" else [args.backend]
    results = [run_backend(b, args.seconds, args.workers) for b in backends]
    for r in results:
        print(json.dumps({"bench": "ingest", **r, "targets": TARGETS, "checks": checks(r)}))
    cols = [
        "backend",
        "json_samples_per_s",
        "text_samples_per_s",
        "text_p99_ms",
        "text_new_samples_per_s",
        "text_new_p99_ms",
        "paced_p50_ms",
        "paced_p99_ms",
        "store_ceiling_samples_per_s",
        "json_vs_ceiling",
        "text_vs_ceiling",
        "text_new_vs_ceiling",
    ]
    print("\n| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in results:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    for r in results:
        missed = [k for k, ok in checks(r).items() if not ok]
        verdict = "all targets met" if not missed else "missed: " + ", ".join(missed)
        print(f"\n{r['backend']}: {verdict}")


if __name__ == "__main__":
    main()
