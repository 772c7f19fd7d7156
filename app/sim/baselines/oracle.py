"""The clairvoyant oracle: knows every future arrival and every pod's cold start.

need(t) = ceil(offered concurrency(t) / slots), clamped to the bounds: the pods that serve every
request on arrival. Each second it launches a pod exactly one cold start (the one that pod will
draw) before the first second it is needed, and deletes a pod once no second of the next
`keep_s` (the longest cold start: relaunching it would cost at least that) needs it. Its cost is
the physical limit for serving without waiting; it drops only what `max_replicas` cannot hold.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from app.sim.engine import ClusterView

__all__ = ["Oracle", "forward_max", "need_series"]

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


class Oracle:
    name = "oracle"
    period_s = 1
    phase_s = 0

    def __init__(self, keep_s: int | None = None) -> None:
        self._keep_s = keep_s
        self._need: list[int] = []
        self._keep: list[int] = []
        self._ahead: list[int] = []

    def _prepare(self, view: ClusterView) -> None:
        sc = view.scenario
        need = need_series(
            view.workload.demand, sc.slots_per_pod, view.min_replicas, view.max_replicas
        )
        keep_s = self._keep_s if self._keep_s is not None else int(np.ceil(sc.cold_start_max_s))
        self._need = need.tolist()
        self._keep = forward_max(need, keep_s + 1).tolist()
        # what any pod launched now could be needed for: the fast path skips the launch check
        self._ahead = forward_max(need, int(np.ceil(sc.cold_start_max_s)) + 1).tolist()

    def decide(self, view: ClusterView) -> int:
        if not self._need:
            self._prepare(view)
        need = self._need
        n = len(need)
        now = view.now
        total = view.replicas
        if now >= n:
            return total
        # Launch: pod j (in creation order, cold start c_j) is due now when some second up to
        # now + c_j would otherwise lack pods; pods already starting count from their ready time.
        if self._ahead[now] <= view.ready:
            keep = self._keep[now]
            return keep if total > keep else total
        cold = view.peek_cold_starts(1)
        h = min(n - 1, now + cold[0])
        if max(need[now : h + 1]) > view.ready + sum(1 for r in view.starting_ready_at if r <= h):
            cold = view.peek_cold_starts(view.max_replicas)
            ready_at = [*view.starting_ready_at]
            extra = 0
            for c in cold:
                h = min(n - 1, now + c)
                have = view.ready + sum(1 for r in ready_at if r <= h)
                if max(need[now : h + 1]) <= have or total + extra >= view.max_replicas:
                    break
                ready_at.append(now + c)
                extra += 1
            return total + extra
        # Remove what no second of the keep window needs.
        keep = self._keep[now]
        if total > keep:
            return keep
        return total
