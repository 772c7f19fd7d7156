"""The fluid reference: the true rate's pods at 100 %, one cold start ahead, down at once."""

from __future__ import annotations

import numpy as np

from app.sim.baselines import Fluid, Oracle
from app.sim.baselines.fluid import fluid_need
from app.sim.report import report_for
from app.sim.traces import workload_from_arrivals, workload_from_requests
from tests.sim.helpers import run, step_load


def test_need_is_the_rate_times_service_over_slots() -> None:
    # 2 req/s x 16 s = 32 slots = 4 pods; 20 req/s = 40 pods; 0.2 req/s rounds up to 1
    wl = step_load(2, 20, at=100, n=300)
    need = fluid_need(wl, 8, 1, 80)
    assert need[:100].tolist() == [4] * 100 and need[100:].tolist() == [40] * 200
    tiny = workload_from_arrivals(np.zeros(10, dtype=np.int64), rate=np.full(10, 0.2))
    assert fluid_need(tiny, 8, 1, 80).tolist() == [1] * 10


def test_it_knows_the_rate_not_the_arrivals() -> None:
    # two Poisson draws of the same rate: the fluid plan is the same for both (from the same
    # initial fleet; without history that is sized on the first minute's arrivals)
    a = step_load(2, 20, at=900, n=1800, seed=1)
    b = step_load(2, 20, at=900, n=1800, seed=2)
    assert not np.array_equal(a.arrivals, b.arrivals)
    ra, rb = run(a, Fluid(), initial=4), run(b, Fluid(), initial=4)
    assert np.array_equal(ra.replicas, rb.replicas)
    assert ra.dropped != rb.dropped or ra.wait_hist != rb.wait_hist  # the arrivals differ


def test_pods_are_ready_one_cold_start_ahead_and_deleted_at_once() -> None:
    up = run(step_load(2, 20, at=900, n=1800), Fluid(), initial=4)
    assert np.all(up.replicas[:840] == 4)  # nothing launched more than 60 s early
    assert np.all(up.ready[900:] == 40)  # all 40 Ready when the rate steps up
    down = run(step_load(20, 2, at=900, n=1800), Fluid(), initial=40)
    assert down.replicas[899] == 40 and down.replicas[900] == 4  # no keep window


def test_a_request_log_uses_its_offered_concurrency_per_minute() -> None:
    # minute 0: 30 requests of 16 s at second 0 (480 slot-seconds: 8 slots on average, 1 pod);
    # minute 1: 120 requests of 40 s at second 60 (4,800 slot-seconds: 80 slots, 10 pods)
    wl = workload_from_requests({0: [16] * 30, 60: [40] * 120}, 180)
    need = fluid_need(wl, 8, 1, 80)
    assert need[:60].tolist() == [1] * 60
    assert need[60:120].tolist() == [10] * 60
    assert need[120:].tolist() == [1] * 60  # 20 s of the 40 s requests spill over: 1 pod


def test_fluid_is_the_floor_and_reports_carry_cost_over_it() -> None:
    wl = step_load(3, 12, at=1200, n=3600)
    fluid = report_for(run(wl, Fluid()))
    oracle = report_for(run(wl, Oracle()), fluid_cost=fluid.cost_usd)
    assert fluid.cost_usd < oracle.cost_usd  # no headroom for Poisson noise, no keep window
    assert oracle.cost_vs_fluid is not None and oracle.cost_vs_fluid > 1.0
    assert fluid.utilization > 0.9
