"""The live reconciler and the simulator decide alike on the same observations.

The benchmark measures the code that runs in production only if the simulator builds the
policy's `Observation` as the service builds it from pushed samples, and carries the policy's
state as the store does. Here the same script of pod pushes (GPU utilisation, queue, request
rate per pod; a ramp, a saturated burst, a quiet spell) goes through both: the real store and
`reconcile_once` on one side, `CiuicPolicy` on a view of the same readings on the other. Every
decision must match (replicas and reason codes), and so must the state they carry (the learned
capacity, the window, the hold), through the store's JSON round trip.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from app.kube.cluster import RecordingCluster
from app.policy.spec import TargetRef
from app.sim.ciuic import BRIEF_SPEC, CiuicPolicy
from app.sim.engine import ClusterView, Sample
from app.sim.traces import workload_from_arrivals
from app.store import scalers as store
from app.store.db import Database
from app.store.series import SampleRow, SeriesKey, SeriesStore
from app.workers.reconciler import reconcile_once
from testkit.clock import FakeClock
from tests.sim.helpers import SC

T0 = 1_800_000_000.0
NAME = "deepseek-service"
# The brief's spec as the benchmark runs it, reactive (the forecast is fitted by a worker
# live and by the policy's adapter in the simulator: compared on their own), bounds 1..80.
SPEC: dict[str, Any] = {**BRIEF_SPEC, "scaler": "reactive", "min_replicas": 1, "max_replicas": 80}


def script() -> list[tuple[float, float, float]]:
    """(GPU %, waiting per pod, requests/s per pod) every 5 s: 0.5 req/s per pod at 100 %."""
    steps: list[tuple[float, float, float]] = []
    for load in np.linspace(0.2, 0.45, 30).tolist():  # a ramp, each pod busier
        steps.append((200 * load, 0.0, load))
    for k in range(8):  # a burst: saturated, a queue over the ceiling, twice the arrivals
        steps.append((100.0, 8.0 + 4 * k, 1.0))
    for _ in range(30):  # quiet again
        steps.append((30.0, 0.0, 0.15))
    return steps


async def test_the_reconciler_and_the_simulator_decide_alike(db: Database) -> None:
    async with db.transaction() as conn:
        await store.upsert_scaler(conn, NAME, {**SPEC, "target": NAME}, now_us=0)
    # The cluster names its Ready pods (as the Kubernetes adapter does): after a scale-down
    # the samples of the pods gone are no load, as in the simulator.
    cluster = RecordingCluster(initial_replicas=4, pod_names=True)
    target = TargetRef(name=NAME)
    series = SeriesStore(max_series_per_job=1000, lateness_us=10**12)

    workload = workload_from_arrivals(np.zeros(1000, dtype=np.int64), start=T0)
    policy = CiuicPolicy.build(SC, workload, {**SPEC, "target": NAME})
    view = ClusterView(SC, workload, None)  # type: ignore[arg-type]

    seen: list[int] = []
    for i, (gpu, queue, rate) in enumerate(script()):
        now = T0 + 5 * (i + 1)
        pods = (await cluster.observe(target)).replicas
        pushed_at = now - 1  # pushed a second before the decision
        at_us = round(pushed_at * 1e6)
        rows = []
        for p in range(pods):
            labels = {"job": "vllm", "pod": f"{NAME}-{p}"}
            rows += [
                SampleRow(SeriesKey.of("gpu_utilization", labels), at_us, gpu),
                SampleRow(SeriesKey.of("request_queue", labels), at_us, queue),
                SampleRow(SeriesKey.of("request_rate", labels), at_us, rate),
            ]
        async with db.transaction() as conn:
            await series.write(conn, rows, now_us=at_us)
        await reconcile_once(db, cluster, FakeClock(now))
        async with db.read() as conn:
            live = await store.get_scaler(conn, NAME)
        assert live is not None and live.last_decision is not None

        # The same readings as the simulator's pods push them (aggregated over the pods).
        view.now = round(now - T0)
        view.replicas = view.ready = pods
        view._samples[:] = [
            Sample(round(pushed_at - T0), gpu, round(queue * pods), rate * pods, pods, 0, 0)
        ]
        sim_replicas = policy.decide(_Visible(view))
        sim = policy.last_decision
        assert sim is not None
        assert (
            live.last_decision["replicas"],
            [r["code"] for r in live.last_decision["reasons"]],
        ) == (
            sim.replicas,
            [r.code for r in sim.reasons],
        ), f"decision {i}"
        assert sim_replicas == (sim.replicas if sim.valid else pods)
        # the same state, to the last bits a sum of per-pod rates and a product can differ in
        assert _flat(live.state.to_dict()) == pytest.approx(
            _flat(policy.state.to_dict()), rel=1e-12
        ), f"state after {i}"
        seen.append(sim.replicas)
    # The script moved the count both ways: the comparison covered scale-up and scale-down.
    assert max(seen) > 4 and seen[-1] < max(seen)


class _Visible:
    """The view with its one sample visible now (the engine delays samples by 5 s; here the
    reconciler reads what was pushed a second ago, so the simulator must too)."""

    def __init__(self, view: ClusterView) -> None:
        self._view = view

    def __getattr__(self, name: str) -> Any:
        return getattr(self._view, name)

    def sample(self, period_s: int | None = None, *, pushed: bool = False) -> Sample | None:
        return self._view._samples[-1] if self._view._samples else None


def _flat(doc: Any) -> list[float]:
    """Every number in a JSON-ready document, in order (None as NaN-free -1 marker)."""
    if isinstance(doc, dict):
        return [x for k in sorted(doc) for x in _flat(doc[k])]
    if isinstance(doc, list | tuple):
        return [x for v in doc for x in _flat(v)]
    return [-1.0 if doc is None else float(doc)]
