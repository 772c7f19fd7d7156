"""Load and soak: simulated pods pushing and scalers reconciling against a running service.

`ciuic serve` runs in its own process on a free loopback port, on a fresh migrated database
(PostgreSQL by default, or SQLite), with an admin token and the built-in simulated cluster (no
kubeconfig), at its default settings (reconcile every 5 s, rollups, retention, refits).

- `--scalers` scalers (100) are created through POST /v1/scalers in the example spec's shape
  (gpu_utilization 85 % and request_queue < 5, weighted; a request_rate capacity; eager
  preheat; cron floors; an emergency trigger on the queue), each on its own simulated
  Deployment, reading only its own pods through a `deployment` label selector.
- `--pods` pods (1,000: 10 a scaler) each push every `--interval` s (5) with the Pushgateway
  text protocol, PUT /metrics/job/ciuic-agent/instance/<pod>, and a push token: the agent's
  gauges (gpu_utilization, gpu_memory, request_queue) and request_rate. Pushes are spread
  evenly over the interval (200/s in all), not in lockstep. Between its pushes each pod also
  does what the agent (sdk/ciuic_sdk/agent.py) does by default: it reads its queue every
  `--change-poll` s (1) and, when the queue is at or over `--push-on-queue` (5) and longer than
  at its last push, pushes it at once (POST /v1/samples, one sample, as the agent sends it).
  Those change pushes are measured apart (their rate, errors and latency) and held to the
  same targets. The load follows a day compressed
  into the run (a sine per Deployment, phases spread) with noise and a few 40 s bursts over
  the emergency threshold; the utilisation and queue a pod reports depend on the replicas its
  scaler last decided (read back from the API), so scalers go up and down with the load.
- Measured: pushes sent vs intended, the generator's own lag behind its schedule (and its
  CPU), errors (non-2xx, exceptions, and pushes given up after `--timeout` s, the agent's 5 s,
  waiting for one of `--connections` connections), push latency on the wire p50/p99/max (a
  push given up counts the time it waited, a lower bound) with a per-bucket series (and the
  service's own histogram from /metrics as a cross-check), the service's RSS (VmRSS summed
  over its process tree, every `--sample-every` s) with its growth over the second half
  (least-squares slope), its CPU (utime + stime deltas, in cores), and reconcile health read
  through the API: each scaler's last decision age (GET /v1/scalers every 2 intervals), the
  share re-decided between two reads, events per bucket, and at the end whether every scaler
  decided on fresh readings from all its pods (GET /v1/scalers/{name}/decision:
  pods_reporting per metric).

Targets (issue 8, issue 17): error rate <= 0.1 %, push p99 < 100 ms over the whole run (the
first minute, when every pod's first push creates its series, included), for the periodic
pushes and for the change pushes alike, RSS flat (< 5 % growth over the second half), every
scaler decided within the last 3 intervals at the end, on all its pods; and the generator kept
up (its lag p99 < 1 s), or the run says it under-loaded the service. Exit status 1 when any
is missed.

    .venv/bin/python bench/soak.py [--minutes 10 | --seconds 60] [--pods 1000] [--scalers 100]
                                   [--backend postgresql|sqlite] [--workers 1] [--json out.json]
                                   [--push-on-queue 5 (0: periodic pushes only)] [--change-poll 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import drop_database, fresh_database, pct, start_service  # noqa: E402

ADMIN_TOKEN = "soak-admin-token"
JOB = "ciuic-agent"
CAPACITY = 2.0  # requests/s one replica serves (the scalers' capacity)
TARGETS = {
    "error_rate_pct": 0.1,
    "push_p99_ms": 100.0,
    "rss_growth_pct_second_half": 5.0,
    "generator_lag_p99_ms": 1000.0,
}
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---- the workload ---------------------------------------------------------------------------


def scaler_spec(i: int) -> dict[str, Any]:
    """The brief's scaler (examples/ciuic-config.yaml), on its own Deployment and pods."""
    name = f"soak-{i:03d}"
    own = {"deployment": name}
    return {
        "name": name,
        "target": name,
        "scaler": "predictive",
        "min_replicas": 1,
        "max_replicas": 20,
        "metrics": [
            {"name": "gpu_utilization", "weight": 0.6, "target": "85%", "selector": own},
            {"name": "request_queue", "weight": 0.4, "target": "<5", "selector": own},
        ],
        "capacity": {"request_rate": f"{CAPACITY:g}/s"},
        "preheat": {"enabled": True, "min_ready": 1, "strategy": "eager"},
        "schedule": [
            {"time": "0 9 * * *", "min_replicas": 2},
            {"time": "0 23 * * *", "min_replicas": 1},
        ],
        "emergency": {
            "enabled": True,
            "burst_multiplier": 2.0,
            "triggers": [{"metric": "request_queue", "threshold": 50, "duration": "10s"}],
        },
    }


