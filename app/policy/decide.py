"""`decide`: the scaling policy, one pure function, a numbered pipeline of small steps.

    0. readings     metrics now -> pods (need at the targets, demand at full use), and the
                    learned capacity updated with them                 reactive.py, capacity.py
    1. reactive     needs averaged over the stable window, dead-band, panic          reactive.py
    2. predictive   forecast band at now + cold start / capacity, if it has skill
                    and the load has not already proved it wrong                 predictive.py
    3. schedule     cron floor/cap in force now (applied in 8)                       schedule.py
    4. emergency    trigger held over threshold -> burst sized to the shortfall     emergency.py
    5. preheat      eager: min_ready pods of spare capacity above the demand          preheat.py
    5b. zero        min_replicas 0: no demand and none forecast -> 0; demand at 0 -> wake  zero.py
    6. behaviour    HPA v2 stabilisation and rate policies (the spec's, or responsive) behavior.py
    7. hold         scale-down: nothing within a cold start wanted the pod (or, where
                    bursts come back within 300 s, for 30 s of it), panic             hold.py
    8. bounds       min/max, schedule floor/cap, burst floor (at or from 0: why)  bounds.py, zero.py
    9. fractional   full pods + one partial pod                                    fractional.py
   10. objective    the fewest pods whose predicted p95 TTFT / queue wait / ITL meets the
                    spec's `objective` (sized right after 2, never below 1-2's need; its
                    reason comes last so the others keep their places)              objective.py

How 1 and 2 combine: a forecast with skill plans the count, `max(forecast floor, demand at
full use, a panic reading's need)`: where it has earned it, it may plan closer to full use than
the metrics' targets (a skilled forecast needs less headroom than a fixed target keeps), while
the demand at full use, a queue over its ceiling (which adds the pods that drain it) and a
panic reading still scale up at once where the load beats it. Without one, the reactive need
stands, targets and dead-band included. Either way the hold step gives pods back only once no
decision within one cold start (at most the window) wanted them. (Measured on nyc_taxi:
letting the targets' scale-up rule override a skilled forecast cost 7 % more for no fewer
drops.)

Each step appends exactly one `Reason` (codes in `codes.py`), so `Decision.reasons` always has
nine entries, in this order, and a tenth (step 10) when the spec states an `objective`. No
I/O, no clock, no randomness: `now` and the previous
`ScalerState` come in, the next state goes out; callers store it and pass it back unchanged.

- `Decision.need` is the fractional pods after steps 1-5 (what the load asks for, spares
  included), before hold, behaviour and bounds, at most 1e9 (a wild reading or forecast gives a
  finite count, rate-limited in 6 and capped in 8); `replicas` is what to set;
  `plan.pods == replicas`.
- `Decision.valid` is False when no metric had fresh data and no forecast was usable: the
  replicas are then the current count (or the spec's `fallback.replicas`) moved into the
  bounds in force (the spec's, a cron floor's): callers apply them all the same, since bounds
  and the fallback hold with or without metrics (nothing is learned).
- `mode: apply` records a scale event whenever `replicas != current_replicas`, as the HPA does
  after it scales: the caller is expected to apply it. `mode: dry_run` records none (the
  cluster is not touched), so each dry-run decision says what Ciuic would do from the real
  current count; recommendations (stabilisation) are kept in both modes.
"""

from __future__ import annotations

from app.policy.behavior import apply_behavior, prune_events
from app.policy.bounds import apply_bounds
from app.policy.capacity import capacity_in_use, learn_capacity
from app.policy.codes import Code
from app.policy.emergency import emergency_step
from app.policy.fractional import fractional_plan, pods_for, split_need
from app.policy.hold import hold_step
from app.policy.objective import objective_step
from app.policy.pending import say_stuck, stuck_pods, without_stuck
from app.policy.predictive import cold_start_s, forecast_floor
from app.policy.preheat import preheat_need, with_spares
from app.policy.reactive import MAX_NEED, reactive_need, read_metrics
from app.policy.schedule import schedule_bounds
from app.policy.spec import ScalerSpec
from app.policy.types import Decision, LoadForecast, Observation, Reason, ScalerState
from app.policy.zero import say_zero, zero_step

__all__ = ["decide"]


def _pods(spec: ScalerSpec, need: float) -> int:
    """Pods (full + partial) for a fractional need."""
    if spec.fractional.enabled:
        full, partial, _ = split_need(spec.fractional, need)
        return full + (1 if partial is not None else 0)
    return pods_for(spec.fractional, need)


