"""Step 1, reactive: Kubernetes replica-calculator reference cases, combination, missing data."""

from __future__ import annotations

import math
from typing import Any

import pytest

from app.policy import Code
from app.policy.reactive import hpa_replicas
from tests.policy.helpers import GPU, QUEUE, T0, code_of, obs, run, running, spec

# (current, ready, starting, reporting, value, target, expected) from
# kubernetes pkg/controller/podautoscaler/replica_calculator_test.go, with the per-pod levels
# turned into the average over Ready pods that reported (what our shell pushes).
HPA_CASES = [
    # TestReplicaCalcScaleUp: 3 pods at 30/50/70 %, target 30 % -> 5
    pytest.param(3, 3, 0, 3, 50.0, 30.0, 5, id="ScaleUp"),
    # TestReplicaCalcScaleUpUnreadyLessScale: unready pod counts 0 on scale-up -> 4 not 6
    pytest.param(3, 2, 1, 2, 60.0, 30.0, 4, id="ScaleUpUnreadyLessScale"),
    # TestReplicaCalcScaleUpUnreadyNoScale: rebalancing flips to scale-down -> keep 3
    pytest.param(3, 1, 2, 1, 40.0, 30.0, 3, id="ScaleUpUnreadyNoScale"),
    # TestReplicaCalcScaleUpIgnoresFailedPods: failed pods are neither ready nor starting
    pytest.param(2, 2, 0, 2, 60.0, 30.0, 4, id="ScaleUpIgnoresFailedPods"),
    # TestReplicaCalcScaleUpCM: qps 20 vs 15 per pod -> 4
    pytest.param(3, 3, 0, 3, 20000.0, 15000.0, 4, id="ScaleUpCM"),
    # TestReplicaCalcScaleDown: 5 pods at 28 %, target 50 % -> 3
    pytest.param(5, 5, 0, 5, 28.0, 50.0, 3, id="ScaleDown"),
    # TestReplicaCalcScaleDownCM: qps 12 vs 20 -> 3
    pytest.param(5, 5, 0, 5, 12000.0, 20000.0, 3, id="ScaleDownCM"),
    # TestReplicaCalcScaleDownIncludeUnreadyPods: scale-down counts only the 3 ready -> 2
    pytest.param(5, 3, 2, 3, 30.0, 50.0, 2, id="ScaleDownIncludeUnreadyPods"),
    # TestReplicaCalcScaleDownExcludeUnscheduledPods: 4 pending pods ignored -> 1
    pytest.param(5, 1, 4, 1, 10.0, 50.0, 1, id="ScaleDownExcludeUnscheduledPods"),
    # TestReplicaCalcTolerance: 102 % of target is inside the 10 % dead-band
    pytest.param(3, 3, 0, 3, 102.0, 100.0, 3, id="Tolerance"),
    # TestReplicaCalcToleranceCM: 20666 vs 20000
    pytest.param(3, 3, 0, 3, 20666.0, 20000.0, 3, id="ToleranceCM"),
    # TestReplicaCalcMissingMetrics: 2 of 4 missing count as target on scale-down -> 3
    pytest.param(4, 4, 0, 2, 24.75, 100.0, 3, id="MissingMetrics"),
    # TestReplicaCalcMissingMetricsNoChangeEq: exactly on target with a missing pod
    pytest.param(2, 2, 0, 1, 100.0, 100.0, 2, id="MissingMetricsNoChangeEq"),
    # TestReplicaCalcMissingMetricsNoChangeGt: missing as 0 lands in tolerance
    pytest.param(2, 2, 0, 1, 190.0, 100.0, 2, id="MissingMetricsNoChangeGt"),
    # TestReplicaCalcMissingMetricsNoChangeLt: missing as target, ceil keeps 2
    pytest.param(2, 2, 0, 1, 60.0, 100.0, 2, id="MissingMetricsNoChangeLt"),
    # TestReplicaCalcMissingMetricsUnreadyChange: one unready, one missing -> in tolerance
    pytest.param(3, 2, 1, 1, 45.0, 50.0, 3, id="MissingMetricsUnreadyChange"),
    # TestReplicaCalcMissingMetricsUnreadyScaleUp: missing and unready both as 0 -> 4
    pytest.param(3, 2, 1, 1, 200.0, 50.0, 4, id="MissingMetricsUnreadyScaleUp"),
    # TestReplicaCalcDuringRollingUpdateWithMaxSurge: a surge pod without metrics -> keep 2
    pytest.param(2, 3, 0, 2, 10.0, 50.0, 2, id="DuringRollingUpdateWithMaxSurge"),
]


