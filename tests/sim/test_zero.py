"""Scale to zero in the simulator: the engine counts what waits at zero, KPA goes to zero by
Knative's rules, the real policy sleeps and wakes, and the corpus family reports it all."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from app.policy.codes import Code
from app.sim.baselines.kpa import KPA
from app.sim.ciuic import CiuicPolicy, default_spec
from app.sim.corpus import GENERATED, ZERO_SCENARIO
from app.sim.engine import SCENARIOS
from app.sim.report import report_for
from app.sim.runner import TraceSource, _source_workload, run_corpus
from app.sim.traces import workload_from_arrivals
from tests.sim.helpers import Fixed, run

# min_replicas 0, and requests held up to 300 s while no pod is Ready (the hold proxy)
ZERO = dataclasses.replace(SCENARIOS["deepseek-7b"], **dict(ZERO_SCENARIO))


def bursts(n: int, at: list[int], rate: float = 2.0, length: int = 120) -> object:
    """Nothing but short sessions of `rate` req/s starting at `at`."""
    arr = np.zeros(n, dtype=np.float64)
    for a in at:
        arr[a : a + length] = rate
    return workload_from_arrivals(np.random.default_rng(1).poisson(arr), rate=arr)


def test_requests_arriving_with_no_pod_ready_are_held_and_counted() -> None:
    """At zero, a pod launched at t=100 is Ready 30-60 s later: the requests that came first
    waited for it (none dropped within the 300 s hold), and the report says how long."""
    wl = bursts(400, [60], rate=1.0, length=20)
    res = run(wl, Fixed(lambda now: 0 if now < 100 else 1), initial=0, sc=ZERO)
    assert res.dropped == 0 and res.first_dropped == 0
    first = sum(res.first_wait_hist)
    assert first == res.arrived  # every request arrived with no pod Ready
    z = report_for(res).zero
    assert z is not None and z.first_requests == res.arrived
    assert 40 <= z.first_wait_max_s <= 100  # waited from 60 to 100 + a cold start
    assert z.hours_at_zero == pytest.approx(100 / 3600)


def test_kpa_scales_to_zero_after_the_grace_period_and_wakes_on_the_activator() -> None:
    wl = bursts(1200, [0, 700], rate=2.0, length=60)
    res = run(wl, KPA(scale_to_zero=True), initial=2, sc=ZERO)
    reps = res.replicas
    assert reps[60] >= 1  # serving the first session
    # zero once the stable window has seen no concurrency for 60 s plus the 30 s grace
    gone = int(np.argmax(reps[60:] == 0)) + 60
    assert reps[gone] == 0 and gone + 30 >= 60 + 60 + 30  # not before the grace period
    assert gone < 700
    # the second session arrives at zero: held, the revision woken within a tick
    woke = int(np.argmax(reps[700:] > 0))
    assert woke <= 3
    assert res.dropped == 0
    z = report_for(res).zero
    assert z is not None and z.first_requests > 0 and z.first_wait_max_s >= 30


def test_ciuic_with_min_zero_sleeps_when_idle_and_a_request_wakes_it() -> None:
    """The real policy on a min-0 deployment: idle pods go to zero after the scale-down rules,
    and a session arriving at zero wakes it from the held queue (the hold proxy's push)."""
    wl = bursts(2400, [0, 1500], rate=2.0, length=120)
    spec = {**default_spec(ZERO), "capacity": {"request_rate": "0.5/s"}}
    policy = CiuicPolicy.build(ZERO, wl, spec)
    codes: list[str] = []
    decide = policy.decide

    def recording(view: object) -> int:
        out = decide(view)  # type: ignore[arg-type]
        assert policy.last_decision is not None
        codes.append(policy.last_decision.reasons[7].code)
        return out

    policy.decide = recording  # type: ignore[method-assign]
    res = run(wl, policy, initial=2, sc=ZERO)
    assert res.replicas[1400] == 0  # asleep between the sessions
    assert Code.ZERO_SCALE_DOWN in codes and Code.ZERO_IDLE in codes
    assert Code.ZERO_WAKE_QUEUE in codes  # the second session woke it
    assert res.replicas[1500 + 10] >= 1
    assert res.dropped == 0


def test_the_corpus_family_reports_cost_and_first_request_waits_per_policy() -> None:
    """The scale-from-zero family runs with min_replicas 0 and the always-on comparison; each
    row carries its hours at zero and the waits of the requests that found no pod Ready."""
    (entry,) = [g for g in GENERATED if g.family == "scale_from_zero"]
    source = TraceSource.of(entry)
    assert source.scenario_for(SCENARIOS["deepseek-7b"]).min_replicas == 0
    summary = run_corpus([source], seeds=(0,), policies=("ciuic", "kpa", "oracle", "fluid")).summary
    rows = {r.policy: r for r in summary.traces[entry.name]}
    assert set(rows) == {"ciuic", "ciuic-min1", "kpa", "oracle", "fluid"}
    for r in rows.values():
        assert r.zero is not None
    always_on = rows["ciuic-min1"].zero
    assert always_on is not None and always_on.first_requests == 0
    assert always_on.hours_at_zero < 0.01  # the window opens at zero: up at its first decision
    asleep = rows["oracle"].zero
    assert asleep is not None and asleep.hours_at_zero > 10  # the night and the evening
    ciuic, kpa = rows["ciuic"].zero, rows["kpa"].zero
    assert kpa is not None and kpa.hours_at_zero > 10
    # ciuic sleeps most of it: its wake (earned on the past weeks) spends some of the idle
    # time up for nothing, for first requests that find a pod Ready rather than waiting
    assert ciuic is not None and ciuic.hours_at_zero > 0.75 * asleep.hours_at_zero
    assert ciuic.first_requests < kpa.first_requests
    assert rows["ciuic"].cost_usd < rows["ciuic-min1"].cost_usd  # zero pays at night
    assert "#### Scale to zero" in summary.markdown()
    doc = summary.to_dict()
    assert "zero" in doc["traces"][0]["mean_over_seeds"][0]  # type: ignore[index]


def test_the_wake_earned_on_past_mornings_has_pods_ready_for_mondays_ramp() -> None:
    """The corpus family's Monday after three weeks: nothing waits at 07:00, and the forecast's
    wake (judged on the past mornings, where MAE gives it no skill) wakes the deployment before
    the ramp's first requests, which find a pod Ready rather than waiting a cold start."""
    (entry,) = [g for g in GENERATED if g.family == "scale_from_zero"]
    source = TraceSource.of(entry)
    sc = source.scenario_for(SCENARIOS["deepseek-7b"])
    wl = _source_workload(source, sc, 0)
    policy = CiuicPolicy.build(sc, wl, default_spec(sc))
    woken: list[tuple[float, str]] = []
    decide = policy.decide

    def recording(view: object) -> int:
        out = decide(view)  # type: ignore[arg-type]
        reason = policy.last_decision.reasons[7]  # type: ignore[union-attr]
        if reason.code == Code.ZERO_WAKE_FORECAST:
            woken.append((float(view.now), reason.message))  # type: ignore[attr-defined]
        return out

    policy.decide = recording  # type: ignore[method-assign]
    res = run(wl, policy, initial=0, sc=sc)
    # the ramp: the first minute after 07:00 with more requests than a stray session brings
    per_min = wl.arrivals[: len(wl.arrivals) // 60 * 60].reshape(-1, 60).sum(axis=1)
    ramp = 60 * int(np.flatnonzero((np.arange(per_min.size) >= 7 * 60) & (per_min >= 5))[0])
    before = [(t, m) for t, m in woken if 7 * 3600 <= t < ramp]
    assert before, f"no forecast wake between 07:00 and the ramp at {ramp / 3600:.2f} h"
    assert "its wake wake:season=2016" in before[0][1]
    assert res.ready[ramp] >= 1  # Ready when the ramp's first requests came
