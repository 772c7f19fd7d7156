"""Step 2b, objective: the fewest pods whose predicted p95 latency meets the spec's `objective`.

A request's time to first token (TTFT), as its client sees it, is the wait for a free slot plus
the prefill of its prompt. Scaling changes the wait only, so the objective leaves the queue a
budget: `min(queue_wait_p95, ttft_p95 - prefill)` (`ObjectiveSpec.wait_budget_s`). The step
predicts the p95 wait of `c` Ready pods with a queueing model, and asks for the smallest `c`
within the budget.

The model: M/M/n (Erlang C) with `n = c * k` servers, `k` the requests a pod runs at once
(`objective.concurrency`), each serving `mu / k` requests/s where `mu` is the per-pod capacity
(the learned or given requests/s at full use), arrivals at the measured request rate `lambda`:

    P(wait > t) = C(n, lambda / (mu / k)) * exp(-(c * mu - lambda) * t)
    p95 wait    = Q / (c * mu) + max(0, ln(C / 0.05) / (c * mu - lambda))

where `Q / (c * mu)` is the time `c` pods take to start the `Q` requests a request arriving
once they are Ready queues behind: the queue now, less what the pods up clear beyond the
arrivals over a cold start (`_queue_when_ready`); a queue no count can start within the
objective leaves the sizing to the arrivals (the reactive step drains it). With `k = 1`
(the default, when the spec does not say) a pod's slots are pooled into one server, which
over-states the wait (k slower servers wait less for the same throughput; the decay rate
`c * mu - lambda` is the same): the count is then an upper bound on what the objective needs,
safe for a latency objective.

`itl_p95` (inter-token latency) grows with the requests a pod decodes at once, which the
queueing model does not see: a measured ITL over its objective asks for the Ready pods times
the ratio (as the HPA scales on a per-pod metric), never fewer.

The step only ever raises the need (never fewer than the other steps ask); its reason says
when the objective drove the count, what it predicts, and why it could not size (no capacity
learned yet, no request rate measured, no count within `max_replicas`).
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import NamedTuple

from app.policy.codes import Code
from app.policy.predictive import cold_start_s
from app.policy.spec import ScalerSpec
from app.policy.types import Observation, Reason

__all__ = ["ObjectiveResult", "erlang_c", "objective_step", "p95_wait_s"]

_P95_TAIL = 0.05
_NONE = Reason(Code.OBJECTIVE_NONE, "no latency objective", MappingProxyType({}))


def erlang_c(n: int, load: float) -> float:
    """The probability that an arrival waits in M/M/n with offered load `lambda / mu`
    (1.0 when `n` servers cannot keep up)."""
    if n <= 0 or load >= n:
        return 1.0
    b = 1.0  # Erlang B by its stable recursion
    for i in range(1, n + 1):
        b = load * b / (i + load * b)
    return b / (1.0 - (load / n) * (1.0 - b))


def _wait(c: int, k: int, lam: float, mu: float, queue: float, b: float) -> float:
    """The p95 wait of `c` pods of `k` servers, given Erlang B `b` of the `c * k` servers
    (inf: they cannot keep up)."""
    rate = c * mu
    if rate <= lam:
        return math.inf
    n = c * k
    load = lam * k / mu
    waits = b / (1.0 - (load / n) * (1.0 - b)) if load > 0 else 0.0
    tail = math.log(waits / _P95_TAIL) / (rate - lam) if waits > _P95_TAIL else 0.0
    return queue / rate + tail


def _erlang_b(n: int, load: float, b: float = 1.0, start: int = 1) -> float:
    """Erlang B of `n` servers, continuing the recursion from `b` of `start - 1` servers."""
    for i in range(start, n + 1):
        b = load * b / (i + load * b)
    return b


def p95_wait_s(c: int, lam: float, mu: float, queue: float = 0.0, k: int = 1) -> float:
    """The predicted p95 queue wait of `c` pods of `mu` requests/s each, running `k` requests
    at once, `lam` arriving per second and `queue` requests already waiting (module
    docstring)."""
    if c <= 0:
        return math.inf if lam > 0 or queue > 0 else 0.0
    return _wait(c, k, lam, mu, queue, _erlang_b(c * k, lam * k / mu))


def _fewest(lam: float, mu: float, queue: float, budget: float, limit: int, k: int) -> int | None:
    """The fewest pods (1..limit) whose p95 wait is within `budget`; None when none is."""
    load = lam * k / mu
    b = 1.0
    for c in range(1, limit + 1):
        b = _erlang_b(c * k, load, b, (c - 1) * k + 1)  # from c - 1 pods' servers
        if c * mu > lam and _wait(c, k, lam, mu, queue, b) <= budget:
            return c
    return None


def _waiting(spec: ScalerSpec, obs: Observation) -> float | None:
    """Requests waiting in all, from the spec's ceiling metrics (`request_queue: <5`): the
    largest fresh one (None: no ceiling metric has a fresh reading)."""
    found: float | None = None
    for m in spec.metrics:
        if m.target.form != "below":
            continue
        r = obs.metrics.get(m.name)
        if r is None or r.value is None or r.age_s > spec.fallback.stale_after:
            continue
        if not math.isfinite(r.value) or r.value < 0:
            continue
        if m.aggregation == "sum":
            total = r.value
        else:
            total = r.value * max(1, r.pods_reporting or obs.ready_pods)
        found = total if found is None else max(found, total)
    return found


def _queue_when_ready(
    spec: ScalerSpec, obs: Observation, lam: float, mu: float, queue: float
) -> float:
    """What is left, once new pods are Ready (a cold start from now), of the queue waiting now:
    the pods up (the starting ones counting for half) clear what they serve beyond the
    arrivals. A passing queue they are clearing asks for nothing. What piles up meanwhile in
    an overload is not counted: no count launched now serves it sooner, and the reactive step
    sizes the pods that drain it within `reactive.drain`."""
    cold = cold_start_s(spec, obs)
    serving = (max(0, obs.ready_pods) + max(0, obs.starting_pods) / 2) * mu
    return max(0.0, queue - max(0.0, serving - lam) * cold)


class ObjectiveResult(NamedTuple):
    need: float | None  # pods the objective asks for (None: no objective, or cannot size)
    reason: Reason


def objective_step(
    spec: ScalerSpec, obs: Observation, per_pod: float | None, need: float
) -> ObjectiveResult:
    """The pods the objective asks for, given the need the earlier steps reached."""
    obj = spec.objective
    if obj is None:
        return ObjectiveResult(None, _NONE)
    values: dict[str, float] = {"need_before": need}
    asks: list[tuple[float, str]] = []  # (pods, what asked)
    unknown: list[str] = []
    budget = obj.wait_budget_s(obs.prefill_s)
    if budget is not None:
        values["wait_budget_s"] = budget
        lam = obs.load_rate
        if per_pod is None or per_pod <= 0:
            unknown.append("no per-pod capacity yet (learning)")
        elif lam is None or not math.isfinite(lam) or lam < 0:
            unknown.append("no request rate measured")
        else:
            queue = _waiting(spec, obs) or 0.0
            values.update(arrival_rate=lam, capacity_per_pod=per_pod, queue=queue)
            k = obj.concurrency
            values["concurrency"] = float(k)
            now_wait = p95_wait_s(max(0, obs.ready_pods), lam, per_pod, queue, k)
            if math.isfinite(now_wait):
                values["wait_p95_at_ready_s"] = now_wait
            # With no prefill budget left the backlog cannot be waited out at any count: size
            # for arrivals that rarely wait instead of every pod up to the maximum.
            backlog = _queue_when_ready(spec, obs, lam, per_pod, queue) if budget > 0 else 0.0
            values["queue_when_ready"] = backlog
            pods = _fewest(lam, per_pod, backlog, budget, spec.max_replicas, k)
            if pods is None and backlog > 0:
                # The queue cannot be waited out within the objective by any count: size for
                # the arrivals; the reactive step drains the queue (its `drain`).
                values["queue_unreachable"] = 1.0
                unknown.append(f"the {backlog:.0f} queued cannot start within the objective")
                backlog = 0.0
                pods = _fewest(lam, per_pod, 0.0, budget, spec.max_replicas, k)
            if pods is None:
                values["unreachable"] = 1.0
                asks.append((float(spec.max_replicas), "no count within max_replicas meets it"))
            else:
                predicted = p95_wait_s(pods, lam, per_pod, backlog, k)
                values["wait_p95_predicted_s"] = predicted
                asks.append((float(pods), f"{pods} pods: predicted p95 wait {predicted:.2f}s"))
    if obj.itl_p95 is not None:
        itl = obs.itl_p95_s
        if itl is None or not math.isfinite(itl) or itl < 0:
            unknown.append("no inter-token latency measured")
        else:
            values["itl_p95_s"] = itl
            if itl > obj.itl_p95 and obs.ready_pods > 0:
                ratio = obs.ready_pods * itl / obj.itl_p95
                asks.append((ratio, f"ITL p95 {itl * 1000:.0f}ms over its objective"))
    what = _describe(obj.ttft_p95, obj.queue_wait_p95, obj.itl_p95)
    if not asks and unknown:
        msg = f"objective {what}: cannot size ({'; '.join(unknown)}), the other steps decide"
        return ObjectiveResult(None, Reason(Code.OBJECTIVE_UNKNOWN, msg, values))
    if not asks:  # only an ITL objective, and it is met
        msg = f"objective {what}: met by the {need:.2f} pods asked"
        return ObjectiveResult(None, Reason(Code.OBJECTIVE_COVERED, msg, values))
    want, why = max(asks)
    values["need"] = want
    tail = f" ({'; '.join(unknown)})" if unknown else ""
    if "unreachable" in values and want >= need:
        code = Code.OBJECTIVE_UNREACHABLE
        msg = f"objective {what}: {why}; asking for max_replicas {spec.max_replicas}{tail}"
    elif want > need:
        code = Code.OBJECTIVE_RAISE
        msg = f"objective {what} drives the count: {why}, above the {need:.2f} asked{tail}"
    else:
        code = Code.OBJECTIVE_COVERED
        msg = f"objective {what}: {why}; the {need:.2f} pods asked already meet it{tail}"
    return ObjectiveResult(want, Reason(code, msg, values))


def _describe(ttft: float | None, wait: float | None, itl: float | None) -> str:
    parts = [
        f"{name} p95 <= {v:g}s"
        for name, v in (("TTFT", ttft), ("queue wait", wait), ("ITL", itl))
        if v is not None
    ]
    return ", ".join(parts)
