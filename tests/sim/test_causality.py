"""No policy under test sees the future: two workloads identical up to second T and different
after it get the same decisions (replicas asked for) at every call up to T.

A call at `now` (the end of second now - 1) may read everything that happened before `now`; the
load of second T is first visible to the call at T + 1. The oracle and fluid are exempt: they are
clairvoyant references by definition (the oracle plans on every future arrival, fluid on the
future rate) and exist to bound what a policy that only sees the past can achieve; the last test
shows the same check catching the oracle.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.sim.engine import Autoscaler, ClusterView
from app.sim.runner import make_policy
from app.sim.traces import Workload, workload_from_arrivals, workload_from_requests
from tests.sim.helpers import SC, Recorder, run

Fork = tuple[Workload, Workload, int]


def _decisions_until(policy: Autoscaler, wl: Workload, until: int) -> list[tuple[int, int]]:
    rec = Recorder(policy)
    run(wl, rec)
    return [(now, want) for now, want in rec.decisions if now <= until]


def _same_until_t(name: str, fork: Fork) -> None:
    a, b, t = fork
    before_a = _decisions_until(make_policy(name, SC, a), a, t)
    before_b = _decisions_until(make_policy(name, SC, b), b, t)
    assert before_a, "the policy decided nothing before T"
    assert before_a == before_b


@st.composite
def count_forks(draw: st.DrawFn, *, n_lo: int = 600, n_hi: int = 2400, history: int = 12) -> Fork:
    """Poisson arrivals on a random profile; after T the second workload gets another one
    (more, less, none, a burst). Both share the history before the window, which sizes the
    initial fleet (without one, the first minute would, and T may be earlier)."""
    n = draw(st.integers(n_lo, n_hi))
    t = draw(st.integers(30, n - 30))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    level = rng.uniform(1, 15)
    rate = level * (1 + 0.5 * np.sin(np.arange(n) / rng.uniform(60, 600)))
    a = rng.poisson(rate)
    after = rng.poisson(rate * draw(st.sampled_from([0.0, 0.3, 2.0, 4.0])))
    b = np.concatenate((a[:t], after[t:]))
    b[t] += 25  # differ at T itself, at least
    hist = np.full(history, level)
    return (
        workload_from_arrivals(a, history_rate=hist, history_step_s=300, start=86400.0 * 3),
        workload_from_arrivals(b, history_rate=hist, history_step_s=300, start=86400.0 * 3),
        t,
    )


@st.composite
def log_forks(draw: st.DrawFn) -> Fork:
    """A request log; after T the second one has other arrivals and other service times. T is
    past the first minute, which sizes the initial fleet of a log (docs/benchmark.md)."""
    n = draw(st.integers(600, 1800))
    t = draw(st.integers(60, n - 30))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a = {s: rng.integers(1, 40, size=rng.poisson(3)).tolist() for s in range(n)}
    b = {
        s: (v if s < t else rng.integers(1, 120, size=rng.poisson(6)).tolist())
        for s, v in a.items()
    }
    b[t] = [*b[t], 100, 100, 100]
    return workload_from_requests(a, n), workload_from_requests(b, n), t


@pytest.mark.parametrize("name", ["hpa", "keda", "kpa"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fork=count_forks())
def test_baselines_decide_only_on_the_past(name: str, fork: Fork) -> None:
    _same_until_t(name, fork)


@pytest.mark.parametrize("name", ["hpa", "keda", "kpa"])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fork=log_forks())
def test_baselines_decide_only_on_the_past_of_a_request_log(name: str, fork: Fork) -> None:
    _same_until_t(name, fork)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fork=count_forks(n_lo=3600, n_hi=2 * 3600, history=2 * 288))
def test_ciuic_decides_only_on_the_past(fork: Fork) -> None:
    # two hours after two days of 5-minute history: the forecaster's fits and refreshes,
    # the burst trigger and the policy's state all run
    _same_until_t("ciuic", fork)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fork=log_forks())
def test_ciuic_decides_only_on_the_past_of_a_request_log(fork: Fork) -> None:
    _same_until_t("ciuic", fork)


class _Peeker:
    """A policy that reads the workload's future arrivals: what the check must catch."""

    name = "peeker"
    period_s = 5
    phase_s = 0

    def decide(self, view: ClusterView) -> int:
        ahead = view.workload.arrivals[view.now : view.now + 60]
        return 1 + int(ahead.sum()) // 60


@pytest.mark.parametrize("policy", ["peeker", "oracle"])
def test_the_check_catches_a_policy_that_reads_the_future(policy: str) -> None:
    a = workload_from_arrivals(np.full(1200, 2))
    b = workload_from_arrivals(np.concatenate((np.full(600, 2), np.full(600, 20))))
    make = (
        (lambda wl: _Peeker()) if policy == "peeker" else (lambda wl: make_policy("oracle", SC, wl))
    )
    assert _decisions_until(make(a), a, 600) != _decisions_until(make(b), b, 600)
