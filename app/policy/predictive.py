"""Step 2, predictive: a floor from the forecast load, reached before the load arrives.

A pod started now is Ready after the cold start, so the capacity that matters is the load from
`now + cold_start` to `now + cold_start + forecast.buffer`: the policy takes the highest value of
the forecast's upper quantile (`forecast.quantile`, P90 by default: provisioning to a band cut
under-prediction sharply) over that interval and divides it by what one pod serves at the
planned utilisation (`capacity.per_pod x capacity.utilization`).

The forecast can only raise the need (`max(floor, reactive)`, like AWS predictive scaling,
which never scales in on a forecast): a falling forecast alone removes pods no faster than the
scale-down behaviour lets the reactive need do it. A forecast that failed, is older than
`forecast.max_age`, does not cover the horizon, or has a non-finite value (NaN, inf) in it or
a floor that overflows is ignored, with a reason. A finite forecast gone wild (1e12 req/s)
raises the need, and that is all: the scale-up behaviour still limits how fast the count
grows and `max_replicas` (step 7) caps it, so a bad forecast costs at most the rate limit's
pods per period up to the cap, never more than the operator allowed.

The forecast is assumed to be of `capacity.signal` (requests/s by default), in units per second.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

from app.policy.codes import Code
from app.policy.spec import DEFAULT_COLD_START_S, ScalerSpec
from app.policy.types import LoadForecast, Observation, Reason

__all__ = [
    "PredictiveResult",
    "cold_start_s",
    "forecast_floor",
    "peak_between",
    "planned_pods",
    "quantile_path",
]


class PredictiveResult(NamedTuple):  # a tuple: ~4x cheaper to build than a frozen dataclass
    floor: float | None  # pods the forecast asks for; None when unused
    reason: Reason


_NONE: Mapping[str, float] = MappingProxyType({})
# Constant outcomes are built once: a decision costs tens of microseconds, each object counts.
_OFF = PredictiveResult(None, Reason(Code.PREDICTIVE_OFF, "scaler is reactive", _NONE))
_NO_CAPACITY = PredictiveResult(
    None,
    Reason(
        Code.PREDICTIVE_NO_CAPACITY,
        "no capacity in the spec: cannot turn a load forecast into pods",
        _NONE,
    ),
)
_MISSING = PredictiveResult(None, Reason(Code.PREDICTIVE_MISSING, "no forecast yet", _NONE))


def cold_start_s(spec: ScalerSpec, obs: Observation) -> float:
    """The spec's cold start, or the learned one, or the default while nothing is learned."""
    if not isinstance(spec.cold_start, str):
        return spec.cold_start
    if obs.cold_start_s is not None and obs.cold_start_s >= 0:
        return obs.cold_start_s
    return DEFAULT_COLD_START_S


def quantile_path(forecast: LoadForecast, q: float) -> tuple[tuple[float, ...], float]:
    """The quantile path to use: `q` itself, else the nearest higher one, else the mean (0.5)."""
    path = forecast.quantiles.get(q)
    if path is not None:
        return path, q
    higher = [k for k in forecast.quantiles if k >= q]
    if higher:
        k = min(higher)
        return forecast.quantiles[k], k
    return forecast.mean, 0.5


def planned_pods(spec: ScalerSpec, load: float) -> float | None:
    """Pods for `load` at the planned utilisation, fractional; None without a capacity."""
    if spec.capacity is None:
        return None
    return max(0.0, load) / (spec.capacity.per_pod * spec.capacity.utilization)


def peak_between(path: tuple[float, ...], start: float, step: float, t0: float, t1: float) -> float:
    """Highest value of the piecewise-linear path over [t0, t1] (both within the path)."""
    last = len(path) - 1
    best = -math.inf
    for t in (t0, t1):
        x = (t - start) / step
        i = int(x)
        v = path[-1] if i >= last else path[i] + (path[i + 1] - path[i]) * (x - i)
        if v > best:
            best = v
    hi = min(int((t1 - start) / step), last)
    for i in range(int((t0 - start) / step) + 1, hi + 1):
        if path[i] > best:
            best = path[i]
    return best


def _finite_between(path: tuple[float, ...], start: float, step: float, t0: float,
                    t1: float) -> bool:  # fmt: skip
    """True when every grid point `peak_between` may read over [t0, t1] is finite."""
    last = len(path) - 1
    first = max(0, min(int((t0 - start) / step), last))
    end = min(int((t1 - start) / step) + 1, last)
    return all(math.isfinite(v) for v in path[first : end + 1])


def forecast_floor(
    spec: ScalerSpec,
    obs: Observation,
    forecast: LoadForecast | None,
    now: float,
    reactive_need: float,
) -> PredictiveResult:
    """The pods the forecast asks for at the horizon, or None with the reason it was ignored."""
    if spec.scaler == "reactive":
        return _OFF
    capacity = spec.capacity
    if capacity is None:
        return _NO_CAPACITY
    if forecast is None:
        return _MISSING
    if forecast.failed is not None:
        msg = f"forecast failed ({forecast.failed}): reactive only"
        return PredictiveResult(None, Reason(Code.PREDICTIVE_FAILED, msg))
    age = now - forecast.made_at
    if age > spec.forecast.max_age:
        msg = f"forecast is {age:.0f}s old (max {spec.forecast.max_age:.0f}s): ignored"
        values = {"age_s": age, "max_age_s": spec.forecast.max_age}
        return PredictiveResult(None, Reason(Code.PREDICTIVE_STALE, msg, values))

    lead = cold_start_s(spec, obs)
    t0 = now + lead
    t1 = t0 + spec.forecast.buffer
    path, q_used = quantile_path(forecast, spec.forecast.quantile)
    step = forecast.step_s
    end = forecast.start + step * (len(path) - 1)
    lo, hi = max(t0, forecast.start), min(t1, end)
    if not path or step <= 0 or lo > hi:
        msg = "forecast does not cover the horizon: ignored"
        values = {"horizon_from": t0, "horizon_to": t1, "forecast_start": forecast.start,
                  "forecast_end": end}  # fmt: skip
        return PredictiveResult(None, Reason(Code.PREDICTIVE_OUT_OF_RANGE, msg, values))

    per_pod = capacity.per_pod * capacity.utilization
    peak = peak_between(path, forecast.start, step, lo, hi)
    finite = _finite_between(path, forecast.start, step, lo, hi)
    if not finite or not math.isfinite(peak / per_pod):
        msg = "forecast has a non-finite value (NaN or inf) over the horizon: ignored"
        values = {"horizon_from": t0, "horizon_to": t1}
        return PredictiveResult(None, Reason(Code.PREDICTIVE_INVALID, msg, values))
    load = max(0.0, peak)
    floor = load / per_pod
    values = {
        "load": load,
        "quantile": q_used,
        "per_pod": per_pod,
        "lead_s": lead,
        "buffer_s": spec.forecast.buffer,
        "floor": floor,
        "reactive_need": reactive_need,
    }
    if floor > reactive_need:
        msg = (
            f"forecast P{q_used * 100:.0f} load {load:.3g}/s in {lead:.0f}-"
            f"{lead + spec.forecast.buffer:.0f}s needs {floor:.2f} pods: raising the need"
        )
        return PredictiveResult(floor, Reason(Code.PREDICTIVE_FLOOR, msg, values))
    msg = f"forecast needs {floor:.2f} pods, reactive already {reactive_need:.2f}"
    return PredictiveResult(floor, Reason(Code.PREDICTIVE_BELOW, msg, values))
