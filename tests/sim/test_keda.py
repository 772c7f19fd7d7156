"""KEDA queue scaler: the queue read fresh at every 15 s HPA sync, AverageValue 5 per pod, then
the HPA pipeline."""

from __future__ import annotations

import numpy as np

from app.sim.baselines.keda import KEDA
from app.sim.engine import ClusterView, ColdStarts, Sample, Scenario
from app.sim.traces import workload_from_arrivals
from tests.sim.helpers import run, step_load


def _view(now: int, queue: int, replicas: int) -> ClusterView:
    sc = Scenario()
    v = ClusterView(sc, workload_from_arrivals([0]), ColdStarts(0, 30, 60))
    for t in range(0, now, 5):
        v._samples.append(Sample(t, 50.0, queue, 1.0, replicas, 0, 4 * replicas))
    v.now, v.replicas, v.ready = now, replicas, replicas
    return v


def test_the_queue_is_read_fresh_at_every_sync() -> None:
    # KEDA's default: the metrics adapter asks the scaler on each HPA request, no caching
    k = KEDA()
    assert k.poll(_view(60, 100, 2)) == 100.0
    assert k.poll(_view(75, 7, 2)) == 7.0  # the next 15 s sync sees the new queue
    assert k.poll(_view(90, 40, 2)) == 40.0


def test_cached_metrics_hold_the_reading_for_the_polling_interval() -> None:
    # `useCachedMetrics: true`: the reading taken at a poll serves until the next poll (30 s)
    k = KEDA(use_cached_metrics=True)
    assert k.poll(_view(60, 100, 2)) == 100.0
    assert k.poll(_view(75, 7, 2)) == 100.0  # 15 s later: still the cached reading
    assert k.poll(_view(90, 7, 2)) == 7.0


def test_a_queue_seen_at_one_sync_is_acted_on_at_that_sync() -> None:
    # a queue appears between two syncs: the next sync scales on it, not 15 s later
    k = KEDA()
    assert k.decide(_view(45, 0, 4)) == 4  # empty queue asks 0; the 300 s window holds 4
    assert k.decide(_view(60, 60, 4)) == 8  # ceil(60 / 5) = 12, rate-limited to 2 x 4
    cached = KEDA(use_cached_metrics=True)
    assert cached.decide(_view(45, 0, 4)) == 4
    assert cached.decide(_view(60, 60, 4)) == 4  # still the reading polled at 45


def test_desired_is_queue_over_five_through_hpa_rate_limits() -> None:
    k = KEDA()
    # 100 waiting on 2 pods: ceil(100/5) = 20, but the HPA adds at most max(4, 100 %) -> 6
    assert k.decide(_view(60, 100, 2)) == 6


def test_empty_queue_scales_to_min_after_the_300s_window() -> None:
    k = KEDA()
    out = [k.decide(_view(t, 0, 10)) for t in range(30, 400, 15)]
    assert out[0] == 10 and out[-1] == 1


def test_keda_on_a_step_load_reacts_to_the_queue() -> None:
    wl = step_load(2, 20, at=600, n=1800)
    res = run(wl, KEDA(), initial=6)
    assert res.replicas[1000] > 20
    assert res.dropped > 0  # it waits for a queue before scaling: the brief's complaint


def test_keda_sees_nothing_without_a_queue() -> None:
    wl = workload_from_arrivals(np.tile([1, 0, 0, 0], 250))  # 0.25 req/s: 4 busy slots
    res = run(wl, KEDA(), initial=5)
    assert res.replicas[250] == 5  # the 300 s window holds the first count
    assert res.replicas[-1] == 1  # never a queue: scaled to min