@dataclass
class Workload:
    """Each Deployment's load (requests/s) over a day compressed into the run."""

    scalers: int
    pods: int
    seconds: float
    seed: int = 1
    peak: list[float] = field(default_factory=list)
    phase: list[float] = field(default_factory=list)
    bursts: dict[int, float] = field(default_factory=dict)  # deployment -> burst start (s)
    replicas: list[int] = field(default_factory=list)  # each scaler's last decided count
    pushed_queue: dict[int, float] = field(default_factory=dict)  # pod -> queue last pushed

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        self.peak = [rng.uniform(4.0, 30.0) for _ in range(self.scalers)]
        self.phase = [rng.uniform(-0.6, 0.6) for _ in range(self.scalers)]
        self.replicas = [1] * self.scalers
        # One Deployment in ten gets a 40 s burst (queue over the emergency threshold).
        for i in range(0, self.scalers, 10):
            self.bursts[i] = rng.uniform(0.1, 0.8) * self.seconds

    def pod(self, p: int) -> tuple[int, str]:
        i = p % self.scalers
        return i, f"soak-{i:03d}-{p // self.scalers:03d}"

    def levels(self, i: int, t: float, rng: random.Random) -> tuple[float, float, float]:
        """Deployment `i`'s load (requests/s), and a pod's utilisation and queue, at `t`."""
        day = 0.55 - 0.45 * math.cos(2 * math.pi * t / self.seconds + self.phase[i])
        load = self.peak[i] * day * rng.uniform(0.9, 1.1)
        served = max(1, self.replicas[i]) * CAPACITY
        util = min(100.0, 100.0 * load / served) * rng.uniform(0.95, 1.05)
        queue = max(0.0, load - served) * 2.0 * rng.uniform(0.8, 1.2)
        start = self.bursts.get(i)
        if start is not None and start <= t < start + 40:
            queue += 80.0
            util = 100.0
        return load, util, queue

    def body(self, p: int, t: float, rng: random.Random) -> bytes:
        """The pod's gauges at `t` s into the run, as the text exposition format."""
        i, _ = self.pod(p)
        load, util, queue = self.levels(i, t, rng)
        self.pushed_queue[p] = queue  # the agent remembers what its round pushed
        per_pod = load * self.scalers / self.pods  # the pods share their Deployment's load
        dep = f'{{deployment="soak-{i:03d}"}}'
        return (
            f"# TYPE gpu_utilization gauge\ngpu_utilization{dep} {min(util, 100.0):.2f}\n"
            f"# TYPE gpu_memory gauge\ngpu_memory{dep} {int(2e10 + util * 4e8)}\n"
            f"# TYPE request_queue gauge\nrequest_queue{dep} {queue:.1f}\n"
            f"# TYPE request_rate gauge\nrequest_rate{dep} {per_pod:.3f}\n"
        ).encode()


# ---- the service process --------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """`root` and its descendants (uvicorn's worker processes with --workers > 1)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def rss_and_cpu(pids: list[int]) -> tuple[float, float, float]:
    """Summed VmRSS (MB), utime + stime (s), and the time their main threads (the event
    loops) were runnable but waiting for a CPU (s, /proc/<pid>/schedstat): on a shared
    machine, how much of the service's latency is the machine's, not the service's."""
    rss_kb, ticks, waited_ns = 0, 0, 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss_kb += int(line.split()[1])
                        break
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
            with open(f"/proc/{pid}/schedstat") as f:
                waited_ns += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # a process that just exited
    return rss_kb / 1024, ticks / CLK_TCK, waited_ns / 1e9


def slope_per_s(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    if len(points) < 2:
        return 0.0
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    den = sum((x - mx) ** 2 for x, _ in points)
    return 0.0 if den == 0 else sum((x - mx) * (y - my) for x, y in points) / den


def push_histogram(text: str) -> dict[float, float]:
    """The service's own latency histogram for pushes (cumulative count per bucket bound)."""
    counts: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "ciuic_request_duration_seconds":
            continue
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name.endswith("_bucket")
                and labels.get("method") == "PUT"
                and labels.get("route", "").startswith("/metrics/")
            ):
                bound = float(labels["le"])
                counts[bound] = counts.get(bound, 0.0) + sample.value
    return counts


def histogram_quantile(
    before: dict[float, float], after: dict[float, float], q: float
) -> float | None:
    """The bucket bound (ms) under which a `q` share of the requests between two reads fell
    (None: no requests, or beyond the last finite bound)."""
    bounds = sorted(after)
    deltas = [after[b] - before.get(b, 0.0) for b in bounds]
    if not deltas or deltas[-1] <= 0:
        return None
    for bound, count in zip(bounds, deltas, strict=True):
        if count >= q * deltas[-1]:
            return 1000 * bound if math.isfinite(bound) else None
    return None


