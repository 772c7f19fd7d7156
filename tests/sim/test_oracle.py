"""The clairvoyant bound: no waits, no drops within the bounds, and the cheapest run."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from app.sim.baselines import HPA, KPA, Oracle
from app.sim.baselines.oracle import forward_max, need_series
from app.sim.engine import Scenario
from app.sim.report import report_for
from app.sim.traces import Workload
from tests.sim.helpers import ramp_load, run, step_load


@pytest.mark.parametrize("window", [1, 2, 3, 7, 60, 61, 200])
def test_forward_max_matches_brute_force(window: int) -> None:
    x = np.random.default_rng(window).integers(0, 100, size=150)
    want = np.array([x[i : i + window].max() for i in range(len(x))])
    assert np.array_equal(forward_max(x, window), want)


def test_need_series_rounds_up_and_clamps() -> None:
    assert need_series(np.array([0, 1, 8, 9, 1000]), 8, 1, 80).tolist() == [1, 1, 1, 2, 80]


@pytest.mark.parametrize(
    "load",
    [
        pytest.param(lambda: step_load(2, 20, at=600, n=2400), id="step-up"),
        pytest.param(lambda: step_load(20, 2, at=600, n=2400), id="step-down"),
        pytest.param(lambda: ramp_load(1, 25, n=3600), id="ramp"),
    ],
)
def test_oracle_serves_everything_and_is_cheapest(load: Callable[[], Workload]) -> None:
    wl = load()
    oracle = run(wl, Oracle())
    assert oracle.dropped == 0
    assert sum(oracle.wait_hist[1:]) <= 0.001 * oracle.served  # late pods only by seconds
    cost = report_for(oracle).cost_usd
    for other in (HPA(), KPA()):
        assert cost < report_for(run(wl, other)).cost_usd


def test_oracle_drops_only_what_max_replicas_cannot_hold() -> None:
    sc = Scenario(max_replicas=10)  # 80 slots, the step needs 320
    wl = step_load(2, 20, at=300, n=1200)
    res = run(wl, Oracle(), sc=sc)
    assert res.replicas.max() == 10
    assert res.dropped > 0
    assert np.all(res.replicas[400:] == 10)


def test_oracle_launches_one_cold_start_ahead() -> None:
    wl = step_load(2, 20, at=900, n=1800)
    res = run(wl, Oracle())
    # before the step only what the load needs (+ a one-minute keep window)
    assert res.replicas[700] <= 10
    # pods are created at most 60 s (the longest cold start) before the step
    first_up = int(np.argmax(res.replicas[700:] > res.replicas[700])) + 700
    assert first_up >= 900 - 61
    need = need_series(wl.demand, 8, 1, 80)
    assert np.all(res.ready >= need)  # every pod Ready by the second it is needed
    # and exactly then: the extra ready pod-seconds are only the one-minute keep window
    assert float((res.ready - need).mean()) < 2.0
