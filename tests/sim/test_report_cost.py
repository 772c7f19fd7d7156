from __future__ import annotations

import numpy as np
import pytest

from app.sim.cost import CostModel, hybrid_plan, reserved_level
from app.sim.report import (
    REPORT_KEYS,
    PolicyReport,
    check_targets,
    report_for,
    shortfall_episodes,
    wait_quantile,
)
from tests.sim.helpers import Fixed, run, step_load


@pytest.mark.parametrize(
    ("hist", "q", "want"),
    [
        pytest.param([10], 0.99, 0.0, id="all-zero-wait"),
        pytest.param([98, 1, 1], 0.5, 0.0, id="median"),
        pytest.param([98, 1, 1], 0.99, 1.0, id="p99"),
        pytest.param([0, 0, 0], 0.99, 0.0, id="nothing-served"),
        pytest.param([50, 0, 0, 50], 0.99, 3.0, id="tail"),
    ],
)
def test_wait_quantile(hist: list[int], q: float, want: float) -> None:
    assert wait_quantile(hist, q) == want


def test_shortfall_episodes_measure_time_until_enough() -> None:
    cap = np.array([8, 8, 8, 16, 16, 16, 16, 8])
    dem = np.array([5, 9, 10, 10, 17, 5, 5, 9])
    assert shortfall_episodes(cap, dem).tolist() == [2, 1, 1]
    assert shortfall_episodes(cap, cap).tolist() == []


def test_report_has_the_issue_keys_and_sane_values() -> None:
    res = run(step_load(2, 4, at=300, n=900), Fixed(3), initial=3)
    rep = report_for(res, oracle_cost=1.0)
    d = rep.to_dict()
    assert tuple(k for k in d if k != "hybrid") == REPORT_KEYS
    assert rep.gpu_hours == pytest.approx(3 * 900 / 3600)
    assert rep.cost_usd == pytest.approx(rep.gpu_hours * 1.5)
    assert 0 < rep.utilization <= 1
    assert rep.cost_vs_oracle == pytest.approx(rep.cost_usd)


def test_reserved_level_is_the_break_even_quantile() -> None:
    m = CostModel(on_demand_per_hour=1.0, reserved_per_hour=0.5)
    # 10 pods needed half the time, 2 the other half: reserving pods needed >= 50 % pays
    base = np.array([2] * 50 + [10] * 50)
    assert reserved_level(base, m) in (2, 10)
    assert reserved_level(np.array([2] * 60 + [10] * 40), m) == 2


def test_hybrid_plan_saves_and_prices_every_pod_second() -> None:
    m = CostModel()
    billed = np.array([5] * 3600 + [12] * 3600)
    need = np.array([4] * 3600 + [10] * 3600)
    plan = hybrid_plan(billed, need, need, m)
    assert plan.on_demand_only_usd == pytest.approx(17 * 1.5)
    assert plan.reserved_pods == 4
    # reserved 4 pods x 2 h, on-demand 6 pods x 1 h, spare (1 + 2) pods x 1 h on spot
    assert plan.reserved_hours == pytest.approx(8)
    assert plan.on_demand_hours == pytest.approx(6)
    assert plan.spot_hours == pytest.approx(3)
    assert 0 < plan.hybrid_usd < plan.on_demand_only_usd
    assert plan.savings_usd == pytest.approx(plan.on_demand_only_usd - plan.hybrid_usd)


@pytest.mark.parametrize(
    "kwargs",
    [{"reserved_per_hour": 2.0}, {"spot_per_hour": 0.0}, {"spot_reclaim_per_hour": 1.5}],
)
def test_cost_model_validates(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        CostModel(**kwargs)


def _rep(policy: str, drop: float, cost: float, util: float = 0.9) -> PolicyReport:
    plan = hybrid_plan(np.array([1]), np.array([1]), np.array([1]), CostModel())
    return PolicyReport(policy, 100, 0, drop, 1.0, cost, util, 0, 0, 0, 0, None, plan)


@pytest.mark.parametrize(
    ("ciuic", "baseline", "want"),
    [
        pytest.param(
            _rep("ciuic", 0.0001, 105), _rep("hpa", 0.0, 200), {"all": True}, id="all-met"
        ),
        pytest.param(
            _rep("ciuic", 0.0003, 105), _rep("hpa", 0.0, 200), {"drops": False}, id="drops"
        ),
        pytest.param(
            _rep("ciuic", 0.0, 105, 0.8), _rep("hpa", 0.0, 200), {"util": False}, id="util"
        ),
        pytest.param(_rep("ciuic", 0.0, 111), _rep("hpa", 0.0, 200), {"cost": False}, id="c"),
        pytest.param(
            _rep("ciuic", 0.0, 105), _rep("hpa", 0.0, 130), {"peer": False}, id="peer-cheap"
        ),
        pytest.param(
            _rep("ciuic", 0.0, 105), _rep("hpa", 0.01, 130), {"peer": True}, id="peer-drops-more"
        ),
    ],
)
def test_check_targets(ciuic: PolicyReport, baseline: PolicyReport, want: dict[str, bool]) -> None:
    checks = check_targets([ciuic, baseline, _rep("oracle", 0.0, 100)])
    got = {
        "drops": checks[0].met,
        "util": checks[1].met,
        "cost": checks[2].met,
        "peer": checks[3].met,
    }
    if "all" in want:
        assert all(got.values())
    for k, v in want.items():
        if k != "all":
            assert got[k] is v
