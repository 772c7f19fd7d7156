"""Knative's KPA (`pkg/autoscaler/scaling/autoscaler.go`), ticking every 2 s on 1 s buckets.

Concurrency (requests in the pods plus those buffered by the activator: our busy + queued) is
averaged over the stable (60 s) and panic (6 s) windows; the target per pod is
`containerConcurrency × targetUtilisation` (8 × 0.7 = 5.6). Panic starts when the panic window
wants ≥ 2× the ready pods, holds the replica count from going down while it lasts, and ends one
stable window after the last over-threshold tick. Rates: up at most 1000× ready, down at most
÷2 per tick.

Scale to zero (Knative's default, `enable-scale-to-zero: true`, where the scenario's
`min_replicas` is 0): once the stable window's concurrency asks for no pod, the last pod goes
after `scale-to-zero-grace-period` (30 s) more of asking for none. At zero the activator holds
the requests (the engine's queue, with the scenario's timeout) and reports them as
concurrency, so the first request wakes the revision at the next tick.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from app.sim.engine import ClusterView

__all__ = ["KPA", "KPAState", "kpa_scale"]


@dataclass(slots=True)
class KPAState:
    panic_time: float | None = None
    max_panic_pods: int = 0


def kpa_scale(
    state: KPAState,
    now: float,
    ready: int,
    stable_concurrency: float,
    panic_concurrency: float,
    *,
    target_per_pod: float,
    panic_threshold: float = 2.0,
    stable_window_s: float = 60.0,
    max_scale_up_rate: float = 1000.0,
    max_scale_down_rate: float = 2.0,
) -> int:
    """One `Scale(now)` step. Mutates `state` (panic bookkeeping) like the Go struct does."""
    ready = max(1, ready)
    max_up = math.ceil(max_scale_up_rate * ready)
    max_down = math.floor(ready / max_scale_down_rate)
    dspc = math.ceil(stable_concurrency / target_per_pod)
    dppc = math.ceil(panic_concurrency / target_per_pod)
    stable_pods = int(min(max(dspc, max_down), max_up))
    panic_pods = int(min(max(dppc, max_down), max_up))
    over = dppc / ready >= panic_threshold
    if over:
        state.panic_time = now
    elif state.panic_time is not None and state.panic_time + stable_window_s < now:
        state.panic_time = None
        state.max_panic_pods = 0
    desired = stable_pods
    if state.panic_time is not None:
        desired = max(desired, panic_pods)
        state.max_panic_pods = max(state.max_panic_pods, desired)
        desired = state.max_panic_pods
    return desired


class KPA:
    name = "kpa"
    phase_s = 0

    def __init__(
        self,
        *,
        target_utilization: float = 0.7,
        container_concurrency: int = 8,
        stable_window_s: int = 60,
        panic_window_pct: float = 10.0,
        panic_threshold_pct: float = 200.0,
        tick_s: int = 2,
        max_scale_down_rate: float = 2.0,
        max_scale_up_rate: float = 1000.0,
        scale_to_zero: bool = False,
        scale_to_zero_grace_s: float = 30.0,
    ) -> None:
        self.period_s = tick_s
        self.scale_to_zero = scale_to_zero
        self.grace_s = scale_to_zero_grace_s
        self._zero_since: float | None = None  # the first tick that asked for no pod
        self.target_per_pod = container_concurrency * target_utilization
        self.stable_window_s = stable_window_s
        self.panic_window_s = max(1, round(stable_window_s * panic_window_pct / 100))
        self.panic_threshold = panic_threshold_pct / 100
        self.max_scale_down_rate = max_scale_down_rate
        self.max_scale_up_rate = max_scale_up_rate
        self.state = KPAState()
        self._cum = [0]  # running sum of per-second concurrency: windows in O(1)

    def decide(self, view: ClusterView) -> int:
        busy, queue, cum = view.busy, view.queue, self._cum
        n = len(busy)
        if n == 0:
            return view.replicas
        for i in range(len(cum) - 1, n):
            cum.append(cum[-1] + busy[i] + queue[i])
        sw = min(n, self.stable_window_s)
        pw = min(n, self.panic_window_s)
        stable = (cum[n] - cum[n - sw]) / sw
        panic = (cum[n] - cum[n - pw]) / pw
        want = kpa_scale(
            self.state,
            view.now,
            view.ready,
            stable,
            panic,
            target_per_pod=self.target_per_pod,
            panic_threshold=self.panic_threshold,
            stable_window_s=self.stable_window_s,
            max_scale_up_rate=self.max_scale_up_rate,
            max_scale_down_rate=self.max_scale_down_rate,
        )
        if want > 0 or not self.scale_to_zero:
            self._zero_since = None
            return max(1, want)
        if self._zero_since is None:
            self._zero_since = view.now
        if view.replicas > 0 and view.now - self._zero_since < self.grace_s:
            return 1  # the grace period: the last pod stays a while
        return 0
