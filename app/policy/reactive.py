"""Step 1, reactive: how many pods the metrics as measured ask for, read the way Knative reads
concurrency: averaged over a stable window, with a panic mode for a sudden jump.

Each decision first turns the fresh readings into numbers of pods (`read_metrics`):
- **need**, pods at the metrics' targets. Per load metric (a percent or plain target),
  Kubernetes' replica calculator (`replica_calculator.go`) without its dead-band:
  `usage x pods that reported`, where Ready pods that did not report count as exactly the
  target on a scale-down and 0 on a scale-up, and not-yet-ready pods as 0 on a scale-up; a
  `sum` metric is a total over pods: `total / target`. Load metrics blend by weight (the
  brief's 0.6 / 0.4) or by max (HPA).
- **demand**, the same pods at full use: for a percent target `need x target / 100` (what the
  pods are busy with), for a plain target the need itself. It is what the learned capacity is
  measured against and the least a forecast may provision.
- A **ceiling** (`<5`) is not a load measure but a bound: under its target it abstains. Over it
  the deployment is saturated: with a known capacity, the load signal shows the demand the busy
  pods cannot (`load / capacity` pods at full use), and the queue asks for the pods that serve,
  within `reactive.drain` (how long a queued request may wait), what will be waiting when new
  pods are Ready: the queue over the ceiling now, grown by the arrivals the pods up cannot take
  during the cold start (starting pods count for half of it), at most `drain` seconds of
  arrivals (what waited longer is lost whatever is launched). Without a capacity it asks like
  KEDA's queue scaler (`queue / target` pods).

Across decisions (`ScalerState.recent`, `reactive_need`), need and demand are averaged over
`reactive.window`, over the readings as saturated (a ceiling exceeded) as the newest one: once
a queue has drained, what the burst asked for no longer counts, and, with a load signal and a
capacity, the readings until the window has passed read no more than the arrivals ask for (the
pods are busy with the backlog the burst left, not with the load; measured on the corpus and
real traces: 1.81 -> 1.21 x the oracle's cost on the bursty LLM log, 1.14 -> 1.11 on twitter,
1.36 -> 1.24 on a noisy cloud-monitoring series, the same drops), except where the hold's
keep-alive holds (bursts that come back within minutes: what the pods were busy with after one
is what the next will ask for). The panics' onsets are kept (`ScalerState.panics`) for that
keep-alive. A stable need within `tolerance` of the current count keeps the count (HPA's
dead-band). A newest need of
`reactive.panic` x the Ready pods or more, and above the current count, is acted on at once
and holds scale-down for a window (Knative's panic mode; a need under the current count is no
panic, however few pods are Ready yet), or until a queue burst has drained: a reading under
the ceilings after readings over them within the window ends it.

Missing data: with some metrics missing the rest still decide, but never a scale-down (the
hold step enforces it); with none, the spec's fallback holds the current count or goes to a
fixed count. A reading gone wild counts as missing, never as load: NaN, +-inf, a negative
value, or one so large that the pods it asks for overflow a float. The reason names each metric
left out and why (`<name>.stale_s`, `<name>.invalid` in its values): silence reads as "stale",
not as idle.

What the policy assumes of `Observation.metrics` (the shell aggregates per-pod samples): one
`MetricReading` per spec metric, `value` aggregated over the Ready pods within the metric's
window the spec's way, `pods_reporting` the pods that contributed (0: every Ready pod assumed),
`age_s` the age of the newest sample; no sample is `value=None`.
"""

from __future__ import annotations

import math
from functools import lru_cache
from itertools import pairwise
from operator import itemgetter
from typing import NamedTuple

from app.policy.codes import Code
from app.policy.predictive import cold_start_s
from app.policy.spec import MetricSpec, ScalerSpec
from app.policy.types import MetricReading, Observation, Reason, ScalerState, between

__all__ = [
    "KEEP_ALIVE_MAX_S",
    "MAX_NEED",
    "ReactiveResult",
    "Reading",
    "hpa_replicas",
    "keep_alive_s",
    "reactive_need",
    "read_metrics",
]

_EPS = 1e-9
_NEED, _DEMAND, _SATURATED = itemgetter(1), itemgetter(2), itemgetter(3)  # of `recent`
MAX_NEED = 1e9  # pods: more than any cluster runs; a need past it is a wild reading's
PANICS_KEPT = 8  # panic onsets remembered: with the gap still open, eight gaps
KEEP_ALIVE_MAX_S = 300.0  # HPA's default scale-down stabilisation window
_KEEP_ALIVE_QUANTILE = 0.75
_KEEP_ALIVE_MIN_GAPS = 3  # the open one included: three panics


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
    """Pods at the metric's target: Kubernetes' replica calculator, dead-band included."""
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


