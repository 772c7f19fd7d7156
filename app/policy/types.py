"""The values the policy consumes and produces.

These types are the contract between the shell (live reconciler), the simulator and the pure
policy: both callers build an `Observation`, optionally a `LoadForecast`, carry a `ScalerState`
from one call to the next, and get a `Decision` back. Times are unix seconds (float); the policy
never reads a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "Decision",
    "FractionalPlan",
    "LoadForecast",
    "MetricReading",
    "Observation",
    "Reason",
    "ScalerState",
]


@dataclass(frozen=True, slots=True)
class MetricReading:
    """One spec metric, already aggregated over the target's pods as the spec asks.

    `value` is None when no pod reported within the metric's window ("no data" is a value).
    `pods_reporting` lets the policy tell partial data from complete data.
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


@dataclass(frozen=True, slots=True)
class LoadForecast:
    """A forecast of the load signal on a regular grid starting at `start`.

    `quantiles` maps a probability (0.5, 0.9, 0.99) to a path the same length as `mean`.
    """

    model: str
    made_at: float
    start: float
    step_s: float
    mean: tuple[float, ...]
    quantiles: Mapping[float, tuple[float, ...]] = field(default_factory=dict)
    failed: str | None = None  # set when the last fit failed; the policy then falls back


@dataclass(frozen=True, slots=True)
class Reason:
    """One step of the decision pipeline: a stable code, a sentence, and the numbers used."""

    code: str
    message: str
    values: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FractionalPlan:
    """`full` whole pods plus, when `partial` is set, one pod limited to that share (0..1)."""

    full: int
    partial: float | None = None

    @property
    def pods(self) -> int:
        return self.full + (1 if self.partial is not None else 0)


@dataclass(frozen=True, slots=True)
class ScalerState:
    """What the policy carries between calls (recommendation history, past scale events,
    burst state). Owned by the policy; callers store it and hand it back unchanged."""

    recommendations: tuple[tuple[float, int], ...] = ()  # (time, replicas) for windows
    scale_events: tuple[tuple[float, int], ...] = ()  # (time, delta) for rate policies
    trigger_since: Mapping[str, float] = field(default_factory=dict)  # trigger id -> first over
    burst_until: float | None = None  # burst lasts at least until this time
    burst_base: int | None = None  # replicas when the burst started


@dataclass(frozen=True, slots=True)
class Decision:
    """The policy's answer: the fractional need, the integer replicas, the plan, and why."""

    need: float
    replicas: int
    plan: FractionalPlan
    reasons: tuple[Reason, ...]
    state: ScalerState
    valid: bool = True  # False when nothing could be decided (the caller holds)
