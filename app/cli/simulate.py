"""`ciuic simulate`: replay a trace file against Ciuic and the baselines, print the report.

The shell half of `app.sim`: reads files (trace, spec), draws the progress bar and the plot.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TextIO

import yaml

from app.policy import SpecError
from app.pools import Terminated, worker_pool
from app.sim.engine import SCENARIOS
from app.sim.report import check_targets, targets_markdown
from app.sim.runner import (
    DEFAULT_POLICIES,
    KNOWN_POLICIES,
    SimulationReport,
    UnknownPolicy,
    run_simulation,
)
from app.sim.traces import TraceError
from app.timetext import parse_duration

__all__ = ["add_parser", "plot_report", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="replay a trace against ciuic, HPA, KEDA, Knative and the oracle and fluid references",
        description="Replay a trace (timestamp,value counts or "
        "TIMESTAMP,ContextTokens,GeneratedTokens request logs) through the simulated "
        "cluster and report cost, utilisation, drops and waits per policy.",
    )
    p.add_argument("--trace", required=True, type=Path, help="CSV trace file")
    p.add_argument(
        "--scenario",
        default="deepseek-7b",
        choices=sorted(SCENARIOS),
        help="the model served: its cold start, capacity and price (default deepseek-7b)",
    )
    p.add_argument(
        "--policy",
        action="append",
        choices=KNOWN_POLICIES,
        help="policy to run (repeatable; default: all six, the two references included)",
    )
    p.add_argument("--spec", type=Path, help="ciuic scaler spec (YAML or JSON)")
    p.add_argument("--window", help="scored window, e.g. 14d, 36h (default: from the trace)")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the simulated cold starts (default 0)"
    )
    p.add_argument(
        "--format",
        choices=("table", "json"),
        default="table",
        help="a table for people, or one JSON document (default table)",
    )
    p.add_argument("--plot", type=Path, help="write a PNG of demand, capacity and replicas")
    p.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="policies simulated side by side in worker processes (default 2; 1 = in process)",
    )
    p.set_defaults(func=run)
    return p


class _Progress:
    """Progress on stderr: a one-line bar on a terminal; elsewhere (a log, a CI job, a pipe)
    a plain line at each 10 %, since a bar redrawn with carriage returns is noise there."""

    def __init__(self, stream: TextIO, policies: int, *, terminal: bool) -> None:
        self.stream = stream
        self.total = policies
        self.terminal = terminal
        self.done: list[str] = []
        self.last = 0.0
        self.tenths = 0  # the last 10 % step written as a line

    def __call__(self, policy: str, t: int, n: int) -> None:
        if t >= n:
            self.done.append(policy)
        frac = (len(self.done) + (0 if t >= n else t / max(1, n))) / self.total
        if not self.terminal:
            tenths = min(10, int(10 * frac + 1e-9))
            if tenths > self.tenths:
                self.tenths = tenths
                self.stream.write(f"ciuic simulate: {10 * tenths:3d} % ({policy})\n")
                self.stream.flush()
            return
        now = time.monotonic()
        if t < n and now - self.last < 0.1:
            return
        self.last = now
        bar = "#" * int(30 * frac)
        self.stream.write(f"\r[{bar:<30}] {100 * frac:5.1f}% {policy:<8}")
        self.stream.flush()

    def close(self) -> None:
        if self.terminal:
            self.stream.write("\r" + " " * 60 + "\r")
            self.stream.flush()


def _load_spec(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a scaler spec is a mapping")
    return data


def plot_report(report: SimulationReport, path: Path) -> None:
    """One panel per policy: demand (pods' worth), ready pods, replicas over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from app.sim.report import plot_series

    results = report.results
    fig, axes = plt.subplots(
        len(results), 1, figsize=(12, 2.4 * len(results)), sharex=True, squeeze=False
    )
    for ax, res, rep in zip(axes[:, 0], results, report.reports, strict=True):
        s = plot_series(res)
        ax.fill_between(s.hours, s.demand_pods, color="0.8", label="demand (pods)")
        ax.plot(s.hours, s.ready, lw=0.8, label="ready pods")
        ax.plot(s.hours, s.replicas, lw=0.8, ls="--", label="replicas")
        ax.set_ylabel("pods")
        ax.set_title(
            f"{res.policy}: cost {rep.cost_usd:.0f} USD, util {100 * rep.utilization:.1f} %, "
            f"drops {100 * rep.drop_rate:.3f} %",
            fontsize=9,
        )
        ax.legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("hours from window start")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    err: TextIO = sys.stderr
    try:
        window = parse_duration(args.window, positive=True) if args.window else None
        spec = _load_spec(args.spec) if args.spec else None
        policies = tuple(args.policy) if args.policy else DEFAULT_POLICIES
        progress = _Progress(err, len(set(policies) | {"oracle", "fluid"}), terminal=err.isatty())
        with args.trace.open(encoding="utf-8") as fh, ExitStack() as stack:
            pool = stack.enter_context(worker_pool(args.jobs)) if args.jobs > 1 else None
            report = run_simulation(
                fh,
                policies=policies,
                scenario=args.scenario,
                spec=spec,
                window_s=window,
                seed=args.seed,
                progress=progress,
                map_fn=pool.map if pool is not None else None,
            )
        progress.close()
    except (OSError, TraceError, ValueError, yaml.YAMLError, SpecError, UnknownPolicy) as exc:
        err.write(f"ciuic simulate: {exc}\n")
        return 2
    except Terminated:
        err.write("\nciuic simulate: stopped (SIGTERM)\n")
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:  # the workers ignore it: one line here, no traceback from each
        err.write("\nciuic simulate: stopped (Ctrl-C)\n")
        return 128 + signal.SIGINT
    checks = check_targets({args.trace.name: report.reports})
    if args.format == "json":
        doc = {**report.to_dict(), "trace": args.trace.name}
        doc["targets"] = [c.to_dict() for c in checks]
        print(json.dumps(doc))
    else:
        print(f"{report.workload.description}\n")
        print(report.markdown())
        if checks:
            print(
                f"\nBenchmark targets for ciuic (docs/benchmark.md):\n\n{targets_markdown(checks)}"
            )
    if args.plot:
        plot_report(report, args.plot)
    return 0