# ---- the run --------------------------------------------------------------------------------


@dataclass
class Push:
    at: float  # seconds into the run it was due
    gen_lag: float  # due -> the generator got to it (s): the generator's own delay
    wait: float  # -> a connection was free (s): the service's backlog
    latency: float | None  # on the wire: request -> response (s); None if never sent
    ok: bool
    outcome: str  # the status code, "no_connection", "timeout", or the exception's name


@dataclass
class Measures:
    pushes: list[Push] = field(default_factory=list)
    changes: list[Push] = field(default_factory=list)  # the agent's pushes on a queue change
    samples: list[dict[str, float]] = field(default_factory=list)  # RSS / CPU samples
    polls: list[dict[str, Any]] = field(default_factory=list)  # reconcile health reads
    server_p50_ms: float | None = None  # the service's own histogram: a bucket's bound
    server_p99_ms: float | None = None
    unfinished: int = 0  # pushes still pending `timeout` + 5 s after the last was due


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less when `stop` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def push_loop(
    client: aiohttp.ClientSession,
    work: Workload,
    interval: float,
    t0: float,
    seconds: float,
    token: str,
    connections: int,
    give_up_s: float,
    out: Measures,
    push_on_queue: float | None = None,
    change_poll: float = 1.0,
) -> int:
    """Every pod once per `interval`, pods spread evenly: push n is due at t0 + n * interval /
    pods. A late generator sends at once (catching up) and notes how late it was. With
    `push_on_queue`, each pod also reads its queue every `change_poll` s between its pushes,
    as the agent does, and pushes it at once when at or over that and longer than last pushed
    (`out.changes`)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/plain; version=0.0.4"}
    rng = random.Random(2)
    step = interval / work.pods
    tasks: set[asyncio.Task[None]] = set()

    # At most `connections` pushes in flight: the rest wait here, not in httpx's pool, whose
    # queue costs CPU per waiting request (thousands queued starved the generator itself).
    slots = asyncio.Semaphore(connections)
    loop = asyncio.get_running_loop()

    async def one(p: int, due: float, change: float | None = None) -> None:
        # Like the agent, a pod gives up on a push `give_up_s` after it was due: waiting for a
        # connection counts, so a slow service shows as errors, not as an ever-growing queue.
        started = time.perf_counter()
        i, pod = work.pod(p)
        if change is None:
            path, body, kind = f"/metrics/job/{JOB}/instance/{pod}", work.body(p, due - t0, rng), {}
        else:  # the agent's push on change: the queue alone, as JSON, stamped when read
            labels = {"job": JOB, "instance": pod, "deployment": f"soak-{i:03d}"}
            sample = {"metric": "request_queue", "labels": labels, "value": round(change, 1)}
            path, kind = "/v1/samples", {"Content-Type": "application/json"}
            body = json.dumps({"samples": [{**sample, "timestamp": time.time()}]}).encode()
        record = out.pushes if change is None else out.changes
        try:
            async with asyncio.timeout_at(loop.time() + due + give_up_s - started):
                await slots.acquire()
        except TimeoutError:
            now = time.perf_counter()
            record.append(
                Push(due - t0, started - due, now - started, None, False, "no_connection")
            )
            return
        try:
            sent = time.perf_counter()
            try:
                async with client.request(
                    "PUT" if change is None else "POST",
                    path,
                    data=body,
                    headers=kind,
                    timeout=aiohttp.ClientTimeout(total=max(0.001, due + give_up_s - sent)),
                ) as response:
                    await response.read()
                    ok, outcome = response.status < 300, str(response.status)
            except TimeoutError:  # connect, write or read: past the deadline
                ok, outcome = False, "timeout"
            except Exception as exc:  # a refused or reset connection: counted, not raised
                ok, outcome = False, type(exc).__name__
            done = time.perf_counter()
        finally:
            slots.release()
        record.append(Push(due - t0, started - due, sent - started, done - sent, ok, outcome))

    def start(p: int, due: float, change: float | None = None) -> None:
        task = asyncio.create_task(one(p, due, change))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def watch(offset: float) -> None:
        """The queue reads `offset` s after each pod's periodic push (the agent's change
        poll), in the same order; a read that finds the queue over the threshold and longer
        than last pushed pushes it."""
        assert push_on_queue is not None
        watch_rng = random.Random(int(offset * 1000) + 3)
        n = 0
        while (due := t0 + offset + n * step) < t0 + seconds:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            p = n % work.pods
            n += 1
            if p not in work.pushed_queue:
                continue  # not pushed yet: the agent's first round comes first
            _, _, queue = work.levels(work.pod(p)[0], due - t0, watch_rng)
            if queue >= push_on_queue and queue > work.pushed_queue[p]:
                work.pushed_queue[p] = queue
                start(p, due, queue)

    client.headers.update(headers)
    # The agent polls while its next round is more than a poll away: at 1, 2, 3, 4 s of 5.
    offsets = []
    if push_on_queue is not None:
        offsets = [j * change_poll for j in range(1, math.ceil(interval / change_poll))]
    watchers = [asyncio.create_task(watch(offset)) for offset in offsets]
    n = 0
    while (due := t0 + n * step) < t0 + seconds:
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        start(n % work.pods, due)
        n += 1
    await asyncio.gather(*watchers)
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=give_up_s + 5)
        for task in pending:  # none should be: each gives up after `give_up_s`
            task.cancel()
        out.unfinished = len(pending)
    return n


async def sample_loop(
    server: subprocess.Popen[bytes], t0: float, every: float, stop: asyncio.Event, out: Measures
) -> None:
    last_wall, (_, last_cpu, last_waited) = (
        time.perf_counter(),
        rss_and_cpu(process_tree(server.pid)),
    )
    last_gen = time.process_time()
    while not stop.is_set():
        await pause(stop, every)
        pids = process_tree(server.pid)
        rss, cpu, waited = rss_and_cpu(pids)
        wall, gen = time.perf_counter(), time.process_time()
        out.samples.append(
            {
                "t": round(wall - t0, 2),
                "rss_mb": round(rss, 1),
                "cores": round((cpu - last_cpu) / (wall - last_wall), 3),
                "cpu_wait": round((waited - last_waited) / (wall - last_wall), 3),
                "generator_cores": round((gen - last_gen) / (wall - last_wall), 3),
                "processes": len(pids),
                "load1": round(os.getloadavg()[0], 2),
            }
        )
        last_wall, last_cpu, last_gen, last_waited = wall, cpu, gen, waited


async def poll_loop(
    client: httpx.AsyncClient,
    work: Workload,
    t0: float,
    every: float,
    stop: asyncio.Event,
    out: Measures,
) -> None:
    """Every scaler's last decision, read back through the API: how old it is, whether it is
    newer than at the last read, and its replicas (which the pods' load then sees)."""
    index = {f"soak-{i:03d}": i for i in range(work.scalers)}
    previous: dict[str, str | None] = {}
    while not stop.is_set():
        try:
            response = await client.get("/v1/scalers")
            response.raise_for_status()
            now = time.time()
            ages, advanced, errors = [], 0, 0
            for s in response.json():
                status = s["status"]
                at = status.get("last_decision_at")
                if at is not None:
                    ages.append(now - datetime.fromisoformat(at).timestamp())
                if s["name"] in previous and at is not None and at != previous[s["name"]]:
                    advanced += 1
                previous[s["name"]] = at
                errors += status.get("last_error") is not None
                decision = status.get("last_decision") or {}
                if s["name"] in index and decision.get("replicas") is not None:
                    work.replicas[index[s["name"]]] = int(decision["replicas"])
            out.polls.append(
                {
                    "t": round(time.perf_counter() - t0, 2),
                    "decided": len(ages),
                    "max_age_s": round(max(ages), 2) if ages else None,
                    "advanced": advanced if len(out.polls) else None,
                    "errors": errors,
                    "replicas": sum(work.replicas),
                }
            )
        except (httpx.HTTPError, ValueError) as exc:
            out.polls.append({"t": round(time.perf_counter() - t0, 2), "error": repr(exc)})
        await pause(stop, every)


async def final_checks(
    client: httpx.AsyncClient, work: Workload, since: float, interval: float
) -> dict[str, Any]:
    """At the end: each scaler's events since the start (by kind and time), and its decision
    now, from what its pods pushed."""
    per_pod = work.pods // work.scalers
    events: list[tuple[float, str]] = []
    fresh, stale, not_all_pods, last_errors = 0, [], [], []
    listed = (await client.get("/v1/scalers")).json()
    now = time.time()
    for s in listed:
        at = s["status"].get("last_decision_at")
        age = None if at is None else now - datetime.fromisoformat(at).timestamp()
        if age is not None and age <= 3 * interval:
            fresh += 1
        else:
            stale.append(s["name"])
        if s["status"].get("last_error"):
            last_errors.append(f"{s['name']}: {s['status']['last_error']}")
    for i in range(work.scalers):
        name = f"soak-{i:03d}"
        cursor = None
        while True:
            params: dict[str, Any] = {"since": f"{since:.3f}", "limit": 1000}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get(f"/v1/scalers/{name}/events", params=params)).json()
            for e in page["events"]:
                events.append((datetime.fromisoformat(e["time"]).timestamp() - since, e["kind"]))
            cursor = page.get("next_cursor")
            if not cursor:
                break
        decision = (await client.get(f"/v1/scalers/{name}/decision")).json()
        metrics = decision.get("observation", {}).get("metrics", {})
        reporting = [m.get("pods_reporting") for m in metrics.values()]
        if len(reporting) != 2 or any(r != per_pod for r in reporting):
            not_all_pods.append(f"{name}: {reporting}")
    return {
        "scalers": len(listed),
        "reconciled_recently": fresh,
        "stale": stale[:10],
        "last_errors": last_errors[:10],
        "decisions_missing_pods": not_all_pods[:10],
        "decisions_missing_pods_count": len(not_all_pods),
        "events": events,
    }


