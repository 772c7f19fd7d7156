"""The simulated deployment: billing, cold starts, the queue, and BENCHMARK v2's rule that a
request stays on the pod that started it (least-busy routing, ReplicaSet deletion order, a
deleted pod billed until its own last request finishes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.sim.engine import ClusterView, ColdStarts, Scenario, initial_fleet, simulate
from app.sim.traces import Workload, workload_from_arrivals, workload_from_requests
from tests.sim.helpers import SC, Fixed, requests, run, step_load


@pytest.mark.parametrize(
    ("replicas", "initial"),
    [
        pytest.param(1, 1, id="starved-single-pod"),
        pytest.param(5, 5, id="tight"),
        pytest.param(40, 1, id="scale-up-from-one"),
        pytest.param(lambda t: 30 if (t // 300) % 2 else 2, 2, id="flapping"),
        pytest.param(lambda t: 3 + (t * 7919) % 29 if t % 20 == 0 else 12, 12, id="jittery"),
    ],
)
def test_conservation_and_billing(replicas: int | Callable[[int], int], initial: int) -> None:
    wl = step_load(5, 25, at=600, n=2400)
    res = run(wl, Fixed(replicas), initial=initial)
    # every request is served (started), dropped, or still queued at the end
    assert res.arrived == int(wl.arrivals.sum())
    assert res.arrived == res.served + res.dropped + res.queued_end
    assert sum(res.wait_hist) == res.served
    # every pod-second is billed: the per-pod ledger equals the per-second count
    assert res.pod_seconds_ledger == int(res.billed.sum())
    assert np.all(res.billed >= res.replicas) and np.all(res.replicas >= res.ready)
    # no pod holds more than its slots: busy slots fit in the pods that have been Ready
    draining = res.billed - res.replicas
    assert np.all(res.busy <= 8 * (res.ready + draining))


def test_request_log_flapping_keeps_the_ledger() -> None:
    rng = np.random.default_rng(3)
    per_second = {t: rng.integers(1, 90, size=rng.poisson(3)).tolist() for t in range(1800)}
    wl = workload_from_requests(per_second, 1800)
    res = run(wl, Fixed(lambda t: 25 if (t // 120) % 2 else 3), initial=3)
    assert res.arrived == res.served + res.dropped + res.queued_end
    assert res.pod_seconds_ledger == int(res.billed.sum())
    assert np.any(res.billed > res.replicas)  # deleted pods drained their own requests


def test_deterministic_per_seed_and_seed_changes_cold_starts() -> None:
    wl = step_load(2, 20, at=300, n=1800)
    a = run(wl, Fixed(lambda t: 1 if t < 300 else 30), seed=4, initial=1)
    b = run(wl, Fixed(lambda t: 1 if t < 300 else 30), seed=4, initial=1)
    c = run(wl, Fixed(lambda t: 1 if t < 300 else 30), seed=5, initial=1)
    assert np.array_equal(a.ready, b.ready) and a.dropped == b.dropped
    assert a.wait_hist == b.wait_hist
    assert not np.array_equal(a.ready, c.ready)


def test_cold_start_is_thirty_to_sixty_seconds() -> None:
    wl = workload_from_arrivals(np.zeros(400, dtype=np.int64))
    res = run(wl, Fixed(lambda t: 1 if t < 10 else 61), initial=1)
    # 60 pods created at t=10 (the decision at the end of second 9): Ready between 40 and 70
    became = np.diff(res.ready)
    times = np.repeat(np.arange(1, 400), np.maximum(became, 0))
    assert len(times) == 60
    assert times.min() >= 10 + 30 and times.max() <= 10 + 60
    assert np.all(res.billed[10:] == 61)  # starting pods cost money


def test_queue_timeout_drops_after_thirty_seconds() -> None:
    # one pod (8 slots, 16 s service) and a burst of 100 at t=0: 8 start at 0, 8 at 16,
    # 8 at 32 would have waited 32 s: dropped at 30 s instead.
    arr = np.zeros(200, dtype=np.int64)
    arr[0] = 100
    res = run(workload_from_arrivals(arr), Fixed(1), initial=1)
    assert res.served == 16
    assert res.dropped == 84
    assert res.wait_hist[0] == 8 and res.wait_hist[16] == 8


def test_fifo_waits_are_measured_from_arrival() -> None:
    arr = np.zeros(100, dtype=np.int64)
    arr[0], arr[5] = 8, 8
    res = run(workload_from_arrivals(arr, service_s=10), Fixed(1), initial=1)
    assert res.dropped == 0
    assert res.wait_hist[0] == 8 and res.wait_hist[5] == 8  # second cohort waits 10 - 5


def test_deleted_busy_pod_drains_and_stays_billed() -> None:
    arr = np.zeros(100, dtype=np.int64)
    arr[0] = 16  # fills two pods for 16 s
    res = run(workload_from_arrivals(arr), Fixed(lambda t: 2 if t < 5 else 1), initial=2)
    assert res.replicas[10] == 1
    assert res.billed[10] == 2  # the deleted pod finishes its own 8 requests
    assert res.billed[15] == 2 and res.billed[16] == 1  # and leaves when they end at 16
    assert res.dropped == 0 and res.served == 16
    assert res.pod_seconds_ledger == int(res.billed.sum())


def test_a_draining_pod_is_billed_until_its_own_last_request_ends_and_no_longer() -> None:
    # Two Ready pods. At 0, eight 16 s requests: four on each. At 10, two 16 s requests: one
    # on each (both pods hold 4: the least busy are equal, the oldest first, then the other).
    # At 12 one pod is deleted (the stack's top): it holds 4 requests ending at 16 and one
    # ending at 26. The pooled rule left at 16 (the other pod could hold the rest); a request
    # stays on its pod, so it is billed until 26, and not a second longer.
    arr = np.zeros(60, dtype=np.int64)
    arr[0], arr[10] = 8, 2
    res = run(workload_from_arrivals(arr), Fixed(lambda t: 2 if t < 12 else 1), initial=2)
    assert res.replicas[12] == 1
    assert np.all(res.billed[12:26] == 2)
    assert np.all(res.billed[26:] == 1)
    assert res.busy[20] == 2  # one request on each pod, draining one included
    assert res.pod_seconds_ledger == int(res.billed.sum())


def test_no_request_moves_between_pods() -> None:
    # Two Ready pods: a 5 s request starts on the older, a 60 s one on the newer, which is
    # then deleted (at 2). At 10 eight 10 s requests arrive: the remaining pod is idle, so all
    # eight start at once (pooled slots counted the long request against it: one waited). The
    # deleted pod keeps its long request, billed until it ends at 60.
    wl = requests(100, t0=[5, 60], t10=[10] * 8)
    res = run(wl, Fixed(lambda t: 2 if t < 2 else 1), initial=2)
    assert res.wait_hist[0] == 10 and sum(res.wait_hist) == 10
    assert res.busy[12] == 9  # eight on the kept pod + the long one on the deleted pod
    assert np.all(res.billed[2:60] == 2) and np.all(res.billed[60:] == 1)


def test_least_busy_routing_starts_a_request_on_the_pod_with_most_free_slots() -> None:
    # Three Ready pods. At 0 two 50 s requests go to the two oldest pods (one each); at 1 an
    # 80 s request goes to the idle third pod (most free slots), not to the oldest. Deleting
    # one pod at 3 takes that third pod (Ready most recently): billed until 81.
    wl = requests(200, t0=[50, 50], t1=[80])
    res = run(wl, Fixed(lambda t: 3 if t < 3 else 2), initial=3)
    assert np.all(res.billed[3:81] == 3)
    assert np.all(res.billed[81:] == 2)


def test_ties_go_to_the_pod_ready_longest() -> None:
    # Two idle Ready pods; one 40 s request goes to the older. Deleting a pod takes the newer,
    # which is idle: gone at once (billed 1 from the decision on).
    wl = requests(100, t0=[40])
    res = run(wl, Fixed(lambda t: 2 if t < 2 else 1), initial=2)
    assert res.billed[1] == 2 and np.all(res.billed[2:] == 1)
    assert res.busy[30] == 1


def test_deletion_order_starting_newest_first_then_most_recently_ready() -> None:
    sc = SC
    cold = ColdStarts(0, sc.cold_start_min_s, sc.cold_start_max_s)

    def want(now: int) -> int:
        if now < 100:
            return 1 if now < 5 else 2  # pod B created at 5
        if now < 110:
            return 3  # pod C created at 100
        if now < 120:
            return 4  # pod D created at 110
        if now < 300:
            return 3  # at 120: D (not Ready, newest) goes, C stays
        return 2  # at 300: everything is Ready; the most recently Ready of A, B, C goes

    wl = requests(600, t250=[5, 5, 5, 100, 100, 100])
    res = run(wl, Fixed(want), initial=1)
    b_ready = 5 + cold.at(5, 0)
    c_ready = 100 + cold.at(100, 0)
    assert res.ready[b_ready - 1] == 1 and res.ready[b_ready] == 2
    assert res.billed[119] == 4 and res.billed[120] == 3  # D deleted at 120
    assert res.ready[c_ready - 1] == 2 and res.ready[c_ready] == 3  # C became Ready anyway
    assert np.all(res.ready[c_ready:300] == 3)
    # at 250, six requests over three pods: A and B get a 5 s and a 100 s one, C (the newest)
    # a 5 s and a 100 s one as well; the routing puts the first three (5 s) one per pod, oldest
    # first, then the 100 s ones one per pod. C, deleted at 300, holds its 100 s request to 350.
    assert np.all(res.billed[300:350] == 3) and np.all(res.billed[350:] == 2)


def test_bounds_clamp_every_policy() -> None:
    sc = Scenario(min_replicas=2, max_replicas=5)
    wl = step_load(1, 50, at=100, n=600)
    res = run(wl, Fixed(lambda t: 0 if t < 100 else 500), sc=sc, initial=2)
    assert res.replicas.min() >= 2 and res.replicas.max() <= 5


def test_initial_fleet_comes_from_the_history_not_the_window() -> None:
    # 4 req/s before the window, 20 req/s in it: the deployment starts with what the history's
    # last rate needs (4 x 16 / 8 = 8 pods), whatever the window holds
    wl = workload_from_arrivals(
        np.full(300, 20), history_rate=np.array([3.0, np.nan, 4.0]), history_step_s=300
    )
    assert initial_fleet(wl, SC) == 8
    gap = workload_from_arrivals(np.full(300, 20), history_rate=np.array([4.0, np.nan]))
    assert initial_fleet(gap, SC) == 8  # the last known rate, past a gap
    # no history at all (a request log): what the first minute needs
    assert initial_fleet(workload_from_arrivals(np.full(300, 20)), SC) == 40


# -- the engine against a slow, obvious model of the same rules --------------------------------


@dataclass
class _Pod:
    created: int
    ends: list[int] = field(default_factory=list)


def _reference(wl: Workload, want: Callable[[int], int], sc: Scenario, seed: int, r0: int) -> dict:
    """Pod by pod and request by request: BENCHMARK v2's rules written as plainly as possible."""
    cold = ColdStarts(seed, sc.cold_start_min_s, sc.cold_start_max_s)
    ready = [_Pod(0) for _ in range(r0)]  # in Ready order (the last became Ready last)
    starting: list[tuple[int, int, int]] = []
    draining: list[_Pod] = []
    queue: list[tuple[int, int]] = []
    ledger = served = dropped = 0
    waits = [0] * (sc.queue_timeout_s + 1)
    out: dict[str, list[int]] = {k: [] for k in ("ready", "replicas", "billed", "busy", "queue")}
    for t in range(wl.duration_s):
        for s in sorted(x for x in starting if x[0] <= t):
            starting.remove(s)
            ready.append(_Pod(s[1]))
        for p in ready + draining:
            p.ends = [e for e in p.ends if e > t]
        for p in [p for p in draining if not p.ends]:
            draining.remove(p)
            ledger += t - p.created
        # the pods of second t: Ready ones added, drained ones gone, decisions of t - 1 in
        out["ready"].append(len(ready))
        out["replicas"].append(len(ready) + len(starting))
        out["billed"].append(len(ready) + len(starting) + len(draining))
        svcs = wl.services.get(t, ()) if wl.services else (wl.service_s,) * int(wl.arrivals[t])
        queue += [(t, s) for s in svcs]
        while queue:
            free = [(len(p.ends), i) for i, p in enumerate(ready) if len(p.ends) < sc.slots_per_pod]
            if not free:
                break
            _, i = min(free)  # most free slots; ties: the pod Ready longest
            arrived, svc = queue.pop(0)
            ready[i].ends.append(t + svc)
            waits[t - arrived] += 1
            served += 1
        while queue and queue[0][0] <= t - sc.queue_timeout_s:
            queue.pop(0)
            dropped += 1
        out["busy"].append(sum(len(p.ends) for p in ready + draining))
        out["queue"].append(len(queue))
        now = t + 1
        cur = len(ready) + len(starting)
        w = max(sc.min_replicas, min(sc.max_replicas, want(now)))
        if w > cur:
            starting += [(now + cold.at(now, j), now, j) for j in range(w - cur)]
        for _ in range(max(0, cur - w)):
            if starting:
                newest = max(starting, key=lambda s: s[1:])
                starting.remove(newest)
                ledger += now - newest[1]
                continue
            pod = ready.pop()
            if pod.ends:
                draining.append(pod)
            else:
                ledger += now - pod.created
    n = wl.duration_s
    ledger += sum(n - p.created for p in ready + draining) + sum(n - s[1] for s in starting)
    return {**out, "ledger": ledger, "served": served, "dropped": dropped, "waits": waits}


