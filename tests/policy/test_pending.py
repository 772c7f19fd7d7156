"""Pods stuck Pending with no node: capacity that is not coming, and said so."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.policy import ScalerState, decide
from app.policy.types import Decision, Observation
from tests.policy.helpers import T0, obs, spec

FREE = {"stabilizationWindowSeconds": 0,
        "policies": [{"type": "Pods", "value": 100, "periodSeconds": 1}]}  # fmt: skip
SPEC = spec(cold_start="60s", reactive={"window": "1s"},
            behavior={"scaleUp": FREE, "scaleDown": FREE})  # fmt: skip


def pending(observation: Observation, *ages_s: float, at: float = T0) -> Observation:
    """`observation` with starting pods that have waited `ages_s` for a node."""
    return replace(observation, unscheduled_since=tuple(at - a for a in ages_s))


def twice(observation: Observation) -> Decision:
    """The second of two decisions a window apart (the first holds any scale-down)."""
    first = decide(SPEC, observation, None, ScalerState(), T0 - 5)
    return decide(SPEC, observation, None, first.state, T0)


@pytest.mark.parametrize(
    ("ages_s", "replicas", "said"),
    [
        # 2 Ready pods at 75 % of a 50 % target, 2 more starting for 10 s: the replica
        # calculator counts on them ("they will take the load") and keeps the 4
        pytest.param((10.0, 10.0), 4, None, id="young-pods-are-waited-on"),
        # the same 2 with no node for 10 minutes: not coming; the Ready pods' load asks for 3
        pytest.param((600.0, 600.0), 3, "2 pods Pending with no node", id="stuck-not-waited-on"),
        # one of each: only the one past the 60 s cold start is given up on
        pytest.param((600.0, 10.0), 4, "1 pod Pending with no node", id="one-stuck-one-young"),
    ],
)
def test_stuck_pods_are_not_waited_on_and_the_reason_says_so(
    ages_s: tuple[float, ...], replicas: int, said: str | None
) -> None:
    observation = pending(obs(4, ready=2, starting=2, gpu=75.0), *ages_s)
    decision = twice(observation)
    assert decision.replicas == replicas
    reactive = decision.reasons[0]
    assert len(decision.reasons) == 9  # still one reason per step
    if said is None:
        assert "Pending" not in reactive.message and "stuck_pods" not in reactive.values
    else:
        assert said in reactive.message
        assert "capacity that is not coming" in reactive.message
        assert reactive.values["stuck_pods"] == float(said.split()[0])


def test_stuck_pods_do_not_block_the_scale_down_of_the_rest() -> None:
    """4 replicas: 2 Ready and nearly idle, 2 stuck with no node for 10 minutes. The load
    asks for 1 pod: the scale-down goes ahead (the ReplicaSet controller removes the
    unscheduled pods first), and the reason names the stuck pods."""
    decision = twice(pending(obs(4, ready=2, starting=2, gpu=10.0), 600.0, 600.0))
    assert decision.replicas == 1
    assert "2 pods Pending with no node" in decision.reasons[0].message
