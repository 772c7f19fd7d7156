"""What a policy under test is given: the scenario it runs in, the samples the pods push, the
read-only `ClusterView` the engine updates in place, and the `Autoscaler` protocol it answers.

Kept apart from the engine (app/sim/engine.py) so a policy's author reads only this.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from app.sim.coldstarts import ColdStarts
from app.sim.traces import Workload

__all__ = ["SCENARIOS", "Autoscaler", "ClusterView", "Sample", "Scenario"]


@dataclass(frozen=True, slots=True)
class Scenario:
    """The deployment being simulated (docs/benchmark.md scenario `deepseek-7b` by default)."""

    name: str = "deepseek-7b"
    price_per_pod_hour: float = 1.50
    cold_start_min_s: float = 30.0
    cold_start_max_s: float = 60.0
    slots_per_pod: int = 8
    count_service_s: float = 16.0
    queue_timeout_s: int = 30
    min_replicas: int = 1
    max_replicas: int = 80
    sample_period_s: int = 5
    metric_delay_s: int = 5
    # The agent's push on change: a pod whose waiting queue is at or over this (per pod) and
    # longer than at its last push pushes at once (at most once a second), seen
    # `change_delay_s` later, besides its periodic push. None: periodic pushes only.
    push_on_queue: float | None = 5.0
    change_delay_s: int = 1
    target_pods_at_p99: float = 40.0
    replay_copies: int = 4
    # The latency objective every policy's report is scored against (TTFT p95), and the
    # prefill rate that turns a request log's ContextTokens into the TTFT after the queue
    # (5000 tokens/s: the service model's 0.0002 s per context token).
    ttft_objective_s: float = 2.0
    prefill_tokens_per_s: float = 5000.0


SCENARIOS: dict[str, Scenario] = {"deepseek-7b": Scenario()}


class Sample(NamedTuple):
    """What the pods pushed at `time` (aggregated over the Ready pods that take work). A named
    tuple: the engine makes one every 5 simulated seconds, and a tuple is built in a tenth of
    a frozen dataclass's time."""

    time: int
    gpu_utilization: float | None  # percent 0..100, mean over ready pods; None with no pod
    queue: int  # requests waiting for a slot
    arrival_rate: float  # requests/s over the sample period
    ready: int
    starting: int
    busy: int  # slots in use, draining pods included
    # the busiest and the idlest Ready pod (percent), for a `max` or `min` aggregation
    gpu_utilization_max: float | None = None
    gpu_utilization_min: float | None = None


class ClusterView:
    """The read-only window a policy gets on the cluster. Updated in place by the engine (no
    allocation per call); policies must not keep references to its lists."""

    __slots__ = (
        "_samples",
        "_starting",
        "busy",
        "change",
        "cold_start_s",
        "cold_starts",
        "max_replicas",
        "min_replicas",
        "now",
        "queue",
        "ready",
        "replicas",
        "scenario",
        "workload",
    )

    def __init__(self, scenario: Scenario, workload: Workload, cold_starts: ColdStarts) -> None:
        self.scenario = scenario
        self.workload = workload
        self.now = 0
        self.replicas = 0
        self.ready = 0
        # the engine's starting pods: (ready_at, created, index within the creation second)
        self._starting: list[tuple[int, int, int]] = []
        self.cold_start_s: float | None = None  # learned as the live adapter learns it
        self.busy: array[int] = array("q")  # busy slots per second, seconds 0..now-1
        self.queue: array[int] = array("q")  # waiting requests per second, 0..now-1
        self.min_replicas = scenario.min_replicas
        self.max_replicas = scenario.max_replicas
        self._samples: list[Sample] = []
        self.change: Sample | None = None  # the latest push on change (Scenario.push_on_queue)
        self.cold_starts = cold_starts

    @property
    def starting(self) -> int:
        return len(self._starting)

    @property
    def starting_ready_at(self) -> list[int]:
        """When each starting pod will be Ready (seconds)."""
        return [s[0] for s in self._starting]

    def sample(self, period_s: int | None = None, *, pushed: bool = False) -> Sample | None:
        """The newest sample visible now (taken at least `metric_delay_s` ago), restricted to
        sample times that are multiples of `period_s` (HPA sees one every 15 s). `pushed`: as
        Ciuic's store has them, a push on change (`Scenario.push_on_queue`) included when it
        is newer."""
        visible_at = self.now - self.scenario.metric_delay_s
        step = self.scenario.sample_period_s
        found: Sample | None = None
        if visible_at >= 0 and self._samples:
            idx = min(len(self._samples) - 1, visible_at // step)
            if period_s is not None and period_s > step:
                every = period_s // step
                idx -= idx % every
            s = self._samples[idx]
            found = s if s.time <= visible_at else None
        if pushed and self.change is not None:
            change = self.change
            seen = change.time <= self.now - self.scenario.change_delay_s
            if seen and (found is None or change.time > found.time):
                return change
        return found


class Autoscaler(Protocol):
    """A scaling policy under test: called every `period_s` seconds (first at `phase_s`),
    returns the replicas it wants."""

    name: str
    period_s: int
    phase_s: int

    def decide(self, view: ClusterView) -> int: ...
