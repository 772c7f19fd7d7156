"""Which pods a scale-down takes: a `controller.kubernetes.io/pod-deletion-cost` per pod.

Among pods equally ready, the ReplicaSet controller deletes the lowest cost first, so a cost
that grows with a pod's load makes a scale-down take the idle pods and leave the busy ones
their requests in flight. Left to itself the controller takes the youngest pods, busy or not.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["DELETION_COST", "deletion_costs"]

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
_LIMIT = 2**31 - 1  # the annotation is an int32
_SCALE = 1000  # a GPU utilisation of 0.25 and one of 0.26 must not tie once rounded


def _cost(busy: float) -> int:
    return max(-_LIMIT, min(_LIMIT, round(busy * _SCALE)))


def deletion_costs(
    busy: Mapping[str, float | None], current: Mapping[str, int | None]
) -> dict[str, int]:
    """The costs to write, by pod name: each pod of `busy` (its load, None when it pushed
    none) whose cost differs from `current` (its annotation now, None when it has none).

    A pod with no load known gets the median of the others' costs: neither kept nor given up
    first on no evidence. Nothing at all when no pod's load is known: there is no preference
    to state, and the controller's own order stands."""
    known = sorted(_cost(v) for v in busy.values() if v is not None)
    if not known:
        return {}
    neutral = known[(len(known) - 1) // 2]
    wanted = {pod: neutral if v is None else _cost(v) for pod, v in busy.items()}
    return {pod: cost for pod, cost in wanted.items() if current.get(pod) != cost}
