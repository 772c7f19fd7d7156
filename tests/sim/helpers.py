"""Small hand-made loads and fixed policies for the simulator tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from app.sim.engine import Autoscaler, ClusterView, Scenario, SimResult, simulate
from app.sim.traces import Workload, workload_from_arrivals

SC = Scenario()


def step_load(before: int, after: int, at: int, n: int, seed: int = 1) -> Workload:
    """Poisson arrivals whose rate jumps from `before` to `after` req/s at second `at`."""
    rate = np.where(np.arange(n) < at, before, after)
    return workload_from_arrivals(np.random.default_rng(seed).poisson(rate))


def ramp_load(lo: float, hi: float, n: int, seed: int = 1) -> Workload:
    rate = np.linspace(lo, hi, n)
    return workload_from_arrivals(np.random.default_rng(seed).poisson(rate))


class Fixed:
    """Holds a replica count (or follows a function of time)."""

    name = "fixed"
    phase_s = 0

    def __init__(self, replicas: int | Callable[[int], int], period_s: int = 1) -> None:
        self.replicas = replicas
        self.period_s = period_s

    def decide(self, view: ClusterView) -> int:
        r = self.replicas
        return r(view.now) if callable(r) else r


def run(
    wl: Workload, policy: Autoscaler, seed: int = 0, initial: int | None = None, sc: Scenario = SC
) -> SimResult:
    return simulate(wl, policy, scenario=sc, seed=seed, initial_replicas=initial)
