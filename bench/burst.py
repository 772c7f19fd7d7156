"""Burst benchmark: from a pushed burst to the scale PATCH at the Kubernetes API, and the CPU
cost of reconciling 1,000 scalers every 5 s.

1. burst: `ciuic serve` runs in its own process, configured by CIUIC_KUBECONFIG to drive the
   Kubernetes API emulator (testkit/kube_emulator.py, in this process, real time),
   leading through a Lease, with its default reconcile interval (5 s). `--bursts` Deployments
   each get a scaler whose emergency trigger (own metric, threshold 50, duration 0s) fires on
   one pushed sample of 100. For each burst: the time from the push's response (and from its
   request) to the `patch deployments/scale` reaching the emulator.
2. cpu: in this process, `--scalers` scalers (two metrics each, per-scaler label selectors,
   stored samples covering the whole run) reconciled by the production loop every
   `--interval` s against the built-in simulated cluster, for `--seconds`; CPU seconds per
   minute of wall time (process time: the loop, SQLAlchemy, the driver), and pass durations.
   Meanwhile about one burst a second is committed and signalled as ingestion does: its time
   to the target's scale call shows what a long pass costs a burst.

Targets (issue 6): burst p99 < 1 s; 1,000 scalers every 5 s under one core (60 CPU s/min).

    .venv/bin/python bench/burst.py [--bursts 50] [--scalers 1000] [--seconds 60]
                                    [--backend sqlite|postgresql]
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
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.clock import SystemClock  # noqa: E402
from app.kube.simulated import SimulatedCluster  # noqa: E402
from app.services.forecasts import ForecastCache  # noqa: E402
from app.services.wakeup import Wakeup  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.store import scalers as scaler_store  # noqa: E402
from app.store.db import Database  # noqa: E402
from app.store.series import SampleRow, SeriesKey, SeriesStore  # noqa: E402
from app.telemetry import Telemetry  # noqa: E402
from app.workers import reconciler  # noqa: E402
from bench._common import drop_database, fresh_database, pct, start_service  # noqa: E402
from testkit.kube_emulator import KubeEmulator  # noqa: E402

TARGETS = {"burst_p99_ms": 1000, "cpu_s_per_min": 60}


# ---- 1. burst -> PATCH ----------------------------------------------------------------------


def burst_spec(i: int) -> dict[str, Any]:
    metric = f"queue_{i}"
    return {
        "name": f"llm-{i}",
        "target": f"llm-{i}",
        "max_replicas": 10,
        "metrics": [{"name": metric, "target": "<5"}],
        "emergency": {
            "enabled": True,
            "burst_multiplier": 2.0,
            "triggers": [{"metric": metric, "threshold": 50, "duration": "0s"}],
        },
    }


def service_env(kubeconfig: Path) -> dict[str, str]:
    return {
        "CIUIC_KUBECONFIG": str(kubeconfig),
        "CIUIC_LEASE_RETRY_PERIOD_S": "0.2",
        "CIUIC_LEASE_RENEW_DEADLINE_S": "2",
        "CIUIC_LEASE_DURATION_S": "3",
    }


def run_bursts(backend: str, bursts: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp())
    url, name = asyncio.run(fresh_database(backend, tmp, "burst"))
    with KubeEmulator(cold_start_s=0.5, realtime=True) as kube:
        kubeconfig = tmp / "kubeconfig"
        kubeconfig.write_text(json.dumps(kube.kubeconfig()))
        for i in range(bursts):
            kube.add_workload(f"llm-{i}", replicas=1, ready=True)
        server, base = start_service(url, env=service_env(kubeconfig))
        from_response: list[float] = []
        from_request: list[float] = []
        try:
            with httpx.Client(base_url=base, timeout=30) as client:
                for i in range(bursts):
                    assert client.post("/v1/scalers", json=burst_spec(i)).status_code == 201
                # The leader's first passes have decided every scaler (an event each) and
                # opened the namespace's shared pod watch.
                deadline = time.monotonic() + 60
                pending = set(range(bursts))
                while pending or kube.count("watch", "pods") < 1:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the service never observed every target")
                    pending = {
                        i
                        for i in pending
                        if not client.get(f"/v1/scalers/llm-{i}/events").json()["events"]
                    }
                    time.sleep(0.1)
                time.sleep(1.0)
                for i in range(bursts):
                    sample = {"metric": f"queue_{i}", "labels": {"pod": "p0"}, "value": 100}
                    sent = time.monotonic()
                    response = client.post("/v1/samples", json={"samples": [sample]})
                    answered = time.monotonic()
                    assert response.status_code == 200, response.text
                    patch = None
                    while patch is None and time.monotonic() - answered < 10:
                        patch = next(
                            (
                                r
                                for r in list(kube.requests)
                                if (r.verb, r.resource, r.name)
                                == ("patch", "deployments/scale", f"llm-{i}")
                            ),
                            None,
                        )
                        time.sleep(0.001)
                    if patch is None:
                        raise RuntimeError(f"burst {i}: no scale PATCH within 10 s")
                    from_response.append(patch.at - answered)
                    from_request.append(patch.at - sent)
                    time.sleep(random.uniform(0.1, 0.4))  # spread over the reconcile interval
        finally:
            server.terminate()
            server.wait(timeout=30)
    asyncio.run(drop_database(name))
    return {
        "backend": backend,
        "bursts": bursts,
        "p50_ms": pct(from_response, 0.5),
        "p99_ms": pct(from_response, 0.99),
        "max_ms": round(1000 * max(from_response), 1),
        "from_request_p50_ms": pct(from_request, 0.5),
        "from_request_p99_ms": pct(from_request, 0.99),
    }


# ---- 2. CPU of 1,000 scalers ----------------------------------------------------------------


def cpu_spec(i: int) -> dict[str, Any]:
    app = {"app": f"llm-{i}"}
    return {
        "name": f"llm-{i}",
        "target": f"llm-{i}",
        "max_replicas": 20,
        "metrics": [
            {"name": "gpu_utilization", "target": "85%", "weight": 0.6, "selector": app},
            {"name": "request_queue", "target": "<5", "weight": 0.4, "selector": app},
        ],
        "emergency": {
            "enabled": True,
            "triggers": [{"metric": "request_queue", "threshold": 50, "duration": "0s"}],
        },
    }


class TimedCluster(SimulatedCluster):
    """The simulated cluster, noting when each target is scaled."""

    def __init__(self) -> None:
        super().__init__(SystemClock(), initial_replicas=2, cold_start_s=(30, 60))
        self.scaled: dict[str, list[float]] = {}

    async def scale(self, target: Any, replicas: int) -> None:
        self.scaled.setdefault(target.name, []).append(time.perf_counter())
        await super().scale(target, replicas)


async def inject_bursts(
    db: Database, wakeup: Wakeup, cluster: TimedCluster, scalers: int, seconds: float
) -> list[float]:
    """About one burst a second, as ingestion does it (commit, then `check`); each one's
    time from the commit to its target's scale call, while the passes go on."""
    series = SeriesStore(max_series_per_job=10_000_000, lateness_us=10**12)
    rng = random.Random(2)
    latencies: list[float] = []
    victims = rng.sample(range(scalers), k=min(scalers, int(seconds)))
    deadline = time.perf_counter() + seconds - 2
    await asyncio.sleep(2)  # the first pass has indexed every trigger
    for i in victims:
        if time.perf_counter() > deadline:
            break
        now_us = round(time.time() * 1e6)
        rows = [
            SampleRow(
                SeriesKey.of("request_queue", {"app": f"llm-{i}", "pod": f"p{p}"}), now_us, 100
            )
            for p in range(2)
        ]
        async with db.transaction() as conn:
            await series.write(conn, rows, now_us=now_us)
        pushed = time.perf_counter()
        wakeup.check(rows)
        while time.perf_counter() - pushed < 10:
            after = [t for t in cluster.scaled.get(f"llm-{i}", []) if t > pushed]
            if after:
                latencies.append(after[0] - pushed)
                break
            await asyncio.sleep(0.002)
        await asyncio.sleep(rng.uniform(0.3, 0.9))
    return latencies


