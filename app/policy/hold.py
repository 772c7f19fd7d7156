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
- while a panic reading holds (`reactive.panic`; a drained queue burst ends it);
- below the pods that hold what waits now at its ceiling (`request_queue: <5` a pod): fewer
  would put the queue over it at once, and the next reading would ask for them back.
The keep-alive: where the load comes in bursts that return sooner than it pays to give their
pods back (an LLM code-completion log: a minute of 40 pods' worth, two quiet minutes, again),
releasing after one cold start leaves one pod to meet the next burst, whose first cold start of
requests then times out in the queue. So the hold also learns from the deployment's own past
(a keep-alive from the idle times, as in Shahrad et al., "Serverless in the Wild", ATC 2020,
read from the gaps between bursts instead of between invocations): where three in four of the
gaps between the last panics' onsets (up to eight, the one still open included) were at most
`KEEP_ALIVE_MAX_S`, HPA's default scale-down window, a scale-down also keeps, for that window,
the most pods the load wanted for a tenth of it (30 s): the level that meets the next burst.
Not where the spec sets `behavior`: its scale-down window (HPA's 300 s by default) is the
user's choice, 0 included.
(Measured on an LLM code-completion log, four seeds: keeping the most any decision in the
window wanted also held the minute after each burst, whose backlog kept the pods busy: 0.92-1.10
x HPA's cost; the tenth: 0.86-0.94 x, the same drops.) Bursts further apart (every 8-25
minutes) are met as they come: holding a burst's pods through such gaps costs more than it.
Scale-up is never held here. It comes after the behaviour (step 6: HPA-style windows and rate
limits where the spec sets `behavior`, which see what the load asked for, not what was held),
and can only make a scale-down smaller, never break a rate limit.
(Measured on the benchmark corpus: holding a window after each drained burst and remembering
for a full window cost 2-18 % more on every trace for no fewer drops.)
"""

from __future__ import annotations

import math
from bisect import bisect_right
from operator import itemgetter
from typing import NamedTuple

from app.policy.codes import Code
from app.policy.reactive import ReactiveResult
from app.policy.spec import ScalerSpec
from app.policy.types import Reason, between

__all__ = ["HoldResult", "hold_step"]

_KEEP_ALIVE_SHARE = 0.1  # of the window's decisions that must have wanted a level to keep it
_TIME, _COUNT, _SATURATED = itemgetter(0), itemgetter(1), itemgetter(2)  # of `lows`


class HoldResult(NamedTuple):
    replicas: int
    lows: tuple[tuple[float, float, float], ...]
    reason: Reason


def hold_step(spec: ScalerSpec, current: int, desired: int, calm: int,
              reactive: ReactiveResult, lows: tuple[tuple[float, float, float], ...],
              now: float, cold_start: float) -> HoldResult:  # fmt: skip
    """`desired`, or the count a scale-down may not go below yet. `calm` is what the load
    asks for without a panic or a burst: what later decisions remember of this one;
    `cold_start` the lead time of a pod asked for now (spec, learned, or the default)."""
    base = window = min(spec.reactive.window, max(1.0, cold_start))
    alive = reactive.keep_alive  # where bursts come back soon, and the spec has no `behavior`
    held_for = ""
    if alive is not None and alive > base:
        window = alive
        share = _KEEP_ALIVE_SHARE * alive
        held_for = (
            f" (bursts came back within {alive:.0f}s: also what the load wanted for {share:.0f}s"
            f" of the last {alive:.0f}s)"
        )
    recent = reactive.recent
    saturated = float(bool(recent) and recent[-1][3] > 0)
    kept = (*between(lows, now - window, now), (now, float(calm), saturated))
    counted, floor_now, drained = kept, 0, ""
    if recent and not saturated and (reactive.burst_within or any(map(_SATURATED, kept))):
        # The queue is back under its ceiling: what the decisions asked for while it was over
        # (the burst's pods) is no reason to keep a pod any more, as in the reactive average;
        # what the newest reading asks for still is (a queue just at its ceiling has not
        # drained, and a window's mean may still hold the readings from before the burst).
        counted = tuple(e for e in kept if not e[2])
        floor_now = math.ceil(recent[-1][1] - 1e-9)
        drained = " (the queue burst before it drained, its own decisions no longer count)"
    values = {"desired": float(desired), "current": float(current)}
    if held_for:
        values["keep_alive_s"] = window
    if desired >= current:
        msg = "no scale-down asked" if desired == current else f"scaling up to {desired}"
        return HoldResult(desired, kept, Reason(Code.HOLD_NONE, msg, values))
    if reactive.partial:
        msg = f"some metrics are missing: no scale-down below {current}"
        return HoldResult(current, kept, Reason(Code.HOLD_PARTIAL, msg, values))
    if reactive.since is None or now - reactive.since < base:
        seen = 0.0 if reactive.since is None else now - reactive.since
        values["seen_s"] = seen
        msg = f"{seen:.0f}s of data, less than the {base:.0f}s window: no scale-down yet"
        return HoldResult(current, kept, Reason(Code.HOLD_WARMUP, msg, values))
    if reactive.panic:
        msg = f"panic holds: no scale-down below {current}"
        return HoldResult(current, kept, Reason(Code.HOLD_PANIC, msg, values))
    # what a decision within one cold start wanted; with a keep-alive, also the most pods the
    # load wanted for a tenth of its window (30 s of 300): the level that meets the next burst,
    # not the peak of the minute after the last (its queue's backlog kept the pods busy)
    last = len(counted) - 1  # the entries before this decision's own, in time order
    near = counted[bisect_right(counted, now - base, 0, last, key=_TIME) : last]
    wanted = int(max(map(_COUNT, near))) if near else desired
    if held_for and last:
        wants = sorted(map(_COUNT, counted[:last]))
        wanted = max(wanted, int(wants[math.ceil((1 - _KEEP_ALIVE_SHARE) * len(wants)) - 1]))
    wanted = max(wanted, floor_now)
    values["wanted_in_window"] = float(wanted)
    # Never into a queue over its ceiling: fewer pods than hold what waits now at the ceiling
    # would be over it at once, and the next reading would ask for them back (16 -> 7 -> 12
    # in 5 s after a drained burst that left 58 requests waiting).
    waiting = math.ceil(reactive.waiting_pods - 1e-9)
    if waiting > max(wanted, desired):
        values["waiting_pods"] = reactive.waiting_pods
        out = min(current, waiting)
        msg = (
            f"what waits now needs {reactive.waiting_pods:.2f} pods at its ceiling: down to "
            f"{out} only"
        )
        return HoldResult(out, kept, Reason(Code.HOLD_WINDOW, msg, values))
    if wanted > desired:
        out = min(current, wanted)
        msg = f"a decision within {base:.0f}s{held_for} wanted {wanted}: down to {out} only"
        return HoldResult(out, kept, Reason(Code.HOLD_WINDOW, msg, values))
    msg = (
        f"no decision within {base:.0f}s{held_for} wanted more than {desired}{drained}: "
        "scaling down"
    )
    return HoldResult(desired, kept, Reason(Code.HOLD_DOWN, msg, values))
