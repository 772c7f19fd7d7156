"""Time `decide` over 10,000 observations with carried state (target: under 1 s in total).

Replays a synthetic day at a 15 s tick through the brief's spec extended with a capacity and
fractional plans, with a forecast, schedule and burst triggers, applying each decision as the
reconciler would. Prints one JSON line, then a small table. Run:

    /work/main/.venv/bin/python bench/decide.py [--n 10000]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # time this checkout's policy, not an installed one

from app.policy import (  # noqa: E402
    LoadForecast,
    MetricReading,
    Observation,
    ScalerState,
    decide,
    parse_spec,
)

BRIEF = ROOT / "tests" / "policy" / "brief.yaml"
T0 = 1_800_000_000.0  # a fixed instant: the bench must not read the clock for its inputs


def _load(t: float) -> float:
    """Requests/s: a daily wave plus a burst in the afternoon."""
    day = (t - T0) / 86400.0
    base = 2.0 + 1.5 * math.sin(2 * math.pi * day)
    return base * (4.0 if 0.60 < day % 1.0 < 0.62 else 1.0)


def build(n: int) -> list[tuple[float, float]]:
    return [(T0 + 15.0 * i, _load(T0 + 15.0 * i)) for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    n = ap.parse_args().n
    doc = yaml.safe_load(BRIEF.read_text())
    doc.update(capacity={"request_rate": "30/min"}, fractional={"enabled": True}, max_replicas=40)
    spec = parse_spec(doc)
    ticks = build(n)
    per_pod = 0.5

    # Inputs built up front so only `decide` is timed.
    forecasts = {}
    for t, _ in ticks[::20]:
        path = tuple(_load(t + 300.0 * k) for k in range(24))
        forecasts[t] = LoadForecast("bench", t, t, 300.0, path, {0.9: tuple(v * 1.2 for v in path)})

    state = ScalerState()
    replicas = 2
    codes: Counter[str] = Counter()
    fc = None
    elapsed = 0.0
    total_replicas = 0
    for t, load in ticks:
        fc = forecasts.get(t, fc)
        util = min(100.0, 100.0 * load / (per_pod * max(replicas, 1)))
        queue = max(0.0, (load - per_pod * replicas) * 60.0 / max(replicas, 1))
        obs = Observation(
            metrics={
                "gpu_utilization": MetricReading(util, replicas),
                "request_queue": MetricReading(queue, replicas),
            },
            current_replicas=replicas,
            ready_pods=replicas,
            load_rate=load,
        )
        start = time.perf_counter()
        d = decide(spec, obs, fc, state, t)
        elapsed += time.perf_counter() - start
        state, replicas = d.state, d.replicas
        total_replicas += replicas
        for r in d.reasons:
            codes[r.code] += 1

    out = {
        "bench": "decide",
        "n": n,
        "total_s": round(elapsed, 4),
        "per_call_us": round(elapsed / n * 1e6, 2),
        "target_s": 1.0,
        "ok": elapsed < 1.0,
        "mean_replicas": round(total_replicas / n, 2),
    }
    print(json.dumps(out))
    print(f"{'metric':<28}{'value':>12}")
    for k in ("n", "total_s", "per_call_us", "mean_replicas"):
        print(f"{k:<28}{out[k]:>12}")
    print(f"{'reason code':<28}{'count':>12}")
    for code, count in sorted(codes.items()):
        print(f"{code:<28}{count:>12}")


if __name__ == "__main__":
    main()
