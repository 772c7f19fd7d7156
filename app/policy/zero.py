"""Step 5b, zero (`min_replicas: 0`): when the deployment may sleep, and what wakes it.

At zero no pod is up, so no pod pushes anything: the demand signal is what stays up. That is a
gateway, a router or the SDK's hold proxy (`ciuic-hold`) pushing the requests it holds under
the scaler's metric name and selector (no `pod` label), a metric read from Prometheus, or the
forecast.

- **Wake on demand**: at zero, anything waiting (a ceiling metric such as `request_queue: <5`
  above 0) or any load a metric still shows wakes the deployment at once, to the pods the queue
  asks for (`queue / target`), at least one. No preheat spare is added on the way up: the
  spare is for load landing on a Ready pod, and at zero it would double the pods woken for one
  request. With the default behaviour (no `behavior:` in the spec) the wake is not rate
  limited (as Knative's activator: 0 -> the pods the queue needs); a spec's own `behavior`
  still applies.
- **Wake on the forecast**: a forecast that has earned a say and expects at least one request
  (one unit of the load signal) from now to one cold start plus `forecast.buffer` ahead wakes
  the deployment now, so its pods are Ready when that demand arrives (the morning ramp), to
  the pods the forecast asks for (at least one). Earned means either the predictive step's
  gate (measured better than the last value at its lead, fresh, finite, covering the horizon;
  its band's peak over the span) or the forecast's wake (`LoadForecast.wake`, judged by the
  forecasting package at the history's moments at rest, where MAE cannot tell a model that
  knows the morning from the last value's 0: app.forecasting.wake; its path summed over the
  grid buckets the span reaches, the rule its score was measured by).
- **Sleep**: the need goes to zero, no preheat spare, once nothing asks for a pod: nothing
  waiting, the load signal at 0 where it is measured, the demand over the stable window under
  `IDLE_PODS` of one pod, and the forecast expecting less than one request within a cold start
  plus the buffer. A forecast without skill cannot say, and then the demand alone decides (the
  reason says so). The scale-down rules still hold: this step only lowers the need, and the
  hold step (no decision within a cold start wanted a pod) and the spec's `behavior`
  (stabilisation windows) decide when the last pod goes.

Step 8 then says why the count is at zero or why it woke (codes `zero.*`), in place of the
bounds' sentence (which, at zero, would only say that 0 is within the bounds).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from app.policy.codes import Code
from app.policy.predictive import bucket_range, cold_start_s, quantile_path
from app.policy.reactive import ReactiveResult, Reading
from app.policy.spec import ScalerSpec
from app.policy.types import LoadForecast, Observation, Reason

__all__ = [
    "IDLE_PODS",
    "ZeroResult",
    "expected_arrivals",
    "say_zero",
    "wake_arrivals",
    "zero_step",
]

IDLE_PODS = 0.05  # demand under 5 % of one pod's work over the window is no demand
_EXPECTED = 1.0  # requests the forecast must expect within the horizon to count as demand


class ZeroResult(NamedTuple):
    active: bool  # min_replicas is 0: this step has a say
    idle: bool  # nothing asks for a pod: the need goes to 0
    waking: bool  # at zero and something asks for pods: the need without a spare, >= 1 pod
    bare: bool  # at zero with no signal at all: the need without a spare (stays at zero)
    why: str  # what asks for pods, or why nothing does
    code: str  # the zero.* code step 8 reports when at or leaving zero
    values: dict[str, float]
    asks: bool = False  # something asks for a pod (awake or not): at least one stays up


_OFF = ZeroResult(False, False, False, False, "", "", {})


def _fresh(spec: ScalerSpec, forecast: LoadForecast | None, now: float) -> bool:
    return (
        forecast is not None
        and forecast.failed is None
        and spec.scaler != "reactive"
        and now - forecast.made_at <= spec.forecast.max_age
        and forecast.step_s > 0
    )


def expected_arrivals(
    spec: ScalerSpec, forecast: LoadForecast | None, now: float, lead: float
) -> float | None:
    """Requests (units of the load signal) the forecast expects from `now` to `lead` plus the
    buffer ahead, at its highest bucket over that span; None when the forecast has not earned a
    say (missing, failed, stale, no skill, not covering the span, not finite)."""
    if not _fresh(spec, forecast, now):
        return None
    assert forecast is not None
    skill = forecast.skill
    if skill is None or not math.isfinite(skill) or skill <= 0:
        return None
    span = lead + spec.forecast.buffer
    path, _ = quantile_path(forecast, spec.forecast.quantile)
    buckets = bucket_range(forecast.start, forecast.step_s, len(path), now, now + span)
    if not buckets:
        return None
    peak = max(path[i] for i in buckets)
    if not math.isfinite(peak):
        return None
    return max(0.0, peak) * span


def wake_arrivals(
    spec: ScalerSpec, forecast: LoadForecast | None, now: float, lead: float
) -> float | None:
    """Requests the forecast's wake path expects in the grid buckets from `now` to `lead` plus
    the buffer ahead (the rule its score was measured by: the path over the lead, summed over
    whole buckets); None unless that wake has earned a say (see LoadForecast.wake)."""
    if not _fresh(spec, forecast, now):
        return None
    assert forecast is not None
    wake = forecast.wake
    if wake is None or not wake.earned:
        return None
    span = lead + spec.forecast.buffer
    buckets = bucket_range(forecast.start, forecast.step_s, len(wake.path), now, now + span)
    if not buckets:
        return None
    total = sum(max(0.0, wake.path[i]) for i in buckets) * forecast.step_s
    return total if math.isfinite(total) else None


def _no_wake(forecast: LoadForecast | None) -> str:
    """Why no forecast looks ahead at zero, for the reason."""
    wake = forecast.wake if forecast is not None else None
    if wake is not None and not wake.earned:
        return f"the forecast's wake has not earned a say ({wake.describe()})"
    return "no forecast with skill to look ahead"


def zero_step(spec: ScalerSpec, obs: Observation, reading: Reading, reactive: ReactiveResult,
              forecast: LoadForecast | None, now: float) -> ZeroResult:  # fmt: skip
    """Whether the need goes to zero, or wakes from it (see the module docstring)."""
    if spec.min_replicas > 0:
        return _OFF
    current = obs.current_replicas
    lead = cold_start_s(spec, obs)
    ahead = expected_arrivals(spec, forecast, now, lead)
    woken = wake_arrivals(spec, forecast, now, lead)
    known = [e for e in (ahead, woken) if e is not None]
    expected = max(known) if known else None
    span = lead + spec.forecast.buffer
    values: dict[str, float] = {"cold_start_s": lead, "horizon_s": span}
    if expected is not None:
        values["forecast_requests"] = expected
    queued = reading.ceiling_need is not None and reading.ceiling_need > 0
    load = obs.load_rate if obs.load_rate is not None and math.isfinite(obs.load_rate) else None
    # the stable window's mean, as the reactive step reads it: one reading of a pod that did
    # not push (counted at its target) is noise, not demand
    demand = reactive.demand if reactive.demand is not None and reactive.has_data else 0.0
    if queued:
        waiting = sum(v for k, v in reading.values.items() if k.endswith(".value") and
                      k[: -len(".value")] in _ceilings(spec))  # fmt: skip
        values["queued"] = waiting
        why, code = f"{waiting:g} request(s) waiting", Code.ZERO_WAKE_QUEUE
    elif load is not None and load > 0:
        values["load"] = load
        why, code = f"load {load:.3g}/s", Code.ZERO_WAKE_QUEUE
    elif demand > IDLE_PODS:
        values["demand"] = demand
        why, code = f"demand {demand:.2f} pods over the window", Code.ZERO_WAKE_QUEUE
    elif expected is not None and expected >= _EXPECTED:
        why = (
            f"the forecast expects {expected:.1f} requests within {span:.0f}s (cold start "
            f"{lead:.0f}s + buffer)"
        )
        if woken is not None and woken >= _EXPECTED and forecast is not None and forecast.wake:
            why += f"; its wake {forecast.wake.describe()}"
        code = Code.ZERO_WAKE_FORECAST
    else:
        if expected is None:
            why = (
                f"no demand (nothing waiting, no load); {_no_wake(forecast)}: the demand "
                "alone decides"
            )
        else:
            why = (
                f"no demand (nothing waiting, no load), and the forecast expects "
                f"{expected:.2f} requests within {span:.0f}s (cold start {lead:.0f}s + buffer)"
            )
        if not reactive.has_data and expected is None:
            code = Code.ZERO_NO_SIGNAL
            why = (
                "no demand signal (no metric fresh, no forecast with skill): nothing at zero "
                "would wake it; push the gateway's queue under the scaler's selector"
            )
            # Blind: keep what runs (the fallback holds it), never go to zero on no data, and
            # at zero stay there (a preheat spare would wake it for nothing).
            return ZeroResult(True, False, False, current == 0, why, code, values)
        code = Code.ZERO_IDLE if current == 0 else Code.ZERO_SCALE_DOWN
        return ZeroResult(True, True, False, False, why, code, values)
    return ZeroResult(True, False, current == 0, False, why, code, values, asks=True)


def _ceilings(spec: ScalerSpec) -> frozenset[str]:
    return frozenset(m.name for m in spec.metrics if m.target.form == "below")


def say_zero(zero: ZeroResult, replicas: int, current: int, bounds: Reason) -> Reason:
    """Step 8's reason: why the count is at zero or woke from it; the bounds' own otherwise."""
    if not zero.active or (replicas > 0 and current > 0):
        if zero.active and zero.code == Code.ZERO_WAKE_FORECAST and replicas > 0:
            # awake with no demand yet: the forecast keeps it up
            msg = f"kept awake: {zero.why}"
            return Reason(Code.ZERO_AWAKE_FORECAST, msg, {**bounds.values, **zero.values})
        return bounds
    values = {**bounds.values, **zero.values, "replicas": float(replicas)}
    if replicas == 0 and current == 0:
        if zero.code == Code.ZERO_NO_SIGNAL:
            return Reason(zero.code, f"at zero: {zero.why}", values)
        return Reason(Code.ZERO_IDLE, f"at zero: {zero.why}", values)
    if replicas == 0:
        msg = f"scaling {current} -> 0: {zero.why}, and no decision within the window wanted a pod"
        return Reason(Code.ZERO_SCALE_DOWN, msg, values)
    if zero.idle or not zero.waking:
        # at zero, woken by something other than demand (a schedule floor, the fallback)
        msg = f"waking 0 -> {replicas}: {bounds.message}"
        return Reason(Code.ZERO_WAKE_OTHER, msg, values)
    return Reason(zero.code, f"waking 0 -> {replicas}: {zero.why}", values)
