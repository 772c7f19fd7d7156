"""The fluid reference: the floor under every policy (docs/benchmark.md).

It knows the true rate λ(t) the arrivals are drawn from (not the arrivals themselves) and
provisions exactly the pods that rate keeps busy at 100 %, ceil(λ × service / slots), each one
launched one cold start ahead (it knows the cold starts, like the oracle) and deleted the moment
the rate no longer needs it. It keeps no headroom for Poisson noise, so it may make requests wait
or drop them; that is what makes it a floor rather than a target.

A count trace's λ(t) is its scaled per-interval rate. A request log has no rate behind it: the
equivalent is its offered concurrency (the slots its requests would hold if each started on
arrival) averaged over each clock minute, ceil(mean / slots) pods for that minute.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from app.sim.baselines.oracle import Oracle
from app.sim.engine import ClusterView
from app.sim.traces import Workload

__all__ = ["Fluid", "fluid_need"]

IntArray = npt.NDArray[np.int64]
MINUTE_S = 60


def fluid_need(workload: Workload, slots: int, lo: int, hi: int) -> IntArray:
    """Pods the fluid reference wants each second, within the bounds."""
    n = workload.duration_s
    if workload.has_rate:
        work = workload.rate_per_second() * workload.service_s  # slots the rate keeps busy
    else:
        buckets = -(-n // MINUTE_S)
        padded = np.zeros(buckets * MINUTE_S)
        padded[:n] = workload.demand
        sums = padded.reshape(buckets, MINUTE_S).sum(axis=1)
        widths = np.minimum(MINUTE_S, n - MINUTE_S * np.arange(buckets))
        work = np.repeat(sums / widths, MINUTE_S)[:n]
    pods = np.ceil(work / slots - 1e-9)
    return np.clip(pods, lo, hi).astype(np.int64)


class Fluid(Oracle):
    """The fluid floor, planned offline like the oracle but on λ(t) and with no keep window."""

    name = "fluid"

    def __init__(self) -> None:
        super().__init__(keep_s=0)

    def need(self, view: ClusterView) -> IntArray:
        return fluid_need(
            view.workload, view.scenario.slots_per_pod, view.min_replicas, view.max_replicas
        )
