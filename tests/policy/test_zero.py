"""Scale to zero (`min_replicas: 0`): asleep only when nothing asks for a pod and the forecast
expects nothing within a cold start; woken at once by a queue, or one cold start ahead by a
forecast with skill; every decision at or leaving zero says why."""

from __future__ import annotations

from typing import Any

import pytest

from app.policy import Code, Decision, LoadForecast, ScalerState, decide
from app.policy.types import MetricReading, Observation, WakeForecast
from tests.policy.helpers import GPU, QUEUE, T0, brief_document, flat_forecast, parse_spec

COLD = 60.0  # the learned cold start these scenarios report


def zero_spec(**overrides: Any) -> Any:
    """The brief's spec (preheat eager with one spare, an emergency burst) at min_replicas 0,
    with a stated capacity (0.5 req/s per pod) and no cron floors."""
    doc = brief_document()
    doc.pop("schedule")
    doc["algorithm"] = {"name": "auto"}
    doc.update(min_replicas=0, max_replicas=20, capacity={"request_rate": "0.5/s"})
    doc.update(overrides)
    return parse_spec(doc)


def at_zero(queue: float | None = 0.0) -> Observation:
    """No pod: only the gateway's (or hold proxy's) queue, pushed without a pod label."""
    metrics = {GPU: MetricReading(None)}
    metrics[QUEUE] = MetricReading(queue, 1) if queue is not None else MetricReading(None)
    return Observation(metrics=metrics, current_replicas=0, ready_pods=0, cold_start_s=COLD)


def running(pods: int, gpu: float, queue: float, load: float) -> Observation:
    metrics = {GPU: MetricReading(gpu, pods), QUEUE: MetricReading(queue, pods)}
    return Observation(
        metrics=metrics,
        current_replicas=pods,
        ready_pods=pods,
        load_rate=load,
        cold_start_s=COLD,
    )


def ramp_forecast(made_at: float, ramp_at: float, load: float, skill: float = 0.4) -> LoadForecast:
    """A forecast on a 1-minute grid: nothing until `ramp_at`, `load` req/s from then."""
    path = tuple(0.0 if made_at + 60 * k < ramp_at else load for k in range(180))
    return LoadForecast("test", made_at, made_at, 60.0, path, skill=skill)


def bounds_reason(d: Decision) -> Any:
    return d.reasons[7]


@pytest.mark.parametrize(
    ("queue", "pods"),
    [
        # one request held by the proxy: one pod (no preheat spare on the way up)
        pytest.param(1.0, 1, id="one-request-one-pod"),
        # 40 held at a ceiling of 5 a pod: 8 pods at once, not the default 4-per-15-s rate
        pytest.param(40.0, 8, id="a-queue-wakes-the-pods-it-needs"),
    ],
)
def test_queued_demand_at_zero_wakes_at_once(queue: float, pods: int) -> None:
    d = decide(zero_spec(), at_zero(queue), None, ScalerState(since=T0 - 3600), T0)
    assert d.replicas == pods
    reason = bounds_reason(d)
    assert reason.code == Code.ZERO_WAKE_QUEUE
    assert f"waking 0 -> {pods}" in reason.message and "waiting" in reason.message
    assert reason.values["queued"] == queue


def test_at_zero_with_nothing_waiting_it_stays_at_zero_and_says_why() -> None:
    d = decide(zero_spec(), at_zero(0.0), flat_forecast(0.0), ScalerState(), T0)
    assert d.replicas == 0
    reason = bounds_reason(d)
    assert reason.code == Code.ZERO_IDLE
    assert "at zero: no demand" in reason.message
    assert reason.values["forecast_requests"] == 0.0


def test_at_zero_without_any_signal_it_stays_and_names_what_is_missing() -> None:
    """No gateway queue and no forecast: nothing could wake it, and the reason says to push
    one (the preheat spare must not wake it blindly either)."""
    d = decide(zero_spec(), at_zero(None), None, ScalerState(), T0)
    assert d.replicas == 0 and not d.valid
    assert bounds_reason(d).code == Code.ZERO_NO_SIGNAL
    assert "push the gateway's queue" in bounds_reason(d).message


