"""The five-policy benchmark on the three shared traces (BENCHMARK.md), with wall times.

Run from the repository root: `python bench/simulate.py [--seed N] [--policy ...]`. Prints one
JSON line per policy and trace, then a markdown table per trace, and the wall time of each run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.sim.report import check_targets, targets_markdown
from app.sim.runner import DEFAULT_POLICIES, run_simulation
from app.sim.traces import parse_duration

TRACES = Path(__file__).resolve().parents[1] / ".." / "shared" / "traces"
RUNS = (
    ("nyc_taxi.csv", "14d"),
    ("twitter_volume_aapl.csv", "7d"),
    ("azure_llm_conv_2023.csv", None),
)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--policy", action="append", choices=DEFAULT_POLICIES)
    ap.add_argument("--traces", type=Path, default=TRACES)
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (1 = in process)")
    args = ap.parse_args()
    policies = tuple(args.policy) if args.policy else DEFAULT_POLICIES
    tables = []
    for name, window in RUNS:
        t0 = time.perf_counter()
        with (args.traces / name).open(encoding="utf-8") as fh, ExitStack() as stack:
            pool = stack.enter_context(ProcessPoolExecutor(args.jobs)) if args.jobs > 1 else None
            rep = run_simulation(
                fh,
                policies=policies,
                window_s=parse_duration(window) if window else None,
                seed=args.seed,
                map_fn=pool.map if pool is not None else None,
            )
        wall = time.perf_counter() - t0
        for row in rep.to_dict()["policies"]:  # type: ignore[attr-defined]
            print(json.dumps({"trace": name, "seed": args.seed, **row}))
        print(
            json.dumps(
                {"trace": name, "wall_s": round(wall, 2), "window_s": rep.workload.duration_s}
            )
        )
        checks = check_targets(rep.reports)
        for c in checks:
            print(json.dumps({"trace": name, "target": c.name, "met": c.met, "detail": c.detail}))
        tables.append(
            f"### {name} (window {window or 'whole'}, seed {args.seed}, wall {wall:.1f} s)\n\n"
            f"{rep.workload.description}\n\n{rep.markdown()}\n\n{targets_markdown(checks)}\n"
        )
    print()
    print("\n".join(tables))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