def decide(
    spec: ScalerSpec,
    observation: Observation,
    forecast: LoadForecast | None,
    state: ScalerState,
    now: float,
) -> Decision:
    """The replicas for `spec`'s target at `now`, the plan, the reasons and the next state."""
    current = max(0, observation.current_replicas)
    stuck = stuck_pods(spec, observation, now)  # Pending, no node, past a cold start
    observation = without_stuck(observation, stuck)

    reading = read_metrics(spec, observation)  # 0
    learned = learn_capacity(spec, observation, reading, state.capacity, now)
    capacity = capacity_in_use(spec, learned)

    reactive = reactive_need(spec, observation, reading, capacity.per_pod, state, now)  # 1

    predictive = forecast_floor(  # 2
        spec, observation, forecast, now, capacity.per_pod, capacity.how, reactive.recent
    )
    if predictive.floor is not None:
        calm = predictive.floor
        if reactive.demand is not None and reactive.demand > calm:
            calm = reactive.demand
        need = calm
        if reactive.panic_need is not None and reactive.panic_need > need:
            need = reactive.panic_need
    else:
        calm, need = reactive.calm, reactive.need
    objective = objective_step(spec, observation, capacity.per_pod, need)  # 10
    if objective.need is not None and objective.need > need:
        need = objective.need
        calm = max(calm, objective.need)  # held like any need the load asks for

    schedule = schedule_bounds(spec, now)  # 3

    # A burst is sized to what the newest reading asks for where a capacity turns the load
    # and the queue into pods; without one, to the spec's multiplier (the product's burst).
    shortfall = reactive.recent[-1][1] if capacity.per_pod and reactive.has_data else None
    burst = emergency_step(spec, observation, state, now, shortfall)  # 4

    bare = need  # before the spare: what a wake from zero asks for
    # a count kept for missing metrics (not a forecast's) gets no spares on top
    measured = reactive.measured or predictive.floor is not None
    need, preheat_reason = preheat_need(spec, need, reactive.demand, measured)  # 5
    need = min(need, MAX_NEED)  # a wild reading or forecast: a finite count, capped in 8
    # What the load asks for without a panic or a burst, spares included: what the hold step
    # remembers of this decision (a panic holds for its own window, a burst until it ends;
    # neither is held a window more once over).
    calm = min(with_spares(spec, calm, reactive.demand, measured), MAX_NEED)
    zero = zero_step(spec, observation, reading, reactive, forecast, now)  # 5b
    if zero.idle:
        need = calm = 0.0
    elif zero.waking:
        need = calm = min(max(bare, 1.0), MAX_NEED)
    elif zero.bare:
        need = calm = min(bare, MAX_NEED)
    elif zero.asks:
        # awake, and the forecast (or demand) asks for a pod before a cold start is over:
        # the pod woken for it stays up, spare or not, rather than sleeping and waking again
        need, calm = max(need, 1.0), max(calm, 1.0)
    if burst.floor is not None and burst.floor > need:
        need = float(burst.floor)

    split = split_need(spec.fractional, need) if spec.fractional.enabled else None
    desired = _pods(spec, need)
    behavior = spec.effective_behavior  # 6
    events = prune_events(behavior, state.scale_events, now)
    behaved = apply_behavior(behavior, current, desired, state.recommendations, events, now)
    if zero.waking and spec.behavior is None and behaved.replicas < desired:
        # the default behaviour's rate limit is for a running fleet; from zero, the activator's
        # way: at once to what the queue or the forecast asks for
        msg = f"waking from zero: {desired} pods at once (no rate limit from 0)"
        values = {"desired": float(desired), "current": float(current)}
        behaved = behaved._replace(
            replicas=desired, reason=Reason(Code.BEHAVIOR_WITHIN_RANGE, msg, values)
        )

    held = hold_step(  # 7
        spec, current, behaved.replicas, _pods(spec, calm), reactive, state.lows, now,
        cold_start_s(spec, observation),
    )  # fmt: skip

    replicas, bounds_reason = apply_bounds(  # 8
        spec,
        held.replicas,
        current,
        schedule.floor,
        schedule.cap,
        burst.floor,
        burst.bursting,
    )

    bounds_reason = say_zero(zero, replicas, current, bounds_reason)
    plan, plan_reason = fractional_plan(spec.fractional, need, replicas, split)  # 9

    if replicas != current and spec.mode == "apply":
        events = (*events, (now, replicas - current))
    next_state = ScalerState(
        recommendations=behaved.recommendations,
        scale_events=events,
        trigger_since=burst.trigger_since,
        burst_until=burst.burst_until,
        burst_base=burst.burst_base,
        recent=reactive.recent,
        lows=held.lows,
        panics=reactive.panics,
        since=reactive.since,
        panic_until=reactive.panic_until,
        capacity=learned,
    )
    return Decision(
        need=need,
        replicas=replicas,
        plan=plan,
        reasons=(
            say_stuck(reactive.reason, stuck, cold_start_s(spec, observation)),
            predictive.reason,
            schedule.reason,
            burst.reason,
            preheat_reason,
            behaved.reason,
            held.reason,
            bounds_reason,
            plan_reason,
            *((objective.reason,) if spec.objective is not None else ()),
        ),
        state=next_state,
        valid=reactive.has_data or predictive.floor is not None,
    )
