"""Fault: the Kubernetes API fails while a scaler is being reconciled.

The reconciler runs against the store (SQLite) and our real adapter (kubernetes-asyncio over
HTTP) talking to the API emulator, which injects 5xx, 409 conflicts, timeouts and dropped or
stalled watches in the middle of a run of decisions. One scenario, phase by phase; after each
tick it checks the Deployment (its replicas and its `metadata.generation`, which the API
server bumps once per applied change), the scale PATCHes the emulator saw, and the scaler's
status and events. What must hold over the whole run:

- transient errors (5xx, timeouts) are retried with backoff inside one call; a 409 re-reads
  and retries; errors that outlast the retries are on the status, and cleared by the next
  successful tick;
- the Deployment goes through exactly the counts decided, each applied once: no duplicate
  and no lost scaling action, even when a timed-out PATCH is applied late by the server;
- a watch dropped or stalled (410 on resume) does not leave the reconciler on a stale count
  for longer than the relist.

The adapter's side of each fault is proven in detail in tests/kube/test_cluster.py
(`test_server_errors_and_timeouts_are_retried_then_reported`, `test_conflict_on_patch_*`,
`test_watch_restarts_after_410_gone_*`, `test_dropped_watch_resumes_*`); the service with a
kubeconfig, leader Lease and 404/403 on the status on a real control plane in tests/e2e/.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from itertools import pairwise
from typing import Any

import pytest

from app.kube.adapter import KubernetesCluster
from app.kube.calls import RetryPolicy
from app.policy.spec import TargetRef
from app.store import scalers as store
from app.store.db import Database
from app.store.series import SampleRow, SeriesKey, SeriesStore
from app.workers.reconciler import reconcile_once
from testkit.clock import FakeClock
from testkit.kube_emulator import KubeEmulator
from tests.conftest import truncate_all
from tests.kube.conftest import api_client

NAME = "deepseek-service"
TARGET = TargetRef(name=NAME)
T0 = 1_800_000_000.0
RETRY = RetryPolicy(attempts=3, backoff_s=0.05, max_backoff_s=0.2, timeout_s=0.5)
SPEC: dict[str, Any] = {
    "target": NAME,
    "scaler": "reactive",
    # A total over pods (KEDA's AverageValue): the need is exactly queue / 5, whatever the pods.
    "metrics": [{"name": "request_queue", "target": "<5", "aggregation": "sum"}],
    "min_replicas": 1,
    "max_replicas": 10,
    "reactive": {"window": "1s"},  # each tick decides on its own reading (20 s apart)
    "behavior": {  # no stabilisation and no rate limit: every tick does what it is told
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "policies": [{"type": "Pods", "value": 100, "periodSeconds": 1}],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": 0,
            "policies": [{"type": "Pods", "value": 100, "periodSeconds": 1}],
        },
    },
}


@pytest.fixture
async def db(sqlite_url: str) -> AsyncIterator[Database]:
    await truncate_all(sqlite_url)
    database = Database(sqlite_url)
    yield database
    await database.dispose()


@pytest.fixture
async def adapter(kube: KubeEmulator) -> AsyncIterator[KubernetesCluster]:
    cluster = KubernetesCluster(api_client(kube.url), retry=RETRY, sync_timeout_s=2.0)
    yield cluster
    await cluster.close()


class Run:
    """The scenario's driver: push a load that asks for `n` pods, tick, look."""

    def __init__(self, db: Database, kube: KubeEmulator, cluster: KubernetesCluster) -> None:
        self.db, self.kube, self.cluster = db, kube, cluster
        self.clock = FakeClock(T0)
        self.series = SeriesStore(max_series_per_job=100, lateness_us=10**12)

    async def tick(self, wanted: int) -> None:
        self.clock.t += 20  # past every rate-limit period
        at = round((self.clock.t - 1) * 1e6)
        row = SampleRow(SeriesKey.of("request_queue", {"job": "m"}), at, 5.0 * wanted)
        async with self.db.transaction() as conn:
            await self.series.write(conn, [row], now_us=at)
        assert await reconcile_once(self.db, self.cluster, self.clock) == 1

    def deployment(self) -> tuple[int, int]:
        """(spec.replicas, metadata.generation) as the API server has them."""
        obj = self.kube.workload(NAME)
        return obj["spec"]["replicas"], obj["metadata"]["generation"]

    def patches(self) -> list[float]:
        """When each scale PATCH arrived."""
        return [r.at for r in self.kube.requests if (r.verb, r.resource) == ("patch",
                "deployments/scale")]  # fmt: skip

    async def status(self) -> store.StoredScaler:
        async with self.db.read() as conn:
            found = await store.get_scaler(conn, NAME)
        assert found is not None
        return found

    async def actions(self) -> list[tuple[str, int | None, str]]:
        async with self.db.read() as conn:
            events = await store.list_events(conn, NAME)
        found = [(e.kind, e.replicas, e.message) for e in events if e.kind in ("action", "error")]
        return found[::-1]  # oldest first


