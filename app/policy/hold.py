"""Step 7, hold: how far the count may fall at this decision.

Scale-down follows the forecast and the recent demand instead of HPA's fixed 300 s window: a pod
is removed once no decision within `reactive.window` wanted it (the highest count any of them
wanted stands, a hysteresis one window long, so a pod is not given back on one quiet reading
and paid for again, cold start included, on the next busy one). And never:
- before the scaler has had data for one window (a new scaler, or a replayed trace, knows
  nothing of the load yet: keep what runs);
- while some metrics are missing (partial data never scales down);
- while a panic reading holds (`reactive.panic`).
Scale-up is never held here. It comes after the behaviour (step 6: HPA-style windows and rate
limits where the spec sets `behavior`, which see what the load asked for, not what was held),
and can only make a scale-down smaller, never break a rate limit.
"""

from __future__ import annotations

from typing import NamedTuple

from app.policy.codes import Code
from app.policy.reactive import ReactiveResult
from app.policy.spec import ScalerSpec
from app.policy.types import Reason

__all__ = ["HoldResult", "hold_step"]


class HoldResult(NamedTuple):
    replicas: int
    lows: tuple[tuple[float, float], ...]
    reason: Reason


def hold_step(spec: ScalerSpec, current: int, desired: int, calm: int,
              reactive: ReactiveResult, lows: tuple[tuple[float, float], ...],
              now: float) -> HoldResult:  # fmt: skip
    """`desired`, or the count a scale-down may not go below yet. `calm` is what the load
    asks for without a panic or a burst: what later decisions remember of this one."""
    window = spec.reactive.window
    cutoff = now - window
    kept = (*(e for e in lows if cutoff < e[0] < now), (now, float(calm)))
    values = {"desired": float(desired), "current": float(current)}
    if desired >= current:
        msg = "no scale-down asked" if desired == current else f"scaling up to {desired}"
        return HoldResult(desired, kept, Reason(Code.HOLD_NONE, msg, values))
    if reactive.partial:
        msg = f"some metrics are missing: no scale-down below {current}"
        return HoldResult(current, kept, Reason(Code.HOLD_PARTIAL, msg, values))
    if reactive.since is None or now - reactive.since < window:
        seen = 0.0 if reactive.since is None else now - reactive.since
        values["seen_s"] = seen
        msg = f"{seen:.0f}s of data, less than the {window:.0f}s window: no scale-down yet"
        return HoldResult(current, kept, Reason(Code.HOLD_WARMUP, msg, values))
    if reactive.panic:
        msg = f"panic holds: no scale-down below {current}"
        return HoldResult(current, kept, Reason(Code.HOLD_PANIC, msg, values))
    wanted = int(max(v for _, v in kept[:-1])) if len(kept) > 1 else desired
    values["wanted_in_window"] = float(wanted)
    if wanted > desired:
        out = min(current, wanted)
        msg = f"a decision within {window:.0f}s wanted {wanted}: down to {out} only"
        return HoldResult(out, kept, Reason(Code.HOLD_WINDOW, msg, values))
    msg = f"no decision within {window:.0f}s wanted more than {desired}: scaling down"
    return HoldResult(desired, kept, Reason(Code.HOLD_DOWN, msg, values))