def _metric_demand(m: MetricSpec, value: float, obs: Observation) -> float:
    """The pods' worth of work the metric shows, at full use: a percent target's average over
    the Ready pods as a share of 100 %, a plain target's as a share of the target (taken as
    full use), a `sum` over the target."""
    if m.aggregation == "sum":
        return value / m.target.value
    full = 100.0 if m.target.form == "percent" else m.target.value
    return value / full * max(obs.ready_pods, obs.starting_pods if obs.ready_pods <= 0 else 0)


def _waiting(m: MetricSpec, value: float, reading: MetricReading, obs: Observation) -> float:
    """What a ceiling metric counts in all: a `sum` is a total already; a per-pod reading is
    over the pods that reported it (a pod that did not report waits for nothing we know of)."""
    if m.aggregation == "sum":
        return value
    reporting = reading.pods_reporting if reading.pods_reporting > 0 else obs.ready_pods
    return value * max(1, reporting)


class Reading(NamedTuple):
    """What the fresh metrics say at this decision, before any averaging."""

    need: float | None  # pods at the load metrics' targets (None: no load metric fresh)
    demand: float | None  # the same pods at full use
    target_use: float  # the load metrics' targets as a share of full use (85 % -> 0.85)
    excess: float  # requests over the ceilings (0 under them, or no ceiling)
    ceiling_need: float | None  # KEDA-style pods for the ceilings (used without a capacity)
    saturated: bool  # a ceiling is over its target
    valid: int  # metrics that counted
    total: int  # metrics that could have
    left_out: tuple[str, ...]
    values: dict[str, float]


def read_metrics(spec: ScalerSpec, obs: Observation) -> Reading:
    """The readings of this decision in pods (see the module docstring)."""
    stale_after = spec.fallback.stale_after
    values: dict[str, float] = {"current": float(obs.current_replicas)}
    by_weight = spec.combine == "weighted"
    total_w = weighted = weighted_demand = weighted_use = 0.0
    best = best_demand = -1.0
    best_use = 1.0
    excess = 0.0
    ceiling_need: float | None = None
    saturated = False
    valid = n = 0
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
        k_value, k_target, k_need = _keys(m.name)
        if m.target.form == "below":
            valid += 1
            values[k_value] = value
            values[k_target] = m.target.value
            # Over the ceiling: more waiting than the Ready pods may hold (the target each).
            waiting = _waiting(m, value, reading, obs)
            over = waiting - m.target.value * max(1, obs.ready_pods)
            if over > 0:
                saturated = True
                excess += over
            keda = waiting / m.target.value
            ceiling_need = keda if ceiling_need is None else max(ceiling_need, keda)
            continue
        need = _metric_need(m, value, reading, obs, spec.tolerance)
        if need is None:
            left_out.append(f"{m.name}: no Ready or starting pod to attribute it to")
            continue
        if not math.isfinite(need):  # a finite value so large its pods overflow
            values[f"{m.name}.invalid"] = 1.0
            left_out.append(f"{m.name}: {value!r} asks for more pods than a float holds")
            continue
        demand = _metric_demand(m, value, obs)
        use = m.target.value / 100.0 if m.target.form == "percent" else 1.0
        valid += 1
        values[k_value] = value
        values[k_target] = m.target.value
        values[k_need] = need
        total_w += w
        weighted += w * need
        weighted_demand += w * demand
        weighted_use += w * use
        if need > best:
            best, best_demand, best_use = need, demand, use
    need_out: float | None = None
    demand_out: float | None = None
    use_out = 1.0
    if total_w > 0:
        need_out = weighted / total_w if by_weight else best
        demand_out = weighted_demand / total_w if by_weight else best_demand
        use_out = weighted_use / total_w if by_weight else best_use
        if not math.isfinite(need_out):  # weighted finite needs can still overflow when summed
            need_out = demand_out = MAX_NEED
    return Reading(
        need_out,
        demand_out,
        use_out,
        excess,
        ceiling_need,
        saturated,
        valid,
        n,
        tuple(left_out),
        values,
    )


class ReactiveResult(NamedTuple):  # a tuple: ~4x cheaper to build than a frozen dataclass
    need: float  # what the reactive step asks for (dead-band and panic applied)
    calm: float  # the same without the panic: what later decisions remember of this one
    panic_need: float | None  # the newest reading's need while a panic holds
    demand: float | None  # stable pods at full use (None: no load metric)
    has_data: bool  # at least one metric had fresh data
    partial: bool  # some metrics missing: no scale-down
    panic: bool  # a panic reading now or within the window
    reason: Reason
    recent: tuple[tuple[float, float, float, float], ...]
    since: float | None
    panic_until: float | None
    panics: tuple[float, ...]  # when the last panics began (the hold's keep-alive)
    keep_alive: float | None  # the hold's keep-alive window in force (see `keep_alive_s`)
    burst_within: bool  # a reading of the window before this one was saturated
    # the pods that hold what waits now at the ceilings (0: no ceiling, or nothing waits)
    waiting_pods: float
    # False where the need is no measure of the load but a count kept for missing metrics (the
    # current count held, or the spec's fallback): spare pods on top of it would compound at
    # every reconcile while the metrics stay missing
    measured: bool = True


