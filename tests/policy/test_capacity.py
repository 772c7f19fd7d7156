"""The per-pod capacity the policy divides by: the spec's, or learned from what pods push.

Scenarios drive `decide` with simulated pods of a known capacity: every pod serves `per_pod`
requests/s at full use, so at a load `L` over `R` Ready pods the GPU reads `L / (per_pod R)`
and the load signal `L` (with a few percent of noise, like a 5 s count)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.policy import Code, ScalerState, decide
from app.policy.capacity import MIN_SAMPLES, capacity_in_use
from app.policy.types import LearnedCapacity
from tests.policy.helpers import GPU, QUEUE, T0, code_of, obs, spec

LEARN = {
    "metrics": [{"name": GPU, "target": "85%"}, {"name": QUEUE, "target": "<5"}],
    "max_replicas": 200,
}


def drive(per_pod: float, loads: list[float], state: ScalerState, t0: float = T0,
          seed: int = 0) -> tuple[ScalerState, list[float | None]]:  # fmt: skip
    """Decisions every 5 s on pods of `per_pod` capacity; returns the state and the capacity
    each decision used."""
    rng = np.random.default_rng(seed)
    s = spec(**LEARN)
    replicas = 4
    used: list[float | None] = []
    for i, load in enumerate(loads):
        busy = load / per_pod
        gpu = min(100.0, 100.0 * busy / replicas)
        queue = 0.0 if busy <= replicas else 20.0
        noisy = load * float(rng.normal(1.0, 0.05))
        d = decide(s, obs(replicas, gpu=gpu, queue=queue, load_rate=noisy), None, state,
                   t0 + 5 * i)  # fmt: skip
        state, replicas = d.state, max(1, d.replicas)
        used.append(capacity_in_use(s, state.capacity).per_pod)
    return state, used


def varied_hour(seed: int = 3) -> list[float]:
    """An hour of 5 s steps between 2 and 12 req/s, changing every few minutes."""
    rng = np.random.default_rng(seed)
    return [float(x) for x in np.repeat(rng.uniform(2, 12, 24), 30)]


def test_learned_within_ten_percent_after_an_hour_of_varied_load() -> None:
    state, used = drive(0.5, varied_hour(), ScalerState())
    assert used[-1] is not None
    assert used[-1] == pytest.approx(0.5, rel=0.10)
    assert state.capacity.spread is not None and state.capacity.spread < 0.2


def test_unknown_until_a_minute_of_samples_then_used() -> None:
    _, used = drive(0.5, [1.0] * 20, ScalerState())  # 2 of 4 pods busy: each sample teaches
    first = next(i for i, c in enumerate(used) if c is not None)
    # about a minute of 5 s samples (the older ones have decayed a little by then)
    assert MIN_SAMPLES <= first + 1 <= MIN_SAMPLES + 1
    assert all(c is None for c in used[:first])


def test_a_new_model_version_is_relearned() -> None:
    """The pods get twice as fast (a new model version): within an hour the capacity follows."""
    state, _ = drive(0.5, varied_hour(), ScalerState())
    state, used = drive(1.0, varied_hour(seed=4), state, t0=T0 + 3600)
    assert used[-1] == pytest.approx(1.0, rel=0.15)


@pytest.mark.parametrize(
    ("gpu", "queue", "teaches"),
    [
        pytest.param(50.0, 0.0, True, id="busy-serving-what-arrives"),
        pytest.param(5.0, 0.0, False, id="idle-pods-say-little"),
        pytest.param(99.0, 0.0, False, id="saturated-by-utilisation"),
        pytest.param(80.0, 30.0, False, id="saturated-by-the-queue"),
    ],
)
def test_only_unsaturated_busy_samples_teach(gpu: float, queue: float, teaches: bool) -> None:
    d = decide(spec(**LEARN), obs(4, gpu=gpu, queue=queue, load_rate=1.0), None, ScalerState(), T0)
    assert (d.state.capacity.weight > 0) is teaches


def test_a_stated_capacity_is_used_as_written_and_never_learned() -> None:
    s = spec(**LEARN, capacity={"request_rate": "30/min", "utilization": "80%"})
    d = decide(s, obs(4, gpu=50.0, load_rate=9.0), None, ScalerState(), T0)
    assert d.state.capacity == LearnedCapacity()
    assert capacity_in_use(s, d.state.capacity).per_pod == pytest.approx(0.5 * 0.8)


def test_the_reasons_say_the_capacity_is_still_being_learned() -> None:
    d = decide(spec(**LEARN), obs(4, gpu=50.0), None, ScalerState(), T0)
    reason = d.reasons[1]
    assert reason.code == Code.PREDICTIVE_NO_CAPACITY
    assert "capacity not learned yet" in reason.message
    assert "request_rate" in reason.message


def test_learned_state_survives_the_store_round_trip() -> None:
    state, _ = drive(0.5, [4.0] * 30, ScalerState())
    back = ScalerState.from_dict(state.to_dict())
    assert back == state
    assert math.isclose(back.capacity.mean or 0.0, state.capacity.mean or 0.0)
    assert code_of(decide(spec(**LEARN), obs(4, gpu=50.0), None, back, T0 + 200), "reactive")