async def prepare(url: str, scalers: int, seconds: float, interval: float) -> None:
    db = Database(url)
    series = SeriesStore(max_series_per_job=10_000_000, lateness_us=10**12)
    now = time.time()
    async with db.transaction() as conn:
        for i in range(scalers):
            await scaler_store.upsert_scaler(conn, f"llm-{i}", cpu_spec(i), now_us=round(now * 1e6))
    rng = random.Random(1)
    # Samples every `interval` from a minute ago to past the end of the run: the reconciler
    # always finds fresh readings, and nothing is ingested while CPU is measured.
    stamps = [now - 60 + k * interval for k in range(int((seconds + 90) / interval))]
    for i in range(scalers):
        util = rng.uniform(30, 120)
        queue = rng.uniform(0, 8)
        rows = [
            SampleRow(
                SeriesKey.of(metric, {"app": f"llm-{i}", "pod": f"p{p}"}),
                round(t * 1e6),
                value * rng.uniform(0.9, 1.1),
            )
            for t in stamps
            for p in range(2)
            for metric, value in (("gpu_utilization", util), ("request_queue", queue))
        ]
        async with db.transaction() as conn:
            written = await series.write(conn, rows, now_us=round(now * 1e6))
        series.remember(written)
    await db.dispose()


async def measure_cpu(url: str, scalers: int, seconds: float, interval: float) -> dict[str, Any]:
    db = Database(url)
    clock = SystemClock()
    cluster = TimedCluster()
    wakeup = Wakeup()
    settings = Settings(database_url=url, reconcile_interval_s=interval)
    passes: list[float] = []
    original = reconciler.reconcile_once

    async def timed(*args: Any, **kwargs: Any) -> int:
        started = time.perf_counter()
        done = await original(*args, **kwargs)
        if kwargs.get("only") is None:
            passes.append(time.perf_counter() - started)
        return done

    reconciler.reconcile_once = timed  # type: ignore[assignment]
    loop = reconciler.reconcile_loop(
        db, cluster, settings, clock, Telemetry(), ForecastCache(), wakeup
    )
    stop = asyncio.Event()
    task = asyncio.create_task(loop(stop))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    bursts = await inject_bursts(db, wakeup, cluster, scalers, seconds)
    await asyncio.sleep(max(0.0, seconds - (time.perf_counter() - wall0)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    stop.set()
    await task
    reconciler.reconcile_once = original  # type: ignore[assignment]
    actions = 0
    async with db.read() as conn:
        for i in range(scalers):
            actions += len(await scaler_store.list_events(conn, f"llm-{i}", kinds=["action"]))
    await db.dispose()
    return {
        "scalers": scalers,
        "interval_s": interval,
        "seconds": round(wall, 1),
        "passes": len(passes),
        "pass_mean_ms": round(1000 * statistics.mean(passes), 1) if passes else None,
        "pass_max_ms": round(1000 * max(passes), 1) if passes else None,
        "cpu_s_per_min": round(60 * cpu / wall, 2),
        "cores": round(cpu / wall, 3),
        "actions": actions,
        "bursts_under_load": len(bursts),
        "burst_under_load_p50_ms": pct(bursts, 0.5) if bursts else None,
        "burst_under_load_p99_ms": pct(bursts, 0.99) if bursts else None,
    }


def run_cpu(backend: str, scalers: int, seconds: float, interval: float) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp())
    url, name = asyncio.run(fresh_database(backend, tmp, "cpu"))
    asyncio.run(prepare(url, scalers, seconds, interval))
    result = asyncio.run(measure_cpu(url, scalers, seconds, interval))
    asyncio.run(drop_database(name))
    return {"backend": backend, **result}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="sqlite")
    parser.add_argument("--bursts", type=int, default=50)
    parser.add_argument("--scalers", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0, help="CPU measurement")
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--skip", choices=["burst", "cpu"], action="append", default=[])
    args = parser.parse_args()
    burst = run_bursts(args.backend, args.bursts) if "burst" not in args.skip else None
    cpu = (
        run_cpu(args.backend, args.scalers, args.seconds, args.interval)
        if "cpu" not in args.skip
        else None
    )
    print(json.dumps({"bench": "burst", "burst": burst, "cpu": cpu, "targets": TARGETS}))
    print("\n| measure | value | target |")
    print("|---|---|---|")
    if burst:
        n = burst["bursts"]
        print(f"| burst response -> PATCH p50 ({n} bursts) | {burst['p50_ms']} ms | |")
        print(f"| burst response -> PATCH p99 | {burst['p99_ms']} ms | < 1000 ms |")
        print(f"| burst request -> PATCH p99 | {burst['from_request_p99_ms']} ms | |")
    if cpu:
        print(
            f"| {cpu['scalers']} scalers every {cpu['interval_s']:g} s: CPU | "
            f"{cpu['cpu_s_per_min']} CPU s/min ({cpu['cores']} cores) | < 60 s/min |"
        )
        print(f"| pass duration mean / max | {cpu['pass_mean_ms']} / {cpu['pass_max_ms']} ms | |")
        print(
            f"| burst commit -> scale call p50 / p99, during those passes "
            f"({cpu['bursts_under_load']} bursts) | {cpu['burst_under_load_p50_ms']} / "
            f"{cpu['burst_under_load_p99_ms']} ms | < 1000 ms |"
        )


if __name__ == "__main__":
    main()
