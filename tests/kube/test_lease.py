"""Leader election on a coordination.k8s.io/v1 Lease, over real HTTP against the emulator.

The electors run on one fake clock (lease 1 s, renew deadline 0.6 s, retry 0.1 s): time moves
only when a test jumps it to the next moment an elector acts, so who leads when, and how long a
takeover takes, are exact on any machine. The requests themselves are real.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from app.kube.lease import LeaderElector, LeaseElector, micro_time
from app.workers.leader import Leadership
from testkit.clock import FakeClock
from testkit.kube_emulator import MICRO_RE, KubeEmulator
from tests.kube.conftest import api_client

LEASE_S, DEADLINE_S, RETRY_S = 1.0, 0.6, 0.1


@dataclass
class Replica:
    """One replica of the service: its elector, running in its own task (named after it)."""

    elector: LeaseElector
    api: Any
    clock: FakeClock
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.elector.identity

    @property
    def alive(self) -> bool:
        """Running (a crashed replica's `is_leader` is whatever it was when it died)."""
        return self.task is not None and not self.task.done()

    async def start(self) -> None:
        """Run the elector until its first attempt is over."""
        mark = self.clock.mark()
        self.task = asyncio.create_task(self.elector.run(self.stop), name=self.name)
        await self.clock.waiting_again(self.name, since=mark)

    async def shutdown(self) -> None:
        """A clean stop: the run loop releases the Lease on its way out."""
        self.stop.set()
        if self.task is not None:
            await self.task

    async def crash(self) -> None:
        """The process dies: no release, no more renewals."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def replicas(kube: KubeEmulator, clock: FakeClock) -> AsyncIterator[Callable[[str], Replica]]:
    made: list[Replica] = []

    def make(identity: str) -> Replica:
        api = api_client(kube.url, agent=f"ciuic/{identity}")
        elector = LeaseElector(
            api,
            name="ciuic-leader",
            namespace="ciuic",
            identity=identity,
            lease_duration_s=LEASE_S,
            renew_deadline_s=DEADLINE_S,
            retry_period_s=RETRY_S,
            clock=clock,
        )
        replica = Replica(elector, api, clock)
        made.append(replica)
        return replica

    yield make
    for replica in made:
        await replica.crash()
        await replica.api.close()


def leaders(*replicas: Replica) -> list[str]:
    return [r.elector.identity for r in replicas if r.elector.is_leader]


async def until(
    clock: FakeClock, replicas: tuple[Replica, ...], done: Callable[[], bool], limit_s: float
) -> tuple[float, list[list[str]]]:
    """Jump from one elector's attempt to the next until `done()`: the fake seconds it took,
    and which live replicas led after each attempt (any overlap shows there)."""
    took, seen = 0.0, []
    running = tuple(r.name for r in replicas if clock.waiting(r.name) is not None)
    while not done():
        assert took <= limit_s, f"not done within {limit_s} s; leaders: {seen[-1:]}"
        took += await clock.jump(*(n for n in running if clock.waiting(n) is not None))
        seen.append(leaders(*(r for r in replicas if r.alive)))
    return took, seen


def test_the_lease_elector_fits_the_workers_protocol() -> None:
    elector: LeaderElector = LeaseElector(
        object(),
        name="l",
        namespace="n",
        identity="a",
        lease_duration_s=3,
        renew_deadline_s=2,
        retry_period_s=1,
    )
    assert not elector.is_leader  # type: ignore[attr-defined]


def test_micro_time_always_has_six_digits() -> None:
    assert micro_time(1_800_000_000.0) == "2027-01-15T08:00:00.000000Z"
    assert MICRO_RE.match(micro_time(1_800_000_000.25))


async def test_two_electors_one_leads_with_a_kubernetes_shaped_record(
    kube: KubeEmulator, clock: FakeClock, replicas: Callable[[str], Replica]
) -> None:
    a, b = replicas("pod-a"), replicas("pod-b")
    await a.start()
    assert a.elector.is_leader
    await b.start()
    for _ in range(4):  # b tries several times while a renews
        await clock.jump(a.name, b.name)
        assert leaders(a, b) == ["pod-a"]
    assert a.elector.leading.is_set() and not a.elector.following.is_set()
    assert b.elector.following.is_set() and b.elector.holder == "pod-a"
    lease = kube.lease("ciuic-leader", namespace="ciuic")
    assert lease is not None
    spec = lease["spec"]
    assert (spec["holderIdentity"], spec["leaseDurationSeconds"], spec["leaseTransitions"]) == (
        "pod-a",
        1,
        0,
    )
    assert MICRO_RE.match(spec["renewTime"]) and MICRO_RE.match(spec["acquireTime"])
    # a renews every retry period, on the clock: the record says when.
    await clock.step(RETRY_S, a.name)
    renewed = kube.lease("ciuic-leader", namespace="ciuic")
    assert renewed is not None and renewed["spec"]["renewTime"] == micro_time(clock.now())
    assert renewed["spec"]["renewTime"] > spec["renewTime"]
    assert renewed["spec"]["acquireTime"] == spec["acquireTime"]  # kept while renewing


@pytest.mark.parametrize(
    "how",
    [
        pytest.param("crash", id="leader-crashes-takeover-after-lease-duration"),
        pytest.param("partition", id="leader-cannot-renew-steps-down-first"),
        pytest.param("shutdown", id="clean-shutdown-releases-at-once"),
    ],
)
async def test_the_other_replica_takes_over_within_the_lease_duration(
    kube: KubeEmulator, clock: FakeClock, replicas: Callable[[str], Replica], how: str
) -> None:
    a, b = replicas("pod-a"), replicas("pod-b")
    await a.start()
    await b.start()
    for _ in range(2):
        await clock.jump(a.name, b.name)
    assert leaders(a, b) == ["pod-a"]

    if how == "crash":
        await a.crash()
    elif how == "partition":
        # Every request of pod-a fails from now on; pod-b is unaffected.
        kube.fail(10_000, 503, agent="ciuic/pod-a")
    else:
        await a.shutdown()
    took, seen = await until(clock, (a, b), lambda: b.elector.is_leader, limit_s=3 * LEASE_S)

    assert all(len(who) <= 1 for who in seen), f"two leaders at once: {seen}"
    lease = kube.lease("ciuic-leader", namespace="ciuic")
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == "pod-b"
    assert lease["spec"]["leaseTransitions"] == 1
    # b tries every retry period plus up to 20 % jitter.
    longest_retry = 1.2 * RETRY_S
    if how == "shutdown":
        assert took <= longest_retry  # released: b's next attempt takes it, no expiry
    else:
        # Not before the lease expired: b last saw a's renewal at most a retry period before
        # a fell silent. At the latest a lease duration after b's first attempt that follows
        # a's last renewal, then b's next attempt.
        assert LEASE_S - RETRY_S < took <= LEASE_S + 2 * longest_retry
    if how == "partition":
        assert not a.elector.is_leader and a.elector.following.is_set()
        # a stepped down once it had not renewed for the renew deadline, before b could lead.


async def test_racing_candidates_for_a_missing_lease_one_wins(
    kube: KubeEmulator, replicas: Callable[[str], Replica]
) -> None:
    electors = [replicas(f"pod-{i}").elector for i in range(4)]
    won = await asyncio.gather(*(e.try_acquire() for e in electors))
    assert sum(won) == 1
    assert kube.count("create", "leases") >= 2  # the losers met 409 AlreadyExists


async def test_a_transient_renew_failure_is_tolerated_within_the_deadline(
    kube: KubeEmulator, clock: FakeClock, replicas: Callable[[str], Replica]
) -> None:
    a = replicas("pod-a")
    assert await a.elector.try_acquire()
    kube.fail(2, 500, agent="ciuic/pod-a")  # the next two renewals fail
    for _ in range(3):
        clock.advance(RETRY_S)
        # failed at 0.1 s and 0.2 s, within the renew deadline: still leading; renewed at 0.3 s
        assert await a.elector.still_leader()
    assert kube.lease("ciuic-leader", namespace="ciuic")["spec"]["holderIdentity"] == "pod-a"  # type: ignore[index]
    kube.fail(100, 500, agent="ciuic/pod-a")  # from now on every renewal fails
    clock.advance(DEADLINE_S - RETRY_S)
    assert await a.elector.still_leader()  # 0.5 s without a renewal: within the deadline
    clock.advance(2 * RETRY_S)
    assert not await a.elector.still_leader()  # 0.7 s: past it, a steps down
    assert a.elector.following.is_set()


async def test_leadership_runs_the_workers_only_on_the_lease_holder(
    kube: KubeEmulator, clock: FakeClock, replicas: Callable[[str], Replica]
) -> None:
    """The workers' Leadership loop polls our elector like its database lock."""
    ran: dict[str, int] = {"pod-a": 0, "pod-b": 0}

    def workers_of(
        identity: str,
    ) -> Callable[[], dict[str, Callable[[asyncio.Event], Awaitable[None]]]]:
        async def work(stop: asyncio.Event) -> None:
            while not stop.is_set():
                ran[identity] += 1
                await clock.wait_for(stop, timeout_s=RETRY_S / 5)

        return lambda: {f"work-{identity}": work}

    a, b = replicas("pod-a"), replicas("pod-b")
    lead_a = Leadership(a.elector, workers_of("pod-a"), interval_s=RETRY_S, clock=clock)
    lead_b = Leadership(b.elector, workers_of("pod-b"), interval_s=RETRY_S, clock=clock)
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    task_a = asyncio.create_task(lead_a.run(stop_a), name="lead-a")
    await clock.waiting_again("lead-a", since=0)
    await clock.waiting_again("work-pod-a", since=0)
    assert lead_a.is_leader and ran == {"pod-a": 1, "pod-b": 0}
    mark = clock.mark()
    task_b = asyncio.create_task(lead_b.run(stop_b), name="lead-b")
    await clock.waiting_again("lead-b", since=mark)
    for _ in range(3):
        await clock.jump("lead-a", "lead-b", "work-pod-a")
    assert lead_a.is_leader and not lead_b.is_leader
    assert ran["pod-a"] > 1 and ran["pod-b"] == 0
    stop_a.set()  # a stops: it releases the Lease, b takes over and starts its workers
    await task_a
    mark = clock.mark()
    await clock.jump("lead-b")
    await clock.waiting_again("work-pod-b", since=mark)
    assert lead_b.is_leader and ran["pod-b"] == 1
    stop_b.set()
    await task_b


async def test_a_lease_refused_by_rbac_says_what_to_grant(
    kube: KubeEmulator, replicas: Callable[[str], Replica]
) -> None:
    """Without a leader nothing reconciles, so the reason must be somewhere: the elector's
    error (shown by /readyz) names the verb and resource to grant."""
    a = replicas("pod-a")
    kube.forbid("create", "leases")
    assert not await a.elector.try_acquire()
    assert a.elector.error is not None
    assert "lease ciuic/ciuic-leader: forbidden" in a.elector.error
    assert "may not create leases" in a.elector.error
    kube.allow("create", "leases")
    assert await a.elector.try_acquire()
    assert a.elector.error is None
