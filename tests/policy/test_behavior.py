"""Step 6, behaviour: HPA v2 stabilisation windows and rate policies, alone and through decide."""

from __future__ import annotations

from typing import Any

import pytest

from app.policy import Code, ScalerState
from app.policy.behavior import apply_behavior, scale_down_limit, scale_up_limit
from app.policy.spec import BehaviorSpec
from tests.policy.helpers import T0, code_of, obs, run, spec


def behavior(doc: dict[str, Any] | None = None) -> BehaviorSpec:
    return BehaviorSpec.model_validate(doc or {})


UP_LIMITS: list[Any] = [
    # default: max(+4 pods, +100 %) from 1 -> 5
    pytest.param({}, 1, (), 5, id="default-small"),
    # default from 10: +100 % (20) beats +4 (14)
    pytest.param({}, 10, (), 20, id="default-large"),
    # selectPolicy Min takes the smaller change: 14
    pytest.param({"scaleUp": {"selectPolicy": "Min"}}, 10, (), 14, id="select-min"),
    # Disabled: no scale-up at all
    pytest.param({"scaleUp": {"selectPolicy": "Disabled"}}, 10, (), 10, id="disabled"),
    # 4 pods added 10 s ago: the period started at 4, so the limit is max(8, 8)
    pytest.param({}, 8, ((T0 - 10, 4),), 8, id="events-in-period"),
    # the same event 15 s ago is outside the 15 s period (strictly after the cutoff)
    pytest.param({}, 8, ((T0 - 15, 4),), 16, id="event-just-expired"),
    # a scale-down in the period raises the period's start: 6 + 2 removed = 8 -> 16
    pytest.param({}, 6, ((T0 - 5, -2),), 16, id="down-event-counts-back"),
    # Percent rounds up: 3 x 1.5 = 4.5 -> 5
    pytest.param(
        {"scaleUp": {"policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]}},
        3,
        (),
        5,
        id="percent-ceil",
    ),
]


@pytest.mark.parametrize("doc,current,events,limit", UP_LIMITS)
def test_scale_up_limit(
    doc: dict[str, Any], current: int, events: tuple[tuple[float, int], ...], limit: int
) -> None:
    assert scale_up_limit(behavior(doc).scale_up, current, events, T0) == limit


DOWN_LIMITS: list[Any] = [
    # default 100 % per 15 s: down to 0 allowed
    pytest.param({}, 10, (), 0, id="default"),
    # the Kubernetes docs' example: Pods 4 and Percent 10 per 60 s, Max -> 80 loses 8
    pytest.param(
        {
            "scaleDown": {
                "policies": [
                    {"type": "Pods", "value": 4, "periodSeconds": 60},
                    {"type": "Percent", "value": 10, "periodSeconds": 60},
                ]
            }
        },
        80,
        (),
        72,
        id="docs-80-loses-8",
    ),
    # same rules at 72: 10 % of 72 truncates to 64 (loses 8), still above the 4 pods
    pytest.param(
        {
            "scaleDown": {
                "policies": [
                    {"type": "Pods", "value": 4, "periodSeconds": 60},
                    {"type": "Percent", "value": 10, "periodSeconds": 60},
                ]
            }
        },
        72,
        (),
        64,
        id="docs-72-loses-8",
    ),
    # below 40 replicas the Pods policy (4) is the bigger change
    pytest.param(
        {
            "scaleDown": {
                "policies": [
                    {"type": "Pods", "value": 4, "periodSeconds": 60},
                    {"type": "Percent", "value": 10, "periodSeconds": 60},
                ]
            }
        },
        30,
        (),
        26,
        id="docs-30-loses-4",
    ),
    # 1 pod per minute, one removed 30 s ago: no further removal now
    pytest.param(
        {"scaleDown": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}},
        5,
        ((T0 - 30, -1),),
        5,
        id="pods-used-up",
    ),
    # Disabled: never scale down
    pytest.param({"scaleDown": {"selectPolicy": "Disabled"}}, 5, (), 5, id="disabled"),
]


@pytest.mark.parametrize("doc,current,events,limit", DOWN_LIMITS)
def test_scale_down_limit(
    doc: dict[str, Any], current: int, events: tuple[tuple[float, int], ...], limit: int
) -> None:
    assert scale_down_limit(behavior(doc).scale_down, current, events, T0) == limit


STABILISE: list[Any] = [
    # no history: desired passes
    pytest.param({}, 5, 3, (), 3, Code.BEHAVIOR_WITHIN_RANGE, id="no-history"),
    # a higher recommendation 200 s ago holds the scale-down (300 s window)
    pytest.param(
        {}, 8, 3, ((T0 - 200, 8), (T0 - 100, 6)), 8, Code.BEHAVIOR_DOWN_STABILIZED, id="down-held"
    ),
    # only the 6 from 100 s ago is inside a 150 s window
    pytest.param(
        {"scaleDown": {"stabilizationWindowSeconds": 150}},
        8,
        3,
        ((T0 - 200, 8), (T0 - 100, 6)),
        6,
        Code.BEHAVIOR_DOWN_STABILIZED,
        id="down-partial-window",
    ),
    # everything older than 300 s: free to go down
    pytest.param({}, 8, 3, ((T0 - 300, 8),), 3, Code.BEHAVIOR_WITHIN_RANGE, id="down-expired"),
    # scale-up window 60 s with a lower recommendation 30 s ago holds the scale-up
    pytest.param(
        {"scaleUp": {"stabilizationWindowSeconds": 60}},
        3,
        6,
        ((T0 - 30, 4),),
        4,
        Code.BEHAVIOR_UP_STABILIZED,
        id="up-held",
    ),
    # rate limited: from 2, default allows 6; desired 20
    pytest.param({}, 2, 20, (), 6, Code.BEHAVIOR_UP_LIMIT, id="up-rate-limited"),
    # scale-down limited by a Pods 1 / 60 s policy
    pytest.param(
        {
            "scaleDown": {
                "stabilizationWindowSeconds": 0,
                "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
            }
        },
        8,
        3,
        (),
        7,
        Code.BEHAVIOR_DOWN_LIMIT,
        id="down-rate-limited",
    ),
]


@pytest.mark.parametrize("doc,current,desired,recs,replicas,code", STABILISE)
def test_stabilisation_and_rate(
    doc: dict[str, Any],
    current: int,
    desired: int,
    recs: tuple[tuple[float, int], ...],
    replicas: int,
    code: str,
) -> None:
    out = apply_behavior(behavior(doc), current, desired, recs, (), T0)
    assert out.replicas == replicas
    assert out.reason.code == code
    assert out.recommendations[-1] == (T0, desired)  # the unstabilised value is recorded


def test_recommendation_history_keeps_one_entry_per_value() -> None:
    recs = tuple((T0 - 15 * i, 5) for i in range(19, 0, -1))
    out = apply_behavior(behavior(), 5, 5, recs, (), T0)
    assert out.recommendations == ((T0, 5),)
    out = apply_behavior(behavior(), 5, 4, ((T0 - 30, 6), (T0 - 15, 5)), (), T0)
    assert out.recommendations == ((T0 - 30, 6), (T0 - 15, 5), (T0, 4))


def test_hpa_scale_down_over_time_through_decide() -> None:
    """Load drops from 100 % to 10 % at t=0 with the spec's `behavior` set (HPA's defaults):
    the 300 s window holds 8 pods for 300 s (strictly after the cutoff), then 100 %/15 s
    lets it drop to the need at once."""
    # The reactive window and panic are narrowed to one reading, so the HPA machinery alone
    # holds the pods here (each has its own tests).
    s = spec(
        behavior={"scaleDown": {"stabilizationWindowSeconds": 300}},
        reactive={"window": "1s", "panic": 100},
    )
    state = ScalerState()
    replicas = 4
    d = run(s, obs(replicas, gpu=100.0), state=state, now=T0 - 15)
    state, replicas = d.state, d.replicas
    assert replicas == 8
    seen = []
    for k in range(0, 22):
        now = T0 + 15 * k
        d = run(s, obs(replicas, gpu=10.0 * 4 / replicas * 2), state=state, now=now)
        state, replicas = d.state, d.replicas
        seen.append((k * 15, replicas, code_of(d, "behavior")))
    held = [t for t, r, _ in seen if r == 8]
    assert max(held) == 270  # the 8 recorded at T0-15 leaves the window at T0+285
    assert seen[19] == (285, 2, Code.BEHAVIOR_WITHIN_RANGE)
    assert all(c == Code.BEHAVIOR_DOWN_STABILIZED for t, _, c in seen if t <= 270)
