"""Small hand-made loads and fixed policies for the simulator tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from app.sim.engine import Autoscaler, ClusterView, Scenario, SimResult, simulate
from app.sim.traces import Workload, workload_from_arrivals, workload_from_requests

SC = Scenario()


def step_load(before: int, after: int, at: int, n: int, seed: int = 1) -> Workload:
    """Poisson arrivals whose rate jumps from `before` to `after` req/s at second `at` (the
    rate is part of the workload, for the fluid reference)."""
    rate = np.where(np.arange(n) < at, before, after).astype(np.float64)
    return workload_from_arrivals(np.random.default_rng(seed).poisson(rate), rate=rate)


def ramp_load(lo: float, hi: float, n: int, seed: int = 1) -> Workload:
    rate = np.linspace(lo, hi, n)
    return workload_from_arrivals(np.random.default_rng(seed).poisson(rate), rate=rate)


def requests(n: int, **at: list[int]) -> Workload:
    """A request log by hand: `requests(100, t0=[5, 60], t10=[10] * 8)` has two requests at
    second 0 (5 s and 60 s of service, in that order) and eight of 10 s at second 10."""
    return workload_from_requests({int(k[1:]): v for k, v in at.items()}, n)


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


class Recorder:
    """Wraps a policy and records every decision: (now, replicas asked for)."""

    def __init__(self, inner: Autoscaler) -> None:
        self.inner = inner
        self.name = inner.name
        self.period_s = inner.period_s
        self.phase_s = inner.phase_s
        self.decisions: list[tuple[int, int]] = []

    def decide(self, view: ClusterView) -> int:
        want = self.inner.decide(view)
        self.decisions.append((view.now, want))
        return want


def run(
    wl: Workload, policy: Autoscaler, seed: int = 0, initial: int | None = None, sc: Scenario = SC
) -> SimResult:
    return simulate(wl, policy, scenario=sc, seed=seed, initial_replicas=initial)
