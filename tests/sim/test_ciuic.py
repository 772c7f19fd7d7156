"""The adapter drives the production policy and forecasters (no copy of either)."""

from __future__ import annotations

import copy

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


def _daily_workload(days_history: int = 3, hours: float = 3, seed: int = 2) -> Workload:
    """A daily sine on a 5-min grid: history of a few days, then the window."""
    step = 300
    t_hist = np.arange(days_history * 288) * step
    hist = 8 + 6 * np.sin(2 * np.pi * t_hist / 86400)
    start = days_history * 86400
    t = start + np.arange(round(hours * 3600))
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


def test_default_spec_is_the_brief_and_the_capacity_is_learned() -> None:
    """No number from the trace: the spec is the brief's, the bounds the scenario's, and the
    per-pod capacity (8 slots / 16 s = 0.5 req/s here) is learned from what the pods push."""
    wl = step_load(2, 4, at=600, n=1800)
    doc = default_spec(SC, wl)
    assert "capacity" not in doc
    assert doc["metrics"][0] == {"name": "gpu_utilization", "weight": 0.6, "target": "85%"}
    assert doc["emergency"]["burst_multiplier"] == 3.0
    assert (doc["min_replicas"], doc["max_replicas"]) == (1, 80)
    policy = CiuicPolicy.build(SC, wl, doc)
    run(wl, policy)
    learned = policy.state.capacity
    assert learned.mean == pytest.approx(0.5, rel=0.1)


def test_a_user_spec_replaces_the_default_and_bad_specs_are_rejected() -> None:
    wl = step_load(2, 4, at=10, n=120)
    spec = {**default_spec(SC, wl), "max_replicas": 3}
    res = run(wl, make_policy("ciuic", SC, wl, spec))
    assert res.replicas[10:].max() <= 3  # once the policy has seen a sample (starts with 9)
    with pytest.raises(SpecError):
        make_policy("ciuic", SC, wl, {"target": "x", "metrics": []})


def _brief_trigger(wl: Workload, aggregation: str | None) -> dict[str, object]:
    doc = copy.deepcopy(default_spec(SC, wl))
    trigger = doc["emergency"]["triggers"][0]
    if aggregation is None:
        trigger.pop("aggregation", None)  # the brief's YAML as written
    else:
        trigger["aggregation"] = aggregation
    return doc


@pytest.mark.parametrize(
    ("aggregation", "bursts"),
    [
        # 4 -> 12 req/s at t=1200 on 9 pods: the total queue passes 50 within 15 s
        pytest.param("sum", True, id="total-queue-over-50-bursts"),
        # the brief's trigger as written reads the queue per pod: it stays under 50
        pytest.param(None, False, id="per-pod-queue-never-over-50"),
    ],
)
def test_a_sudden_step_bursts_when_the_trigger_reads_the_total_queue(
    aggregation: str | None, bursts: bool
) -> None:
    # three days at 4 req/s seen before (the forecast holds ~9 pods), then a step to 12 req/s
    # that no forecast saw
    rate = np.where(np.arange(1800) < 1200, 4, 12)
    wl = workload_from_arrivals(
        np.random.default_rng(1).poisson(rate),
        history_rate=np.full(3 * 288, 4.0),
        history_step_s=300,
        start=3 * 86400.0,
    )
    policy = CiuicPolicy.build(SC, wl, _brief_trigger(wl, aggregation))
    res = run(wl, policy)
    over = np.flatnonzero(res.queue > 50)
    assert over[0] >= 1200 and over[0] < 1220  # quiet until the step
    assert np.all(res.queue[over[0] : over[0] + 40] > 50)  # over 50 in all for 40 s...
    per_pod = res.queue / np.maximum(res.ready, 1)
    assert per_pod.max() < 50  # ...and never 50 per pod
    # Before any burst, the queue over its ceiling shows the reactive step the load signal:
    # 12 req/s at the 0.5 req/s per pod it learned is 24 pods at full use, asked for at once.
    assert res.replicas[over[0] + 20] >= 24
    if bursts:
        [first, *_] = policy.burst_starts  # emergency.start decided
        # held 30 s, seen 5 s late, decided on the next 5 s tick
        assert over[0] + 30 <= first <= over[0] + 45
    else:
        assert policy.burst_starts == []
    # Sized to the shortfall, not multiplied up to max_replicas.
    assert res.replicas.max() < SC.max_replicas


def test_replays_of_the_same_load_share_forecasts_and_a_diverging_one_catches_up() -> None:
    """The tune job's candidates replay the same load: each forecast is fitted once. A replay
    whose load parts from the others' midway makes, from there on, exactly the forecasts (and
    so the decisions) a replay with nothing shared makes."""
    # the same first 2 h 10 min, then the parted one goes on to a refresh before the next
    # refit: its model has to catch up on the fit and the refresh it skipped
    shared = _daily_workload(hours=7800 / 3600, seed=2)
    parted = _daily_workload(hours=8000 / 3600, seed=2)
    ciuic_mod._FORECASTS.clear()
    run(shared, make_policy("ciuic", SC, shared))
    fitted_once = len(ciuic_mod._FORECASTS)
    assert fitted_once > 0

    sharing = make_policy("ciuic", SC, parted)
    on_its_own = run(parted, sharing)
    made_after_the_split = len(ciuic_mod._FORECASTS) - fitted_once

    ciuic_mod._FORECASTS.clear()
    alone = make_policy("ciuic", SC, parted)
    by_itself = run(parted, alone)
    assert 0 < made_after_the_split < len(ciuic_mod._FORECASTS)  # the first part was shared
    assert np.array_equal(on_its_own.replicas, by_itself.replicas)
    assert isinstance(sharing, CiuicPolicy) and isinstance(alone, CiuicPolicy)
    assert sharing._forecast == alone._forecast
