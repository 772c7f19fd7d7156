"""The brief's `find_optimal_threshold`, done properly: search the spec's knobs on a replay and
keep the cheapest spec whose drop rate and monthly bill stay within limits.

Every candidate is the caller's spec with a few values replaced (GPU utilisation target, burst
queue threshold, forecast quantile), replayed through the real policy on the same workload and
seed, so candidates differ only by the spec. Pure: the caller supplies the workload (a trace
upload or the scaler's stored history) and, if it likes, a process pool's `map`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import product
from typing import Any

from app.sim.engine import Scenario, SimResult
from app.sim.report import report_for
from app.sim.runner import simulate_policy
from app.sim.traces import Workload

__all__ = ["TunePoint", "TuneResult", "candidate_spec", "tune_spec"]

MONTH_S = 30 * 86400
DEFAULT_GPU_TARGETS = (50.0, 55.0, 60.0, 65.0, 70.0, 75.0, 80.0, 85.0, 90.0)


@dataclass(frozen=True, slots=True)
class TunePoint:
    gpu_target: float | None
    burst_threshold: float | None
    quantile: float | None
    spec: dict[str, Any]
    cost_usd: float
    monthly_cost_usd: float
    drop_rate: float
    utilization: float
    feasible: bool
    pareto: bool  # no other point is both cheaper and drops less

    def to_dict(self) -> dict[str, Any]:
        return {
            "gpu_target": self.gpu_target,
            "burst_threshold": self.burst_threshold,
            "quantile": self.quantile,
            "cost_usd": self.cost_usd,
            "monthly_cost_usd": self.monthly_cost_usd,
            "drop_rate": self.drop_rate,
            "utilization": self.utilization,
            "feasible": self.feasible,
            "pareto": self.pareto,
        }


@dataclass(frozen=True, slots=True)
class TuneResult:
    best: TunePoint | None  # None when no candidate meets the limits
    frontier: tuple[TunePoint, ...]  # every point explored, cheapest first

    def to_dict(self) -> dict[str, Any]:
        return {
            "best_spec": self.best.spec if self.best else None,
            "best": self.best.to_dict() if self.best else None,
            "frontier": [p.to_dict() for p in self.frontier],
        }


def candidate_spec(
    base: Mapping[str, Any],
    *,
    gpu_target: float | None = None,
    burst_threshold: float | None = None,
    quantile: float | None = None,
) -> dict[str, Any]:
    """`base` with the GPU target ("NN%"), the request_queue burst threshold and the forecast
    quantile replaced where given (None keeps the base value)."""
    doc: dict[str, Any] = copy.deepcopy(dict(base))
    if gpu_target is not None:
        for m in doc.get("metrics", []):
            if isinstance(m, dict) and m.get("name") == "gpu_utilization":
                m["target"] = f"{gpu_target:g}%"
    if burst_threshold is not None:
        emergency = doc.get("emergency")
        if isinstance(emergency, dict):
            for trig in emergency.get("triggers", []):
                if isinstance(trig, dict) and trig.get("metric") == "request_queue":
                    trig["threshold"] = burst_threshold
    if quantile is not None:
        forecast = dict(doc.get("forecast") or {})
        forecast["quantile"] = quantile
        doc["forecast"] = forecast
    return doc


def _run(spec: dict[str, Any], workload: Workload, scenario: Scenario, seed: int) -> SimResult:
    return simulate_policy("ciuic", workload=workload, scenario=scenario, spec=spec, seed=seed)


def tune_spec(
    workload: Workload,
    base_spec: Mapping[str, Any],
    *,
    scenario: Scenario,
    seed: int = 0,
    max_drop_rate: float = 0.01,
    monthly_budget_usd: float | None = None,
    gpu_targets: Sequence[float | None] = DEFAULT_GPU_TARGETS,
    burst_thresholds: Sequence[float | None] = (None,),
    quantiles: Sequence[float | None] = (None,),
    map_fn: Callable[
        [Callable[[dict[str, Any]], SimResult], Sequence[dict[str, Any]]], Iterable[SimResult]
    ]
    | None = None,
) -> TuneResult:
    """Replay every combination of the given knob values; the best is the cheapest whose drop
    rate is ≤ `max_drop_rate` and whose bill scaled to 30 days is ≤ `monthly_budget_usd`."""
    grid = list(product(gpu_targets, burst_thresholds, quantiles))
    specs = [
        candidate_spec(base_spec, gpu_target=g, burst_threshold=b, quantile=q) for g, b, q in grid
    ]
    run_one = partial(_run, workload=workload, scenario=scenario, seed=seed)
    results = list(map_fn(run_one, specs)) if map_fn is not None else [run_one(s) for s in specs]
    scale = MONTH_S / max(1, workload.duration_s)
    raw = []
    for (g, b, q), spec, res in zip(grid, specs, results, strict=True):
        rep = report_for(res)
        monthly = rep.cost_usd * scale
        ok = rep.drop_rate <= max_drop_rate and (
            monthly_budget_usd is None or monthly <= monthly_budget_usd
        )
        raw.append((g, b, q, spec, rep.cost_usd, monthly, rep.drop_rate, rep.utilization, ok))
    points = []
    for r in raw:
        dominated = any(o[4] <= r[4] and o[6] <= r[6] and (o[4] < r[4] or o[6] < r[6]) for o in raw)
        points.append(TunePoint(*r, pareto=not dominated))
    points.sort(key=lambda p: (p.cost_usd, p.drop_rate))
    best = next((p for p in points if p.feasible), None)
    return TuneResult(best=best, frontier=tuple(points))
