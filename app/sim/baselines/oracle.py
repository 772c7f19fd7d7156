"""The clairvoyant oracle: knows every future arrival and every pod's cold start.

need(t) = ceil(offered concurrency(t) / slots), clamped to the bounds: the pods that serve every
request on arrival. The plan is made offline (`plan_replicas`): each pod is launched at the latest
second whose cold start still has it Ready when first needed, exactly one cold start ahead, and
deleted once no second of the next `keep_s` needs it (keep_s = the longest cold start: a relaunch
would be billed at least that long). A deleted pod still drains its own requests (billed), as
every policy's does. Its cost is the limit for serving without waiting; it drops only what
`max_replicas` cannot hold. It is a reference, not a floor: a policy may cost less by letting
requests wait (the `fluid` reference is the floor). The engine calls it only when its plan
changes.
"""

from __future__ import annotations

import bisect

import numpy as np
import numpy.typing as npt

from app.sim.engine import ClusterView, ColdStarts

__all__ = ["Oracle", "forward_max", "need_series", "plan_replicas"]

IntArray = npt.NDArray[np.int64]


def need_series(demand: IntArray, slots: int, lo: int, hi: int) -> IntArray:
    """Pods needed each second to start every request on arrival, within the bounds."""
    return np.clip(-(-demand // slots), lo, hi).astype(np.int64)


def forward_max(x: IntArray, window: int) -> IntArray:
    """out[t] = max(x[t : t + window]) (shorter at the end), by doubling: O(n log window)."""
    out = x.copy()
    span = 1
    while span < window:
        step = min(span, window - span)
        shifted = np.empty_like(out)
        shifted[:-step] = out[step:]
        shifted[-step:] = out[-step:]
        np.maximum(out, shifted, out=out)
        span += step
    return out


def _runs(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(
        zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True)
    )


def plan_replicas(
    need: IntArray,
    cold: ColdStarts,
    *,
    keep_s: int,
    initial: int,
    min_cold_s: int,
    max_cold_s: int,
) -> IntArray:
    """The oracle's replica count for every second, planned offline.

    Pod k (the k-th of the need) must be alive while some second of the next `keep_s` needs
    it (keep_s ≥ the longest cold start: a relaunch would be billed at least that long). For
    each time it becomes needed at second u it is launched at the latest second s whose next
    pod (the j-th created in s, cold start `cold.at(s, j)`) is Ready by u.
    """
    n = len(need)
    keep = forward_max(need, keep_s + 1)
    delta = np.zeros(n + 1, dtype=np.int64)
    launches: list[tuple[int, int, int]] = []  # (u, level, alive_end)
    top = int(max(keep.max(), initial)) if n else 0
    for k in range(1, top + 1):
        for a, b in _runs(keep >= k):
            if a == 0 and k <= initial:
                delta[0] += 1
                delta[b] -= 1
                continue
            hits = np.flatnonzero(need[a:b] >= k)
            u = a + int(hits[0]) if len(hits) else a
            launches.append((u, k, b))
    planned: dict[int, int] = {}
    for u, _k, b in sorted(launches):
        s = max(0, u - max_cold_s)
        for cand in range(u - min_cold_s, max(-1, u - max_cold_s - 1), -1):
            if cand < 0:
                break
            if cand + cold.at(cand, planned.get(cand, 0)) <= u:
                s = cand
                break
        planned[s] = planned.get(s, 0) + 1
        delta[s] += 1
        delta[max(s, b)] -= 1
    out: IntArray = np.cumsum(delta[:n])
    return out


class Oracle:
    """The clairvoyant reference on arrivals (see the module's docstring)."""

    name = "oracle"
    period_s = 1
    phase_s = 0

    def __init__(self, keep_s: int | None = None) -> None:
        self._keep_s = keep_s
        self._target: list[int] = []
        self._changes: list[int] = []

    def need(self, view: ClusterView) -> IntArray:
        """Pods needed each second (within the bounds)."""
        sc = view.scenario
        return need_series(
            view.workload.demand, sc.slots_per_pod, view.min_replicas, view.max_replicas
        )

    def keep_s(self, view: ClusterView) -> int:
        """How long a pod no second needs any more is kept (a relaunch would cost more)."""
        if self._keep_s is not None:
            return self._keep_s
        return int(np.ceil(view.scenario.cold_start_max_s))

    def _prepare(self, view: ClusterView) -> None:
        sc = view.scenario
        plan = plan_replicas(
            self.need(view),
            view.cold_starts,
            keep_s=self.keep_s(view),
            initial=view.replicas,
            min_cold_s=int(np.floor(sc.cold_start_min_s)),
            max_cold_s=int(np.ceil(sc.cold_start_max_s)),
        )
        target = np.clip(plan, view.min_replicas, view.max_replicas)
        self._target = target.tolist()
        # seconds where the plan changes: the engine need not call in between
        self._changes = (np.flatnonzero(np.diff(target)) + 1).tolist()

    def next_decision(self, t: int) -> int:
        """The engine's second t acts for `now = t + 1`: call again at the second before the
        plan next changes."""
        i = bisect.bisect_right(self._changes, t + 1)
        return self._changes[i] - 1 if i < len(self._changes) else 1 << 62

    def decide(self, view: ClusterView) -> int:
        if not self._target:
            self._prepare(view)
        return self._target[min(view.now, len(self._target) - 1)]
