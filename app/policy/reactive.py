"""Step 1, reactive: how many pods the metrics as measured now ask for.

Per metric, Kubernetes' replica calculator (`replica_calculator.go`, plain metrics):
`usage = observed / target`; within `tolerance` of 1 keep the current count; otherwise
`usage x pods that reported`. Pods that are Ready but did not report count as exactly the target
on a scale-down and 0 on a scale-up; not-yet-ready pods count as 0 on a scale-up; if that
rebalancing flips the direction or lands in the dead-band, keep the current count. A metric
aggregated with `sum` is a total over pods (KEDA's AverageValue): `need = total / target`.

What the policy assumes of `Observation.metrics` (the shell aggregates per-pod samples):
- one `MetricReading` per spec metric (and per emergency trigger metric), keyed by name;
- `value` aggregates the samples of **Ready** pods within the metric's window with the spec's
  aggregation; `pods_reporting` is how many Ready pods contributed (0 = not counted: then every
  Ready pod is assumed to have reported); `age_s` is the age of the newest sample;
- a metric with no sample is `value=None` (or absent); older than `fallback.stale_after` is
  treated the same.

Metrics are combined by weight (the brief) or by max (HPA). With some metrics missing the rest
still decide, but never a scale-down ("never scale down on partial data"); with none, the
spec's fallback holds the current count or goes to a fixed count.

A reading gone wild counts as missing, never as load: NaN, +-inf, a negative value, or one so
large that the pods it asks for overflow a float. So a broken exporter cannot scale down
(missing data never does) and cannot scale past `max_replicas` (a finite 1e12 scales up at the
behaviour's rate, capped by the bounds). The reason names each metric left out and why
(`<name>.stale_s`, `<name>.invalid` in its values): silence reads as "stale", not as idle.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

from app.policy.codes import Code
from app.policy.spec import MetricSpec, ScalerSpec
from app.policy.types import MetricReading, Observation, Reason

__all__ = ["MAX_NEED", "ReactiveResult", "hpa_replicas", "reactive_need"]

_EPS = 1e-9
MAX_NEED = 1e9  # pods: more than any cluster runs; a need past it is a wild reading's


class ReactiveResult(NamedTuple):  # a tuple: ~4x cheaper to build than a frozen dataclass
    need: float
    has_data: bool  # at least one metric had fresh data
    reason: Reason


def hpa_replicas(
    value: float,
    target: float,
    *,
    current: int,
    reporting: int,
    ready: int,
    unready: int,
    tolerance: float,
) -> float:
    """HPA's `calcPlainMetricReplicas`, returning the fractional need before `ceil`.

    `value` is the average over the `reporting` Ready pods; `ready - reporting` Ready pods are
    missing; `unready` pods are starting."""
    usage = value / target
    missing = max(0, ready - reporting)
    rebalance_unready = unready > 0 and usage > 1.0
    if not rebalance_unready and missing == 0:
        if abs(1.0 - usage) <= tolerance:
            return float(current)
        return usage * reporting
    total = value * reporting
    count = reporting
    if missing:
        if usage < 1.0:  # scale-down: missing pods use exactly the target
            total += target * missing
            count += missing
        elif usage > 1.0:  # scale-up: missing pods use nothing
            count += missing
    if rebalance_unready:
        count += unready
    new_usage = total / (target * count)
    if abs(1.0 - new_usage) <= tolerance or (usage < 1.0 < new_usage) or (new_usage < 1.0 < usage):
        return float(current)
    need = new_usage * count
    if not math.isfinite(need):  # overflowed: the caller leaves the metric out
        return need
    pods = math.ceil(need - _EPS)
    if (new_usage < 1.0 and pods > current) or (new_usage > 1.0 and pods < current):
        return float(current)
    return need


@lru_cache(maxsize=1024)
def _keys(name: str) -> tuple[str, str, str]:
    return f"{name}.value", f"{name}.target", f"{name}.need"


def _fresh(reading: MetricReading | None, stale_after: float) -> float | None:
    if reading is None or reading.value is None or reading.age_s > stale_after:
        return None
    value = reading.value
    if not math.isfinite(value) or value < 0:
        return None
    return value


def _left_out(
    name: str, reading: MetricReading | None, stale_after: float, values: dict[str, float]
) -> str:
    """Why metric `name` does not count (off the hot path: only for a metric left out)."""
    if reading is None or reading.value is None:
        return f"{name}: no data"
    if reading.age_s > stale_after:
        values[f"{name}.stale_s"] = reading.age_s
        return f"{name}: stale ({reading.age_s:.0f}s old > {stale_after:g}s)"
    values[f"{name}.invalid"] = 1.0
    return f"{name}: invalid value {reading.value!r}"


def _metric_need(m: MetricSpec, value: float, reading: MetricReading, obs: Observation,
                 tolerance: float) -> float | None:  # fmt: skip
    target = m.target.value
    current = obs.current_replicas
    if m.aggregation == "sum":
        if current > 0 and abs(1.0 - value / (target * current)) <= tolerance:
            return float(current)
        return value / target
    ready = obs.ready_pods if obs.ready_pods > 0 else 0
    reporting = reading.pods_reporting if reading.pods_reporting > 0 else ready
    if reporting <= 0:
        # Samples but no Ready pod to attribute them to. With pods starting, let them stand
        # in as the reporters so a hot queue still scales up; with no pod at all a per-pod
        # average means nothing (scale from zero on a `sum` metric or the forecast).
        if obs.starting_pods <= 0:
            return None
        reporting = ready = obs.starting_pods
        unready = 0
    else:
        unready = obs.starting_pods if obs.starting_pods > 0 else 0
    return hpa_replicas(
        value,
        target,
        current=current,
        reporting=reporting,
        ready=ready if ready > reporting else reporting,
        unready=unready,
        tolerance=tolerance,
    )


def reactive_need(spec: ScalerSpec, obs: Observation) -> ReactiveResult:
    """The reactive need (pods, fractional) and why."""
    current = obs.current_replicas
    stale_after = spec.fallback.stale_after
    values: dict[str, float] = {"current": float(current)}
    total_w = 0.0
    weighted = 0.0
    best = -1.0
    valid = 0
    n = 0
    by_weight = spec.combine == "weighted"
    left_out: list[str] = []
    for m in spec.metrics:
        # No weights given means equal shares: weight 1 each, normalised below. With weights,
        # a weight-0 metric does not scale (it can still trigger an emergency burst).
        w = 1.0 if m.weight is None else m.weight
        if by_weight and w <= 0.0:
            continue
        n += 1
        reading = obs.metrics.get(m.name)
        value = _fresh(reading, stale_after)
        if value is None or reading is None:
            left_out.append(_left_out(m.name, reading, stale_after, values))
            continue
        need = _metric_need(m, value, reading, obs, spec.tolerance)
        if need is None:
            left_out.append(f"{m.name}: no Ready or starting pod to attribute it to")
            continue
        if not math.isfinite(need):  # a finite value so large its pods overflow
            values[f"{m.name}.invalid"] = 1.0
            left_out.append(f"{m.name}: {value!r} asks for more pods than a float holds")
            continue
        valid += 1
        k_value, k_target, k_need = _keys(m.name)
        values[k_value] = value
        values[k_target] = m.target.value
        values[k_need] = need
        total_w += w
        weighted += w * need
        if need > best:
            best = need

    values["metrics_valid"] = float(valid)
    why = f" ({'; '.join(left_out)})" if left_out else ""
    if valid == 0:
        if spec.fallback.on_missing == "replicas" and spec.fallback.replicas is not None:
            need = float(spec.fallback.replicas)
            values["need"] = need
            msg = f"no fresh metrics{why}: fallback to {spec.fallback.replicas} replicas"
            return ReactiveResult(need, False, Reason(Code.REACTIVE_FALLBACK_REPLICAS, msg, values))
        values["need"] = float(current)
        msg = f"no fresh metrics{why}: holding {current} replicas"
        return ReactiveResult(
            float(current), False, Reason(Code.REACTIVE_FALLBACK_HOLD, msg, values)
        )

    need = weighted / total_w if by_weight else best
    if not math.isfinite(need):  # weighted finite needs can still overflow when summed
        need = MAX_NEED
    values["need"] = need
    if valid < n:
        if need < current:
            values["need"] = float(current)
            msg = (
                f"{n - valid} of {n} metrics missing{why}: not scaling down on partial data "
                f"(would be {need:.2f}), holding {current}"
            )
            return ReactiveResult(
                float(current), True, Reason(Code.REACTIVE_PARTIAL_HOLD, msg, values)
            )
        msg = f"{n - valid} of {n} metrics missing{why}: the others ask for {need:.2f} pods"
        return ReactiveResult(need, True, Reason(Code.REACTIVE_PARTIAL, msg, values))
    if need == current:
        msg = f"metrics within tolerance of their targets: keep {current}"
        return ReactiveResult(need, True, Reason(Code.REACTIVE_IN_TOLERANCE, msg, values))
    msg = f"metrics ask for {need:.2f} pods ({spec.combine}), currently {current}"
    return ReactiveResult(need, True, Reason(Code.REACTIVE_SCALE, msg, values))
