from __future__ import annotations

import numpy as np
import pytest

from app.policy import parse_spec
from app.sim.ciuic import default_spec
from app.sim.engine import Scenario
from app.sim.runner import Prior
from app.sim.traces import TraceKind, workload_from_arrivals
from app.sim.tune import candidate_spec, search_knobs, tune_spec, tuned_on_history
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
    assert res.to_dict()["message"] is None  # nothing to explain
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


@pytest.mark.parametrize(
    ("max_replicas", "limits", "why"),
    [
        # one pod for 3 then 8 req/s (0.5 req/s a pod): every candidate drops most requests
        pytest.param(
            1,
            {"max_drop_rate": 0.001},
            "none of the 2 candidate specs met max_drop_rate 0.001 (the lowest drop rate "
            "replayed was 0.",
            id="drops-over-the-limit",
        ),
        # drops allowed, but a month of pods costs more than a cent
        pytest.param(
            80,
            {"max_drop_rate": 1.0, "monthly_budget_usd": 0.01},
            "none of the 2 candidate specs within max_drop_rate 1 met monthly_budget_usd 0.01 "
            "(the cheapest of them costs ",
            id="over-the-budget",
        ),
    ],
)
def test_no_best_says_which_limit_no_candidate_met(
    max_replicas: int, limits: dict[str, float], why: str
) -> None:
    """A tune that finds nothing says why where its result is read: `best` and `changes`
    null alone left the user to guess (only applying it said there was nothing to apply)."""
    wl = step_load(3, 8, at=600, n=1200)
    base = {**default_spec(SC, wl), "max_replicas": max_replicas}
    res = tune_spec(
        wl,
        base,
        scenario=SC,
        gpu_targets=(70.0, 85.0),
        max_drop_rate=limits["max_drop_rate"],
        monthly_budget_usd=limits.get("monthly_budget_usd"),
    )
    doc = res.to_dict()
    assert doc["best"] is None and doc["changes"] is None
    assert doc["message"].startswith(why), doc["message"]
    assert doc["message"].endswith("; the current spec stays")


def test_candidate_spec_sets_the_warm_spares() -> None:
    base = default_spec(SC)
    assert candidate_spec(base, spare=0)["preheat"]["enabled"] is False
    assert candidate_spec(base, spare=2)["preheat"] == {
        "enabled": True,
        "min_ready": 2,
        "strategy": "eager",
    }


def _prior(days: float, level: float = 6.0) -> Prior:
    """Count-trace history: `days` of a daily cycle around `level` req/s on a 5-minute grid."""
    t = np.arange(int(days * 288))
    rates = level * (1 + 0.3 * np.sin(2 * np.pi * t / 288))
    return Prior(TraceKind.COUNTS, 10 * 86400.0, rates, 300.0, 16, SC)


def test_the_benchmark_tunes_on_the_history_before_the_window_only() -> None:
    """`ciuic-tuned` is chosen from a `Prior` (what was known before the window: there is
    nothing else to read), among the candidates it searches, within the objective; the
    same history gives the same spec; too little history, or none, gives the brief's."""
    tuned = tuned_on_history(_prior(4))
    assert tuned["metrics"][0]["target"] in {"85%", "90%", "95%"}
    assert tuned["preheat"]["min_ready"] in {0, 1}
    assert tuned_on_history(_prior(4)) == tuned
    assert tuned_on_history(_prior(2)) == default_spec(SC)  # 2 days to replay, none to fit on
    log = Prior(TraceKind.REQUESTS, 0.0, np.zeros(0), 60.0, 0, SC)
    assert tuned_on_history(log) == default_spec(SC)


def test_a_tuned_spec_is_not_worse_on_the_days_it_was_tuned_on() -> None:
    """The replay of those days scores the tuned spec at or below the brief's cost, within
    the drop objective (0.1 %)."""
    prior = _prior(4)
    tuned = tuned_on_history(prior)
    keep = 2 * 288
    arrivals = np.random.default_rng(0).poisson(np.repeat(prior.history_rate[-keep:], 300))
    wl = workload_from_arrivals(
        arrivals, history_rate=prior.history_rate[:-keep], history_step_s=300.0
    )
    res = tune_spec(wl, default_spec(SC), scenario=SC, gpu_targets=(None,))
    brief = res.frontier[0]
    again = tune_spec(wl, tuned, scenario=SC, gpu_targets=(None,)).frontier[0]
    assert again.cost_usd <= brief.cost_usd * 1.02
    assert again.drop_rate <= 0.001


def test_the_knob_search_tries_each_knob_and_keeps_the_cheapest_within_the_objective() -> None:
    """The live tune job's search: every GPU target, then the warm spares, the quantile and
    the burst threshold, each at the best so far; the best is the cheapest point under the
    drop objective among all replayed, and `changes` is what applying it would set."""
    wl = step_load(3, 8, at=600, n=1800)
    base = default_spec(SC, wl)
    res = search_knobs(wl, base, scenario=SC, max_drop_rate=0.05)
    tried = {(p.gpu_target, p.spare, p.quantile, p.burst_threshold) for p in res.frontier}
    assert {p.gpu_target for p in res.frontier} >= {50.0, 90.0}
    assert {p.spare for p in res.frontier} >= {0, 1, 2}
    assert {p.quantile for p in res.frontier} >= {0.5, 0.75, 0.9}
    assert len(tried) == len(res.frontier)  # each combination replayed once
    assert res.best is not None
    feasible = [p for p in res.frontier if p.drop_rate <= 0.05]
    assert res.best.cost_usd == min(p.cost_usd for p in feasible)
    changes = res.to_dict()["changes"]
    assert changes == res.best.knobs() and "gpu_target" in changes
    # the best spec is the base with exactly those changes
    assert res.best.spec == candidate_spec(base, **changes)


def test_the_knob_search_tries_no_more_spares_than_the_scaler_may_run() -> None:
    """A one-pod scaler: two warm spares would exceed its max_replicas (a spec refused, 422),
    so the search tries 0 and 1 and its frontier holds only specs that validate."""
    wl = step_load(1, 1, at=60, n=600)
    base = {**default_spec(SC, wl), "min_replicas": 1, "max_replicas": 1, "schedule": []}
    res = search_knobs(wl, base, scenario=SC, max_drop_rate=1.0)
    assert {p.spare for p in res.frontier} == {None, 0, 1}
    for p in res.frontier:
        parse_spec(p.spec)
