"""The values the policy consumes and produces.

These types are the contract between the shell (live reconciler), the simulator and the pure
policy: both callers build an `Observation`, optionally a `LoadForecast`, carry a `ScalerState`
from one call to the next, and get a `Decision` back. Times are unix seconds (float); the policy
never reads a clock.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar

__all__ = [
    "Decision",
    "FractionalPlan",
    "LearnedCapacity",
    "LoadForecast",
    "MetricReading",
    "Observation",
    "Reason",
    "ScalerState",
    "WakeForecast",
    "between",
]


class MetricReading(NamedTuple):
    """One spec metric, already aggregated over the target's pods as the spec asks.

    `value` is None when no pod reported within the metric's window ("no data" is a value).
    `pods_reporting` lets the policy tell partial data from complete data. (A tuple, like
    `Reason`: a few are built for every decision.)
    """

    value: float | None
    pods_reporting: int = 0
    age_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Observation:
    """What the pods and the cluster said, as of `now`."""

    metrics: Mapping[str, MetricReading]
    current_replicas: int  # spec.replicas of the target as last set
    ready_pods: int
    starting_pods: int = 0  # created, not Ready yet
    load_rate: float | None = None  # the load signal (requests/s by default), if measured
    cold_start_s: float | None = None  # learned time from pod created to Ready, if measured
    # A spec metric aggregated another way than `metrics:` says, keyed (metric, aggregation):
    # what an emergency trigger with its own `aggregation` reads (`ScalerSpec.extra_readings`).
    by_aggregation: Mapping[tuple[str, str], MetricReading] = field(default_factory=dict)
    # The creation times of the starting pods no node has been found for (Pending,
    # unscheduled): those waiting longer than a cold start are not coming (pending.py).
    unscheduled_since: tuple[float, ...] = ()
    # Latencies the pods measured (p95 over the push period, seconds), for `objective`:
    # the prompts' prefill (what the queue's budget leaves out) and the inter-token latency.
    prefill_s: float | None = None
    itl_p95_s: float | None = None


@dataclass(frozen=True, slots=True)
class WakeForecast:
    """What wakes a deployment at zero ahead of demand: the path of the wake model `model`
    (on the forecast's grid) and how its wake did at the history's moments at rest: of
    `events` (demand came within the lead) it expected `hits`; of `quiet` ones it expected
    demand at `false_wakes`. `earned` is the forecasting package's verdict on those counts
    (app.forecasting.wake): only an earned wake may wake the deployment."""

    model: str
    path: tuple[float, ...]
    events: int
    hits: int
    quiet: int
    false_wakes: int
    earned: bool

    def describe(self) -> str:
        share = self.false_wakes / self.quiet if self.quiet else 0.0
        return (
            f"{self.model} woke ahead of {self.hits} of {self.events} past wake-ups, for "
            f"nothing at {share:.1%} of idle steps"
        )


@dataclass(frozen=True, slots=True)
class LoadForecast:
    """A forecast of the load signal on a regular grid starting at `start`.

    Point `i` is the mean load over the bucket `[start + i * step_s, start + (i + 1) * step_s)`
    (the grid the history was averaged on), so the load forecast at time `t` is the value of
    the bucket holding `t`: a step function, not a line between bucket starts.
    `quantiles` maps a probability (0.5, 0.9, 0.99) to a path the same length as `mean`.
    `skill` is how much better than the last value the model forecast its own history at the
    policy's lead (`1 - MAE / MAE of the last value`): above 0 it has earned a say; at or below
    0, or None (nothing to measure it on), the policy does not let it raise the need.
    """

    model: str
    made_at: float
    start: float
    step_s: float
    mean: tuple[float, ...]
    quantiles: Mapping[float, tuple[float, ...]] = field(default_factory=dict)
    failed: str | None = None  # set when the last fit failed; the policy then falls back
    skill: float | None = None
    wake: WakeForecast | None = None  # None: the series never rested at zero


_NO_VALUES: Mapping[str, float] = MappingProxyType({})


class Reason(NamedTuple):
    """One step of the decision pipeline: a stable code, a sentence, and the numbers used.
    (An immutable tuple: every decision builds ten, and a tuple is about twice as cheap to
    build as a frozen dataclass.)"""

    code: str
    message: str
    values: Mapping[str, float] = _NO_VALUES


@dataclass(frozen=True, slots=True)
class FractionalPlan:
    """`full` whole pods plus, when `partial` is set, one pod limited to that share (0..1)."""

    full: int
    partial: float | None = None

    @property
    def pods(self) -> int:
        return self.full + (1 if self.partial is not None else 0)


@dataclass(frozen=True, slots=True)
class LearnedCapacity:
    """What one pod serves of the load signal, learned from what the pods pushed: a decaying
    mean of `load / busy pods` (`weight` samples' worth, `sum` and `sum_sq` of the estimates)."""

    sum: float = 0.0
    sum_sq: float = 0.0
    weight: float = 0.0
    updated_at: float | None = None

    @property
    def mean(self) -> float | None:
        return self.sum / self.weight if self.weight > 0 else None

    @property
    def spread(self) -> float | None:
        """Relative standard deviation of the estimates (how sure the mean is, not the
        standard error: a few noisy samples and many steady ones read differently)."""
        mean = self.mean
        if mean is None or mean <= 0:
            return None
        var = max(0.0, self.sum_sq / self.weight - mean * mean)
        return math.sqrt(var) / mean


@dataclass(frozen=True, slots=True)
class ScalerState:
    """What the policy carries between calls. Owned by the policy; callers store it (as
    `to_dict()`, JSON-ready) and hand it back unchanged.

    - `recent`: (time, need, demand, saturated 0/1) of each decision within the stable
      window (the reactive step averages them, like Knative's stable window);
    - `lows`: (time, lowest count that decision would keep, saturated 0/1) within the hold
      window: a scale-down goes no lower than the highest of them (hysteresis without a 300 s
      hold; once a queue burst has drained, the saturated ones no longer count);
    - `panics`: when the last panics began (the hold's keep-alive: how soon bursts return);
    - `since`: the first decision that had data (no scale-down before one stable window);
    - `panic_until`: no scale-down before this time (a panic reading was seen);
    - `capacity`: the learned per-pod capacity;
    - `recommendations`, `scale_events`: HPA behaviour state (windows, rate limits);
    - `trigger_since`, `burst_until`, `burst_base`: the emergency burst.

    `recent` and `lows` are in time order: each decision drops the entries at or past its
    `now` and appends its own, and `from_dict` sorts what it reads; `between` relies on it.
    """

    recommendations: tuple[tuple[float, int], ...] = ()  # (time, replicas) for windows
    scale_events: tuple[tuple[float, int], ...] = ()  # (time, delta) for rate policies
    trigger_since: Mapping[str, float] = field(default_factory=dict)  # trigger id -> first over
    burst_until: float | None = None  # burst lasts at least until this time
    burst_base: int | None = None  # replicas when the burst started
    recent: tuple[tuple[float, float, float, float], ...] = ()
    lows: tuple[tuple[float, float, float], ...] = ()
    panics: tuple[float, ...] = ()
    since: float | None = None
    panic_until: float | None = None
    capacity: LearnedCapacity = field(default_factory=LearnedCapacity)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (what the store keeps between decisions)."""
        cap = self.capacity
        return {
            "recommendations": [list(r) for r in self.recommendations],
            "scale_events": [list(e) for e in self.scale_events],
            "trigger_since": dict(self.trigger_since),
            "burst_until": self.burst_until,
            "burst_base": self.burst_base,
            "recent": [list(r) for r in self.recent],
            "lows": [list(r) for r in self.lows],
            "panics": list(self.panics),
            "since": self.since,
            "panic_until": self.panic_until,
            "capacity": [cap.sum, cap.sum_sq, cap.weight, cap.updated_at],
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ScalerState:
        """The inverse of `to_dict`; keys a version before them did not write get defaults."""
        cap = doc.get("capacity") or [0.0, 0.0, 0.0, None]
        return cls(
            recommendations=tuple((float(t), int(r)) for t, r in doc.get("recommendations", ())),
            scale_events=tuple((float(t), int(d)) for t, d in doc.get("scale_events", ())),
            trigger_since={str(k): float(v) for k, v in doc.get("trigger_since", {}).items()},
            burst_until=_opt_float(doc.get("burst_until")),
            burst_base=None if doc.get("burst_base") is None else int(doc["burst_base"]),
            recent=tuple(
                sorted(
                    (float(r[0]), float(r[1]), float(r[2]), float(r[3]) if len(r) > 3 else 0.0)
                    for r in doc.get("recent", ())
                )
            ),
            lows=tuple(
                sorted(
                    (float(r[0]), float(r[1]), float(r[2]) if len(r) > 2 else 0.0)
                    for r in doc.get("lows", ())
                )
            ),
            panics=tuple(float(t) for t in doc.get("panics", ())),
            since=_opt_float(doc.get("since")),
            panic_until=_opt_float(doc.get("panic_until")),
            capacity=LearnedCapacity(
                float(cap[0]), float(cap[1]), float(cap[2]), _opt_float(cap[3])
            ),
        )


_E = TypeVar("_E", bound=tuple[float, ...])
_TIME = itemgetter(0)


def between(entries: tuple[_E, ...], after: float, before: float) -> tuple[_E, ...]:
    """The entries of a time-ordered window (`ScalerState.recent`, `.lows`) with
    `after < time < before`: a slice found by bisection, not a scan (every decision reads
    the stable window's sixty-odd entries)."""
    lo = bisect_right(entries, after, key=_TIME)
    return entries[lo : bisect_left(entries, before, lo, key=_TIME)]


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)  # a JSON number, or null


@dataclass(frozen=True, slots=True)
class Decision:
    """The policy's answer: the fractional need, the integer replicas, the plan, and why."""

    need: float
    replicas: int
    plan: FractionalPlan
    reasons: tuple[Reason, ...]
    state: ScalerState
    valid: bool = True  # False when nothing could be decided (the caller holds)
