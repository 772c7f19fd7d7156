"""`decide`: the scaling policy, one pure function, a numbered pipeline of small steps.

    1. reactive     metrics now -> need (HPA ratio, tolerance, readiness; fallback)   reactive.py
    2. predictive   forecast at now + cold start + buffer -> need = max(floor, need)  predictive.py
    3. schedule     cron floor/cap in force now (applied in 7)                        schedule.py
    4. emergency    trigger held over threshold -> burst floor, no scale-down        emergency.py
    5. preheat      eager: + min_ready spare pods; lazy: nothing                     preheat.py
    6. behaviour    pods for the need -> HPA v2 stabilisation and rate policies      behavior.py
    7. bounds       min/max, schedule floor/cap, burst floor                        bounds.py
    8. fractional   full pods + one partial pod                                     fractional.py

Each step appends exactly one `Reason` (codes in `codes.py`), so `Decision.reasons` always has
eight entries, in this order. No I/O, no clock, no randomness: `now` and the previous
`ScalerState` come in, the next state goes out; callers store it and pass it back unchanged.

- `Decision.need` is the fractional pods after steps 1-5 (what the load asks for, spares
  included), before behaviour and bounds, at most 1e9 (a wild reading or forecast gives a
  finite count, rate-limited in 6 and capped in 7); `replicas` is what to set; `plan.pods ==
  replicas`.
- `Decision.valid` is False when no metric had fresh data and no forecast was usable: the
  replicas are then the current count moved into the bounds (safe to apply, nothing learned).
- `mode: apply` records a scale event whenever `replicas != current_replicas`, as the HPA does
  after it scales: the caller is expected to apply it. `mode: dry_run` records none (the
  cluster is not touched), so each dry-run decision says what Ciuic would do from the real
  current count; recommendations (stabilisation) are kept in both modes.
"""

from __future__ import annotations

from app.policy.behavior import apply_behavior, prune_events
from app.policy.bounds import apply_bounds
from app.policy.emergency import emergency_step
from app.policy.fractional import fractional_plan, pods_for, split_need
from app.policy.predictive import forecast_floor
from app.policy.preheat import preheat_need
from app.policy.reactive import MAX_NEED, reactive_need
from app.policy.schedule import schedule_bounds
from app.policy.spec import ScalerSpec
from app.policy.types import Decision, LoadForecast, Observation, ScalerState

__all__ = ["decide"]


def decide(
    spec: ScalerSpec,
    observation: Observation,
    forecast: LoadForecast | None,
    state: ScalerState,
    now: float,
) -> Decision:
    """The replicas for `spec`'s target at `now`, the plan, the reasons and the next state."""
    current = max(0, observation.current_replicas)

    reactive = reactive_need(spec, observation)  # 1
    need = reactive.need

    predictive = forecast_floor(spec, observation, forecast, now, need)  # 2
    if predictive.floor is not None and predictive.floor > need:
        need = predictive.floor

    schedule = schedule_bounds(spec, now)  # 3

    burst = emergency_step(spec, observation, state, now)  # 4
    if burst.floor is not None and burst.floor > need:
        need = float(burst.floor)

    need, preheat_reason = preheat_need(spec, need)  # 5
    need = min(need, MAX_NEED)  # a wild reading or forecast: a finite count, capped in 7

    events = prune_events(spec.behavior, state.scale_events, now)  # 6
    if spec.fractional.enabled:
        split = split_need(spec.fractional, need)
        desired = split[0] + (1 if split[1] is not None else 0)
    else:
        split = None
        desired = pods_for(spec.fractional, need)
    behaved = apply_behavior(spec.behavior, current, desired, state.recommendations, events, now)

    replicas, bounds_reason = apply_bounds(  # 7
        spec,
        behaved.replicas,
        current,
        schedule.floor,
        schedule.cap,
        burst.floor,
        burst.bursting,
    )

    plan, plan_reason = fractional_plan(spec.fractional, need, replicas, split)  # 8

    if replicas != current and spec.mode == "apply":
        events = (*events, (now, replicas - current))
    next_state = ScalerState(
        recommendations=behaved.recommendations,
        scale_events=events,
        trigger_since=burst.trigger_since,
        burst_until=burst.burst_until,
        burst_base=burst.burst_base,
    )
    return Decision(
        need=need,
        replicas=replicas,
        plan=plan,
        reasons=(
            reactive.reason,
            predictive.reason,
            schedule.reason,
            burst.reason,
            preheat_reason,
            behaved.reason,
            bounds_reason,
            plan_reason,
        ),
        state=next_state,
        valid=reactive.has_data or predictive.floor is not None,
    )
