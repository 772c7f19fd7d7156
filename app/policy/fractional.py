"""Step 8, fractional plan: capacity in steps of a tenth (or hundredth) of a pod.

With `fractional.enabled`, a need of 3.7 runs as 3 full pods plus one pod limited to 70 % of its
resources; a remainder below `min_fraction` (3.2 -> 0.2 < 0.3) is absorbed by the full pods
rather than paying for a nearly idle GPU; the partial share is rounded up to `step`. Disabled,
the count is `ceil(need)` like every integer autoscaler. When behaviour or bounds changed the
count, the plan is that many full pods (held or capped capacity is whole pods).
"""

from __future__ import annotations

import math

from app.policy.codes import Code
from app.policy.spec import FractionalSpec
from app.policy.types import FractionalPlan, Reason

__all__ = ["fractional_plan", "pods_for", "split_need"]

_EPS = 1e-9


def split_need(spec: FractionalSpec, need: float) -> tuple[int, float | None, bool]:
    """(full pods, partial share or None, remainder absorbed) for a fractional need."""
    need = max(0.0, need)
    full = math.floor(need + _EPS)
    rem = need - full
    if rem <= _EPS:
        return full, None, False
    if rem < spec.min_fraction - _EPS:
        return full, None, True
    units = math.ceil(rem / spec.step - _EPS)
    share = round(units * spec.step, 6)
    if share >= 1.0:
        return full + 1, None, False
    return full, share, False


def pods_for(spec: FractionalSpec, need: float) -> int:
    """Pods (full + partial) the need asks for: ceil, or floor when the remainder is absorbed."""
    if not spec.enabled:
        return max(0, math.ceil(need - _EPS))
    full, partial, _ = split_need(spec, need)
    return full + (1 if partial is not None else 0)


def fractional_plan(
    spec: FractionalSpec,
    need: float,
    replicas: int,
    split: tuple[int, float | None, bool] | None = None,
) -> tuple[FractionalPlan, Reason]:
    """The plan for `replicas` pods serving `need` (`split`: `split_need`'s answer, if known)."""
    values = {"need": need, "replicas": float(replicas)}
    if not spec.enabled:
        msg = f"{replicas} whole pods"
        return FractionalPlan(replicas), Reason(Code.FRACTIONAL_DISABLED, msg, values)
    full, partial, absorbed = split if split is not None else split_need(spec, need)
    if full + (1 if partial is not None else 0) != replicas:
        msg = f"count set to {replicas} by behaviour/bounds: all full pods"
        return FractionalPlan(replicas), Reason(Code.FRACTIONAL_OVERRIDDEN, msg, values)
    if partial is not None:
        values["partial"] = partial
        msg = f"{full} full pods + 1 pod at {partial:.0%}"
        return FractionalPlan(full, partial), Reason(Code.FRACTIONAL_PARTIAL, msg, values)
    if absorbed:
        values["remainder"] = need - full
        msg = (
            f"remainder {need - full:.2f} below min_fraction {spec.min_fraction:g}: "
            f"absorbed by {full} full pods"
        )
        return FractionalPlan(full), Reason(Code.FRACTIONAL_ABSORBED, msg, values)
    return FractionalPlan(full), Reason(Code.FRACTIONAL_WHOLE, f"{full} full pods", values)
