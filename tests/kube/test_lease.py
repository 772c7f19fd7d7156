"""Leader election on a coordination.k8s.io/v1 Lease, over real HTTP against the emulator.

Short timings (lease 1 s, renew deadline 0.6 s, retry 0.1 s) keep these tests around a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from app.kube.lease import LeaderElector, LeaseElector, micro_time
from app.workers.leader import Leadership
from testkit.kube_emulator import MICRO_RE, KubeEmulator
from tests.kube.conftest import api_client, eventually

LEASE_S, DEADLINE_S, RETRY_S = 1.0, 0.6, 0.1


@dataclass
class Replica:
    """One replica of the service: its elector, running in its own task."""

    elector: LeaseElector
    api: Any
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.elector.run(self.stop))

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
async def replicas(kube: KubeEmulator) -> AsyncIterator[Callable[[str], Replica]]:
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
        )
        replica = Replica(elector, api)
        made.append(replica)
        return replica

    yield make
    for replica in made:
        await replica.crash()
        await replica.api.close()


def leaders(*replicas: Replica) -> list[str]:
    return [r.elector.identity for r in replicas if r.elector.is_leader]


async def watch_leaders(
    replicas: tuple[Replica, ...], until: Callable[[], bool], timeout_s: float
) -> list[list[str]]:
    """Sample who leads every 10 ms until `until()`; the samples show any overlap."""
    samples: list[list[str]] = []
    deadline = time.monotonic() + timeout_s
    while not until():
        samples.append(leaders(*replicas))
        if time.monotonic() > deadline:
            raise AssertionError(f"not done within {timeout_s} s; last: {samples[-1]}")
        await asyncio.sleep(0.01)
    return samples


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
    kube: KubeEmulator, replicas: Callable[[str], Replica]
) -> None:
    a, b = replicas("pod-a"), replicas("pod-b")
    a.start()
    await eventually(lambda: a.elector.is_leader)
    b.start()
    await asyncio.sleep(4 * RETRY_S)  # b tries several times while a renews
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
    first_renew = spec["renewTime"]
    await asyncio.sleep(2 * RETRY_S)
    renewed = kube.lease("ciuic-leader", namespace="ciuic")
    assert renewed is not None and renewed["spec"]["renewTime"] > first_renew
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
    kube: KubeEmulator, replicas: Callable[[str], Replica], how: str
) -> None:
    a, b = replicas("pod-a"), replicas("pod-b")
    a.start()
    await eventually(lambda: a.elector.is_leader)
    b.start()
    await asyncio.sleep(2 * RETRY_S)
    assert leaders(a, b) == ["pod-a"]

    started = time.monotonic()
    if how == "crash":
        await a.crash()
    elif how == "partition":
        # Every request of pod-a fails from now on; pod-b is unaffected.
        kube.fail(10_000, 503, agent="ciuic/pod-a")
    else:
        await a.shutdown()
    samples = await watch_leaders((a, b), lambda: b.elector.is_leader, timeout_s=3 * LEASE_S)
    took = time.monotonic() - started

    assert all(len(s) <= 1 for s in samples), "two leaders at once"
    lease = kube.lease("ciuic-leader", namespace="ciuic")
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == "pod-b"
    assert lease["spec"]["leaseTransitions"] == 1
    if how == "shutdown":
        assert took < LEASE_S / 2  # released: no wait for expiry
    else:
        # Not before the lease expired, and within the lease duration plus a retry or two.
        assert LEASE_S * 0.9 <= took <= LEASE_S + 4 * RETRY_S
    if how == "partition":
        assert not a.elector.is_leader and a.elector.following.is_set()


async def test_racing_candidates_for_a_missing_lease_one_wins(
    kube: KubeEmulator, replicas: Callable[[str], Replica]
) -> None:
    electors = [replicas(f"pod-{i}").elector for i in range(4)]
    won = await asyncio.gather(*(e.try_acquire() for e in electors))
    assert sum(won) == 1
    assert kube.count("create", "leases") >= 2  # the losers met 409 AlreadyExists


async def test_a_transient_renew_failure_is_tolerated_within_the_deadline(
    kube: KubeEmulator, replicas: Callable[[str], Replica]
) -> None:
    a = replicas("pod-a")
    assert await a.elector.try_acquire()
    kube.fail(2, 500, agent="ciuic/pod-a")  # the next renewal fails
    assert await a.elector.still_leader()  # well within the renew deadline: still leading
    assert await a.elector.still_leader()
    assert await a.elector.still_leader()  # and renewed again
    assert kube.lease("ciuic-leader", namespace="ciuic")["spec"]["holderIdentity"] == "pod-a"  # type: ignore[index]


async def test_leadership_runs_the_workers_only_on_the_lease_holder(
    kube: KubeEmulator, replicas: Callable[[str], Replica]
) -> None:
    """The workers' Leadership loop polls our elector like its database lock."""
    ran: dict[str, int] = {"pod-a": 0, "pod-b": 0}

    def workers_of(
        identity: str,
    ) -> Callable[[], dict[str, Callable[[asyncio.Event], Awaitable[None]]]]:
        async def work(stop: asyncio.Event) -> None:
            while not stop.is_set():
                ran[identity] += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.02)

        return lambda: {"work": work}

    a, b = replicas("pod-a"), replicas("pod-b")
    lead_a = Leadership(a.elector, workers_of("pod-a"), interval_s=RETRY_S)
    lead_b = Leadership(b.elector, workers_of("pod-b"), interval_s=RETRY_S)
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    task_a = asyncio.create_task(lead_a.run(stop_a))
    await eventually(lambda: lead_a.is_leader)
    task_b = asyncio.create_task(lead_b.run(stop_b))
    await asyncio.sleep(3 * RETRY_S)
    assert ran["pod-a"] > 0 and ran["pod-b"] == 0
    stop_a.set()  # a stops: it releases the Lease, b takes over and starts its workers
    await task_a
    await eventually(lambda: ran["pod-b"] > 0, timeout_s=2 * LEASE_S)
    stop_b.set()
    await task_b