def test_the_forecast_wakes_it_one_cold_start_before_the_morning_ramp() -> None:
    """Demand returns at 09:00 (2 req/s, 4 pods' worth at 0.5/s). Nothing waits before it; the
    forecast (skill 40 %) wakes the deployment one cold start (+ the 60 s buffer) before, so
    its pods are Ready when the first requests come."""
    nine = T0 + 3600.0
    s = zero_spec()
    woke_at, d = first_wake(s, ramp_forecast(nine - 1800, nine, 2.0), nine)
    assert bounds_reason(d).code == Code.ZERO_WAKE_FORECAST
    assert "the forecast expects" in bounds_reason(d).message
    # woken within the cold start + buffer before 09:00, and no later than one cold start
    assert nine - COLD - s.forecast.buffer <= woke_at <= nine - COLD


def first_wake(s: Any, fc: LoadForecast, ramp: float) -> tuple[float, Decision]:
    """Decisions every 5 s at zero with nothing waiting over the 5 minutes before `ramp`: the
    first that wakes the deployment, and when (every one before it stays at zero, idle)."""
    state = ScalerState(since=T0)
    for k in range(-60, 1):
        now = ramp + 5.0 * k
        d = decide(s, at_zero(0.0), fc, state, now)
        state = d.state
        if d.replicas > 0:
            return now, d
        assert bounds_reason(d).code == Code.ZERO_IDLE
    raise AssertionError(f"nothing woke it before {ramp}")


def test_a_forecast_without_skill_does_not_wake_it() -> None:
    """The skill gate of the predictive step applies: a forecast no better than the last value
    expects nothing the policy acts on; only a request does."""
    nine = T0 + 3600.0
    fc = ramp_forecast(nine - 1800, nine, 2.0, skill=-0.1)
    d = decide(zero_spec(), at_zero(0.0), fc, ScalerState(), nine - 30)
    assert d.replicas == 0
    assert "no forecast with skill" in bounds_reason(d).message


def woken_forecast(made_at: float, ramp_at: float, *, earned: bool) -> LoadForecast:
    """A forecast whose MAE has no skill (the last value, 0, is as good at rest), with a wake
    path that rises at `ramp_at` and a wake score from the history's moments at rest."""
    path = tuple(0.0 if made_at + 60 * k < ramp_at else 2.0 for k in range(180))
    hits, false = (11, 84) if earned else (0, 0)
    wake = WakeForecast("auto:adaptive", path, 35, hits, 2552, false, earned)
    flat = tuple(0.0 for _ in path)
    return LoadForecast("auto:adaptive", made_at, made_at, 60.0, flat, skill=0.0, wake=wake)


def test_an_earned_wake_wakes_it_ahead_of_the_ramp_where_mae_skill_is_none() -> None:
    """The wake is judged on the moments at rest, not on MAE: a forecast that caught 11 of 35
    past wake-ups, for nothing at 3 % of idle steps, wakes the deployment before 09:00 though
    its MAE skill is 0, and the reason says how its wake did."""
    nine = T0 + 3600.0
    s = zero_spec()
    woke_at, d = first_wake(s, woken_forecast(nine - 1800, nine, earned=True), nine)
    reason = bounds_reason(d)
    assert reason.code == Code.ZERO_WAKE_FORECAST
    assert "woke ahead of 11 of 35 past wake-ups" in reason.message
    # one grid bucket of 60 s must be reached by the cold start + buffer: within 120 s before
    assert nine - COLD - s.forecast.buffer <= woke_at < nine


def test_a_pod_woken_by_the_forecast_stays_up_until_the_demand_comes_spare_or_not() -> None:
    """No warm spare (a tuned spec) and a 5-minute buffer: the wake comes about six minutes
    before 09:00; with nothing waiting and no load the woken pod stays up (`zero.awake_forecast`)
    until the ramp, rather than going back to zero after the hold window and waking again."""
    nine = T0 + 3600.0
    s = zero_spec(preheat={"enabled": False}, forecast={"buffer": "5m"})
    fc = woken_forecast(nine - 1800, nine, earned=True)
    woke_at, d = first_wake(s, fc, nine - 240)  # woken by 08:56
    state, current, codes = d.state, d.replicas, []
    for k in range(1, int((nine - woke_at) / 5)):
        d = decide(s, running(current, 0.0, 0.0, 0.0), fc, state, woke_at + 5.0 * k)
        state, current = d.state, d.replicas
        codes.append(bounds_reason(d).code)
        assert current >= 1, bounds_reason(d).message
    assert Code.ZERO_AWAKE_FORECAST in codes


