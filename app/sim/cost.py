"""Cost model: on-demand per second, reserved capacity and spot capacity, and the hybrid plan
the brief recommends (reserved for the forecast's baseline, on-demand for bursts, spot for the
spare capacity that can be lost without losing a request).

Prices are per pod-hour. Reserved pods are paid for the whole period whether used or not. Spot
pods are reclaimed with `spot_reclaim_per_hour` probability per pod-hour after
`spot_notice_s` of notice; each reclaim is replaced by an on-demand pod whose cold start is
billed, and capacity is short for `max(0, cold start − notice)` seconds (harmless for spare pods).
Values are expectations, so the plan is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["CostModel", "HybridPlan", "hybrid_plan", "reserved_level"]

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class CostModel:
    on_demand_per_hour: float = 1.50
    reserved_per_hour: float = 0.95  # ~1-year commitment discount
    spot_per_hour: float = 0.60
    spot_reclaim_per_hour: float = 0.05
    spot_notice_s: float = 120.0
    cold_start_s: float = 45.0

    def __post_init__(self) -> None:
        if not 0 < self.reserved_per_hour <= self.on_demand_per_hour:
            raise ValueError("reserved price must be in (0, on-demand]")
        if not 0 < self.spot_per_hour <= self.on_demand_per_hour:
            raise ValueError("spot price must be in (0, on-demand]")
        if not 0 <= self.spot_reclaim_per_hour <= 1:
            raise ValueError("spot reclaim probability must be in [0, 1]")

    def on_demand(self, pod_seconds: float) -> float:
        return pod_seconds / 3600 * self.on_demand_per_hour


@dataclass(frozen=True, slots=True)
class HybridPlan:
    reserved_pods: int
    reserved_hours: float
    on_demand_hours: float
    spot_hours: float
    expected_reclaims: float
    on_demand_only_usd: float
    hybrid_usd: float

    @property
    def savings_usd(self) -> float:
        return self.on_demand_only_usd - self.hybrid_usd

    @property
    def savings_pct(self) -> float:
        return 100 * self.savings_usd / self.on_demand_only_usd if self.on_demand_only_usd else 0.0


def reserved_level(baseline: IntArray, model: CostModel) -> int:
    """Pods worth reserving: the k-th pod pays off when it is needed at least
    reserved/on-demand of the time (the break-even quantile of the baseline)."""
    if len(baseline) == 0:
        return 0
    share = model.reserved_per_hour / model.on_demand_per_hour
    ordered = np.sort(baseline)[::-1]
    # the largest k needed at least `share` of the time
    return int(ordered[max(0, int(np.ceil(share * len(ordered))) - 1)])


def hybrid_plan(
    billed: IntArray, need: IntArray, baseline: IntArray, model: CostModel
) -> HybridPlan:
    """Price a run's per-second pod counts three ways. `billed` is what the policy ran, `need`
    the pods the demand used (capacity above it is spare and may be spot), `baseline` the
    forecast's baseline (what to reserve for)."""
    seconds = len(billed)
    k = reserved_level(baseline, model)
    used = np.minimum(billed, np.maximum(need, 0))
    spare = billed - used
    on_demand = np.maximum(used - k, 0)  # reserved pods serve the first k needed
    # spare capacity beyond the reserved pods left idle goes on spot
    idle_reserved = np.maximum(k - used, 0)
    spot = np.maximum(spare - idle_reserved, 0)
    reserved_h = k * seconds / 3600
    od_h = float(on_demand.sum()) / 3600
    spot_h = float(spot.sum()) / 3600
    reclaims = spot_h * model.spot_reclaim_per_hour
    replacement_h = reclaims * model.cold_start_s / 3600
    hybrid = (
        reserved_h * model.reserved_per_hour
        + (od_h + replacement_h) * model.on_demand_per_hour
        + spot_h * model.spot_per_hour
    )
    return HybridPlan(
        reserved_pods=k,
        reserved_hours=reserved_h,
        on_demand_hours=od_h,
        spot_hours=spot_h,
        expected_reclaims=reclaims,
        on_demand_only_usd=model.on_demand(float(billed.sum())),
        hybrid_usd=hybrid,
    )