async def create_scalers(client: httpx.AsyncClient, scalers: int) -> str:
    """The scalers, and a push token for the pods (what an agent is given)."""
    for i in range(scalers):
        response = await client.post("/v1/scalers", json=scaler_spec(i))
        if response.status_code != 201:
            raise RuntimeError(f"creating scaler {i}: {response.status_code} {response.text}")
    response = await client.post("/v1/tokens", json={"name": "soak-pods", "scope": "push"})
    response.raise_for_status()
    return str(response.json()["token"])


async def soak(
    server: subprocess.Popen[bytes], base: str, args: argparse.Namespace
) -> dict[str, Any]:
    work = Workload(args.scalers, args.pods, args.seconds)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    # The pods push through aiohttp: httpx costs ~4 ms of CPU a request, which at 200
    # pushes/s saturated the generator's own event loop (0.9 cores) and showed up as push
    # latency that was not the service's.
    async with (
        httpx.AsyncClient(base_url=base, headers=admin, timeout=15) as api,
        aiohttp.ClientSession(
            base_url=base, connector=aiohttp.TCPConnector(limit=args.connections)
        ) as pods,
    ):
        token = await create_scalers(api, args.scalers)
        out = Measures()
        stop = asyncio.Event()
        since = time.time()
        t0 = time.perf_counter() + 0.5
        histogram_before = push_histogram((await api.get("/metrics")).text)
        background = [
            asyncio.create_task(sample_loop(server, t0, args.sample_every, stop, out)),
            asyncio.create_task(poll_loop(api, work, t0, 2 * args.interval, stop, out)),
        ]
        intended = await push_loop(
            pods,
            work,
            args.interval,
            t0,
            args.seconds,
            token,
            args.connections,
            args.timeout,
            out,
            push_on_queue=args.push_on_queue or None,
            change_poll=args.change_poll,
        )
        stop.set()
        await asyncio.gather(*background)
        try:
            histogram_after = push_histogram((await api.get("/metrics")).text)
            out.server_p50_ms = histogram_quantile(histogram_before, histogram_after, 0.5)
            out.server_p99_ms = histogram_quantile(histogram_before, histogram_after, 0.99)
            final = await final_checks(api, work, since, args.interval)
        except httpx.HTTPError as exc:  # an unresponsive service fails the check, not the run
            final = {
                "scalers": args.scalers,
                "reconciled_recently": 0,
                "decisions_missing_pods_count": args.scalers,
                "api_error": repr(exc),
                "events": [],
            }
    return summarise(args, out, final, intended)