@pytest.mark.parametrize("current,ready,starting,reporting,value,target,expected", HPA_CASES)
def test_hpa_replica_calculator_reference(
    current: int,
    ready: int,
    starting: int,
    reporting: int,
    value: float,
    target: float,
    expected: int,
) -> None:
    need = hpa_replicas(
        value,
        target,
        current=current,
        reporting=reporting,
        ready=ready,
        unready=starting,
        tolerance=0.1,
    )
    assert math.ceil(need - 1e-9) == expected
    # The same through decide(): default behaviour allows these steps in one call.
    s = spec(metrics=[{"name": GPU, "target": target}])
    o = obs(current, ready=ready, starting=starting, reporting=reporting, gpu=value)
    assert run(s, o).replicas == expected


# KEDA-style totals (`aggregation: sum`), HPA's external per-pod metric (AverageValue).
SUM_CASES = [
    # TestReplicaCalcScaleUpPerPodCMExternal: 8600 total / 2150 per pod -> 4
    pytest.param(3, 8600.0, 2150.0, 4, Code.REACTIVE_SCALE, id="ScaleUpPerPodCMExternal"),
    # TestReplicaCalcScaleDownPerPodCMExternal: 8600 / 2867 -> 3
    pytest.param(5, 8600.0, 2867.0, 3, Code.REACTIVE_SCALE, id="ScaleDownPerPodCMExternal"),
    # TestReplicaCalcTolerancePerPodCMExternal: 8600 / (3 x 2900) = 0.99 -> keep 3
    pytest.param(3, 8600.0, 2900.0, 3, Code.REACTIVE_IN_TOLERANCE, id="TolerancePerPodCMExternal"),
    # a queue of 50 at 5 per pod -> 10 (6 replicas: the default rate limit allows 12)
    pytest.param(6, 50.0, 5.0, 10, Code.REACTIVE_SCALE, id="queue-total"),
]


@pytest.mark.parametrize("current,total,target,expected,code", SUM_CASES)
def test_sum_aggregation_is_total_over_per_pod_target(
    current: int, total: float, target: float, expected: int, code: str
) -> None:
    s = spec(metrics=[{"name": QUEUE, "target": target, "aggregation": "sum"}])
    d = run(s, obs(current, queue=total))
    assert d.replicas == expected
    assert code_of(d, "reactive") == code


COMBINE_CASES: list[Any] = [
    # The brief's weights blend the load metrics; `<5` is a ceiling, not a load measure. Over
    # it (8 per pod) the deployment is saturated: without a capacity the queue asks like
    # KEDA (8 / 5 x 3 = 4.8 pods), which beats the GPU's 95 % / 85 % x 3 = 3.35 -> 5.
    pytest.param(
        "weighted", {"gpu": 95.0, "queue": 8.0}, 4.8, 5, Code.REACTIVE_SCALE, id="weighted-brief"
    ),
    # HPA: the largest proposal wins -> 4.8 -> 5
    pytest.param("max", {"gpu": 95.0, "queue": 8.0}, 4.8, 5, Code.REACTIVE_SCALE, id="max-hpa"),
    # both inside the dead-band: current kept exactly
    pytest.param(
        "weighted",
        {"gpu": 87.0, "queue": 5.2},
        3.0,
        3,
        Code.REACTIVE_IN_TOLERANCE,
        id="both-in-tolerance",
    ),
    # gpu in tolerance keeps 3; the queue under its ceiling abstains (a short queue is not a
    # reason to scale down: it used to blend in as 1.2 pods)
    pytest.param(
        "weighted",
        {"gpu": 84.0, "queue": 2.0},
        3.0,
        3,
        Code.REACTIVE_IN_TOLERANCE,
        id="one-in-tolerance",
    ),
    # the gpu says down (30 % / 85 % x 3 = 1.06), the queue abstains -> 2
    pytest.param(
        "weighted", {"gpu": 30.0, "queue": 1.0}, 1.06, 2, Code.REACTIVE_SCALE, id="weighted-down"
    ),
]


