"""The learned cold start: one definition for the live adapter, the built-in simulated cluster
and the benchmark's simulator (what the policy is told must not depend on which one runs)."""

from __future__ import annotations

from app.policy.coldstart import COLD_START_WINDOW, learned_cold_start


def test_a_high_quantile_of_the_last_pods_robust_to_one_slow_node() -> None:
    assert learned_cold_start([]) is None
    assert learned_cold_start([42.0]) == 42.0
    ten = [30.0, 31, 32, 33, 34, 35, 36, 37, 38, 39]
    assert learned_cold_start(ten) == 38.0  # nearest rank: the 9th of 10
    assert learned_cold_start([*ten[:9], 600.0]) == 38.0  # the odd slow node is not the answer
    assert learned_cold_start(ten, quantile=0.5) == 34.0


def test_the_live_adapter_and_the_simulator_learn_the_same_number() -> None:
    from collections import deque

    from app.kube.pods import ColdStarts

    live = ColdStarts()
    measured = [float(30 + (7 * i) % 31) for i in range(50)]
    live.samples.extend(measured)  # what the adapter keeps of the pods it saw become Ready
    sim: deque[float] = deque(measured, maxlen=COLD_START_WINDOW)  # what the engine keeps
    assert live.value() == learned_cold_start(sim) == learned_cold_start(measured[-20:])
