"""The per-policy report of docs/benchmark.md ("What a report shows"), its averages over seeds and
traces: values, JSON-ready dicts and markdown tables. Computed from a run's per-second series
after the run (pure: the shell prints, writes and plots). Dominance and the targets are
app.sim.targets', the waits (TTFT, scale to zero's first requests) app.sim.waits'; both are
exported from here too, as a report's readers use them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import numpy.typing as npt

from app.sim.baselines.oracle import need_series
from app.sim.cost import CostModel, HybridPlan, hybrid_plan
from app.sim.engine import SimResult
from app.sim.targets import (
    BASELINES,
    REFERENCES,
    Scored,
    TargetCheck,
    check_targets,
    dominators,
    geometric_mean,
    percent,
    targets_markdown,
    timing_check,
)
from app.sim.waits import (
    ZeroWaits,
    mean_zero,
    ttft_attainment,
    wait_quantile,
    zero_markdown,
    zero_waits,
)

__all__ = [
    "BASELINES",
    "REFERENCES",
    "REPORT_KEYS",
    "SUMMARY_KEYS",
    "CorpusSummary",
    "PolicyReport",
    "Scored",
    "SeriesForPlot",
    "SummaryRow",
    "TargetCheck",
    "ZeroWaits",
    "check_targets",
    "dominators",
    "geometric_mean",
    "markdown_table",
    "plot_series",
    "report_for",
    "shortfall_episodes",
    "summarise_corpus",
    "summarise_seeds",
    "targets_markdown",
    "timing_check",
    "ttft_attainment",
    "wait_quantile",
    "with_dominance",
    "zero_waits",
]

IntArray = npt.NDArray[np.int64]

REPORT_KEYS = (
    "policy",
    "requests",
    "dropped",
    "drop_rate",
    "gpu_hours",
    "cost_usd",
    "utilization",
    "utilization_billed",
    "p50_wait_s",
    "p99_wait_s",
    "scale_up_latency_s",
    "scale_actions",
    "cost_vs_oracle",
    "cost_vs_fluid",
    "dominated_by",
    "ttft_p95_s",
    "within_objective",
    "ttft_objective_s",
)


@dataclass(frozen=True, slots=True)
class PolicyReport:
    """One policy on one workload and seed."""

    policy: str
    requests: int
    dropped: int
    drop_rate: float
    gpu_hours: float
    cost_usd: float
    utilization: float  # served work / capacity of the Ready pods (draining ones included)
    utilization_billed: float  # served work / capacity of every billed pod (starting ones too)
    p50_wait_s: float
    p99_wait_s: float
    scale_up_latency_s: float
    scale_actions: int
    cost_vs_oracle: float | None
    cost_vs_fluid: float | None
    hybrid: HybridPlan
    dominated_by: tuple[str, ...] = ()
    zero: ZeroWaits | None = None  # on a trace that allows zero
    # The latency objective (scenario `ttft_objective_s`): p95 TTFT of the requests that got a
    # first token, and the share of all requests (drops count as misses) within the objective.
    ttft_p95_s: float = 0.0
    within_objective: float = 1.0
    ttft_objective_s: float = 0.0

    def to_dict(self) -> dict[str, object]:
        """The JSON keys of REPORT_KEYS, in order, plus `hybrid` (the cost plan) and, on a
        scale-to-zero trace, `zero`."""
        d: dict[str, object] = {k: getattr(self, k) for k in REPORT_KEYS}
        d["dominated_by"] = list(self.dominated_by)
        d["hybrid"] = {**asdict(self.hybrid), "savings_usd": self.hybrid.savings_usd}
        if self.zero is not None:
            d["zero"] = asdict(self.zero)
        return d


def shortfall_episodes(capacity: IntArray, demand: IntArray) -> IntArray:
    """Lengths (s) of the spells where ready capacity is below demand: from the first second
    short until the first second it is enough again."""
    short = (capacity < demand).astype(np.int8)
    if not short.any():
        return np.zeros(0, dtype=np.int64)
    edges = np.diff(np.concatenate(([0], short, [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return (ends - starts).astype(np.int64)


def report_for(
    result: SimResult,
    *,
    oracle_cost: float | None = None,
    fluid_cost: float | None = None,
    cost_model: CostModel | None = None,
) -> PolicyReport:
    sc = result.scenario
    model = cost_model or CostModel(on_demand_per_hour=sc.price_per_pod_hour)
    slots = sc.slots_per_pod
    pod_seconds = int(result.billed.sum())
    draining = result.billed - result.replicas
    capacity_slot_s = float(((result.ready + draining) * slots).sum())
    served_slot_s = float(result.busy.sum())
    cost = model.on_demand(pod_seconds)
    episodes = shortfall_episodes(result.ready * slots, result.workload.demand)
    need = need_series(result.workload.demand, slots, 0, sc.max_replicas)
    baseline = need_series(result.workload.demand, slots, sc.min_replicas, sc.max_replicas)
    ttft_p95, within = ttft_attainment(result, sc.ttft_objective_s)
    return PolicyReport(
        policy=result.policy,
        requests=result.arrived,
        dropped=result.dropped,
        drop_rate=result.dropped / result.arrived if result.arrived else 0.0,
        gpu_hours=pod_seconds / 3600,
        cost_usd=cost,
        utilization=served_slot_s / capacity_slot_s if capacity_slot_s else 0.0,
        utilization_billed=served_slot_s / (pod_seconds * slots) if pod_seconds else 0.0,
        p50_wait_s=wait_quantile(result.wait_hist, 0.50),
        p99_wait_s=wait_quantile(result.wait_hist, 0.99),
        scale_up_latency_s=float(episodes.mean()) if len(episodes) else 0.0,
        scale_actions=result.scale_actions,
        cost_vs_oracle=(cost / oracle_cost) if oracle_cost else None,
        cost_vs_fluid=(cost / fluid_cost) if fluid_cost else None,
        hybrid=hybrid_plan(result.billed, need, baseline, model),
        zero=zero_waits(result),
        ttft_p95_s=ttft_p95,
        within_objective=within,
        ttft_objective_s=sc.ttft_objective_s,
    )


def with_dominance(reports: Sequence[PolicyReport]) -> tuple[PolicyReport, ...]:
    """Every report with its `dominated_by` filled from the others of the same run."""
    return tuple(replace(r, dominated_by=dominators(r, reports)) for r in reports)


def _within(r: PolicyReport | SummaryRow) -> str:
    """The share within the objective, with the objective: "97.1 % <= 2s"."""
    return f"{100 * r.within_objective:.1f} % <= {r.ttft_objective_s:g}s"


def _ratio(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.3f}"


def markdown_table(reports: Sequence[PolicyReport]) -> str:
    head = (
        "| policy | requests | dropped | drop rate | GPU-h | cost USD | util | util (billed) "
        "| p50 wait s | p99 wait s | scale-up latency s | scale actions | cost/oracle "
        "| cost/fluid | dominated by | hybrid USD | TTFT p95 s | within objective |"
    )
    rule = "|" + "---|" * 18
    rows = [head, rule]
    for r in reports:
        rows.append(
            f"| {r.policy} | {r.requests} | {r.dropped} | {percent(r.drop_rate)} "
            f"| {r.gpu_hours:.1f} | {r.cost_usd:.2f} | {100 * r.utilization:.1f} % "
            f"| {100 * r.utilization_billed:.1f} % "
            f"| {r.p50_wait_s:.0f} | {r.p99_wait_s:.0f} | {r.scale_up_latency_s:.1f} "
            f"| {r.scale_actions} | {_ratio(r.cost_vs_oracle)} | {_ratio(r.cost_vs_fluid)} "
            f"| {', '.join(r.dominated_by) or '-'} | {r.hybrid.hybrid_usd:.2f} "
            f"| {r.ttft_p95_s:.1f} | {_within(r)} |"
        )
    zero = [("-", r.policy, r.cost_usd, r.zero) for r in reports if r.zero is not None]
    if zero:
        rows += ["", "Scale to zero:", "", zero_markdown(zero)]
    return "\n".join(rows)


@dataclass(frozen=True, slots=True)
class SeriesForPlot:
    """Per-bucket means for a plot: time (hours from the window start), demand in pods, ready
    pods and replicas."""

    hours: npt.NDArray[np.float64]
    demand_pods: npt.NDArray[np.float64]
    ready: npt.NDArray[np.float64]
    replicas: npt.NDArray[np.float64]


def plot_series(result: SimResult, points: int = 2000) -> SeriesForPlot:
    n = len(result.ready)
    bucket = max(1, n // points)
    m = n // bucket * bucket

    def mean(x: npt.NDArray[np.int64] | npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        out: npt.NDArray[np.float64] = (
            np.asarray(x[:m], dtype=np.float64).reshape(-1, bucket).mean(axis=1)
        )
        return out

    slots = result.scenario.slots_per_pod
    return SeriesForPlot(
        hours=np.arange(m // bucket, dtype=np.float64) * bucket / 3600,
        demand_pods=mean(result.workload.demand) / slots,
        ready=mean(result.ready),
        replicas=mean(result.replicas),
    )


# -- averages over seeds and over the corpus ------------------------------------------------

SUMMARY_KEYS = (
    "policy",
    "seeds",
    "requests",
    "dropped",
    "drop_rate",
    "drop_rate_vs_oracle",
    "gpu_hours",
    "cost_usd",
    "utilization",
    "utilization_billed",
    "p50_wait_s",
    "p99_wait_s",
    "scale_up_latency_s",
    "scale_actions",
    "cost_vs_oracle",
    "cost_vs_fluid",
    "cost_vs_kpa",
    "dominated_by",
    "ttft_p95_s",
    "within_objective",
    "ttft_objective_s",
)


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """One policy on one trace, every number the mean over the seeds run; the ratios are of
    those means (mean cost / the reference's mean cost)."""

    policy: str
    seeds: int
    requests: float
    dropped: float
    drop_rate: float
    drop_rate_vs_oracle: float | None  # this drop rate minus the oracle's (fraction)
    gpu_hours: float
    cost_usd: float
    utilization: float
    utilization_billed: float
    p50_wait_s: float
    p99_wait_s: float
    scale_up_latency_s: float
    scale_actions: float
    cost_vs_oracle: float | None
    cost_vs_fluid: float | None
    cost_vs_kpa: float | None
    dominated_by: tuple[str, ...] = ()
    zero: ZeroWaits | None = None  # means over seeds, on a trace that allows zero
    ttft_p95_s: float = 0.0
    within_objective: float = 1.0
    ttft_objective_s: float = 0.0

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {k: getattr(self, k) for k in SUMMARY_KEYS}
        d["dominated_by"] = list(self.dominated_by)
        if self.zero is not None:
            d["zero"] = asdict(self.zero)
        return d


def summarise_seeds(per_seed: Sequence[Sequence[PolicyReport]]) -> tuple[SummaryRow, ...]:
    """Mean over seeds per policy (each element: one seed's reports, the same policies), with
    ratios to the references and KPA, and dominance on the means."""
    if not per_seed:
        return ()
    names = [r.policy for r in per_seed[0]]
    by: dict[str, list[PolicyReport]] = {name: [] for name in names}
    for reports in per_seed:
        for r in reports:
            by[r.policy].append(r)

    def mean(name: str, key: str) -> float:
        return float(np.mean([float(getattr(r, key)) for r in by[name]]))

    def ratio(name: str, ref: str) -> float | None:
        if ref not in by:
            return None
        base = mean(ref, "cost_usd")
        return mean(name, "cost_usd") / base if base else None

    rows = []
    for name in names:
        drop = mean(name, "drop_rate")
        rows.append(
            SummaryRow(
                policy=name,
                seeds=len(by[name]),
                requests=mean(name, "requests"),
                dropped=mean(name, "dropped"),
                drop_rate=drop,
                drop_rate_vs_oracle=(drop - mean("oracle", "drop_rate"))
                if "oracle" in by
                else None,
                gpu_hours=mean(name, "gpu_hours"),
                cost_usd=mean(name, "cost_usd"),
                utilization=mean(name, "utilization"),
                utilization_billed=mean(name, "utilization_billed"),
                p50_wait_s=mean(name, "p50_wait_s"),
                p99_wait_s=mean(name, "p99_wait_s"),
                scale_up_latency_s=mean(name, "scale_up_latency_s"),
                scale_actions=mean(name, "scale_actions"),
                cost_vs_oracle=ratio(name, "oracle"),
                cost_vs_fluid=ratio(name, "fluid"),
                cost_vs_kpa=ratio(name, "kpa"),
                zero=mean_zero([r.zero for r in by[name] if r.zero is not None]),
                ttft_p95_s=mean(name, "ttft_p95_s"),
                within_objective=mean(name, "within_objective"),
                ttft_objective_s=by[name][0].ttft_objective_s,
            )
        )
    return tuple(replace(r, dominated_by=dominators(r, rows)) for r in rows)


# -- a corpus: many traces, each over seeds ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CorpusSummary:
    """Every trace's rows (means over seeds), the geometric means over the traces, and the
    targets. `runs[trace][i]` are seed `seeds[i]`'s reports."""

    seeds: tuple[int, ...]
    traces: dict[str, tuple[SummaryRow, ...]]
    runs: dict[str, tuple[tuple[PolicyReport, ...], ...]]
    descriptions: dict[str, str]
    geomeans: dict[str, dict[str, float | None]]
    checks: tuple[TargetCheck, ...]
    policy: str

    def to_dict(self) -> dict[str, object]:
        return {
            "seeds": list(self.seeds),
            "policy_checked": self.policy,
            "traces": [
                {
                    "trace": name,
                    "workload": self.descriptions.get(name, ""),
                    "mean_over_seeds": [r.to_dict() for r in rows],
                    "runs": [
                        {"seed": seed, "policies": [r.to_dict() for r in reports]}
                        for seed, reports in zip(self.seeds, self.runs[name], strict=True)
                    ],
                }
                for name, rows in self.traces.items()
            ],
            "geometric_means": self.geomeans,
            "targets": [c.to_dict() for c in self.checks],
        }

    def policies(self) -> list[str]:
        names: dict[str, None] = {}
        for rows in self.traces.values():
            names.update((r.policy, None) for r in rows)
        return list(names)

    def markdown(self) -> str:
        """One table per policy (a row per trace, then the geometric means) and an overview of
        cost / oracle."""
        seeds = ", ".join(map(str, self.seeds))
        out = []
        for name in self.policies():
            head = (
                f"#### {name} (mean over seeds {seeds})\n\n"
                "| trace | cost USD | cost/oracle | cost/fluid | cost/KPA | drop rate "
                "| vs oracle | util | util (billed) | p99 wait s | scale actions "
                "| dominated by | TTFT p95 s | within objective |\n" + "|" + "---|" * 14
            )
            lines = [head]
            for trace, rows in self.traces.items():
                r = next((x for x in rows if x.policy == name), None)
                if r is None:
                    continue
                vs = (
                    "-"
                    if r.drop_rate_vs_oracle is None
                    else f"{100 * r.drop_rate_vs_oracle:+.3f} pt"
                )
                lines.append(
                    f"| {trace} | {r.cost_usd:.2f} | {_ratio(r.cost_vs_oracle)} "
                    f"| {_ratio(r.cost_vs_fluid)} | {_ratio(r.cost_vs_kpa)} "
                    f"| {percent(r.drop_rate)} "
                    f"| {vs} | {100 * r.utilization:.1f} % | {100 * r.utilization_billed:.1f} % "
                    f"| {r.p99_wait_s:.1f} | {r.scale_actions:.0f} "
                    f"| {', '.join(r.dominated_by) or '-'} | {r.ttft_p95_s:.1f} | {_within(r)} |"
                )
            g = self.geomeans.get(name, {})
            lines.append(
                f"| **geometric mean** | | {_ratio(g.get('cost_vs_oracle'))} "
                f"| {_ratio(g.get('cost_vs_fluid'))} | {_ratio(g.get('cost_vs_kpa'))} "
                "| | | | | | | | | |"
            )
            out.append("\n".join(lines))
        zero = [
            (trace, r.policy, r.cost_usd, r.zero)
            for trace, rows in self.traces.items()
            for r in rows
            if r.zero is not None
        ]
        if zero:
            out.append(f"#### Scale to zero (mean over seeds {seeds})\n\n" + zero_markdown(zero))
        return "\n\n".join(out)


def summarise_corpus(
    runs: Mapping[str, Sequence[Sequence[PolicyReport]]],
    *,
    seeds: Sequence[int],
    descriptions: Mapping[str, str] | None = None,
    policy: str = "ciuic",
    corpus_target: bool | None = None,
    extra_checks: Sequence[TargetCheck] = (),
) -> CorpusSummary:
    """Means over seeds per trace, geometric means of the cost ratios over the traces, and the
    targets for `policy`; the corpus target (against KPA) when `corpus_target`, by default when
    there is more than one trace."""
    traces = {name: summarise_seeds(per_seed) for name, per_seed in runs.items()}
    geomeans: dict[str, dict[str, float | None]] = {}
    for rows in traces.values():
        for r in rows:
            geomeans.setdefault(r.policy, {})
    for name in geomeans:
        picked = [r for rows in traces.values() for r in rows if r.policy == name]
        geomeans[name] = {
            key: geometric_mean([v for r in picked if (v := getattr(r, key)) is not None])
            for key in ("cost_vs_oracle", "cost_vs_fluid", "cost_vs_kpa")
        }
    corpus = len(traces) > 1 if corpus_target is None else corpus_target
    checks = check_targets(traces, policy=policy, corpus=corpus)
    return CorpusSummary(
        seeds=tuple(seeds),
        traces=traces,
        runs={name: tuple(tuple(r) for r in per_seed) for name, per_seed in runs.items()},
        descriptions=dict(descriptions or {}),
        geomeans=geomeans,
        checks=(*checks, *extra_checks),
        policy=policy,
    )
