"""The simulated deployment: GPU pods, a FIFO queue with timeouts, billing, and the clock.

One tick is one second. Arrivals are aggregated per second and queued as cohorts
``[arrival_second, count, service_s]``, so a busy second costs a few list operations whatever the
request count; completions are kept in a ring buffer indexed by second. Slots are pooled over the
ready pods (a least-busy router), which is what makes per-second work O(1). A deleted ready pod
drains: it takes no new work and stays billed while the deployment still has more requests in
flight than the remaining ready pods hold.

Policies are called on their own cadence (`Autoscaler.period_s`), never every second unless they
ask to be, and see only what `ClusterView` shows them: pod-pushed samples every 5 s, visible 5 s
late (BENCHMARK.md), or the per-second concurrency a Knative activator would see.
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from app.sim.traces import Workload

__all__ = [
    "Autoscaler",
    "ClusterView",
    "ColdStarts",
    "Sample",
    "Scenario",
    "SimResult",
    "simulate",
]

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Scenario:
    """The deployment being simulated (BENCHMARK.md scenario `deepseek-7b` by default)."""

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
    target_pods_at_p99: float = 40.0
    replay_copies: int = 4


SCENARIOS: dict[str, Scenario] = {"deepseek-7b": Scenario()}


@dataclass(frozen=True, slots=True)
class Sample:
    """What the pods pushed at `time` (aggregated over the ready pods)."""

    time: int
    gpu_utilization: float | None  # percent 0..100, mean over ready pods; None with no pod
    queue: int  # requests waiting for a slot
    arrival_rate: float  # requests/s over the sample period
    ready: int
    starting: int
    busy: int  # slots in use


class ClusterView:
    """The read-only window a policy gets on the cluster. Updated in place by the engine (no
    allocation per call); policies must not keep references to its lists."""

    __slots__ = (
        "_samples",
        "_starting",
        "busy",
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
        self._starting: list[tuple[int, int]] = []  # the engine's (ready_at, created) list
        self.cold_start_s: float | None = None  # mean measured creation -> Ready so far
        self.busy: array[int] = array("q")  # busy slots per second, seconds 0..now-1
        self.queue: array[int] = array("q")  # waiting requests per second, 0..now-1
        self.min_replicas = scenario.min_replicas
        self.max_replicas = scenario.max_replicas
        self._samples: list[Sample] = []
        self.cold_starts = cold_starts

    @property
    def starting(self) -> int:
        return len(self._starting)

    @property
    def starting_ready_at(self) -> list[int]:
        """When each starting pod will be Ready (seconds)."""
        return [ra for ra, _ in self._starting]

    def sample(self, period_s: int | None = None) -> Sample | None:
        """The newest sample visible now (taken at least `metric_delay_s` ago), restricted to
        sample times that are multiples of `period_s` (HPA sees one every 15 s)."""
        visible_at = self.now - self.scenario.metric_delay_s
        step = self.scenario.sample_period_s
        if visible_at < 0 or not self._samples:
            return None
        idx = min(len(self._samples) - 1, visible_at // step)
        if period_s is not None and period_s > step:
            every = period_s // step
            idx -= idx % every
        s = self._samples[idx]
        return s if s.time <= visible_at else None


class Autoscaler(Protocol):
    """A scaling policy under test: called every `period_s` seconds (first at `phase_s`),
    returns the replicas it wants."""

    name: str
    period_s: int
    phase_s: int

    def decide(self, view: ClusterView) -> int: ...


def _next_call(policy: Autoscaler, now: int, period: int) -> int:
    """The second of the next call: `period` later, or sooner/later when the policy says when
    its answer can next change (`next_decision(now)`, the oracle's precomputed plan)."""
    hint = getattr(policy, "next_decision", None)
    if hint is None:
        return now + period
    nxt: int = hint(now)
    return max(now + 1, nxt)


@dataclass(frozen=True, slots=True)
class SimResult:
    """Everything measured in one run, per second where it is a series."""

    policy: str
    scenario: Scenario
    workload: Workload
    arrived: int
    served: int  # started (in flight at the end counts as served)
    dropped: int
    queued_end: int
    wait_hist: tuple[int, ...]  # wait_hist[w] = requests started after waiting w seconds
    ready: IntArray  # ready pods, per second
    replicas: IntArray  # ready + starting pods (the deployment's replicas), per second
    billed: IntArray  # ready + starting + draining pods, per second
    busy: IntArray  # busy slots, per second
    queue: IntArray  # waiting requests, per second
    pod_seconds_ledger: int  # sum over pods of (deleted - created)
    pods_created: int
    scale_actions: int
    decisions: int


_MASK = (1 << 64) - 1


def _mix(x: int) -> int:
    """splitmix64's finaliser: a fixed bijection that scatters nearby keys."""
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _MASK
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _MASK
    return x ^ (x >> 31)


class ColdStarts:
    """Cold starts keyed by (creation second, index within that second) and the seed.

    Every policy that creates its j-th pod of second s gets the same cold start (common random
    numbers, so policies differ by their decisions, not their luck), and the oracle can know a
    pod's cold start before it launches it. Uniform on [lo, hi], whole seconds.
    """

    def __init__(self, seed: int, lo: float, hi: float) -> None:
        self._key = _mix((seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & _MASK)
        self.lo, self.hi = lo, hi

    def at(self, second: int, index: int) -> int:
        u = _mix(self._key ^ _mix((second << 8 | (index & 0xFF)) & _MASK)) >> 11
        return round(self.lo + (self.hi - self.lo) * u / (1 << 53))

    def first_of_each_second(self, n: int) -> npt.NDArray[np.int64]:
        """`at(s, 0)` for s in 0..n-1, vectorised (the oracle's plan); equal to the scalar."""
        x = np.arange(n, dtype=np.uint64) << np.uint64(8)
        u = _mix_array(np.uint64(self._key) ^ _mix_array(x)) >> np.uint64(11)
        f = u.astype(np.float64) / float(1 << 53)
        return np.rint(self.lo + (self.hi - self.lo) * f).astype(np.int64)


def _mix_array(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """`_mix` on arrays (uint64 arithmetic wraps like the masked scalar version)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    out: npt.NDArray[np.uint64] = x ^ (x >> np.uint64(31))
    return out


def simulate(
    workload: Workload,
    policy: Autoscaler,
    *,
    scenario: Scenario,
    seed: int,
    initial_replicas: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SimResult:
    """Replay `workload` against `policy`. Deterministic for a given seed.

    The deployment starts with `initial_replicas` ready pods (default: what the first minute's
    demand needs, so no policy is scored on an artificial cold start of the whole fleet).
    """
    sc = scenario
    slots = sc.slots_per_pod
    timeout = sc.queue_timeout_s
    n = workload.duration_s
    arrivals = workload.arrivals.tolist()
    services = workload.services
    fixed_svc = workload.service_s
    ring_size = workload.max_service_s + 2
    ring = [0] * ring_size
    cold = ColdStarts(seed, sc.cold_start_min_s, sc.cold_start_max_s)
    view = ClusterView(sc, workload, cold)

    if initial_replicas is None:
        first = workload.demand[: min(n, 60)]
        initial_replicas = int(np.ceil(first.max() / slots)) if len(first) else sc.min_replicas
    r0 = max(sc.min_replicas, min(sc.max_replicas, initial_replicas))

    # Pods: ready pods are identical to the router, so only their creation times matter
    # for billing; starting pods keep (ready_at, created).
    ready_created: list[int] = [0] * r0  # creation second of each ready pod (stack: newest last)
    starting: list[tuple[int, int]] = view._starting  # (ready_at, created), sorted by ready_at
    draining: list[int] = []  # creation seconds of deleted pods still finishing work
    ledger = 0
    created_total = r0
    R = r0
    never = 1 << 62
    next_ready = never
    cold_sum = cold_n = 0
    # pod counts change rarely: log (second, ready, replicas, billed) on change, expand later
    log: list[tuple[int, int, int, int]] = [(0, R, R, R)]

    queue: deque[list[int]] = deque()
    qlen = 0
    busy = 0
    served = dropped = 0
    wait_hist = [0] * (timeout + 1)
    hist0 = 0  # requests started on arrival (the common case, kept out of the list)

    rec_busy = view.busy
    rec_queue = view.queue

    samples = view._samples
    sp = sc.sample_period_s
    next_sample = 0
    cum_arrivals = np.concatenate(([0], np.cumsum(workload.arrivals))).tolist()
    period = max(1, policy.period_s)
    next_call = max(0, policy.phase_s)
    scale_actions = 0
    decisions = 0
    progress_every = max(1, n // 200)
    next_progress = 0 if progress is not None else never
    report = progress if progress is not None else (lambda _t, _n: None)

    for t in range(n):
        # 1. pods becoming ready
        if t >= next_ready:
            while starting and starting[0][0] <= t:
                ready_at, created = starting.pop(0)
                cold_sum += ready_at - created
                cold_n += 1
                ready_created.append(created)
                R += 1
            next_ready = starting[0][0] if starting else never
            log.append((t, R, R + len(starting), R + len(starting) + len(draining)))
        cap = R * slots
        # 2. completions
        k = t % ring_size
        f = ring[k]
        if f:
            busy -= f
            ring[k] = 0
        # 3. arrivals: straight into free slots when nobody waits, else queued as a cohort
        a = arrivals[t]
        if a:
            if services:
                for s in services[t]:
                    queue.append([t, 1, s])
                qlen += a
            elif not qlen and busy + a <= cap:
                busy += a
                served += a
                hist0 += a
                ring[(t + fixed_svc) % ring_size] += a
            else:
                queue.append([t, a, fixed_svc])
                qlen += a
        # 4. start queued work, FIFO
        if qlen and busy < cap:
            free = cap - busy
            while free > 0 and queue:
                head = queue[0]
                m = head[1]
                if m > free:
                    m = free
                    head[1] -= m
                else:
                    queue.popleft()
                free -= m
                qlen -= m
                busy += m
                served += m
                wait_hist[t - head[0]] += m
                ring[(t + head[2]) % ring_size] += m
            # 5. timeouts: whatever has waited `timeout` s without starting is dropped
        if queue:
            while queue and queue[0][0] <= t - timeout:
                m = queue.popleft()[1]
                qlen -= m
                dropped += m
        # 6. draining pods leave once the ready pods hold all work in flight
        if draining:
            need = -(-(busy - cap) // slots) if busy > cap else 0
            if len(draining) > need:
                while len(draining) > need:
                    ledger += t - draining.pop()
                log.append((t, R, R + len(starting), R + len(starting) + len(draining)))
        # 7. record
        rec_busy.append(busy)
        rec_queue.append(qlen)
        # 8. pods push metrics
        if t == next_sample:
            samples.append(
                Sample(
                    time=t,
                    gpu_utilization=(100.0 * min(busy, cap) / cap) if cap else None,
                    queue=qlen,
                    arrival_rate=(cum_arrivals[t + 1] - cum_arrivals[max(0, t + 1 - sp)]) / sp,
                    ready=R,
                    starting=len(starting),
                    busy=busy,
                )
            )
            next_sample += sp
        # 9. the policy, on its own cadence (it acts at the end of second t)
        if t == next_call:
            nstart = len(starting)
            cur = R + nstart
            now = t + 1
            view.now = now
            view.replicas = cur
            view.ready = R
            if cold_n:
                view.cold_start_s = cold_sum / cold_n
            want = policy.decide(view)
            next_call = _next_call(policy, t, period)
            decisions += 1
            want = max(sc.min_replicas, min(sc.max_replicas, int(want)))
            if want != cur:
                scale_actions += 1
                if want > cur:
                    for j in range(want - cur):
                        starting.append((now + cold.at(now, j), now))
                        created_total += 1
                    starting.sort()
                    next_ready = starting[0][0]
                else:
                    drop_n = cur - want
                    # Kubernetes deletes not-ready pods first, newest first.
                    while drop_n and starting:
                        newest = max(range(len(starting)), key=lambda i: starting[i][1])
                        ledger += now - starting.pop(newest)[1]
                        drop_n -= 1
                    next_ready = starting[0][0] if starting else never
                    for _ in range(drop_n):
                        draining.append(ready_created.pop())
                        R -= 1
                    if draining:
                        # idle slots mean some of those pods hold no work: gone at once
                        need = -(-(busy - R * slots) // slots) if busy > R * slots else 0
                        while len(draining) > need:
                            ledger += now - draining.pop()
                log.append((now, R, R + len(starting), R + len(starting) + len(draining)))
        if t == next_progress:
            next_progress += progress_every
            report(t, n)

    ledger += sum(n - c for c in ready_created)
    ledger += sum(n - c for _, c in starting)
    ledger += sum(n - c for c in draining)
    if progress is not None:
        progress(n, n)
    log_t = np.array([e[0] for e in log], dtype=np.int64)
    log_v = np.array([e[1:] for e in log], dtype=np.int64)
    counts = log_v[np.searchsorted(log_t, np.arange(n), side="right") - 1]
    return SimResult(
        policy=policy.name,
        scenario=sc,
        workload=workload,
        arrived=int(cum_arrivals[-1]),
        served=served,
        dropped=dropped,
        queued_end=qlen,
        wait_hist=(wait_hist[0] + hist0, *wait_hist[1:]),
        ready=counts[:, 0].copy(),
        replicas=counts[:, 1].copy(),
        billed=counts[:, 2].copy(),
        busy=np.frombuffer(rec_busy, dtype=np.int64).copy(),
        queue=np.frombuffer(rec_queue, dtype=np.int64).copy(),
        pod_seconds_ledger=ledger,
        pods_created=created_total,
        scale_actions=scale_actions,
        decisions=decisions,
    )