@pytest.mark.parametrize("combine,values,need,replicas,code", COMBINE_CASES)
def test_metrics_combine(
    combine: str, values: dict[str, float], need: float, replicas: int, code: str
) -> None:
    s = spec(
        combine=combine,
        metrics=[
            {"name": GPU, "target": "85%", "weight": 0.6},
            {"name": QUEUE, "target": "<5", "weight": 0.4},
        ],
    )
    d = run(s, obs(3, **values))
    assert d.reasons[0].values["need"] == pytest.approx(need, abs=0.01)
    assert d.replicas == replicas
    assert code_of(d, "reactive") == code


MISSING_CASES: list[Any] = [
    # queue missing, gpu says up: scale up on what we have
    pytest.param({"gpu": 90.0, "queue": None}, {}, 6, Code.REACTIVE_PARTIAL, id="partial-up"),
    # queue missing, gpu says down: never scale down on partial data
    pytest.param(
        {"gpu": 10.0, "queue": None}, {}, 3, Code.REACTIVE_PARTIAL_HOLD, id="partial-down-held"
    ),
    # nothing at all: hold
    pytest.param({"gpu": None, "queue": None}, {}, 3, Code.REACTIVE_FALLBACK_HOLD, id="none-hold"),
    # nothing at all with a fixed fallback: 5
    pytest.param(
        {}, {"fallback": {"replicas": 5}}, 5, Code.REACTIVE_FALLBACK_REPLICAS, id="none-fixed"
    ),
    # a metric older than stale_after is missing
    pytest.param(
        {"gpu": 10.0, "queue": 0.5, "age_s": 120.0},
        {},
        3,
        Code.REACTIVE_FALLBACK_HOLD,
        id="stale-is-missing",
    ),
    # a fresh-enough metric under a longer stale_after is used
    pytest.param(
        {"gpu": 10.0, "queue": 0.5, "age_s": 120.0},
        {"fallback": {"stale_after": "5m"}},
        1,
        Code.REACTIVE_SCALE,
        id="longer-stale-after",
    ),
]


@pytest.mark.parametrize("values,extra,replicas,code", MISSING_CASES)
def test_missing_metrics(
    values: dict[str, Any], extra: dict[str, Any], replicas: int, code: str
) -> None:
    s = spec(metrics=[{"name": GPU, "target": "50%"}, {"name": QUEUE, "target": "<5"}], **extra)
    d = run(s, obs(3, **values))
    assert d.replicas == replicas
    assert code_of(d, "reactive") == code
    assert d.valid is (code not in (Code.REACTIVE_FALLBACK_HOLD, Code.REACTIVE_FALLBACK_REPLICAS))


def test_pods_reporting_zero_means_every_ready_pod_reported() -> None:
    s = spec()
    d = run(s, obs(4, reporting=0, gpu=100.0))  # 4 pods at twice their target: 8 (a panic)
    assert d.replicas == 8 and code_of(d, "reactive") == Code.REACTIVE_PANIC
    d = run(s, obs(4, reporting=0, gpu=75.0))
    assert d.replicas == 6 and code_of(d, "reactive") == Code.REACTIVE_SCALE


