"""The per-policy report of BENCHMARK.md ("What a report shows"), as values, JSON-ready dicts
and a markdown table. Computed from a run's per-second series after the run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from app.sim.baselines.oracle import need_series
from app.sim.cost import CostModel, HybridPlan, hybrid_plan
from app.sim.engine import SimResult

__all__ = [
    "REPORT_KEYS",
    "PolicyReport",
    "SeriesForPlot",
    "TargetCheck",
    "check_targets",
    "markdown_table",
    "plot_series",
    "report_for",
    "shortfall_episodes",
    "targets_markdown",
    "wait_quantile",
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
    "p50_wait_s",
    "p99_wait_s",
    "scale_up_latency_s",
    "scale_actions",
    "cost_vs_oracle",
)


@dataclass(frozen=True, slots=True)
class PolicyReport:
    policy: str
    requests: int
    dropped: int
    drop_rate: float
    gpu_hours: float
    cost_usd: float
    utilization: float
    p50_wait_s: float
    p99_wait_s: float
    scale_up_latency_s: float
    scale_actions: int
    cost_vs_oracle: float | None
    hybrid: HybridPlan

    def to_dict(self) -> dict[str, object]:
        """The JSON keys of the issue, in order, plus `hybrid` (the cost plan)."""
        d: dict[str, object] = {k: getattr(self, k) for k in REPORT_KEYS}
        d["hybrid"] = {**asdict(self.hybrid), "savings_usd": self.hybrid.savings_usd}
        return d


def wait_quantile(hist: Sequence[int], q: float) -> float:
    """The q-quantile of queue waits (whole seconds) from a histogram of started requests."""
    total = sum(hist)
    if total == 0:
        return 0.0
    rank = q * total
    acc = 0
    for w, c in enumerate(hist):
        acc += c
        if acc >= rank:
            return float(w)
    return float(len(hist) - 1)


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
    cost_model: CostModel | None = None,
) -> PolicyReport:
    sc = result.scenario
    model = cost_model or CostModel(on_demand_per_hour=sc.price_per_pod_hour)
    slots = sc.slots_per_pod
    pod_seconds = int(result.billed.sum())
    draining = result.billed - result.replicas
    capacity_slot_s = float(((result.ready + draining) * slots).sum())
    cost = model.on_demand(pod_seconds)
    episodes = shortfall_episodes(result.ready * slots, result.workload.demand)
    need = need_series(result.workload.demand, slots, 0, sc.max_replicas)
    baseline = need_series(result.workload.demand, slots, sc.min_replicas, sc.max_replicas)
    return PolicyReport(
        policy=result.policy,
        requests=result.arrived,
        dropped=result.dropped,
        drop_rate=result.dropped / result.arrived if result.arrived else 0.0,
        gpu_hours=pod_seconds / 3600,
        cost_usd=cost,
        utilization=float(result.busy.sum()) / capacity_slot_s if capacity_slot_s else 0.0,
        p50_wait_s=wait_quantile(result.wait_hist, 0.50),
        p99_wait_s=wait_quantile(result.wait_hist, 0.99),
        scale_up_latency_s=float(episodes.mean()) if len(episodes) else 0.0,
        scale_actions=result.scale_actions,
        cost_vs_oracle=(cost / oracle_cost) if oracle_cost else None,
        hybrid=hybrid_plan(result.billed, need, baseline, model),
    )


def markdown_table(reports: Sequence[PolicyReport]) -> str:
    head = (
        "| policy | requests | dropped | drop rate | GPU-h | cost USD | util | p50 wait s "
        "| p99 wait s | scale-up latency s | scale actions | cost/oracle | hybrid USD |"
    )
    rule = "|" + "---|" * 13
    rows = [head, rule]
    for r in reports:
        ratio = f"{r.cost_vs_oracle:.3f}" if r.cost_vs_oracle is not None else "-"
        rows.append(
            f"| {r.policy} | {r.requests} | {r.dropped} | {100 * r.drop_rate:.3f} % "
            f"| {r.gpu_hours:.1f} | {r.cost_usd:.2f} | {100 * r.utilization:.1f} % "
            f"| {r.p50_wait_s:.0f} | {r.p99_wait_s:.0f} | {r.scale_up_latency_s:.1f} "
            f"| {r.scale_actions} | {ratio} | {r.hybrid.hybrid_usd:.2f} |"
        )
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


@dataclass(frozen=True, slots=True)
class TargetCheck:
    """One BENCHMARK.md target for `ciuic` on one run: met or not, with the numbers."""

    name: str
    met: bool
    detail: str


def check_targets(reports: Sequence[PolicyReport]) -> tuple[TargetCheck, ...]:
    """BENCHMARK.md's "Targets" for ciuic against the oracle and the baselines in `reports`.

    A baseline counts for the cost target when it drops no more than ciuic does (the same
    service level); untuned baselines only — a tuned one would be another run.
    """
    by = {r.policy: r for r in reports}
    c, o = by.get("ciuic"), by.get("oracle")
    if c is None or o is None:
        return ()
    extra = c.drop_rate - o.drop_rate
    ratio = c.cost_usd / o.cost_usd if o.cost_usd else float("inf")
    out = [
        TargetCheck(
            "drops <= oracle + 0.02 %",
            extra <= 0.0002,
            f"ciuic {100 * c.drop_rate:.4f} %, oracle {100 * o.drop_rate:.4f} %, "
            f"extra {100 * extra:.4f} %",
        ),
        TargetCheck("utilisation >= 89 %", c.utilization >= 0.89, f"{100 * c.utilization:.1f} %"),
        TargetCheck("cost <= 1.10 x oracle", ratio <= 1.10, f"{ratio:.3f} x"),
    ]
    peers = [r for r in reports if r.policy not in ("ciuic", "oracle")]
    for r in peers:
        if r.drop_rate <= c.drop_rate:
            share = c.cost_usd / r.cost_usd if r.cost_usd else float("inf")
            out.append(
                TargetCheck(
                    f"cost <= 0.75 x {r.policy} (same drop rate)",
                    share <= 0.75,
                    f"{share:.3f} x ({r.policy} drops {100 * r.drop_rate:.4f} %)",
                )
            )
        else:
            out.append(
                TargetCheck(
                    f"cost <= 0.75 x {r.policy} (same drop rate)",
                    True,
                    f"{r.policy} drops more ({100 * r.drop_rate:.4f} % > "
                    f"{100 * c.drop_rate:.4f} %): not at the same service level",
                )
            )
    return tuple(out)


def targets_markdown(checks: Sequence[TargetCheck]) -> str:
    rows = ["| target | met | numbers |", "|---|---|---|"]
    rows += [f"| {t.name} | {'yes' if t.met else 'NO'} | {t.detail} |" for t in checks]
    return "\n".join(rows)
