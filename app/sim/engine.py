"""The simulated deployment: GPU pods, a FIFO queue with timeouts, billing, and the clock.

One tick is one second. Arrivals are aggregated per second; a count trace's requests are queued
as cohorts ``[arrival_second, count, service_s]`` (a request log's one by one), so a busy second
costs a few list operations whatever the request count.

Requests stay on their pod (docs/benchmark.md). A central FIFO queue feeds the pods; a request
starts on the Ready pod with the most free slots (ties: the pod Ready longest), runs to
completion there, and never moves. A pod chosen for deletion takes no new work and stays billed
until its own last request finishes. To keep per-second work small the pods are never visited
one by one:

- Ready pods form a stack in the order they became Ready; a pod's position is one bit, and the
  ReplicaSet deletes the most recently Ready pod first (the top), so positions never move.
- `levels[b]` is the bit mask of the accepting pods with `b` busy slots. Routing m requests is
  water-filling over those masks: move the whole lowest level up one (one OR), or, when fewer
  requests than pods remain, its m lowest bits (the oldest pods).
- The completion ring holds, per future second, the masks of the pods that finish one request
  each then (one mask per water-filling round) and the number of requests finishing (draining
  pods included); a finished mask moves its pods down one level, level by level.
- Deleting a Ready pod takes its bit out of the masks still pending: the seconds its requests
  finish become its own, and it leaves at the last of them.

Policies are called on their own cadence (`Autoscaler.period_s`), never every second unless they
ask to be, and see only what `ClusterView` shows them: pod-pushed samples every 5 s, visible 5 s
late (docs/benchmark.md), or the per-second concurrency a Knative activator would see.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from app.policy.coldstart import COLD_START_WINDOW, learned_cold_start
from app.sim.coldstarts import ColdStarts
from app.sim.traces import Workload
from app.sim.view import SCENARIOS, Autoscaler, ClusterView, Sample, Scenario

__all__ = [
    "SCENARIOS",
    "Autoscaler",
    "ClusterView",
    "ColdStarts",
    "Sample",
    "Scenario",
    "SimResult",
    "initial_fleet",
    "simulate",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def _next_call(policy: Autoscaler, now: int, period: int) -> int:
    """The second of the next call: `period` later, or sooner/later when the policy says when
    its answer can next change (`next_decision(now)`, the references' precomputed plans)."""
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
    ready: IntArray  # ready pods taking work, per second
    replicas: IntArray  # ready + starting pods (the deployment's replicas), per second
    billed: IntArray  # ready + starting + draining pods, per second
    busy: IntArray  # busy slots (draining pods included), per second
    queue: IntArray  # waiting requests, per second
    pod_seconds_ledger: int  # sum over pods of (deleted or gone - created)
    pods_created: int
    scale_actions: int
    decisions: int
    # Requests that arrived with no pod Ready (at zero, or waking from it): how long each
    # waited to start, and how many of them were dropped.
    first_wait_hist: tuple[int, ...] = ()
    first_dropped: int = 0
    # A request log's time to first token of each started request, in start order: its queue
    # wait (whole seconds, the tick) plus its prefill. Empty for a count trace (TTFT = wait).
    ttft_s: FloatArray = field(default_factory=lambda: np.zeros(0))


def initial_fleet(workload: Workload, scenario: Scenario) -> int:
    """The Ready pods the deployment has when the window opens, the same for every policy.

    With history (count traces): what the last known rate before the window needs,
    ceil(rate × service / slots), so the window's own load sizes nothing. Without history (a
    request log, a bare arrival series): what the window's first minute needs, the one exception
    to "nothing from the scored window" (the deployment was serving that load when the log
    began; no policy, the references included, could have launched pods before it).
    """
    sc = scenario
    hist = workload.history_rate
    known = hist[np.isfinite(hist)] if len(hist) else hist
    if len(known) and workload.service_s > 0:
        need = math.ceil(float(known[-1]) * workload.service_s / sc.slots_per_pod - 1e-9)
    else:
        first = workload.demand[: min(workload.duration_s, 60)]
        need = int(np.ceil(first.max() / sc.slots_per_pod)) if len(first) else sc.min_replicas
    return max(sc.min_replicas, min(sc.max_replicas, need))


def _lowest_bits(x: int, m: int) -> int:
    """The `m` lowest set bits of `x` (0 < m < popcount(x)): the m pods Ready longest.

    In C rather than a loop per bit: the binary digits split at the m-th '1' from the right
    give the position of the m-th lowest set bit."""
    s = bin(x)
    return x & ((2 << (len(s) - 1 - len(s.rsplit("1", m)[0]))) - 1)


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

    The deployment starts with `initial_replicas` Ready pods (default: `initial_fleet`).
    """
    sc = scenario
    slots = sc.slots_per_pod
    timeout = sc.queue_timeout_s
    n = workload.duration_s
    arrivals = workload.arrivals.tolist()
    services = workload.services
    prefills = workload.prefills
    fixed_svc = workload.service_s
    ring_size = workload.max_service_s + 2
    # per future second: masks of pods finishing one request each, and the requests finishing
    # (draining pods included); draining pods leaving then (their creation seconds)
    ring_masks: list[list[int]] = [[] for _ in range(ring_size)]
    ring_n = [0] * ring_size
    ring_drained = [0] * ring_size  # of ring_n, the requests on deleted pods
    leave_ring: list[list[int]] = [[] for _ in range(ring_size)]
    cold = ColdStarts(seed, sc.cold_start_min_s, sc.cold_start_max_s)
    view = ClusterView(sc, workload, cold)

    if initial_replicas is None:
        initial_replicas = initial_fleet(workload, sc)
    r0 = max(sc.min_replicas, min(sc.max_replicas, initial_replicas))

    # Ready pods taking work: a stack in Ready order, position i is bit i of the level masks
    ready_created: list[int] = [0] * r0  # creation second of the pod at each position
    levels = [0] * (slots + 1)  # levels[b]: mask of the accepting pods with b busy slots
    levels[0] = (1 << r0) - 1
    lo = 0  # the lowest level with a pod (while there is one)
    starting = view._starting  # (ready_at, created, index), sorted
    draining = 0  # deleted pods still finishing their own requests
    ledger = 0
    created_total = r0
    R = r0
    never = 1 << 62
    next_ready = never
    # the last pods' cold starts, learned as the live adapter learns them
    cold_recent: deque[float] = deque(maxlen=COLD_START_WINDOW)
    cold_learned: float | None = None  # learned from them, when the last one became Ready
    # pod counts change rarely: log (second, ready, replicas, billed) on change, expand later
    log: list[tuple[int, int, int, int]] = [(0, R, R, R)]

    queue: deque[list[int]] = deque()
    pre_queue: deque[float] = deque()  # a request log's queued prefills, in step with `queue`
    ttfts = array("d")  # a request log's TTFT per started request
    qlen = 0
    busy = 0  # slots in use on every pod
    ready_busy = 0  # slots in use on the accepting pods (free = slots * R - ready_busy)
    served = dropped = 0
    wait_hist = [0] * (timeout + 1)
    hist0 = 0  # requests started on arrival (the common case, kept out of the list)
    at_zero: set[int] = set()  # arrival seconds with no pod Ready (scale to zero)
    first_hist = [0] * (timeout + 1)
    first_dropped = 0

    def fill(m: int, b: int) -> tuple[list[int], int]:
        """Route m requests (m <= free slots) by water-filling from `b`, the lowest level with
        a pod: the masks of each round (every pod of a round takes one request), and the
        lowest level after."""
        rounds: list[int] = []
        while True:
            x = levels[b]
            k = x.bit_count()
            if m < k:
                take = _lowest_bits(x, m)
                levels[b] = x ^ take
                levels[b + 1] |= take
                rounds.append(take)
                return rounds, b
            levels[b] = 0
            b += 1
            levels[b] |= x
            rounds.append(x)
            m -= k
            if not m:
                return rounds, b

    rec_busy = view.busy
    rec_queue = view.queue

    samples = view._samples
    sp = sc.sample_period_s
    next_sample = 0
    push_on = sc.push_on_queue
    change_delay = max(1, sc.change_delay_s)
    pushed_q = 0.0  # waiting per pod in the last push
    wakes = bool(getattr(policy, "wakes_on_push", False))  # Ciuic's wake-up on a push
    cum_arrivals = np.concatenate(([0], np.cumsum(workload.arrivals))).tolist()
    period = max(1, policy.period_s)
    next_call = max(0, policy.phase_s)
    scale_actions = 0
    decisions = 0
    progress_every = max(1, n // 200)
    next_progress = 0 if progress is not None else never
    report = progress if progress is not None else (lambda _t, _n: None)

    for t in range(n):
        # 1. pods becoming Ready take the next positions of the stack
        if t >= next_ready:
            while starting and starting[0][0] <= t:
                ready_at, created, _j = starting.pop(0)
                cold_recent.append(float(ready_at - created))
                levels[0] |= 1 << R
                lo = 0
                ready_created.append(created)
                R += 1
            next_ready = starting[0][0] if starting else never
            cold_learned = learned_cold_start(cold_recent)
            log.append((t, R, R + len(starting), R + len(starting) + draining))
        # 2. completions: each finished mask moves its pods down one level
        k = t % ring_size
        done = ring_n[k]
        if done:
            busy -= done
            ring_n[k] = 0
            gone_n = ring_drained[k]
            if gone_n:
                ring_drained[k] = 0
            ready_busy -= done - gone_n
            masks = ring_masks[k]
            if masks:
                ring_masks[k] = []
                for mask in masks:
                    b = lo or 1  # its pods are busy, and none is below the lowest level
                    while mask:
                        y = levels[b] & mask
                        if y:
                            levels[b] ^= y
                            levels[b - 1] |= y
                            mask ^= y
                            if b == lo:
                                lo -= 1
                        b += 1
        # 3. draining pods whose last request just finished are gone
        gone = leave_ring[k] if draining else None
        if gone:
            leave_ring[k] = []
            for created in gone:
                ledger += t - created
            draining -= len(gone)
            log.append((t, R, R + len(starting), R + len(starting) + draining))
        free = slots * R - ready_busy
        # 4. arrivals: straight onto pods when nobody waits, else queued
        a = arrivals[t]
        if a:
            if not R:
                at_zero.add(t)
            if services:
                for s in services[t]:
                    queue.append([t, 1, s])
                pre = prefills.get(t)
                pre_queue.extend(pre if pre is not None else (0.0,) * a)
                qlen += a
            elif not qlen and a <= free:
                slot = (t + fixed_svc) % ring_size
                done_masks = ring_masks[slot]
                # `fill(a, lo)` inline (the hot path): whole levels up, then the oldest pods
                b = lo
                m = a
                while True:
                    x = levels[b]
                    k = x.bit_count()
                    if m < k:
                        if m == 1:
                            take = x & -x  # the oldest pod of the level
                        else:
                            d = bin(x)  # `_lowest_bits(x, m)`
                            take = x & ((2 << (len(d) - 1 - len(d.rsplit("1", m)[0]))) - 1)
                        levels[b] = x ^ take
                        levels[b + 1] |= take
                        done_masks.append(take)
                        break
                    levels[b] = 0
                    b += 1
                    levels[b] |= x
                    done_masks.append(x)
                    m -= k
                    if not m:
                        break
                lo = b
                ring_n[slot] += a
                busy += a
                ready_busy += a
                free -= a
                served += a
                hist0 += a
            else:
                queue.append([t, a, fixed_svc])
                qlen += a
        # 5. start queued work, FIFO
        if qlen and free > 0:
            if services:
                svcs: list[int] = []
                while free > 0 and queue:
                    head = queue.popleft()
                    svcs.append(head[2])
                    wait_hist[t - head[0]] += 1
                    if at_zero and head[0] in at_zero:
                        first_hist[t - head[0]] += 1
                    ttfts.append(t - head[0] + pre_queue.popleft())
                    free -= 1
                m = len(svcs)
                j = 0
                rounds, lo = fill(m, lo)
                for x in rounds:
                    while x:
                        low = x & -x
                        x ^= low
                        slot = (t + svcs[j]) % ring_size
                        ring_masks[slot].append(low)
                        ring_n[slot] += 1
                        j += 1
            else:
                m = 0
                while free > 0 and queue:
                    head = queue[0]
                    c = head[1]
                    if c > free:
                        c = free
                        head[1] -= c
                    else:
                        queue.popleft()
                    free -= c
                    m += c
                    wait_hist[t - head[0]] += c
                    if at_zero and head[0] in at_zero:
                        first_hist[t - head[0]] += c
                slot = (t + fixed_svc) % ring_size
                rounds, lo = fill(m, lo)
                ring_masks[slot].extend(rounds)
                ring_n[slot] += m
            qlen -= m
            busy += m
            ready_busy += m
            served += m
        # 6. timeouts: whatever has waited `timeout` s without starting is dropped
        if queue:
            while queue and queue[0][0] <= t - timeout:
                head = queue.popleft()
                c = head[1]
                qlen -= c
                dropped += c
                if at_zero and head[0] in at_zero:
                    first_dropped += c
                if services:
                    pre_queue.popleft()
        # 7. record
        rec_busy.append(busy)
        rec_queue.append(qlen)
        # 8. pods push metrics: every sample period, and at once when a pod's queue reaches
        #    the push-on-change threshold (or doubles since its last push)
        periodic = t == next_sample
        # with no pod Ready, what holds the requests (a gateway, the SDK's hold proxy)
        # pushes its queue at once whenever it grows
        changed = (
            push_on is not None
            and not periodic
            and (qlen >= push_on * R and qlen > pushed_q * R if R else qlen > pushed_q)
        )
        if periodic or changed:
            if R:
                hi = slots
                while not levels[hi]:
                    hi -= 1
                util: float | None = 100.0 * ready_busy / (slots * R)
                util_max: float | None = 100.0 * hi / slots
                util_min: float | None = 100.0 * lo / slots
            else:
                util = util_max = util_min = None
            rate = (cum_arrivals[t + 1] - cum_arrivals[max(0, t + 1 - sp)]) / sp
            # positional, in field order: time, utilisation, queue, arrival rate, ready,
            # starting, busy, busiest pod, idlest pod
            snap = Sample(t, util, qlen, rate, R, len(starting), busy, util_max, util_min)
            pushed_q = qlen / R if R else float(qlen)
            if periodic:
                samples.append(snap)
                next_sample += sp
            else:
                view.change = snap
                if wakes and t + change_delay - 1 < next_call:
                    next_call = max(t, t + change_delay - 1)
        # 9. the policy, on its own cadence (it acts at the end of second t)
        if t == next_call:
            nstart = len(starting)
            cur = R + nstart
            now = t + 1
            view.now = now
            view.replicas = cur
            view.ready = R
            if cold_learned is not None:
                view.cold_start_s = cold_learned
            want = policy.decide(view)
            next_call = _next_call(policy, t, period)
            decisions += 1
            want = max(sc.min_replicas, min(sc.max_replicas, int(want)))
            if want != cur:
                scale_actions += 1
                if want > cur:
                    for j in range(want - cur):
                        starting.append((now + cold.at(now, j), now, j))
                        created_total += 1
                    starting.sort()
                    next_ready = starting[0][0]
                else:
                    drop_n = cur - want
                    # ReplicaSet order: pods not Ready yet first, the newest first ...
                    while drop_n and starting:
                        newest = max(range(len(starting)), key=lambda i: starting[i][1:])
                        ledger += now - starting.pop(newest)[1]
                        drop_n -= 1
                    next_ready = starting[0][0] if starting else never
                    # ... then the Ready pods that became Ready most recently (the stack's top)
                    for _ in range(drop_n):
                        R -= 1
                        bit = 1 << R
                        level = lo
                        while not levels[level] & bit:
                            level += 1
                        levels[level] ^= bit
                        while R and not levels[lo]:
                            lo += 1  # it was the last pod of the lowest level
                        created = ready_created.pop()
                        if not level:
                            ledger += now - created  # idle: gone at once
                            continue
                        # its requests stay: detach them from the pending masks; it is
                        # gone when the last of them finishes
                        ready_busy -= level
                        left = level
                        last = now
                        for sec in range(now, now + ring_size):
                            slot = sec % ring_size
                            masks = ring_masks[slot]
                            hits = 0
                            for i, mask in enumerate(masks):
                                if mask & bit:
                                    masks[i] = mask ^ bit
                                    hits += 1
                            if hits:
                                ring_drained[slot] += hits
                                left -= hits
                                last = sec
                                masks[:] = [x for x in masks if x]
                                if not left:
                                    break
                        leave_ring[last % ring_size].append(created)
                        draining += 1
                log.append((now, R, R + len(starting), R + len(starting) + draining))
        if t == next_progress:
            next_progress += progress_every
            report(t, n)

    ledger += sum(n - c for c in ready_created)
    ledger += sum(n - s[1] for s in starting)
    ledger += sum(n - c for gone in leave_ring for c in gone)
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
        first_wait_hist=tuple(first_hist),
        first_dropped=first_dropped,
        ttft_s=np.frombuffer(ttfts, dtype=np.float64).copy(),
    )
