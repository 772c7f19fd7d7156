"""The five-policy benchmark on every trace in a folder (BENCHMARK.md), with wall times.

Run from the repository root: `python bench/simulate.py [--traces DIR] [--seed N] [--policy ...]`.
Every `*.csv` in DIR (default: the three shared traces) is replayed with the same default spec
and the simulator's default window (count traces at >= 15 min resolution: the last 14 days;
finer: the last 7 days; request logs: whole), which are BENCHMARK.md's windows for the shared
traces, so a trace we do not have is scored the same way. Prints one JSON line per policy and
trace, then a markdown table per trace, and the wall time of each run.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.sim.report import check_targets, targets_markdown
from app.sim.runner import DEFAULT_POLICIES, run_simulation

TRACES = Path(__file__).resolve().parents[1] / ".." / "shared" / "traces"


def _cpu_s() -> float:
    """CPU seconds of this process and its finished worker processes (the pool's)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _window(seconds: int) -> str:
    return f"{seconds / 86400:g}d" if seconds >= 86400 else "whole"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--policy", action="append", choices=DEFAULT_POLICIES)
    ap.add_argument("--traces", type=Path, default=TRACES)
    ap.add_argument("--only", action="append", help="run only these trace files (repeatable)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (1 = in process)")
    args = ap.parse_args()
    policies = tuple(args.policy) if args.policy else DEFAULT_POLICIES
    tables = []
    for path in sorted(args.traces.glob("*.csv")):
        name = path.name
        if args.only and name not in args.only:
            continue
        t0 = time.perf_counter()
        c0 = _cpu_s()
        with path.open(encoding="utf-8") as fh, ExitStack() as stack:
            pool = stack.enter_context(ProcessPoolExecutor(args.jobs)) if args.jobs > 1 else None
            rep = run_simulation(
                fh,
                policies=policies,
                seed=args.seed,
                map_fn=pool.map if pool is not None else None,
            )
        wall = time.perf_counter() - t0
        cpu = _cpu_s() - c0
        for row in rep.rows():
            print(json.dumps({"trace": name, "seed": args.seed, **row}))
        print(
            json.dumps(
                {
                    "trace": name,
                    "wall_s": round(wall, 2),
                    "cpu_s": round(cpu, 2),
                    "jobs": args.jobs,
                    "window_s": rep.workload.duration_s,
                }
            )
        )
        checks = check_targets(rep.reports)
        for c in checks:
            print(json.dumps({"trace": name, "target": c.name, "met": c.met, "detail": c.detail}))
        tables.append(
            f"### {name} (window {_window(rep.workload.duration_s)}, seed {args.seed}, "
            f"wall {wall:.1f} s, "
            f"CPU {cpu:.1f} s in {args.jobs} process(es))\n\n"
            f"{rep.workload.description}\n\n{rep.markdown()}\n\n{targets_markdown(checks)}\n"
        )
    print()
    print("\n".join(tables))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
