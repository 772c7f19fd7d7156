"""`ciuic demo`: a demo scaler and the traffic of its pods, against a running service.

It registers the scaler `demo` (the example spec, capacity 0.5 requests/s per pod), then every
5 s plays a compressed day of traffic (a peak every `--period` seconds): it reads how many pods
the service's cluster has ready and pushes what those pods would report — GPU utilisation,
queue length, request rate — through the JSON API. At start it backfills four simulated days
of load with past timestamps, so the forecaster has history and predicts the next peak within
minutes. Watch the scaler act with `curl localhost:8080/v1/scalers/demo/events`.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

import httpx

__all__ = ["DEMO_SPEC", "add_parser", "backfill", "history", "pod_metrics", "run"]

DEMO_SPEC: dict[str, Any] = {
    "name": "demo",
    "target": "demo-llm",
    "metrics": [
        {"name": "gpu_utilization", "weight": 0.6, "target": "85%", "selector": {"job": "demo"}},
        {"name": "request_queue", "weight": 0.4, "target": "<5", "selector": {"job": "demo"}},
    ],
    "capacity": {"request_rate": "30/min"},
    "min_replicas": 1,
    "max_replicas": 20,
    "cold_start": "learn",
    "algorithm": {"name": "auto"},
    "preheat": {"enabled": True, "min_ready": 1, "strategy": "eager"},
    "emergency": {
        "enabled": True,
        "burst_multiplier": 3.0,
        "triggers": [{"metric": "request_queue", "threshold": 50, "duration": "30s"}],
    },
}
PER_POD_RATE = 0.5  # requests/s one pod serves (8 slots, 16 s a request)


def load_at(t: float, period_s: float, peak: float) -> float:
    """Requests/s: a night trough at 15 % of the peak and one peak per period."""
    return peak * (0.575 - 0.425 * math.cos(2 * math.pi * (t % period_s) / period_s))


def pod_metrics(load: float, ready: int, backlog: float) -> tuple[float, float, float]:
    """(GPU % per pod, queue per pod, new backlog) for `load` spread over `ready` pods."""
    if ready <= 0:
        return 0.0, 0.0, backlog + 5 * load
    capacity = ready * PER_POD_RATE
    served = min(load + backlog / 5, capacity)
    backlog = max(0.0, backlog + 5 * (load - served))
    return 100.0 * served / capacity, backlog / ready, backlog


def add_parser(sub: Any) -> None:
    demo = sub.add_parser("demo", help="load a demo scaler and push its pods' metrics")
    demo.add_argument(
        "--url",
        default="http://127.0.0.1:8080",
        help="the running service to load the demo into (default http://127.0.0.1:8080)",
    )
    demo.add_argument("--token", default=None, help="a token with push and admin scope")
    demo.add_argument("--period", type=float, default=900.0, help="seconds per simulated day")
    demo.add_argument("--peak", type=float, default=6.0, help="peak requests/s")
    demo.add_argument("--ticks", type=int, default=0, help="stop after N pushes (0: never)")
    demo.add_argument(
        "--backfill",
        type=float,
        default=4 * 900.0,
        help="seconds of past load pushed at start, so the forecast has history "
        "(default 3600: four simulated days; 0: none)",
    )
    demo.set_defaults(func=run)


def history(now: float, period_s: float, peak: float, span_s: float) -> list[dict[str, Any]]:
    """The load signal (request_rate) over the past `span_s`, every 30 s, as past samples:
    the forecaster needs a few periods of history before it predicts the next peak, and a
    demo that waited for them would show nothing for an hour."""
    step = 30.0
    start = now - span_s
    return [
        {
            "metric": "request_rate",
            "labels": {"job": "demo", "pod": "demo-history"},
            "value": load_at(t, period_s, peak),
            "timestamp": t,
        }
        for t in (start + i * step for i in range(int(span_s // step)))
    ]


def backfill(client: httpx.Client, now: float, period_s: float, peak: float, span_s: float) -> None:
    samples = history(now, period_s, peak, span_s)
    response = client.post("/v1/samples", json={"samples": samples})
    if response.status_code >= 400:
        print(f"ciuic demo: could not backfill the history: {response.text}", file=sys.stderr)
        return
    print(
        f"ciuic demo: backfilled {span_s / period_s:.0f} simulated days of load "
        f"({len(samples)} samples): a forecast of the next peak follows within minutes",
        file=sys.stderr,
    )


def run(args: argparse.Namespace) -> int:
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    with httpx.Client(base_url=args.url, headers=headers, timeout=10) as client:
        response = client.put("/v1/scalers/demo", json=DEMO_SPEC)
        if response.status_code >= 400:
            print(f"ciuic demo: cannot create the scaler: {response.text}", file=sys.stderr)
            return 1
        if args.backfill > 0:
            backfill(client, time.time(), args.period, args.peak, args.backfill)
        print("ciuic demo: scaler 'demo' loaded; pushing pod metrics every 5 s", file=sys.stderr)
        backlog, tick = 0.0, 0
        while args.ticks == 0 or tick < args.ticks:
            tick += 1
            decision = client.get("/v1/scalers/demo/decision")
            ready = int(decision.json()["cluster"]["ready"]) if decision.status_code == 200 else 1
            load = load_at(time.time(), args.period, args.peak)
            util, queue, backlog = pod_metrics(load, ready, backlog)
            samples = [
                {"metric": name, "labels": {"job": "demo", "pod": f"demo-llm-{i}"}, "value": v}
                for i in range(max(ready, 1))
                for name, v in (
                    ("gpu_utilization", util),
                    ("request_queue", queue),
                    ("request_rate", load / max(ready, 1)),
                )
            ]
            pushed = client.post("/v1/samples", json={"samples": samples})
            print(
                f"load {load:5.2f} req/s  ready {ready:2d}  gpu {util:5.1f} %  queue/pod "
                f"{queue:5.1f}  push {pushed.status_code}",
                file=sys.stderr,
            )
            if args.ticks == 0 or tick < args.ticks:
                time.sleep(5)
    return 0
