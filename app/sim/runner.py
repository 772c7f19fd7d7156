"""One call that an endpoint, the CLI or the benchmark makes: trace text in, report out."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.sim.baselines import HPA, KEDA, KPA, Oracle
from app.sim.cost import CostModel
from app.sim.engine import SCENARIOS, Autoscaler, Scenario, SimResult, simulate
from app.sim.report import PolicyReport, markdown_table, report_for
from app.sim.traces import Trace, Workload, build_workload, parse_trace

__all__ = [
    "DEFAULT_POLICIES",
    "POLICIES",
    "SimulationReport",
    "UnknownPolicy",
    "make_policy",
    "run_simulation",
]

DEFAULT_POLICIES = ("ciuic", "hpa", "keda", "kpa", "oracle")
POLICIES = DEFAULT_POLICIES

Progress = Callable[[str, int, int], None]


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
    raise UnknownPolicy(f"unknown policy {name!r}; choose from {', '.join(POLICIES)}")


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
            "policies": [r.to_dict() for r in self.reports],
        }

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
) -> SimulationReport:
    """Replay a trace (its lines, header first, or a parsed `Trace`) against each policy.

    The oracle always runs, since every report carries `cost / oracle cost`; it is listed only
    when asked for. Pure and deterministic for a given seed: safe to run in a worker thread.
    """
    sc = SCENARIOS[scenario] if isinstance(scenario, str) else scenario
    names = list(dict.fromkeys(policies))
    for name in names:
        if name not in POLICIES:
            raise UnknownPolicy(f"unknown policy {name!r}; choose from {', '.join(POLICIES)}")
    parsed = trace if not isinstance(trace, Iterable) or isinstance(trace, Trace) else None
    tr: Trace = parsed if parsed is not None else parse_trace(trace)  # type: ignore[arg-type]
    workload = build_workload(
        tr,
        seed=seed,
        window_s=window_s,
        slots_per_pod=sc.slots_per_pod,
        count_service_s=sc.count_service_s,
        target_pods_at_p99=sc.target_pods_at_p99,
        replay_copies=sc.replay_copies,
    )
    order = ["oracle", *[n for n in names if n != "oracle"]]
    results: dict[str, SimResult] = {}
    for name in order:
        policy = make_policy(name, sc, workload, spec)
        cb = None if progress is None else (lambda t, n, _name=name: progress(_name, t, n))
        results[name] = simulate(workload, policy, scenario=sc, seed=seed, progress=cb)
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
