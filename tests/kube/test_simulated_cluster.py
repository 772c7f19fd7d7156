"""The built-in cluster: pods start cold, become ready, leave starting-first, and teach the
scaler its cold start."""

from __future__ import annotations

import pytest

from app.kube.simulated import SimulatedCluster
from app.policy.spec import TargetRef
from testkit.clock import FakeClock

TARGET = TargetRef(name="deepseek-service")


async def test_new_pods_become_ready_after_their_cold_start() -> None:
    clock = FakeClock(1000.0)
    cluster = SimulatedCluster(clock, initial_replicas=2, cold_start_s=(30, 60))
    first = await cluster.observe(TARGET)
    assert (first.replicas, first.ready, first.starting) == (2, 2, 0)
    assert first.learned_cold_start_s is None  # nothing seen starting yet
    await cluster.scale(TARGET, 5)
    clock.t += 29
    state = await cluster.observe(TARGET)
    assert (state.replicas, state.ready, state.starting) == (5, 2, 3)
    clock.t += 31
    state = await cluster.observe(TARGET)
    assert (state.ready, state.starting) == (5, 0)
    assert state.learned_cold_start_s is not None
    assert 30 <= state.learned_cold_start_s <= 60


async def test_scaling_down_removes_starting_pods_first() -> None:
    clock = FakeClock(1000.0)
    cluster = SimulatedCluster(clock, initial_replicas=3)
    await cluster.scale(TARGET, 6)
    await cluster.scale(TARGET, 4)
    state = await cluster.observe(TARGET)
    assert (state.replicas, state.ready, state.starting) == (4, 3, 1)
    await cluster.scale(TARGET, 2)
    state = await cluster.observe(TARGET)
    assert (state.replicas, state.ready, state.starting) == (2, 2, 0)


@pytest.mark.parametrize("seed", [1, 2])
async def test_cold_starts_are_reproducible_per_seed(seed: int) -> None:
    runs = []
    for _ in range(2):
        clock = FakeClock(1000.0)
        cluster = SimulatedCluster(clock, initial_replicas=0, seed=seed)
        await cluster.scale(TARGET, 3)
        clock.t += 60
        runs.append((await cluster.observe(TARGET)).learned_cold_start_s)
    assert runs[0] == runs[1]
