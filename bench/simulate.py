"""The scaling benchmark (docs/benchmark.md): every policy on every trace, with the targets.

Run from the repository root:

    python bench/simulate.py                       # the shipped traces (data/traces), seed 0
    python bench/simulate.py --only nyc_taxi.csv   # one trace (the < 60 s target)
    python bench/simulate.py --corpus --json corpus.json --png corpus.png
                                                   # shipped + generated, seeds 0, 1, 2
    python bench/simulate.py --write-corpus DIR    # the generated traces as CSV files

Every `*.csv` in `--traces DIR` (default: data/traces in this repository) is replayed with the
same default spec and the default window of its shape (count traces at >= 15 min resolution:
the last 14 days; finer: the last 7 days; request logs: whole), unless the folder's
`corpus.json` names a window. `--corpus` adds the generated traces of app/sim/corpus.py (their
windows are part of the corpus) and runs seeds 0, 1 and 2 (or the `--seed`s given). Prints a
table per trace and seed (single runs) or per policy (a row per trace, means over seeds, and the
geometric means), then the targets, met or missed; `--json FILE` writes the whole run as one
JSON document, `--png FILE` a chart. A missing input is an error (exit 2), never an empty run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import signal
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.pools import Terminated, worker_pool
from app.sim.corpus import GENERATED, generate
from app.sim.objective import with_objective
from app.sim.report import TargetCheck, markdown_table, targets_markdown, timing_check
from app.sim.runner import (
    DEFAULT_POLICIES,
    KNOWN_POLICIES,
    CorpusRun,
    NamedPolicy,
    PolicyLike,
    TraceSource,
    run_corpus,
)
from app.sim.traces import TraceError, build_workload, parse_trace
from app.sim.tune import tuned_on_history

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT / "data" / "traces"
MANIFEST = "corpus.json"
NYC_LIMIT_S = 60.0  # the five-policy nyc_taxi report on 2 cores
CORPUS_LIMIT_S = 600.0  # the whole corpus, every policy x 3 seeds, on 2 cores

# Extra rows, each a policy under its own name, e.g. the ciuic policy with a spec chosen by
# Ciuic's own tuning on the history before the window:
#     NamedPolicy("ciuic-tuned", "ciuic", spec_from=<a top-level function of a Prior>)
EXTRA_POLICIES: tuple[NamedPolicy, ...] = (
    NamedPolicy("ciuic-tuned", "ciuic", spec_from=tuned_on_history),
)
# Rows run only when named (`--policy ciuic-slo`): the ciuic spec with the scenario's latency
# objective (TTFT p95 <= 2 s) stated, sized for by the policy.
OPTIONAL_POLICIES: tuple[NamedPolicy, ...] = (
    NamedPolicy("ciuic-slo", "ciuic", spec_from=with_objective),
)


class InputError(Exception):
    """A trace folder, file or option that cannot be run (exit 2 with the message)."""


def _cpu_s() -> float:
    """CPU seconds of this process and its finished worker processes (the pool's)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _manifest(folder: Path) -> dict[str, float | None]:
    path = folder / MANIFEST
    if not path.exists():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return {t["file"]: t.get("window_s") for t in doc["traces"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a corpus manifest ({exc})") from exc


def _sources(
    folder: Path, corpus: bool, only: list[str] | None, draws: list[int] | None = None
) -> list[TraceSource]:
    if not folder.is_dir():
        raise InputError(f"trace folder {folder} does not exist")
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise InputError(f"no *.csv trace in {folder}")
    windows = _manifest(folder)
    sources = [
        TraceSource(f.name, text=f.read_text(encoding="utf-8"), window_s=windows.get(f.name))
        for f in files
    ]
    drawn = [TraceSource.of(dataclasses.replace(g, seed=d)) for d in draws or () for g in GENERATED]
    if draws and not corpus:
        sources = []  # the drawn families alone
    if corpus:
        have = {s.name for s in sources}
        sources += [TraceSource.of(g) for g in GENERATED if g.name not in have]
    have = {s.name for s in sources}
    sources += [s for s in drawn if s.name not in have]
    if only:
        missing = sorted(set(only) - {s.name for s in sources})
        if missing:
            raise InputError(f"no trace named {', '.join(missing)} in {folder}")
        sources = [s for s in sources if s.name in only]
    for src in sources:  # an unreadable file, or a window with nothing in it, before any run
        if src.text is not None:
            try:
                build_workload(parse_trace(src.lines()), seed=0, window_s=src.window_s)
            except TraceError as exc:
                raise InputError(f"{folder / src.name}: {exc}") from exc
    return sources


def _policies(names: list[str] | None) -> list[PolicyLike]:
    extra = {p.name: p for p in (*EXTRA_POLICIES, *OPTIONAL_POLICIES)}
    if not names:
        return [*DEFAULT_POLICIES, *EXTRA_POLICIES]
    out: list[PolicyLike] = []
    for name in names:
        if name in extra:
            out.append(extra[name])
        elif name in KNOWN_POLICIES:
            out.append(name)
        else:
            choices = ", ".join([*KNOWN_POLICIES, *extra])
            raise InputError(f"unknown policy {name!r}; choose from {choices}")
    return out


def write_corpus(folder: Path) -> list[Path]:
    """The generated traces as CSV files plus `corpus.json` with their windows."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for g in GENERATED:
        path = folder / g.name
        path.write_text(generate(g.family, g.seed), encoding="utf-8")
        written.append(path)
    doc = {
        "traces": [
            {"file": g.name, "family": g.family, "seed": g.seed, "window_s": g.window_s}
            for g in GENERATED
        ]
    }
    (folder / MANIFEST).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return written


def plot(run: CorpusRun, path: Path) -> None:
    """Cost / oracle and drop rate per trace and policy (means over seeds); for a single
    trace also demand, ready pods and replicas over time per policy (first seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    summary = run.summary
    traces = list(summary.traces)
    policies = summary.policies()
    single = len(traces) == 1 and bool(run.series)
    panels = 2 + (len(policies) if single else 0)
    fig, axes = plt.subplots(panels, 1, figsize=(12, 3.2 * panels), squeeze=False)
    x = np.arange(len(traces))
    width = 0.8 / max(1, len(policies))
    for i, name in enumerate(policies):
        rows = [next((r for r in summary.traces[t] if r.policy == name), None) for t in traces]
        cost = [r.cost_vs_oracle or 0.0 if r else 0.0 for r in rows]
        drops = [100 * r.drop_rate if r else 0.0 for r in rows]
        axes[0, 0].bar(x + i * width, cost, width, label=name)
        axes[1, 0].bar(x + i * width, drops, width, label=name)
    for ax, label in ((axes[0, 0], "cost / oracle"), (axes[1, 0], "drop rate %")):
        ax.set_xticks(x + 0.4 - width / 2, [t.removesuffix(".csv") for t in traces], fontsize=7)
        ax.set_ylabel(label)
        ax.legend(fontsize=7, ncol=len(policies))
    axes[0, 0].axhline(1.0, color="0.3", lw=0.8)
    axes[0, 0].set_title(f"mean over seeds {', '.join(map(str, summary.seeds))}", fontsize=9)
    if single:
        for ax, name in zip(axes[2:, 0], policies, strict=True):
            s = run.series.get((traces[0], name))
            if s is None:
                continue
            ax.fill_between(s.hours, s.demand_pods, color="0.8", label="demand (pods)")
            ax.plot(s.hours, s.ready, lw=0.8, label="ready pods")
            ax.plot(s.hours, s.replicas, lw=0.8, ls="--", label="replicas")
            ax.set_ylabel("pods")
            ax.set_title(f"{traces[0]}: {name}", fontsize=9)
            ax.legend(loc="upper right", fontsize=7)
        axes[-1, 0].set_xlabel("hours from window start")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _print_report(run: CorpusRun, corpus: bool) -> None:
    summary = run.summary
    if corpus or len(summary.seeds) > 1:
        print(f"### Corpus: {len(summary.traces)} traces, seeds {summary.seeds}\n")
        print(summary.markdown())
    else:
        for name, per_seed in summary.runs.items():
            for seed, reports in zip(summary.seeds, per_seed, strict=True):
                print(f"### {name} (seed {seed})\n\n{summary.descriptions[name]}\n")
                print(markdown_table(reports) + "\n")
    print(f"\n### Targets for {summary.policy}\n\n{targets_markdown(summary.checks)}\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--traces", type=Path, default=TRACES, help="folder of *.csv traces")
    ap.add_argument("--only", action="append", help="run only these trace files (repeatable)")
    ap.add_argument("--corpus", action="store_true", help="add the generated traces, 3 seeds")
    ap.add_argument("--seed", type=int, action="append", help="seed (repeatable)")
    ap.add_argument(
        "--draw",
        type=int,
        action="append",
        help="the generated families drawn with this generator seed (repeatable; the corpus "
        "uses 1): the same families, traces the policy was not developed on; with --corpus "
        "added to the corpus, else run alone",
    )
    ap.add_argument(
        "--policy", action="append", help="policy (repeatable; default: all but ciuic-slo)"
    )
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (1 = in process)")
    ap.add_argument("--json", type=Path, help="write the run as one JSON document")
    ap.add_argument("--png", type=Path, help="write a chart of the run")
    ap.add_argument("--write-corpus", type=Path, metavar="DIR", help="write the generated traces")
    args = ap.parse_args(argv)
    if args.write_corpus is not None:
        for path in write_corpus(args.write_corpus):
            print(path)
        return 0
    try:
        sources = _sources(args.traces, args.corpus, args.only, args.draw)
        policies = _policies(args.policy)
    except (InputError, OSError) as exc:
        print(f"bench/simulate.py: {exc}", file=sys.stderr)
        return 2
    seeds = tuple(args.seed) if args.seed else ((0, 1, 2) if args.corpus else (0,))
    t0 = time.perf_counter()
    c0 = _cpu_s()
    try:
        with ExitStack() as stack:
            pool = stack.enter_context(worker_pool(args.jobs)) if args.jobs > 1 else None
            run = run_corpus(
                sources,
                seeds=seeds,
                policies=policies,
                map_fn=pool.map if pool is not None else None,
                corpus_target=args.corpus or bool(args.draw),
                series=args.png is not None,
            )
    # The pool's workers are stopped by now (they ignore Ctrl-C): one line, no tracebacks.
    except Terminated:
        print("\nbench/simulate.py: stopped (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("\nbench/simulate.py: stopped (Ctrl-C)", file=sys.stderr)
        return 128 + signal.SIGINT
    wall = time.perf_counter() - t0
    cpu = _cpu_s() - c0
    timing: list[TargetCheck] = []
    names = [s.name for s in sources]
    if names == ["nyc_taxi.csv"] and len(seeds) == 1:
        timing.append(timing_check("nyc_taxi report < 60 s wall", wall, NYC_LIMIT_S))
    if args.corpus and not args.only and not args.draw and len(seeds) == 3:
        timing.append(timing_check("corpus < 10 min wall", wall, CORPUS_LIMIT_S))
    run = dataclasses.replace(
        run, summary=dataclasses.replace(run.summary, checks=(*run.summary.checks, *timing))
    )
    _print_report(run, args.corpus or bool(args.draw))
    print(f"wall {wall:.1f} s, CPU {cpu:.1f} s in {args.jobs} process(es)")
    if args.json is not None:
        doc: dict[str, Any] = {
            "benchmark": "ciuic scaling benchmark v2",
            "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2),
            "jobs": args.jobs,
            **run.to_dict(),
        }
        args.json.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    if args.png is not None:
        plot(run, args.png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
