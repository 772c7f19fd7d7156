"""Kubernetes HPA v2, as `pkg/controller/podautoscaler` computes it.

The math (`replica_calculator.go`) is split from the controller (`horizontal.go`): a metric gives
a proposal, then the proposal goes through the numbered pipeline of the controller: (1)
stabilisation windows (max of the recommendations in the scale-down window, min in the scale-up
window), (2) rate limits from the scaling policies (`selectPolicy: Max` over `Pods 4 / 15 s` and
`Percent 100 / 15 s` for scale-up, `Percent 100 / 15 s` for scale-down), (3) min/max bounds.
Defaults are the v2 defaults; sync every 15 s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from app.sim.engine import ClusterView

__all__ = [
    "HPA",
    "HPABehavior",
    "HPAController",
    "ScalingPolicy",
    "replicas_for_average_value",
    "replicas_for_utilization",
]


@dataclass(frozen=True, slots=True)
class ScalingPolicy:
    kind: str  # "Pods" | "Percent"
    value: int
    period_s: int


@dataclass(frozen=True, slots=True)
class HPABehavior:
    """`spec.behavior` with the v2 defaults."""

    up_window_s: int = 0
    up_policies: tuple[ScalingPolicy, ...] = (
        ScalingPolicy("Percent", 100, 15),
        ScalingPolicy("Pods", 4, 15),
    )
    down_window_s: int = 300
    down_policies: tuple[ScalingPolicy, ...] = (ScalingPolicy("Percent", 100, 15),)


def replicas_for_utilization(
    current: int,
    ready: int,
    mean_utilization: float,
    target: float,
    *,
    unready: int = 0,
    missing: int = 0,
    tolerance: float = 0.1,
) -> int:
    """`GetResourceReplicas`: `ready` pods report `mean_utilization` on average; `unready`
    pods (not Ready yet) count as 0 % when the ready pods ask for a scale-up and are ignored
    otherwise; `missing` pods (no metric yet) count as 100 % of target on scale-down and 0 % on
    scale-up. If those assumptions flip the direction or land in tolerance, hold."""
    if ready <= 0:
        return current
    ratio = mean_utilization / target
    scale_up_with_unready = unready > 0 and ratio > 1.0
    if not scale_up_with_unready and missing == 0:
        if abs(1.0 - ratio) <= tolerance:
            return current
        return math.ceil(ratio * ready)
    total = mean_utilization * ready
    count = ready
    if missing:
        total += (target if ratio < 1.0 else 0.0) * missing
        count += missing
    if scale_up_with_unready:
        count += unready
    new_ratio = total / count / target
    if abs(1.0 - new_ratio) <= tolerance or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return current
    new = math.ceil(new_ratio * count)
    if (new_ratio < 1.0 and new > current) or (new_ratio > 1.0 and new < current):
        return current
    return new


def replicas_for_average_value(
    current: int, total: float, target_per_pod: float, tolerance: float = 0.1
) -> int:
    """`GetExternalMetricReplicas` with an AverageValue target (what KEDA feeds the HPA):
    usage ratio = total / (target × current)."""
    if current <= 0:
        return current
    ratio = total / (target_per_pod * current)
    if abs(1.0 - ratio) <= tolerance:
        return current
    return math.ceil(total / target_per_pod)


@dataclass(slots=True)
class HPAController:
    """The controller half: stabilisation, rate limits and bounds over proposals."""

    min_replicas: int
    max_replicas: int
    behavior: HPABehavior = field(default_factory=HPABehavior)
    recommendations: list[tuple[int, int]] = field(default_factory=list)
    up_events: list[tuple[int, int]] = field(default_factory=list)
    down_events: list[tuple[int, int]] = field(default_factory=list)
    last_reason: str = ""

    def normalize(self, now: int, current: int, desired: int) -> int:
        b = self.behavior
        if not self.recommendations:
            # horizontal.go seeds the history with the current count on first sight
            self.recommendations.append((now, current))
        # (1) stabilisation: min over the up window, max over the down window, both including
        # the new proposal, which is recorded afterwards.
        up_cut = now - b.up_window_s
        down_cut = now - b.down_window_s
        up_rec = desired
        down_rec = desired
        keep_from = now - max(b.up_window_s, b.down_window_s)
        self.recommendations = [r for r in self.recommendations if r[0] > keep_from]
        for ts, rec in self.recommendations:
            if ts > up_cut:
                up_rec = min(up_rec, rec)
            if ts > down_cut:
                down_rec = max(down_rec, rec)
        rec = current
        reason = "ScaleWithinWindow"
        if rec < up_rec:
            rec = up_rec
        if rec > down_rec:
            rec = down_rec
            reason = "ScaleDownStabilized" if desired < rec else reason
        self.recommendations.append((now, desired))
        # (2) rate limits and (3) bounds
        out = rec
        if rec > current:
            limit = self._up_limit(now, current)
            limit = max(limit, current)
            allowed = min(self.max_replicas, limit)
            if rec > allowed:
                out = allowed
                reason = "ScaleUpLimit" if allowed == limit else "TooManyReplicas"
        elif rec < current:
            limit = self._down_limit(now, current)
            limit = min(limit, current)
            allowed = max(self.min_replicas, limit)
            if rec < allowed:
                out = allowed
                reason = "ScaleDownLimit" if allowed == limit else "TooFewReplicas"
        out = max(self.min_replicas, min(self.max_replicas, out))
        if out > current:
            self.up_events.append((now, out - current))
        elif out < current:
            self.down_events.append((now, current - out))
        self.last_reason = reason
        return out

    @staticmethod
    def _changed(events: list[tuple[int, int]], now: int, period: int) -> int:
        return sum(d for ts, d in events if ts > now - period)

    def _up_limit(self, now: int, current: int) -> int:
        result = -(1 << 31)
        for p in self.behavior.up_policies:
            start = (
                current
                - self._changed(self.up_events, now, p.period_s)
                + self._changed(self.down_events, now, p.period_s)
            )
            if p.kind == "Pods":
                proposed = start + p.value
            else:
                proposed = math.ceil(start * (1 + p.value / 100))
            result = max(result, proposed)
        self._trim(now)
        return result

    def _down_limit(self, now: int, current: int) -> int:
        result = 1 << 31
        for p in self.behavior.down_policies:
            start = (
                current
                - self._changed(self.up_events, now, p.period_s)
                + self._changed(self.down_events, now, p.period_s)
            )
            proposed = start - p.value if p.kind == "Pods" else int(start * (1 - p.value / 100))
            result = min(result, proposed)
        self._trim(now)
        return result

    def _trim(self, now: int) -> None:
        horizon = max(
            (p.period_s for p in (*self.behavior.up_policies, *self.behavior.down_policies)),
            default=0,
        )
        self.up_events = [e for e in self.up_events if e[0] > now - horizon]
        self.down_events = [e for e in self.down_events if e[0] > now - horizon]


class HPA:
    """HPA v2 on GPU utilisation (target 70 %): reads the pods' utilisation sampled every
    15 s, proposes `ceil(current × metric / target)`, then applies the controller pipeline."""

    name = "hpa"
    phase_s = 0

    def __init__(
        self,
        *,
        target_utilization: float = 70.0,
        tolerance: float = 0.1,
        sync_period_s: int = 15,
        metric_period_s: int = 15,
        min_replicas: int = 1,
        max_replicas: int = 80,
        behavior: HPABehavior | None = None,
    ) -> None:
        self.period_s = sync_period_s
        self.target = target_utilization
        self.tolerance = tolerance
        self.metric_period_s = metric_period_s
        self.controller = HPAController(min_replicas, max_replicas, behavior or HPABehavior())

    def decide(self, view: ClusterView) -> int:
        s = view.sample(self.metric_period_s)
        current = view.replicas
        if s is None or s.gpu_utilization is None or s.ready == 0:
            desired = current
        else:
            # The calculator only needs the mean over the sampled Ready pods (it sums their
            # utilisations); pods Ready since the sample have no metric yet (missing),
            # starting pods are unready, deleted (draining) pods are not counted at all.
            desired = replicas_for_utilization(
                current,
                s.ready,
                s.gpu_utilization,
                self.target,
                unready=view.starting,
                missing=max(0, view.ready - s.ready),
                tolerance=self.tolerance,
            )
        return self.controller.normalize(view.now, current, desired)
