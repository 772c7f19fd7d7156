"""The adapter drives the production policy and forecasters (no copy of either)."""

from __future__ import annotations

import numpy as np
import pytest

import app.sim.ciuic as ciuic_mod
from app.policy import SpecError, decide
from app.sim.ciuic import CiuicPolicy, default_spec
from app.sim.engine import Scenario
from app.sim.runner import make_policy
from app.sim.traces import Workload, workload_from_arrivals
from tests.sim.helpers import run, step_load

SC = Scenario()


def _daily_workload(days_history: int = 3, hours: int = 3, seed: int = 2) -> Workload:
    """A daily sine on a 5-min grid: history of a few days, then the window."""
    step = 300
    t_hist = np.arange(days_history * 288) * step
    hist = 8 + 6 * np.sin(2 * np.pi * t_hist / 86400)
    start = days_history * 86400
    t = start + np.arange(hours * 3600)
    rate = 8 + 6 * np.sin(2 * np.pi * t / 86400)
    arrivals = np.random.default_rng(seed).poisson(rate)
    return workload_from_arrivals(
        arrivals, history_rate=hist, history_step_s=step, start=float(start)
    )


def test_adapter_calls_the_real_decide_every_reconcile_interval() -> None:
    # the production function, imported, not re-written
    assert vars(ciuic_mod)["decide"] is decide
    wl = _daily_workload()
    policy = make_policy("ciuic", SC, wl)
    assert isinstance(policy, CiuicPolicy)
    res = run(wl, policy)
    assert res.decisions == wl.duration_s // 5
    assert res.arrived == res.served + res.dropped + res.queued_end
    assert res.replicas.min() >= 1 and res.replicas.max() <= 80
    # it follows the load (8 -> 12 req/s over the window): more pods at the end
    assert res.replicas[-1800:].mean() > res.replicas[600:2400].mean()
    assert policy.state.recommendations  # the policy's own state is carried between calls


def test_forecaster_is_fitted_on_history_and_refitted_on_a_cadence() -> None:
    wl = _daily_workload()
    policy = make_policy("ciuic", SC, wl)
    assert isinstance(policy, CiuicPolicy)
    run(wl, policy)
    fc = policy._forecast
    assert fc is not None and fc.failed is None
    assert fc.made_at > wl.start + 3 * 3600 - 2 * policy.refit_s  # refitted late in the run
    assert len(fc.mean) > 0


def test_default_spec_is_the_brief_with_the_scenario_capacity() -> None:
    wl = step_load(2, 4, at=10, n=60)
    doc = default_spec(SC, wl)
    assert doc["capacity"] == {"request_rate": "0.5/s"}  # 8 slots / 16 s
    assert doc["metrics"][0] == {"name": "gpu_utilization", "weight": 0.6, "target": "85%"}
    assert doc["emergency"]["burst_multiplier"] == 3.0
    assert (doc["min_replicas"], doc["max_replicas"]) == (1, 80)


def test_a_user_spec_replaces_the_default_and_bad_specs_are_rejected() -> None:
    wl = step_load(2, 4, at=10, n=120)
    spec = {**default_spec(SC, wl), "max_replicas": 3}
    res = run(wl, make_policy("ciuic", SC, wl, spec))
    assert res.replicas[10:].max() <= 3  # once the policy has seen a sample (starts with 9)
    with pytest.raises(SpecError):
        make_policy("ciuic", SC, wl, {"target": "x", "metrics": []})