@st.composite
def _scenarios(draw: st.DrawFn) -> tuple[Workload, list[tuple[int, int]], int, int]:
    n = draw(st.integers(120, 400))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        rate = rng.uniform(0, 12) * (1 + np.sin(np.arange(n) / rng.uniform(10, 80)))
        wl = workload_from_arrivals(rng.poisson(rate), service_s=draw(st.integers(1, 30)))
    else:
        per = {
            t: rng.integers(1, 70, size=rng.poisson(rng.uniform(0, 4))).tolist() for t in range(n)
        }
        wl = workload_from_requests(per, n)
    changes = sorted(draw(st.lists(st.tuples(st.integers(0, n), st.integers(0, 14)), max_size=12)))
    return wl, changes, draw(st.integers(1, 8)), draw(st.integers(0, 5))


@settings(max_examples=60, deadline=None)
@given(_scenarios())
def test_the_engine_matches_a_pod_by_pod_model(
    case: tuple[Workload, list[tuple[int, int]], int, int],
) -> None:
    wl, changes, r0, seed = case
    sc = Scenario(max_replicas=14)

    def want(now: int) -> int:
        current = r0
        for at, r in changes:
            if at <= now:
                current = r
        return current

    res = run(wl, Fixed(want), seed=seed, initial=r0, sc=sc)
    ref = _reference(wl, want, sc, seed, r0)
    for key in ("ready", "replicas", "billed", "busy", "queue"):
        assert getattr(res, key).tolist() == ref[key], key
    assert (res.served, res.dropped) == (ref["served"], ref["dropped"])
    assert list(res.wait_hist) == ref["waits"]
    assert res.pod_seconds_ledger == ref["ledger"] == int(res.billed.sum())