async def test_api_faults_mid_reconcile_lose_and_repeat_no_scaling_action(
    db: Database, kube: KubeEmulator, adapter: KubernetesCluster
) -> None:
    kube.add_workload(NAME, replicas=1, ready=True)
    async with db.transaction() as conn:
        await store.upsert_scaler(conn, NAME, SPEC, now_us=0)
    run = Run(db, kube, adapter)
    history: list[tuple[int, int]] = [run.deployment()]  # (replicas, generation) per phase
    sent = [0]  # scale PATCH requests seen by the API server, after each phase

    delayed = [0]  # requests delayed so far

    async def phase(wanted: int, *, error: str | None = None, delays: int = 0) -> None:
        await run.tick(wanted)
        # A request the client gave up on may still be applied late: the phase ends once the
        # API server has answered every delayed request, not after a guess of how long.
        delayed[0] += delays
        await until(lambda: kube.delayed_answered == delayed[0], "the delayed requests answered")
        history.append(run.deployment())
        sent.append(len(run.patches()))
        last_error = (await run.status()).last_error
        if error is None:
            assert last_error is None, last_error
        else:
            assert last_error is not None and error in last_error, last_error

    # 1. Two 503s on the PATCH: retried with backoff inside the call, then applied.
    kube.fail(2, 503, verb="patch", resource="deployments/scale")
    await phase(3)
    gaps = [b - a for a, b in pairwise(run.patches())]
    assert len(run.patches()) == 3
    assert gaps[0] >= RETRY.backoff_s / 2 and gaps[1] >= RETRY.backoff_s  # backing off

    # 2. 500s outlast the retries: nothing applied, the error on the status, nothing charged.
    kube.fail(3, 500, verb="patch", resource="deployments/scale")
    await phase(5, error="failed after 3 attempts: HTTP 500: injected failure (500)")
    # 3. The API is back: the same decision is applied once, the error cleared.
    await phase(5)

    # 4. Two conflicting writers just before the PATCH: 409, re-read, retried, applied.
    kube.race(2)
    await phase(6)
    # 5. Conflicts outlast the bound: on the status; the next tick applies it.
    kube.race(4)
    await phase(7, error="kept changing")
    await phase(7)

    # 6. The PATCH times out twice (the server is slow, not down): the first attempt is
    #    applied late, after the client gave up; the retry meets a 409 on its stale
    #    resourceVersion, re-reads, finds 8 and stops. Applied once.
    kube.delay(2, 1.0, verb="patch", resource="deployments/scale")
    await phase(8, delays=2)
    # 7. Every attempt times out: an error on the status, yet the server applies the first
    #    attempt late; the next tick finds 9 and does not scale again.
    kube.delay(3, 1.0, verb="patch", resource="deployments/scale")
    await phase(9, error="timed out after 0.5 s", delays=3)
    await phase(9)

    # 8. The watch stalls and its history is compacted while someone scales the Deployment
    #    to 4 (kubectl): a tick during the stall sees the stale 9 and does nothing; once the
    #    watch is back (410 Gone, relist) the next tick scales back to 9 with one PATCH.
    with kube.watches_stalled(expire=True):
        kube.set_replicas(NAME, 4)
        await phase(9)
        assert history[-1][0] == 4  # kubectl's change, not ours (no PATCH of ours)
        kubectl = len(history) - 1
    await until_observed(adapter, 4)
    await phase(9)
    # 9. A dropped watch (a proxy restart) resumes from its resourceVersion: no relist.
    kube.drop_watches()
    await phase(2)

    # The Deployment went through exactly the decided counts (and kubectl's 4), one
    # generation per change: no duplicate, none lost.
    assert [r for r, _ in history] == [1, 3, 3, 5, 6, 6, 7, 8, 9, 9, 4, 9, 2]
    for i, ((r0, g0), (r1, g1)) in enumerate(pairwise(history), 1):
        if i != kubectl:  # the emulator's set_replicas (kubectl) does not bump it
            assert g1 - g0 == (1 if r1 != r0 else 0), history
    # PATCH requests per phase: the retries are bounded (3 attempts, 4 tries on conflicts),
    # and a tick that decides nothing new sends none.
    per_phase = [b - a for a, b in pairwise(sent)]
    assert per_phase == [3, 3, 1, 3, 4, 1, 3, 3, 0, 0, 1, 1]
    assert [(kind, n) for kind, n, _ in await run.actions()] == [
        ("action", 3),
        ("error", 5),
        ("action", 5),
        ("action", 6),
        ("error", 7),
        ("action", 7),
        ("action", 8),
        ("error", 9),  # timed out; applied late by the server, so no action follows for 9
        ("action", 9),  # after kubectl's 4
        ("action", 2),
    ]
    assert [m for _, _, m in await run.actions()][-2:] == [
        f"scaled {NAME} from 4 to 9",
        f"scaled {NAME} from 9 to 2",
    ]


async def until(check: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        await asyncio.sleep(0.01)


async def until_observed(adapter: KubernetesCluster, replicas: int, timeout_s: float = 5) -> None:
    """Wait until the adapter's watch cache has the Deployment at `replicas` (the relist)."""
    deadline = time.monotonic() + timeout_s
    while (await adapter.observe(TARGET)).replicas != replicas:
        if time.monotonic() > deadline:
            raise AssertionError(f"the watch never caught up with {replicas} replicas")
        await asyncio.sleep(0.02)
