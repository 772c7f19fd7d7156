"""Step 4, emergency burst: Knative's panic mode for load the forecast did not see.

A trigger is "over" while its metric (fresh, aggregated over pods the trigger's way: its
`aggregation`, else the metric's in `metrics:`) is above its threshold; held over for its
`duration`, it starts a burst. A burst is sized to the shortfall, not multiplied blindly: the
pods the newest reading asks for (the load signal and the queue drained within
`reactive.drain`, see `app.policy.reactive`), capped at the replicas when it started times
`burst_multiplier`, reached at once (step 8 applies it as a floor, past the rate limits). While
it lasts there is no scale-down. It ends at the first decision with no trigger over, once the
queue has drained, or `stable_window` after the last over-threshold reading when one is set.
A missing or stale reading does not count as over (it resets the trigger's clock). A trigger
whose aggregation differs from its metric's reads `Observation.by_aggregation`, never the
metric's own reading in its place. The reason's values carry each trigger's fresh reading under
`<metric>.<aggregation>` (e.g. `request_queue.sum`), and its message names the trigger over its
threshold.

State carried in `ScalerState`: `trigger_since` (trigger key -> first over), `burst_until`,
`burst_base` (replicas when the burst started).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

from app.policy.codes import Code
from app.policy.spec import EmergencyTrigger, ScalerSpec
from app.policy.types import MetricReading, Observation, Reason, ScalerState

__all__ = ["EmergencyResult", "emergency_step", "trigger_key", "trigger_reading"]


_EMPTY: Mapping[str, float] = MappingProxyType({})


class EmergencyResult(NamedTuple):  # a tuple: ~4x cheaper to build than a frozen dataclass
    floor: int | None  # burst capacity, while bursting
    bursting: bool  # no scale-down below current while True
    reason: Reason
    trigger_since: Mapping[str, float] = _EMPTY
    burst_until: float | None = None
    burst_base: int | None = None


_DISABLED = Reason(Code.EMERGENCY_DISABLED, "emergency burst disabled", _EMPTY)


def _sized(base: int, multiplier: float, current: int, shortfall: float | None) -> int:
    """The burst floor: the shortfall's pods (never fewer than now), at most base x multiplier;
    the multiplier's count itself when the shortfall is not known."""
    cap = math.ceil(base * multiplier)
    if shortfall is None or not math.isfinite(shortfall):
        return cap
    return min(cap, max(current, math.ceil(shortfall - 1e-9)))


def _sized_by(base: int, multiplier: float, shortfall: float | None) -> str:
    """What sized a burst, in words: the shortfall under its cap, or the multiplier alone."""
    if shortfall is None or not math.isfinite(shortfall):
        return f"{base} x {multiplier:g}: no per-pod capacity to size it by"
    return f"the shortfall {shortfall:.1f} pods, at most {base} x {multiplier:g}"


def trigger_key(index: int, metric: str) -> str:
    return f"{index}:{metric}"


def trigger_reading(
    spec: ScalerSpec, obs: Observation, trigger: EmergencyTrigger
) -> tuple[MetricReading | None, str]:
    """The reading `trigger` compares with its threshold, and which aggregation it is."""
    how = spec.trigger_aggregation(trigger)
    if how == spec.aggregation_of(trigger.metric):
        return obs.metrics.get(trigger.metric), how
    return obs.by_aggregation.get((trigger.metric, how)), how


def emergency_step(spec: ScalerSpec, obs: Observation, state: ScalerState, now: float,
                   shortfall: float | None) -> EmergencyResult:  # fmt: skip
    """`shortfall`: the pods the newest reading asks for (what a burst is sized to; None when
    it cannot be measured: the burst is then the multiplier's)."""
    em = spec.emergency
    if not em.enabled:
        return EmergencyResult(None, False, _DISABLED)
    stale_after = spec.fallback.stale_after
    since: dict[str, float] = {}
    values: dict[str, float] = {"multiplier": em.burst_multiplier}
    over_any = False
    fired = False
    held_max = 0.0
    what = ""  # the longest-held trigger, in words
    for i, trig in enumerate(em.triggers):
        reading, how = trigger_reading(spec, obs, trig)
        if reading is None or reading.value is None or reading.age_s > stale_after:
            continue
        values[f"{trig.metric}.{how}"] = reading.value  # which reading, aggregated which way
        if not reading.value > trig.threshold:
            continue
        key = trigger_key(i, trig.metric)
        first = state.trigger_since.get(key, now)
        first = min(first, now)
        since[key] = first
        held = now - first
        if not over_any or held > held_max:
            what = f"{trig.metric} ({how}) {reading.value:g} > {trig.threshold:g}"
        over_any = True
        held_max = max(held_max, held)
        if held >= trig.duration:
            fired = True

    active = state.burst_until is not None
    if active and state.burst_base is not None:
        base = state.burst_base
        until = state.burst_until if state.burst_until is not None else now
        if over_any:
            until = max(until, now + em.stable_window)
        if over_any or now < until:
            floor = _sized(base, em.burst_multiplier, obs.current_replicas, shortfall)
            values.update(base=float(base), floor=float(floor), until=until)
            msg = (
                f"bursting: at least {floor} replicas "
                f"({_sized_by(base, em.burst_multiplier, shortfall)}), "
                "no scale-down until the queue drains"
            )
            reason = Reason(Code.EMERGENCY_ACTIVE, msg, values)
            return EmergencyResult(floor, True, reason, since, until, base)
        msg = f"burst over: no trigger over threshold for {em.stable_window:.0f}s"
        return EmergencyResult(None, False, Reason(Code.EMERGENCY_END, msg, values), since)

    if fired:
        base = max(obs.current_replicas, 1)
        floor = _sized(base, em.burst_multiplier, obs.current_replicas, shortfall)
        until = now + em.stable_window
        values.update(base=float(base), floor=float(floor), until=until, held_s=held_max)
        msg = (
            f"trigger held {held_max:.0f}s over threshold, {what}: burst to {floor} replicas "
            f"({_sized_by(base, em.burst_multiplier, shortfall)})"
        )
        reason = Reason(Code.EMERGENCY_START, msg, values)
        return EmergencyResult(floor, True, reason, since, until, base)
    if over_any:
        values["held_s"] = held_max
        msg = f"trigger over threshold for {held_max:.0f}s, {what}: not yet long enough"
        return EmergencyResult(None, False, Reason(Code.EMERGENCY_ARMED, msg, values), since)
    reason = Reason(Code.EMERGENCY_IDLE, "no trigger over threshold", values)
    return EmergencyResult(None, False, reason, since)