# ---- the report -----------------------------------------------------------------------------


def _ms(values: list[float], q: float) -> float | None:
    return pct(values, q) if values else None


def summarise(
    args: argparse.Namespace, out: Measures, final: dict[str, Any], intended: int
) -> dict[str, Any]:
    seconds = args.seconds
    pushes = out.pushes
    wired = [p for p in pushes if p.latency is not None]  # put on the wire
    latencies = [p.latency for p in wired if p.latency is not None]
    errors = [p for p in pushes if not p.ok]
    n_errors = len(errors) + out.unfinished
    gen_lags = [p.gen_lag for p in pushes]
    waits = [p.wait for p in pushes]
    bucket = 60.0 if seconds >= 300 else max(10.0, seconds / 6)
    events_by_bucket: dict[int, Counter[str]] = {}
    for at, kind in final.pop("events"):
        if at >= 0:
            events_by_bucket.setdefault(int(at // bucket), Counter())[kind] += 1
    buckets = []
    for b in range(math.ceil(seconds / bucket)):
        lo, hi = b * bucket, min(seconds, (b + 1) * bucket)
        here = [p for p in pushes if lo <= p.at < hi]
        lat = [p.latency for p in here if p.latency is not None]
        samples = [s for s in out.samples if lo < s["t"] <= hi]
        polls = [p for p in out.polls if lo < p["t"] <= hi and p.get("max_age_s") is not None]
        buckets.append(
            {
                "from_s": round(lo),
                "sent_per_s": round(len(lat) / (hi - lo), 1),
                "errors": sum(not p.ok for p in here),
                "p50_ms": _ms(lat, 0.5),
                "p99_ms": _ms(lat, 0.99),
                "gen_lag_p99_ms": _ms([p.gen_lag for p in here], 0.99),
                "rss_mb": round(statistics.median(s["rss_mb"] for s in samples), 1)
                if samples
                else None,
                "cores": round(statistics.fmean(s["cores"] for s in samples), 2)
                if samples
                else None,
                "cpu_wait": round(statistics.fmean(s["cpu_wait"] for s in samples), 2)
                if samples
                else None,
                "max_decision_age_s": max(p["max_age_s"] for p in polls) if polls else None,
                "events": dict(events_by_bucket.get(b, Counter())),
            }
        )
    # Memory: the slope of a least-squares line through the second half's samples, and how
    # much that line grows over the second half, relative to its mean.
    rss = [(s["t"], s["rss_mb"]) for s in out.samples]
    half = [(t, r) for t, r in rss if t >= seconds / 2]
    slope = slope_per_s(half)
    span = (half[-1][0] - half[0][0]) if len(half) > 1 else 0.0
    half_mean = statistics.fmean(r for _, r in half) if half else 0.0
    growth_pct = 100 * slope * span / half_mean if half_mean else 0.0
    window = min(60.0, seconds / 4)
    first = [r for t, r in rss if t <= window]
    last = [r for t, r in rss if t >= seconds - window]
    cores = sorted(s["cores"] for s in out.samples)
    advanced = [p["advanced"] for p in out.polls if p.get("advanced") is not None]
    warm = [p for p in out.polls if p.get("max_age_s") is not None and p["t"] > 3 * args.interval]
    changes = out.changes
    change_lat = [p.latency for p in changes if p.latency is not None]
    change_errors = sum(not p.ok for p in changes)
    r: dict[str, Any] = {
        "bench": "soak",
        "backend": args.backend,
        "workers": args.workers,
        "pods": args.pods,
        "scalers": args.scalers,
        "interval_s": args.interval,
        "seconds": seconds,
        "connections": args.connections,
        "timeout_s": args.timeout,
        "intended_pushes": intended,
        "intended_per_s": round(intended / seconds, 1),
        "sent": len(wired),
        "sent_per_s": round(len(wired) / seconds, 1),
        "ok_per_s": round(sum(p.ok for p in pushes) / seconds, 1),
        "delivered_pct": round(100 * len(wired) / intended, 2) if intended else 0.0,
        "generator_lag_p50_ms": _ms(gen_lags, 0.5),
        "generator_lag_p99_ms": _ms(gen_lags, 0.99),
        "generator_lag_max_ms": round(1000 * max(gen_lags), 1) if gen_lags else None,
        "connection_wait_p99_ms": _ms(waits, 0.99),
        "errors": n_errors,
        "error_rate_pct": round(100 * n_errors / intended, 3) if intended else 100.0,
        "error_kinds": dict(Counter(p.outcome for p in errors))
        | ({"unfinished": out.unfinished} if out.unfinished else {}),
        "push_p50_ms": _ms(latencies, 0.5),
        "push_p99_ms": _ms(latencies, 0.99),
        "push_max_ms": round(1000 * max(latencies), 1) if latencies else None,
        # Reported beside the whole run, not instead of it: the first minute holds the fleet's
        # start-up (every pod's first push creates its series and group at once).
        "push_p99_ms_after_first_minute": _ms(
            [p.latency for p in wired if p.latency is not None and p.at >= 60.0], 0.99
        ),
        "push_on_queue": args.push_on_queue or None,
        "change_poll_s": args.change_poll,
        "change_pushes": len(changes),
        "change_pushes_per_s": round(len(changes) / seconds, 1),
        "change_pushes_peak_per_s": max(Counter(int(p.at) for p in changes).values(), default=0),
        "change_push_errors": change_errors,
        "change_push_error_rate_pct": round(100 * change_errors / len(changes), 3)
        if changes
        else 0.0,
        "change_push_p50_ms": _ms(change_lat, 0.5),
        "change_push_p99_ms": _ms(change_lat, 0.99),
        "change_push_max_ms": round(1000 * max(change_lat), 1) if change_lat else None,
        "server_p50_ms_le": out.server_p50_ms,
        "server_p99_ms_le": out.server_p99_ms,
        "rss_first_mb": round(statistics.median(first), 1) if first else None,
        "rss_last_mb": round(statistics.median(last), 1) if last else None,
        "processes": max((s["processes"] for s in out.samples), default=None),
        "rss_window_s": round(window),
        "rss_slope_mb_per_10min": round(slope * 600, 1),
        "rss_growth_pct_second_half": round(growth_pct, 2),
        "cpu_cores_mean": round(statistics.fmean(cores), 2) if cores else None,
        "cpu_cores_p95": cores[int(0.95 * (len(cores) - 1))] if cores else None,
        "cpu_ms_per_push": round(1000 * statistics.fmean(cores) / (len(wired) / seconds), 2)
        if cores and wired
        else None,
        "service_cpu_wait": round(statistics.fmean(s["cpu_wait"] for s in out.samples), 2)
        if out.samples
        else None,
        "generator_cores": round(statistics.fmean(s["generator_cores"] for s in out.samples), 2)
        if out.samples
        else None,
        "load1_max": max((s["load1"] for s in out.samples), default=None),
        "decision_age_max_s": max((p["max_age_s"] for p in warm), default=None),
        "redecided_pct": round(100 * sum(advanced) / (len(advanced) * args.scalers), 1)
        if advanced
        else None,
        "final": final,
        "buckets": buckets,
        "targets": TARGETS,
    }
    lag_p99 = r["generator_lag_p99_ms"]
    r["checks"] = {
        "error_rate": r["error_rate_pct"] <= TARGETS["error_rate_pct"],
        "push_p99": r["push_p99_ms"] is not None and r["push_p99_ms"] < TARGETS["push_p99_ms"],
        # The agent's pushes on change: as many answered, as fast (none sent: nothing to miss).
        "change_pushes": r["change_push_error_rate_pct"] <= TARGETS["error_rate_pct"]
        and (not change_lat or pct(change_lat, 0.99) < TARGETS["push_p99_ms"]),
        "memory_flat": growth_pct < TARGETS["rss_growth_pct_second_half"],
        "scalers_reconciled": final["reconciled_recently"] == args.scalers
        and final["decisions_missing_pods_count"] == 0,
        "generator_kept_up": lag_p99 is not None and lag_p99 < TARGETS["generator_lag_p99_ms"],
    }
    if args.json_samples:
        r["rss_samples"] = out.samples
        r["polls"] = out.polls
    return r


def print_report(r: dict[str, Any]) -> None:
    ok, f, t = r["checks"], r["final"], TARGETS

    def mark(name: str) -> str:
        return "ok" if ok[name] else "MISSED"

    kinds = ", ".join(f"{k} {v}" for k, v in sorted(r["error_kinds"].items()))
    rows = [
        (
            "load",
            f"{r['pods']} pods every {r['interval_s']:g} s, {r['scalers']} scalers, "
            f"{r['backend']}, {r['workers']} worker(s), {r['seconds']:g} s",
            "",
        ),
        (
            "pushes sent / intended",
            f"{r['sent']} / {r['intended_pushes']} ({r['sent_per_s']}/s of "
            f"{r['intended_per_s']}/s, {r['delivered_pct']} %); answered 2xx: {r['ok_per_s']}/s",
            "",
        ),
        (
            "generator lag p50 / p99 / max",
            f"{r['generator_lag_p50_ms']} / {r['generator_lag_p99_ms']} / "
            f"{r['generator_lag_max_ms']} ms",
            f"p99 < {t['generator_lag_p99_ms']:g} ms ({mark('generator_kept_up')})",
        ),
        (
            f"wait for one of {r['connections']} connections p99",
            f"{r['connection_wait_p99_ms']} ms",
            "",
        ),
        (
            "errors",
            f"{r['errors']} ({r['error_rate_pct']} %){': ' + kinds if kinds else ''}",
            f"<= {t['error_rate_pct']:g} % ({mark('error_rate')})",
        ),
        (
            "push latency p50 / p99 / max",
            f"{r['push_p50_ms']} / {r['push_p99_ms']} / {r['push_max_ms']} ms",
            f"p99 < {t['push_p99_ms']:g} ms ({mark('push_p99')})",
        ),
        (
            "push latency p99 after the first minute (start-up excluded)",
            f"{r['push_p99_ms_after_first_minute']} ms",
            "",
        ),
        (
            "the agent's pushes on change "
            + (
                f"(queue >= {r['push_on_queue']:g}, read every {r['change_poll_s']:g} s)"
                if r["push_on_queue"]
                else "(off: --push-on-queue 0)"
            )
            + ": sent, mean / peak rate, errors",
            f"{r['change_pushes']}, {r['change_pushes_per_s']}/s / "
            f"{r['change_pushes_peak_per_s']}/s, {r['change_push_errors']} "
            f"({r['change_push_error_rate_pct']} %)",
            "",
        ),
        (
            "change push latency p50 / p99 / max",
            f"{r['change_push_p50_ms']} / {r['change_push_p99_ms']} / {r['change_push_max_ms']} ms",
            f"p99 < {t['push_p99_ms']:g} ms, errors <= {t['error_rate_pct']:g} % "
            f"({mark('change_pushes')})",
        ),
        (
            "the service's own push latency p50 / p99 (histogram bucket bounds"
            + (", one worker's /metrics)" if r["workers"] > 1 else ")"),
            f"<= {r['server_p50_ms_le']} / <= {r['server_p99_ms_le']} ms",
            "",
        ),
        (
            f"service RSS ({r['processes']} processes), median of first / last "
            f"{r['rss_window_s']} s",
            f"{r['rss_first_mb']} / {r['rss_last_mb']} MB",
            "",
        ),
        (
            "RSS growth over the second half (least squares)",
            f"{r['rss_slope_mb_per_10min']} MB/10 min ({r['rss_growth_pct_second_half']} %)",
            f"< {t['rss_growth_pct_second_half']:g} % ({mark('memory_flat')})",
        ),
        (
            "service CPU mean / p95; per push sent (all its work: reconciles, rollups too)",
            f"{r['cpu_cores_mean']} / {r['cpu_cores_p95']} cores; {r['cpu_ms_per_push']} ms",
            "",
        ),
        (
            "service event loop waiting for a CPU (run queue), share of wall time",
            f"{r['service_cpu_wait']}",
            "",
        ),
        (
            "load generator CPU; machine load average (1 min) max",
            f"{r['generator_cores']} cores; {r['load1_max']}",
            "",
        ),
        ("oldest last decision, after warm-up", f"{r['decision_age_max_s']} s", ""),
        (
            f"scalers re-decided between reads {2 * r['interval_s']:g} s apart",
            f"{r['redecided_pct']} %",
            "",
        ),
        (
            f"at the end: decided in the last {3 * r['interval_s']:g} s / on all their pods",
            f"{f['reconciled_recently']} / {f['scalers'] - f['decisions_missing_pods_count']} "
            f"of {f['scalers']}",
            f"all ({mark('scalers_reconciled')})",
        ),
    ]
    print("\n| measure | value | target |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    cols = [
        "from_s",
        "sent_per_s",
        "errors",
        "p50_ms",
        "p99_ms",
        "gen_lag_p99_ms",
        "rss_mb",
        "cores",
        "cpu_wait",
        "max_decision_age_s",
    ]
    print("\n| " + " | ".join(cols) + " | events |")
    print("|" + "---|" * (len(cols) + 1))
    for b in r["buckets"]:
        events = ", ".join(f"{k} {v}" for k, v in sorted(b["events"].items())) or "-"
        print("| " + " | ".join(str(b[c]) for c in cols) + f" | {events} |")
    if not ok["generator_kept_up"]:
        print(
            "\nThe load generator fell behind its own schedule (see its lag and CPU): the "
            "service got less than the intended load, so these numbers understate it."
        )
    timed_out = r["error_kinds"].get("no_connection", 0) + r["error_kinds"].get("timeout", 0)
    if timed_out:
        print(
            f"\n{timed_out} pushes were not answered within {r['timeout_s']:g} s of being due "
            f"(waiting for one of {r['connections']} connections: p99 "
            f"{r['connection_wait_p99_ms']} ms): the service did not keep up with the "
            "intended rate."
        )
    missed = [k for k, v in ok.items() if not v]
    print("\nall targets met" if not missed else "\nmissed: " + ", ".join(missed))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, help="run length in seconds (over --minutes)")
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--scalers", type=int, default=100)
    parser.add_argument("--interval", type=float, default=5.0, help="each pod's push period (s)")
    parser.add_argument("--workers", type=int, default=1, help="service worker processes")
    parser.add_argument("--connections", type=int, default=64, help="pods' connection pool")
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="a pod gives up this long after due (s)"
    )
    parser.add_argument("--sample-every", type=float, default=2.0, help="RSS / CPU period (s)")
    parser.add_argument(
        "--push-on-queue",
        type=float,
        default=5.0,
        help="the agent's push on change: queue threshold (0: periodic pushes only)",
    )
    parser.add_argument(
        "--change-poll", type=float, default=1.0, help="the agent's queue read period (s)"
    )
    parser.add_argument("--json", help="write the full result (with per-bucket series) here")
    parser.add_argument(
        "--json-samples", action="store_true", help="include every RSS sample and poll in --json"
    )
    args = parser.parse_args()
    args.seconds = args.seconds if args.seconds is not None else 60 * args.minutes
    if args.pods < args.scalers or args.pods % args.scalers:
        parser.error("--pods must be a multiple of --scalers")
    # A `timeout` or Ctrl-C still stops the service and drops the database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp())
    url, name = asyncio.run(fresh_database(args.backend, tmp, "soak"))
    try:
        server, base = start_service(url, workers=args.workers, admin_token=ADMIN_TOKEN)
        try:
            result = asyncio.run(soak(server, base, args))
        finally:
            server.terminate()
            server.wait(timeout=30)
    finally:
        asyncio.run(drop_database(name))
    line = {k: v for k, v in result.items() if k not in ("buckets", "rss_samples", "polls")}
    print(json.dumps(line))
    print_report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0 if all(result["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