def test_custom_tolerance() -> None:
    # 5 % over target: a scale-up under tolerance 0.01, nothing under the default 0.1
    assert run(spec(), obs(10, gpu=52.5)).replicas == 10
    assert run(spec(tolerance=0.01), obs(10, gpu=52.5)).replicas == 11


def test_weight_zero_metric_only_triggers() -> None:
    s = spec(
        combine="weighted",
        metrics=[
            {"name": GPU, "target": "50%", "weight": 1.0},
            {"name": QUEUE, "target": "<5", "weight": 0.0},
        ],
    )
    # a huge queue does not scale by itself...
    d = run(s, obs(3, gpu=50.0, queue=500.0))
    assert d.replicas == 3 and code_of(d, "reactive") == Code.REACTIVE_IN_TOLERANCE
    # ...and without the gpu metric there is no scaling data at all
    d = run(s, obs(3, gpu=None, queue=500.0))
    assert d.replicas == 3 and code_of(d, "reactive") == Code.REACTIVE_FALLBACK_HOLD


@pytest.mark.parametrize(
    "values",
    [
        pytest.param({"gpu": None, "queue": 1.0}, id="gpu-stale-queue-low"),
        pytest.param({"gpu": None, "queue": None}, id="nothing-fresh"),
    ],
)
def test_a_held_count_gets_no_spare_pod_at_every_reconcile(values: dict[str, Any]) -> None:
    """GPU utilisation stops arriving while the queue is pushed (or nothing is): the count is
    held, and eager preheat's spare is not added on top of it again at each reconcile (it
    climbed one pod every 5 s to max_replicas)."""
    s = spec(
        metrics=[{"name": GPU, "target": "85%"}, {"name": QUEUE, "target": "<5"}],
        preheat={"enabled": True, "strategy": "eager", "min_ready": 1},
    )
    current, state, now = 4, running(), T0
    for _ in range(12):  # a minute of reconciles, each applied
        d = run(s, obs(current, **values), state=state, now=now)
        current, state, now = d.replicas, d.state, now + 5.0
        assert current == 4, [r.message for r in d.reasons]
    assert code_of(d, "preheat") == Code.PREHEAT_EAGER
    assert "kept for missing metrics" in d.reasons[4].message


def test_a_fallback_count_is_applied_without_spares_on_top() -> None:
    s = spec(
        metrics=[{"name": GPU, "target": "85%"}],
        preheat={"enabled": True, "strategy": "eager", "min_ready": 1},
        fallback={"replicas": 5},
    )
    d = run(s, obs(3, gpu=None))
    assert d.replicas == 5 and not d.valid


def test_a_scale_down_never_puts_what_waits_over_its_ceiling() -> None:
    """The demo's flap (16 -> 7 -> 12 in 5 s): a queue burst fell under its ceiling (5 a pod)
    with 58 requests still waiting on 16 pods. The arrivals alone ask for 7 pods, but 58
    waiting on 7 pods is 8 a pod, over the ceiling again at once. The count goes no lower
    than the pods that hold what waits at the ceiling (58 / 5 -> 12), and follows the
    arrivals as the queue drains."""
    s = spec(
        metrics=[{"name": GPU, "target": "85%"}, {"name": QUEUE, "target": "<5"}],
        capacity={"request_rate": "30/min"},  # 0.5 requests/s a pod
    )
    burst = run(s, obs(16, gpu=100.0, queue=10.0, load_rate=3.26), now=T0)
    assert burst.replicas >= 16
    drained = run(s, obs(16, gpu=100.0, queue=3.63, load_rate=3.26), state=burst.state, now=T0 + 10)
    assert drained.replicas == 12, [r.message for r in drained.reasons]
    assert "what waits now needs 11.62 pods" in drained.reasons[6].message  # the hold says why
    later = run(s, obs(12, gpu=60.0, queue=0.2, load_rate=3.26), state=drained.state, now=T0 + 100)
    assert later.replicas < 12  # the backlog served, a cold start on: the arrivals decide
