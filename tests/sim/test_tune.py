from __future__ import annotations

from app.sim.ciuic import default_spec
from app.sim.engine import Scenario
from app.sim.tune import candidate_spec, tune_spec
from tests.sim.helpers import step_load

SC = Scenario()


def test_candidate_spec_replaces_only_the_knobs() -> None:
    wl = step_load(2, 4, at=10, n=60)
    base = default_spec(SC, wl)
    doc = candidate_spec(base, gpu_target=70, burst_threshold=20, quantile=0.95)
    assert doc["metrics"][0]["target"] == "70%"
    assert doc["metrics"][1] == base["metrics"][1]
    assert doc["emergency"]["triggers"][0]["threshold"] == 20
    assert doc["forecast"] == {"quantile": 0.95}
    assert base["metrics"][0]["target"] == "85%"  # the base is not modified


def test_tune_picks_the_cheapest_feasible_and_returns_the_frontier() -> None:
    wl = step_load(3, 8, at=600, n=1800)
    base = default_spec(SC, wl)
    res = tune_spec(wl, base, scenario=SC, gpu_targets=(50.0, 70.0, 90.0), max_drop_rate=0.05)
    assert len(res.frontier) == 3
    costs = [p.cost_usd for p in res.frontier]
    assert costs == sorted(costs)
    assert res.best is not None and res.best.feasible
    assert res.best.cost_usd == min(p.cost_usd for p in res.frontier if p.feasible)
    assert any(p.pareto for p in res.frontier)
    # a lower utilisation target keeps more pods: it cannot be the cheapest
    by_target = {p.gpu_target: p.cost_usd for p in res.frontier}
    assert by_target[50.0] >= by_target[90.0]


def test_no_feasible_candidate_means_no_best() -> None:
    wl = step_load(3, 8, at=600, n=1200)
    res = tune_spec(
        wl, default_spec(SC, wl), scenario=SC, gpu_targets=(85.0,), monthly_budget_usd=0.01
    )
    assert res.best is None
    assert not res.frontier[0].feasible
    assert res.to_dict()["best_spec"] is None
