"""One call that an endpoint, the CLI or the benchmark makes: trace text in, report out."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from app.sim.baselines import HPA, KEDA, KPA, Oracle
from app.sim.cost import CostModel
from app.sim.engine import SCENARIOS, Autoscaler, Scenario, SimResult, simulate
from app.sim.report import PolicyReport, markdown_table, report_for
from app.sim.traces import CountTrace, RequestLog, Trace, Workload, build_workload, parse_trace

__all__ = [
    "DEFAULT_POLICIES",
    "SimulationReport",
    "UnknownPolicy",
    "make_policy",
    "run_simulation",
    "simulate_policy",
]

DEFAULT_POLICIES = ("ciuic", "hpa", "keda", "kpa", "oracle")

Progress = Callable[[str, int, int], None]
# How the shell may spread the policies over processes: `ProcessPoolExecutor(2).map` fits.
MapFn = Callable[[Callable[[str], SimResult], Sequence[str]], Iterable[SimResult]]


class UnknownPolicy(ValueError):
    """A policy name the simulator does not know (or cannot build in this installation)."""


def make_policy(
    name: str, scenario: Scenario, workload: Workload, spec: Mapping[str, Any] | None = None
) -> Autoscaler:
    lo, hi = scenario.min_replicas, scenario.max_replicas
    if name == "hpa":
        return HPA(min_replicas=lo, max_replicas=hi)
    if name == "keda":
        return KEDA(min_replicas=lo, max_replicas=hi)
    if name == "kpa":
        return KPA(container_concurrency=scenario.slots_per_pod)
    if name == "oracle":
        return Oracle()
    if name == "ciuic":
        try:
            from app.sim.ciuic import CiuicPolicy
        except ImportError as exc:  # the policy package is older than this simulator
            raise UnknownPolicy(f"the ciuic policy is not available here: {exc}") from exc
        policy: Autoscaler = CiuicPolicy.build(scenario, workload, spec)
        return policy
    raise UnknownPolicy(f"unknown policy {name!r}; choose from {', '.join(DEFAULT_POLICIES)}")


def simulate_policy(
    name: str,
    *,
    workload: Workload,
    scenario: Scenario,
    spec: Mapping[str, Any] | None,
    seed: int,
    progress: Progress | None = None,
) -> SimResult:
    """One policy over one workload (a top-level function, so a process pool can run it)."""
    policy = make_policy(name, scenario, workload, spec)
    cb = None if progress is None else (lambda t, n: progress(name, t, n))
    return simulate(workload, policy, scenario=scenario, seed=seed, progress=cb)


@dataclass(frozen=True, slots=True)
class SimulationReport:
    scenario: Scenario
    workload: Workload
    seed: int
    reports: tuple[PolicyReport, ...]
    results: tuple[SimResult, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "scenario": self.scenario.name,
            "seed": self.seed,
            "workload": self.workload.description,
            "duration_s": self.workload.duration_s,
            "policies": self.rows(),
        }

    def rows(self) -> list[dict[str, object]]:
        """One JSON object per policy, in the order asked for."""
        return [r.to_dict() for r in self.reports]

    def markdown(self) -> str:
        return markdown_table(self.reports)


def run_simulation(
    trace: Iterable[str] | Trace,
    *,
    policies: Sequence[str] = DEFAULT_POLICIES,
    scenario: Scenario | str = "deepseek-7b",
    spec: Mapping[str, Any] | None = None,
    window_s: float | None = None,
    seed: int = 0,
    cost_model: CostModel | None = None,
    progress: Progress | None = None,
    map_fn: MapFn | None = None,
) -> SimulationReport:
    """Replay a trace (its lines, header first, or a parsed `Trace`) against each policy.

    The oracle always runs, since every report carries `cost / oracle cost`; it is listed only
    when asked for. Pure and deterministic for a given seed: safe to run in a worker thread.
    `map_fn` (e.g. a process pool's `map`) runs the policies side by side; same results.
    """
    sc = SCENARIOS[scenario] if isinstance(scenario, str) else scenario
    names = list(dict.fromkeys(policies))
    for name in names:
        if name not in DEFAULT_POLICIES:
            raise UnknownPolicy(
                f"unknown policy {name!r}; choose from {', '.join(DEFAULT_POLICIES)}"
            )
    tr = trace if isinstance(trace, CountTrace | RequestLog) else parse_trace(trace)
    workload = build_workload(
        tr,
        seed=seed,
        window_s=window_s,
        slots_per_pod=sc.slots_per_pod,
        count_service_s=sc.count_service_s,
        target_pods_at_p99=sc.target_pods_at_p99,
        replay_copies=sc.replay_copies,
    )
    # the slowest first, so a pool finishes early; the oracle is always needed
    order = sorted({"oracle", *names}, key=lambda n: (n != "ciuic", n))
    if map_fn is None:
        run_one = partial(
            simulate_policy, workload=workload, scenario=sc, spec=spec, seed=seed, progress=progress
        )
        results = {name: run_one(name) for name in order}
    else:
        run_one = partial(simulate_policy, workload=workload, scenario=sc, spec=spec, seed=seed)
        results = dict(zip(order, map_fn(run_one, order), strict=True))
        if progress is not None:
            for name in order:
                progress(name, workload.duration_s, workload.duration_s)
    oracle_cost = report_for(results["oracle"], cost_model=cost_model).cost_usd
    reports = tuple(
        report_for(results[n], oracle_cost=oracle_cost, cost_model=cost_model) for n in names
    )
    return SimulationReport(
        scenario=sc,
        workload=workload,
        seed=seed,
        reports=reports,
        results=tuple(results[n] for n in names),
    )