def _now_needs(spec: ScalerSpec, r: Reading, obs: Observation,
               per_pod: float | None) -> tuple[float, float] | None:  # fmt: skip
    """(need, demand) of this decision, ceilings included; None when nothing counts."""
    if r.need is None:
        if r.ceiling_need is None:
            return None
        # Only ceilings: without a load measure they ask like KEDA's queue scaler.
        return r.ceiling_need, r.ceiling_need
    need, demand = r.need, r.demand if r.demand is not None else r.need
    if per_pod is None:
        if r.saturated and r.ceiling_need is not None and r.ceiling_need > need:
            need = demand = r.ceiling_need
        return need, demand
    load = obs.load_rate
    if not r.saturated:
        return need, demand
    arriving = max(0.0, load) if load is not None and math.isfinite(load) else 0.0
    # The busy pods top out at 100 %; the load signal shows what arrives beyond them, planned
    # at the metrics' target use (85 % of the pods' worth, as the metrics would plan). The
    # replica calculator's own answer is no guide here: with pods starting it keeps the
    # current count ("they will take the load"), which the queue then adds to, decision after
    # decision.
    demand = max(demand, arriving / per_pod)
    need = demand / r.target_use
    # New pods serve the queue only from when they are Ready. By then what waited longer than
    # `drain` is gone whatever is launched, and what arrived since waits: the queue over the
    # ceiling now, grown by the arrivals the pods up cannot take during the cold start (the
    # starting ones count for half of it: Ready on average halfway), and at most `drain`
    # seconds of arrivals. Those are the pods that serve it in `drain`.
    cold = cold_start_s(spec, obs)
    serving = (max(0, obs.ready_pods) + max(0, obs.starting_pods) / 2) * per_pod
    waiting = min(r.excess + max(0.0, arriving - serving) * cold, arriving * spec.reactive.drain)
    drain = max(0.0, waiting) / (per_pod * spec.reactive.drain)
    return need + drain, demand + drain


def keep_alive_s(panics: tuple[float, ...], now: float) -> float | None:
    """`KEEP_ALIVE_MAX_S` where bursts have been coming back within it: three in four of the
    gaps between the last panics' onsets, the one still open (since the newest) included, at
    most that long, with at least three gaps; else None."""
    n = len(panics)  # gaps: n - 1 between onsets, and the one still open
    if n < _KEEP_ALIVE_MIN_GAPS:
        return None
    # the k-th shortest gap is within the limit exactly when k of them are: counted, not
    # sorted (every decision asks; the gaps between onsets change only with a new panic)
    short = _short_gaps(panics) + (max(0.0, now - panics[-1]) <= KEEP_ALIVE_MAX_S)
    return KEEP_ALIVE_MAX_S if short >= math.ceil(_KEEP_ALIVE_QUANTILE * n) else None


@lru_cache(maxsize=256)
def _short_gaps(panics: tuple[float, ...]) -> int:
    """How many gaps between consecutive onsets are at most `KEEP_ALIVE_MAX_S`."""
    return sum(b - a <= KEEP_ALIVE_MAX_S for a, b in pairwise(panics))


