"""The cluster simulator and scaling benchmark (pure: no I/O, no wall clock).

Entry points: `run_simulation` (trace lines in, report out), `run_corpus` (many traces and
seeds, summarised and checked against the benchmark's targets), `tune_spec` and `search_knobs`
(the cheapest spec under a drop-rate limit and a budget; `candidate_spec` sets the knobs on a
spec), `workload_from_arrivals` (replay stored load). See docs/simulator.md and
docs/benchmark.md.
"""

from __future__ import annotations

from app.sim.engine import SCENARIOS, Scenario, SimResult, simulate
from app.sim.report import PolicyReport, check_targets, report_for
from app.sim.runner import (
    DEFAULT_POLICIES,
    KNOWN_POLICIES,
    NamedPolicy,
    SimulationReport,
    TraceSource,
    UnknownPolicy,
    run_corpus,
    run_simulation,
    simulate_policy,
)
from app.sim.traces import TraceError, Workload, build_workload, parse_trace, workload_from_arrivals
from app.sim.tune import TuneResult, candidate_spec, search_knobs, tune_spec

__all__ = [
    "DEFAULT_POLICIES",
    "KNOWN_POLICIES",
    "SCENARIOS",
    "NamedPolicy",
    "PolicyReport",
    "Scenario",
    "SimResult",
    "SimulationReport",
    "TraceError",
    "TraceSource",
    "TuneResult",
    "UnknownPolicy",
    "Workload",
    "build_workload",
    "candidate_spec",
    "check_targets",
    "parse_trace",
    "report_for",
    "run_corpus",
    "run_simulation",
    "search_knobs",
    "simulate",
    "simulate_policy",
    "tune_spec",
    "workload_from_arrivals",
]
