"""Step 7, hold: how far the count may fall at this decision.

Scale-down follows the forecast and the recent demand instead of HPA's fixed 300 s window: a pod
is removed once no decision within one cold start wanted it (at most `reactive.window`): the
highest count any of them wanted stands, so a pod is not given back on one quiet reading and
paid for again, cold start included, on the next busy one; a pod given back is one cold start
coming back, so that is how far back the recent demand is asked. Once a queue burst has drained
(the newest reading under its ceiling), what the decisions asked for while the queue was over
it no longer counts: the burst's pods go back as soon as the load since asks for fewer. And
never:
- before the scaler has had data for one window (a new scaler, or a replayed trace, knows
  nothing of the load yet: keep what runs);
- while some metrics are missing (partial data never scales down);
- while a panic reading holds (`reactive.panic`; a drained queue burst ends it).
Scale-up is never held here. It comes after the behaviour (step 6: HPA-style windows and rate
limits where the spec sets `behavior`, which see what the load asked for, not what was held),
and can only make a scale-down smaller, never break a rate limit.
(Measured on the benchmark corpus: holding a window after each drained burst and remembering
for a full window cost 2-18 % more on every trace for no fewer drops.)
"""

from __future__ import annotations

import math
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
              now: float, cold_start: float) -> HoldResult:  # fmt: skip
    """`desired`, or the count a scale-down may not go below yet. `calm` is what the load
    asks for without a panic or a burst: what later decisions remember of this one;
    `cold_start` the lead time of a pod asked for now (spec, learned, or the default)."""
    window = min(spec.reactive.window, max(1.0, cold_start))
    cutoff = now - window
    kept = (*(e for e in lows if cutoff < e[0] < now), (now, float(calm)))
    recent = reactive.recent
    floor_now = 0
    if recent and not recent[-1][3] and any(e[3] for e in recent):
        # The queue is back under its ceiling: what the decisions asked for while it was over
        # (the burst's pods) is no reason to keep a pod any more, as in the reactive average;
        # what the newest reading asks for still is (a queue just at its ceiling has not
        # drained, and a window's mean may still hold the readings from before the burst).
        burst = {e[0] for e in recent if e[3]}
        kept = tuple(e for e in kept if e[0] not in burst)
        floor_now = math.ceil(recent[-1][1] - 1e-9)
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
    wanted = max(wanted, floor_now)
    values["wanted_in_window"] = float(wanted)
    if wanted > desired:
        out = min(current, wanted)
        msg = f"a decision within {window:.0f}s wanted {wanted}: down to {out} only"
        return HoldResult(out, kept, Reason(Code.HOLD_WINDOW, msg, values))
    msg = f"no decision within {window:.0f}s wanted more than {desired}: scaling down"
    return HoldResult(desired, kept, Reason(Code.HOLD_DOWN, msg, values))