def reactive_need(
    spec: ScalerSpec,
    obs: Observation,
    reading: Reading,
    per_pod: float | None,
    state: ScalerState,
    now: float,
) -> ReactiveResult:
    """The reactive need (pods, fractional) over the stable window, and why."""
    current = obs.current_replicas
    values = reading.values
    values["metrics_valid"] = float(reading.valid)
    why = f" ({'; '.join(reading.left_out)})" if reading.left_out else ""
    window = spec.reactive.window
    kept = between(state.recent, now - window, now)
    burst_within = any(map(_SATURATED, kept))  # a reading over a ceiling in the window
    panic_until = state.panic_until if state.panic_until and state.panic_until > now else None
    needs = _now_needs(spec, reading, obs, per_pod)
    # a spec's own `behavior` sets its scale-down window (HPA's semantics): the user's choice
    alive = keep_alive_s(state.panics, now) if spec.behavior is None else None
    if needs is None:
        since = state.since
        if spec.fallback.on_missing == "replicas" and spec.fallback.replicas is not None:
            need = float(spec.fallback.replicas)
            values["need"] = need
            msg = f"no fresh metrics{why}: fallback to {spec.fallback.replicas} replicas"
            reason = Reason(Code.REACTIVE_FALLBACK_REPLICAS, msg, values)
        else:
            need = float(current)
            values["need"] = need
            msg = f"no fresh metrics{why}: holding {current} replicas"
            reason = Reason(Code.REACTIVE_FALLBACK_HOLD, msg, values)
        return ReactiveResult(
            need, need, None, None, False, True, False, reason, kept, since, panic_until,
            state.panics, alive, burst_within, 0.0, False,
        )  # fmt: skip

    need_now, demand_now = needs
    load = obs.load_rate
    if (
        per_pod
        and load is not None
        and math.isfinite(load)
        and reading.need is not None
        and not reading.saturated
        and burst_within
        and alive is None
    ):
        # A queue burst has drained within the window: the pods are busy with the backlog it
        # left (requests stay on their pod), so their use reads the backlog, not the load.
        # The arrivals over the capacity say what the load needs; the backlog's pods go back
        # as they finish instead of a window later. Not where bursts come back within minutes
        # (the hold's keep-alive): there what the pods were busy with after the last burst is
        # what the keep-alive keeps for the next one.
        arriving = max(0.0, load) / per_pod
        demand_now = min(demand_now, arriving)
        need_now = min(need_now, arriving / reading.target_use)
    need_now = min(need_now, MAX_NEED)
    demand_now = min(demand_now, MAX_NEED)
    saturated = 1.0 if reading.saturated else 0.0
    recent = (*kept, (now, need_now, demand_now, saturated))
    # The window smooths a steady load's noise; a saturated reading (the queue over its
    # ceiling) is a passing state, and once the queue has drained only the readings like it
    # describe the load: after a burst the count follows the load now, not a burst's mean.
    alike = [e for e in recent if e[3] == saturated] if burst_within or saturated else recent
    stable = sum(map(_NEED, alike)) / len(alike)
    demand = sum(map(_DEMAND, alike)) / len(alike) if reading.need is not None else None
    since = state.since if state.since is not None else now
    values.update(need_now=need_now, need_stable=stable, window_s=window)
    if demand is not None:
        values["demand_stable"] = demand
    if per_pod is not None:
        values["capacity_per_pod"] = per_pod
    if reading.excess > 0:
        values["queue_over_ceiling"] = reading.excess

    ready = max(1, obs.ready_pods)
    panics = state.panics
    if need_now >= spec.reactive.panic * ready and need_now > current:
        if panic_until is None:  # a new panic, not one still holding
            panics = (*panics, now)[-PANICS_KEPT:]
        panic_until = now + window
    elif panic_until is not None and not saturated and burst_within:
        # A queue burst that has drained: what it asked for is served or lost, and holding
        # its pods a window more pays for idle GPUs (the next burst is met as this one was).
        panic_until = None
    panic_need = max(need_now, float(current)) if panic_until is not None else None
    partial = reading.valid < reading.total

    if current > 0 and abs(1.0 - stable / current) <= spec.tolerance:
        calm = float(current)
        code = Code.REACTIVE_IN_TOLERANCE
        msg = (
            f"metrics ask for {stable:.2f} pods over {window:.0f}s, within tolerance of "
            f"{current}: keep"
        )
    else:
        calm = stable
        code = Code.REACTIVE_SCALE
        msg = f"metrics ask for {stable:.2f} pods over {window:.0f}s, currently {current}"
    need = calm
    if panic_until is not None and panic_need is not None:
        need = max(panic_need, stable)
        code = Code.REACTIVE_PANIC
        msg = (
            f"panic: the newest reading asks for {need_now:.2f} pods (>= "
            f"{spec.reactive.panic:g} x {ready} Ready within {window:.0f}s): acting on it, "
            f"no scale-down for {panic_until - now:.0f}s"
        )
    measured = True
    if partial:
        missing = reading.total - reading.valid
        measured = need >= current
        code = Code.REACTIVE_PARTIAL if measured else Code.REACTIVE_PARTIAL_HOLD
        msg = f"{missing} of {reading.total} metrics missing{why}: " + (
            f"not scaling down on partial data (would be {need:.2f}), holding {current}"
            if not measured
            else f"the others ask for {need:.2f} pods"
        )
        need = max(need, float(current))
        calm = max(calm, float(current))
    values["need"] = need
    return ReactiveResult(
        need, calm, panic_need, demand, True, partial, panic_until is not None,
        Reason(code, msg, values), recent, since, panic_until, panics, alive, burst_within,
        reading.ceiling_need or 0.0, measured,
    )  # fmt: skip
