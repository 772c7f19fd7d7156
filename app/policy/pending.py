"""Pods stuck Pending: capacity that is not coming.

A pod the scheduler has found no node for, longer than a cold start after its creation, is
not starting whatever the counts say (no node fits it, or none is being added in time). The
policy does not wait on it: it is no starting pod (no half share of the queue's drain, no
"the new pods will take the load" in the replica calculator), and the reactive reason says
so. A scale-down is not held by it: the ReplicaSet controller deletes unscheduled pods first.
"""

from __future__ import annotations

from dataclasses import replace

from app.policy.predictive import cold_start_s
from app.policy.spec import ScalerSpec
from app.policy.types import Observation, Reason

__all__ = ["say_stuck", "stuck_pods", "without_stuck"]


def stuck_pods(spec: ScalerSpec, obs: Observation, now: float) -> int:
    """How many of the unscheduled pods have waited for a node longer than a cold start."""
    cold = cold_start_s(spec, obs)
    return sum(1 for created in obs.unscheduled_since if now - created > cold)


def without_stuck(obs: Observation, stuck: int) -> Observation:
    """The observation with the stuck pods no longer counted as starting."""
    if stuck <= 0:
        return obs
    return replace(obs, starting_pods=max(0, obs.starting_pods - stuck))


def say_stuck(reason: Reason, stuck: int, cold_start: float) -> Reason:
    """`reason` with a sentence on the stuck pods (itself when there are none)."""
    if stuck <= 0:
        return reason
    pods = "1 pod" if stuck == 1 else f"{stuck} pods"
    return reason._replace(
        message=f"{reason.message}; {pods} Pending with no node for over the {cold_start:.0f}s "
        "cold start: capacity that is not coming, not waited on",
        values={**reason.values, "stuck_pods": float(stuck)},
    )