class Waker:
    """Holds 2 pods and records when it was asked and what it saw (pushed samples)."""

    name = "waker"
    phase_s = 0
    period_s = 5

    def __init__(self, wakes: bool) -> None:
        self.wakes_on_push = wakes
        self.calls: list[tuple[int, int | None]] = []

    def decide(self, view: ClusterView) -> int:
        s = view.sample(pushed=True)
        self.calls.append((view.now, None if s is None else s.time))
        return 2


@pytest.mark.parametrize("wakes", [True, False], ids=["woken-by-the-push", "on-its-cadence"])
def test_a_queue_over_the_push_threshold_is_pushed_at_once_and_may_wake_the_policy(
    wakes: bool,
) -> None:
    """The agent pushes at once when a pod's queue reaches `push_on_queue` (5 waiting per
    pod), seen a second later; a policy that wakes on pushes (Ciuic's reconcile loop does)
    decides on it then, one that does not sees it at its next tick."""
    # 2 pods (16 slots) at 1 req/s of 16 s requests, then 8 req/s from t=103: the queue
    # passes 10 (5 a pod) within seconds of the step, between two periodic samples
    rate = np.where(np.arange(160) < 103, 1, 8).astype(np.float64)
    wl = workload_from_arrivals(np.full(160, 1) * (rate.astype(np.int64)), rate=rate)
    policy = Waker(wakes)
    res = simulate(wl, policy, scenario=SC, seed=0, initial_replicas=2)
    first_over = int(np.flatnonzero(res.queue >= 10)[0])
    assert 103 < first_over < 110 and first_over % SC.sample_period_s != 0
    pushed = [(now, seen) for now, seen in policy.calls if seen == first_over]
    if wakes:
        # decided at the end of the second the queue crossed: now = first_over + 1
        assert pushed[0][0] == first_over + SC.change_delay_s
    else:
        assert not pushed or pushed[0][0] % SC.sample_period_s == 1  # its own cadence
        assert all(now % SC.sample_period_s == 1 for now, _ in policy.calls)


def test_without_push_on_change_only_periodic_samples_are_seen() -> None:
    rate = np.where(np.arange(160) < 103, 1, 8).astype(np.float64)
    wl = workload_from_arrivals(rate.astype(np.int64), rate=rate)
    policy = Waker(True)
    simulate(wl, policy, scenario=replace(SC, push_on_queue=None), seed=0, initial_replicas=2)
    assert all(seen is None or seen % SC.sample_period_s == 0 for _, seen in policy.calls)