def test_an_unearned_wake_does_not_wake_it_and_the_reason_says_why() -> None:
    nine = T0 + 3600.0
    fc = woken_forecast(nine - 1800, nine, earned=False)
    d = decide(zero_spec(), at_zero(0.0), fc, ScalerState(), nine - 30)
    assert d.replicas == 0
    message = bounds_reason(d).message
    assert "the forecast's wake has not earned a say" in message
    assert "woke ahead of 0 of 35 past wake-ups" in message


def test_a_stale_wake_does_not_wake_it() -> None:
    nine = T0 + 3600.0
    s = zero_spec()
    fc = woken_forecast(nine - s.forecast.max_age - 600, nine, earned=True)
    d = decide(s, at_zero(0.0), fc, ScalerState(), nine - 30)
    assert d.replicas == 0


def idle_until_zero(s: Any, forecast: LoadForecast | None, pods: int = 2) -> list[Decision]:
    """Decisions every 5 s over 5 minutes for `pods` idle pods after a busy hour."""
    state = ScalerState(since=T0 - 3600)
    busy = decide(s, running(pods, 80.0, 1.0, 0.8), forecast, state, T0 - 5)
    state = busy.state
    out = []
    current = pods
    for k in range(60):
        o = running(current, 0.0, 0.0, 0.0) if current else at_zero(0.0)
        d = decide(s, o, forecast, state, T0 + 5.0 * k)
        state = d.state
        current = d.replicas
        out.append(d)
    return out


def test_idle_pods_go_to_zero_only_after_the_scale_down_rules() -> None:
    """Idle after a busy spell, no demand forecast: the hold step keeps the pods one cold start
    (the busy decision still wanted them), then all go, and it stays at zero."""
    decisions = idle_until_zero(zero_spec(), flat_forecast(0.0, made_at=T0 - 5))
    first_zero = next(k for k, d in enumerate(decisions) if d.replicas == 0)
    assert 5.0 * first_zero >= COLD - 5.0  # not before a cold start of idle decisions
    down = decisions[first_zero]
    assert bounds_reason(down).code == Code.ZERO_SCALE_DOWN
    assert "no decision within the window wanted a pod" in bounds_reason(down).message
    assert all(d.replicas == 0 for d in decisions[first_zero:])
    assert all(bounds_reason(d).code == Code.ZERO_IDLE for d in decisions[first_zero + 1 :])


def test_a_behaviour_stabilisation_window_is_respected_on_the_way_to_zero() -> None:
    """A spec's HPA `behavior` (300 s scale-down stabilisation) still rules the last pods."""
    hpa = {"scaleDown": {"stabilizationWindowSeconds": 300}}
    decisions = idle_until_zero(zero_spec(behavior=hpa), flat_forecast(0.0, made_at=T0 - 5))
    assert all(d.replicas > 0 for d in decisions[:58])  # 290 s: still within the window


def test_forecast_demand_within_a_cold_start_keeps_idle_pods_up() -> None:
    """No request right now, but the forecast expects 0.5 req/s: the pods stay and the reason
    says that the forecast keeps them."""
    decisions = idle_until_zero(zero_spec(), flat_forecast(0.5, made_at=T0 - 5))
    assert all(d.replicas >= 1 for d in decisions)
    assert bounds_reason(decisions[-1]).code == Code.ZERO_AWAKE_FORECAST
    assert "kept awake: the forecast expects" in bounds_reason(decisions[-1]).message


def test_min_replicas_one_never_reports_zero_codes() -> None:
    s = zero_spec(min_replicas=1)
    d = decide(s, running(1, 0.0, 0.0, 0.0), flat_forecast(0.0), ScalerState(since=T0 - 3600), T0)
    assert d.replicas == 1
    assert not any(r.code.startswith("zero.") for r in d.reasons)
