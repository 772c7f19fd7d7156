"""Stable reason codes, one family per pipeline step (`Reason.code`).

Dashboards, tests and API clients match on these strings: add codes, never rename them.
"""

from __future__ import annotations

__all__ = ["ALL_CODES", "Code"]


class Code:
    """Namespace of the codes `decide` emits, in pipeline order, after those the shell puts
    first (0)."""

    # 0. sources: the shell's, ahead of the policy's (app.services.sources); the policy itself
    # only sees a missing reading
    SOURCE_PROMETHEUS_FAILED = "source.prometheus_failed"  # a metric's query gave no reading
    # 1. reactive
    REACTIVE_SCALE = "reactive.scale"  # metrics ask for a different count
    REACTIVE_PANIC = "reactive.panic"  # the newest reading asks for a multiple of the pods
    REACTIVE_IN_TOLERANCE = "reactive.in_tolerance"  # within the dead-band: keep current
    REACTIVE_PARTIAL = "reactive.partial"  # some metrics missing; the rest ask for >= current
    REACTIVE_PARTIAL_HOLD = "reactive.partial_hold"  # some missing and the rest say down: hold
    REACTIVE_FALLBACK_HOLD = "reactive.fallback_hold"  # no metric has data: hold current
    REACTIVE_FALLBACK_REPLICAS = "reactive.fallback_replicas"  # no data: the spec's count
    # 2. predictive
    PREDICTIVE_FLOOR = "predictive.floor"  # the forecast raises the need
    PREDICTIVE_BELOW = "predictive.below"  # forecast read, reactive need already covers it
    PREDICTIVE_OFF = "predictive.off"  # scaler: reactive
    PREDICTIVE_NO_CAPACITY = "predictive.no_capacity"  # no per-pod capacity to divide by
    PREDICTIVE_MISSING = "predictive.missing"  # no forecast given
    PREDICTIVE_FAILED = "predictive.failed"  # the last fit failed
    PREDICTIVE_STALE = "predictive.stale"  # older than forecast.max_age
    PREDICTIVE_OUT_OF_RANGE = "predictive.out_of_range"  # does not cover the horizon
    PREDICTIVE_INVALID = "predictive.invalid"  # NaN/inf in the horizon, or an overflowing floor
    PREDICTIVE_NO_SKILL = "predictive.no_skill"  # backtest no better than the last value
    PREDICTIVE_MISSED = "predictive.missed"  # the load is under its band for the bucket now
    # 3. schedule
    SCHEDULE_NONE = "schedule.none"  # no entries
    SCHEDULE_INACTIVE = "schedule.inactive"  # no entry in force now
    SCHEDULE_ACTIVE = "schedule.active"  # an entry sets a floor (and maybe a cap)
    # 4. emergency
    EMERGENCY_DISABLED = "emergency.disabled"
    EMERGENCY_IDLE = "emergency.idle"  # no trigger over its threshold
    EMERGENCY_ARMED = "emergency.armed"  # over threshold, not yet for its duration
    EMERGENCY_START = "emergency.start"  # a trigger held long enough: burst now
    EMERGENCY_ACTIVE = "emergency.active"  # bursting (trigger over, or within stable window)
    EMERGENCY_END = "emergency.end"  # one stable window under threshold: burst over
    # 5. preheat
    PREHEAT_DISABLED = "preheat.disabled"
    PREHEAT_EAGER = "preheat.eager"  # min_ready spare pods added
    PREHEAT_LAZY = "preheat.lazy"  # nothing added; the forecast pre-launches
    # 6. behaviour (Kubernetes HPA condition reasons)
    BEHAVIOR_WITHIN_RANGE = "behavior.within_range"  # DesiredWithinRange
    BEHAVIOR_UP_STABILIZED = "behavior.scale_up_stabilized"  # ScaleUpStabilized
    BEHAVIOR_DOWN_STABILIZED = "behavior.scale_down_stabilized"  # ScaleDownStabilized
    BEHAVIOR_UP_LIMIT = "behavior.scale_up_limit"  # ScaleUpLimit
    BEHAVIOR_DOWN_LIMIT = "behavior.scale_down_limit"  # ScaleDownLimit
    # 7. hold (scale-down hysteresis)
    HOLD_NONE = "hold.none"  # no scale-down asked
    HOLD_DOWN = "hold.down"  # nothing within the window wanted more: scaling down
    HOLD_WINDOW = "hold.window"  # a decision within the window wanted more: down to that only
    HOLD_WARMUP = "hold.warmup"  # less than a window of data: no scale-down yet
    HOLD_PARTIAL = "hold.partial"  # metrics missing: no scale-down
    HOLD_PANIC = "hold.panic"  # a panic reading holds
    # 8. bounds
    BOUNDS_WITHIN = "bounds.within"
    BOUNDS_MIN = "bounds.min"  # raised to min_replicas (TooFewReplicas)
    BOUNDS_MAX = "bounds.max"  # cut to max_replicas (TooManyReplicas)
    BOUNDS_SCHEDULE_FLOOR = "bounds.schedule_floor"
    BOUNDS_SCHEDULE_CAP = "bounds.schedule_cap"
    BOUNDS_BURST_FLOOR = "bounds.burst_floor"  # burst_multiplier x replicas at burst start
    BOUNDS_BURST_HOLD = "bounds.burst_hold"  # no scale-down while bursting
    # 8, with min_replicas 0 (zero.py): why the count is at zero, or why it woke
    ZERO_IDLE = "zero.idle"  # at zero: no demand, and the forecast expects none within a cold start
    ZERO_SCALE_DOWN = "zero.scale_down"  # the last pods go: no demand for the window, none due
    ZERO_NO_SIGNAL = "zero.no_signal"  # at zero with no fresh metric and no skilled forecast
    ZERO_WAKE_QUEUE = "zero.wake_queue"  # at zero, requests wait (or load shows): woken at once
    ZERO_WAKE_FORECAST = "zero.wake_forecast"  # the forecast expects requests within a cold start
    ZERO_WAKE_OTHER = "zero.wake_other"  # woken by a schedule floor, a burst or the fallback
    ZERO_AWAKE_FORECAST = "zero.awake_forecast"  # no demand, but the forecast keeps it up
    # 9. fractional
    FRACTIONAL_DISABLED = "fractional.disabled"  # whole pods (ceil)
    FRACTIONAL_WHOLE = "fractional.whole"  # the need is a whole number of pods
    FRACTIONAL_PARTIAL = "fractional.partial"  # full pods + one partial pod
    FRACTIONAL_ABSORBED = "fractional.absorbed"  # remainder < min_fraction, run by full pods
    FRACTIONAL_OVERRIDDEN = "fractional.overridden"  # behaviour/bounds changed the count
    # 10. objective (sized after step 2, reported last: the other steps keep their places)
    OBJECTIVE_NONE = "objective.none"  # no latency objective in the spec
    OBJECTIVE_RAISE = "objective.raise"  # the objective asks for more than the other steps
    OBJECTIVE_COVERED = "objective.covered"  # the other steps already ask for enough
    OBJECTIVE_UNKNOWN = "objective.unknown"  # no capacity or rate (or ITL) to size with yet
    OBJECTIVE_UNREACHABLE = "objective.unreachable"  # not met within max_replicas


ALL_CODES = frozenset(v for k, v in vars(Code).items() if k.isupper())
