"""Step 7, bounds: `min_replicas`/`max_replicas`, the schedule's floor and cap, the burst floor.

Applied after behaviour, like the HPA's min/max: a floor is reached at once (a 09:00 floor or a
burst must not wait for rate limits). While bursting the count never goes below the current
one. Caps win over floors (`max_replicas` is the cost ceiling the operator set).
"""

from __future__ import annotations

from app.policy.codes import Code
from app.policy.spec import ScalerSpec
from app.policy.types import Reason

__all__ = ["apply_bounds"]


def apply_bounds(
    spec: ScalerSpec,
    replicas: int,
    current: int,
    schedule_floor: int | None,
    schedule_cap: int | None,
    burst_floor: int | None,
    bursting: bool,
) -> tuple[int, Reason]:
    """Clamp `replicas` into the bounds in force, saying which one bound it."""
    lower, code = spec.min_replicas, Code.BOUNDS_MIN
    if schedule_floor is not None and schedule_floor > lower:
        lower, code = schedule_floor, Code.BOUNDS_SCHEDULE_FLOOR
    if burst_floor is not None and burst_floor > lower:
        lower, code = burst_floor, Code.BOUNDS_BURST_FLOOR
    if bursting and current > lower:
        lower, code = current, Code.BOUNDS_BURST_HOLD
    upper, up_code = spec.max_replicas, Code.BOUNDS_MAX
    if schedule_cap is not None and schedule_cap < upper:
        upper, up_code = schedule_cap, Code.BOUNDS_SCHEDULE_CAP
    values = {"lower": float(lower), "upper": float(upper), "in": float(replicas)}
    out = replicas
    if out < lower:
        out = lower
    else:
        code = Code.BOUNDS_WITHIN
    if out > upper:
        out, code = upper, up_code
    values["replicas"] = float(out)
    if code == Code.BOUNDS_WITHIN:
        msg = f"{out} within [{lower}, {upper}]"
    elif out == upper and out != replicas and code == up_code:
        msg = f"{replicas} above the cap: {out}"
    else:
        msg = f"{replicas} below the floor: {out}"
    return out, Reason(code, msg, values)
