"""What one pod serves of the load signal: the spec's `capacity`, or learned online.

`capacity: learn` (the default) needs no offline profiling. While the deployment is neither idle
nor saturated (no ceiling such as `request_queue: <5` exceeded, the pods between 10 % and 95 %
busy), every pod is serving what arrives, so the load signal (requests/s summed over pods)
divided by the pods' worth of work in progress (the metrics' demand at full use, see
`app.policy.reactive`) is what one pod serves at full use. The policy keeps a decaying mean of
that ratio (half-life `HALF_LIFE_S`, so a new model version with another throughput is
relearned within the hour) with its spread, and trusts it once `MIN_SAMPLES` samples' worth of
weight has accumulated. Until then the capacity is unknown: the scaler stays reactive and
the reasons say why.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from app.policy.reactive import Reading
from app.policy.spec import ScalerSpec
from app.policy.types import LearnedCapacity, Observation

__all__ = [
    "HALF_LIFE_S",
    "MIN_SAMPLES",
    "CapacityInUse",
    "capacity_in_use",
    "learn_capacity",
]

HALF_LIFE_S = 1800.0
MIN_SAMPLES = 12.0  # a minute of the agent's 5 s pushes
_IDLE, _BUSY = 0.10, 0.95  # share of the Ready pods busy between which a sample teaches


def learn_capacity(spec: ScalerSpec, obs: Observation, reading: Reading,
                   learned: LearnedCapacity, now: float) -> LearnedCapacity:  # fmt: skip
    """`learned` with this decision's sample added, when it teaches anything."""
    if not spec.capacity.learned:
        return learned
    load, demand, ready = obs.load_rate, reading.demand, obs.ready_pods
    if load is None or demand is None or ready <= 0 or reading.saturated:
        return learned
    if not (math.isfinite(load) and load > 0 and _IDLE * ready <= demand <= _BUSY * ready):
        return learned
    sample = load / demand
    if learned.updated_at is None or learned.weight <= 0:
        decay = 0.0
    else:
        decay = 0.5 ** (max(0.0, now - learned.updated_at) / HALF_LIFE_S)
    return LearnedCapacity(
        sum=learned.sum * decay + sample,
        sum_sq=learned.sum_sq * decay + sample * sample,
        weight=learned.weight * decay + 1.0,
        updated_at=now,
    )


class CapacityInUse(NamedTuple):
    per_pod: float | None  # units of the load signal per second one pod serves at full use
    how: str  # "spec", "learned", or why it is unknown


def capacity_in_use(spec: ScalerSpec, learned: LearnedCapacity) -> CapacityInUse:
    """The capacity the policy divides by: the spec's, or the learned one once trusted."""
    cap = spec.capacity
    if cap.per_pod is not None:
        return CapacityInUse(cap.per_pod * cap.utilization, "spec")
    mean = learned.mean
    if mean is None or learned.weight < MIN_SAMPLES or mean <= 0:
        seen = f"{learned.weight:.0f}" if learned.weight else "no"
        return CapacityInUse(
            None,
            f"capacity not learned yet ({seen} samples of {cap.signal} against busy pods, "
            f"{MIN_SAMPLES:.0f} needed)",
        )
    return CapacityInUse(mean * cap.utilization, "learned")
