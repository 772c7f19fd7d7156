"""Steps 1 and 7 over time: the stable window, panic, the queue's drain, and the hold on
scale-down (hysteresis, warm-up), as sequences of decisions."""

from __future__ import annotations

import json
import math
from itertools import accumulate, pairwise
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.policy import Code, Observation, ScalerState, decide
from app.policy.reactive import KEEP_ALIVE_MAX_S, keep_alive_s, reactive_need, read_metrics
from tests.policy.helpers import GPU, QUEUE, T0, code_of, obs, running, spec

TWO = [{"name": GPU, "target": "50%"}, {"name": QUEUE, "target": "<5"}]


def replay(s: Any, readings: list[tuple[float, Observation]], state: ScalerState) -> list[Any]:
    """Decide on each (seconds after T0, observation); the current count follows decisions."""
    out = []
    for t, o in readings:
        d = decide(s, o, None, state, T0 + t)
        state = d.state
        out.append(d)
    return out


def test_one_quiet_reading_gives_nothing_back_a_quiet_window_does() -> None:
    """10 pods busy at their 50 % target, then the load halves: the window's mean needs
    falls a bit at a time, and no pod goes until no decision within 60 s wanted it."""
    s = spec(metrics=TWO)
    state = running()
    busy = [(t, obs(10, gpu=50.0, queue=0.0)) for t in range(0, 60, 5)]
    quiet = [(t, obs(10, gpu=25.0, queue=0.0)) for t in range(60, 200, 5)]
    decisions = replay(s, busy + quiet, state)
    counts = [d.replicas for d in decisions]
    assert counts[:12] == [10] * 12
    assert counts[12] == 10  # the first quiet reading: the window still mostly busy
    assert code_of(decisions[12], "hold") in (Code.HOLD_NONE, Code.HOLD_WINDOW)
    # after a window of quiet readings (and a window more of hysteresis) 5 pods are enough
    assert counts[-1] == 5
    assert min(counts) == 5  # never below what the load needs


def test_a_new_scaler_gives_nothing_back_for_one_window() -> None:
    s = spec(metrics=TWO)
    decisions = replay(
        s, [(t, obs(10, gpu=10.0, queue=0.0)) for t in range(0, 75, 5)], ScalerState()
    )
    assert [code_of(d, "hold") for d in decisions[:12]] == [Code.HOLD_WARMUP] * 12
    assert all(d.replicas == 10 for d in decisions[:12])
    assert decisions[-1].replicas < 10


def test_a_panic_reading_scales_at_once_and_holds_scale_down_for_a_window() -> None:
    s = spec(metrics=TWO)
    readings = [(0, obs(4, gpu=50.0, queue=0.0)), (5, obs(4, gpu=100.0, queue=0.0))]
    readings += [(t, obs(8, gpu=10.0, queue=0.0)) for t in range(10, 140, 5)]
    decisions = replay(s, readings, running())
    assert code_of(decisions[1], "reactive") == Code.REACTIVE_PANIC
    assert decisions[1].replicas == 8  # 4 pods at twice their target: 8 now, not a mean
    # the panic holds for a window after its reading (t=5 to 65): no pod goes back
    held = [d for d, (t, _) in zip(decisions, readings, strict=True) if 5 <= t < 65]
    assert all(code_of(d, "reactive") == Code.REACTIVE_PANIC for d in held)
    assert all(d.replicas == 8 for d in held)
    # what the panic wanted is remembered for a window more (hysteresis), then given back
    assert decisions[-1].replicas < 8


@pytest.mark.parametrize(
    ("drain", "arriving", "need", "why"),
    [
        pytest.param(
            "30s",
            2.0,
            8 + 4,
            "the 60 over the ceiling, served in 30 s by 4 more pods",
            id="queue-served-in-the-drain-time",
        ),
        pytest.param(
            "120s",
            2.0,
            8 + 1,
            "the same 60 given 120 s: one more pod",
            id="a-longer-wait-allowed-fewer-pods",
        ),
        pytest.param(
            "30s",
            6.0,
            24 + 12,
            "6 req/s are 12 pods' worth (24 at the 50 % target); the 4 Ready pods take 2, so "
            "by the time new pods are Ready (60 s) 30 s of arrivals (180) wait: 12 pods more",
            id="arrivals-beyond-the-ready-pods",
        ),
    ],
)
def test_the_queue_over_its_ceiling_asks_for_the_pods_that_serve_it_in_time(
    drain: str, arriving: float, need: float, why: str
) -> None:
    """New pods serve the queue only once Ready (the default cold start, 60 s here): what
    waited longer than `drain` by then is gone whatever is launched, and what arrived since
    is what they must serve, within `drain`."""
    s = spec(
        metrics=TWO,
        capacity={"request_rate": "0.5/s"},
        reactive={"drain": drain},
        scaler="reactive",
    )
    # 4 pods at 100 % (a 50 % target: 8 pods) with 20 waiting each (15 over the ceiling of
    # 5: 60 in all)
    d = decide(s, obs(4, gpu=100.0, queue=20.0, load_rate=arriving), None, running(), T0)
    values = d.reasons[0].values
    assert values["queue_over_ceiling"] == 60.0
    assert values["need_now"] == pytest.approx(need), why


def test_the_load_signal_shows_demand_beyond_saturated_pods() -> None:
    """4 pods at 100 % (busy: 4 pods' worth) and the queue over its ceiling: 6 req/s at
    0.5 per pod are 12 pods' worth, at the 50 % target 24; and 180 requests will be waiting
    when new pods are Ready (30 s of arrivals): 12 pods more, at full use."""
    s = spec(metrics=TWO, capacity={"request_rate": "0.5/s"}, scaler="reactive")
    d = decide(s, obs(4, gpu=100.0, queue=8.0, load_rate=6.0), None, running(), T0)
    assert d.reasons[0].values["demand_stable"] == pytest.approx(12.0 + 12.0)
    assert d.reasons[0].values["need_now"] == pytest.approx(24.0 + 12.0)


def test_a_short_queue_under_its_ceiling_is_not_a_reason_to_scale_down() -> None:
    s = spec(metrics=TWO)
    d = decide(s, obs(6, gpu=50.0, queue=0.0), None, running(), T0)
    assert d.replicas == 6 and code_of(d, "reactive") == Code.REACTIVE_IN_TOLERANCE


def test_a_drained_queue_burst_is_given_back_without_a_window_of_hold() -> None:
    """A queue burst: 4 pods at 50 % with 200 waiting panic the scaler up; once the queue is
    back under its ceiling (and the pods idle), neither the panic nor what the burst asked
    for keeps the pods: only what the readings since the drain wanted, for one cold start."""
    s = spec(metrics=TWO)
    readings = [(0, obs(4, gpu=50.0, queue=0.0))]
    readings += [(t, obs(4, gpu=100.0, queue=50.0)) for t in (5, 10)]  # 200 waiting
    readings += [(t, obs(20, gpu=10.0, queue=0.0)) for t in range(15, 120, 5)]
    decisions = replay(s, readings, running())
    assert code_of(decisions[1], "reactive") == Code.REACTIVE_PANIC
    peak = max(d.replicas for d in decisions)
    assert peak >= 12
    after = {t: d for d, (t, _) in zip(decisions, readings, strict=True)}
    # the queue drained at t=15: no panic since, and nothing the burst wanted is held
    assert all(code_of(after[t], "reactive") != Code.REACTIVE_PANIC for t in range(15, 120, 5))
    # within a cold start (60 s, the default) of the drain, the count is what the idle pods
    # need: 20 pods at 10 % of a 50 % target are 4
    assert after[80].replicas == 4


def test_a_pod_is_kept_while_the_recent_demand_wanted_it_within_one_cold_start() -> None:
    """The hold's memory is one cold start long (a pod given back is that long coming back),
    at most the stable window: with pods Ready in 20 s, 10 busy pods whose load halves are
    given back 20 s after the window's mean falls, not 60 s."""
    s = spec(metrics=TWO)
    busy = [(t, obs(10, gpu=50.0, queue=0.0, cold_start_s=20.0)) for t in range(0, 60, 5)]
    quiet = [(t, obs(10, gpu=25.0, queue=0.0, cold_start_s=20.0)) for t in range(60, 200, 5)]
    fast = replay(s, busy + quiet, running())
    slow = replay(
        s,
        [(t, obs(10, gpu=50.0, queue=0.0, cold_start_s=90.0)) for t in range(0, 60, 5)]
        + [(t, obs(10, gpu=25.0, queue=0.0, cold_start_s=90.0)) for t in range(60, 200, 5)],
        running(),
    )

    def first_below_10(ds: list[Any]) -> int:
        return next(i for i, d in enumerate(ds) if d.replicas < 10)

    assert first_below_10(fast) < first_below_10(slow)
    assert fast[-1].replicas == slow[-1].replicas == 5  # both end at what the load needs
    assert all(d.replicas >= 5 for d in fast)  # never below what the load needs


def test_a_queue_just_at_its_ceiling_after_a_burst_keeps_the_pods_it_asked_for() -> None:
    """The queue's total rises from 15 to 25 (5 per pod allowed): 3 pods become 5, Ready at
    once. With 5 Ready pods the 25 waiting are just at the ceiling, not over it: the burst's
    own decisions no longer count, but the newest reading still asks for 5, so the window's
    mean (still holding the 15 from before) does not take one back (seen on a real control
    plane as 5 -> 4 -> 5)."""
    s = spec(
        metrics=[{"name": QUEUE, "target": "<5", "aggregation": "sum"}],
        reactive={"window": "1s"},
        behavior={
            "scaleUp": {"policies": [{"type": "Percent", "value": 1000, "periodSeconds": 1}]},
            "scaleDown": {
                "stabilizationWindowSeconds": 0,
                "policies": [{"type": "Percent", "value": 1000, "periodSeconds": 1}],
            },
        },
    )
    readings = [(t / 4, obs(3, queue=15.0, cold_start_s=1.0)) for t in range(0, 40)]
    readings.append((10.0, obs(3, queue=25.0, cold_start_s=1.0)))
    readings += [(10.0 + t / 4, obs(5, queue=25.0, cold_start_s=1.0)) for t in range(1, 12)]
    decisions = replay(s, readings, running())
    assert decisions[40].replicas == 5
    assert [d.replicas for d in decisions[41:]] == [5] * 11


def bursts_every(period: int, n: int = 4, **spec_fields: Any) -> dict[int, Any]:
    """`n` queue bursts `period` s apart, each followed by a minute of load that wants 10 pods
    and then silence; the pods Ready are the last decision's (starting pods Ready at once)."""
    s = spec(metrics=TWO, **spec_fields)
    state, current, out = running(), 4, {}
    for t in range(0, n * period, 5):
        phase = t % period
        if phase == 0:
            o = obs(current, gpu=100.0, queue=50.0)  # a burst: the queue far over its ceiling
        elif phase <= 60:
            o = obs(current, gpu=min(100.0, 500.0 / current), queue=0.0)  # 10 pods at 50 %
        else:
            o = obs(current, gpu=0.0, queue=0.0)
        d = decide(s, o, None, state, T0 + t)
        state, current = d.state, d.replicas
        out[t] = d
    return out


def test_bursts_that_come_back_within_minutes_keep_their_pods_through_the_gap() -> None:
    """Bursts four minutes apart (an LLM code-completion log's shape): once three have come
    within HPA's 300 s window of each other, what the load wanted after the last one is kept
    through the quiet gap, as HPA would keep it, instead of going back one cold start after it
    and leaving one pod to meet the next burst."""
    by_t = bursts_every(240)
    # before the third burst nothing says how soon they return: one cold start of hold
    assert by_t[235].replicas == by_t[475].replicas == 1
    assert all("keep_alive_s" not in r.values for t in range(0, 480, 5) for r in by_t[t].reasons)
    # after it, the pods the calm load wanted meet the next burst
    assert all(by_t[t].replicas >= 8 for t in range(480, 960, 5))
    held = by_t[715]
    assert code_of(held, "hold") == Code.HOLD_WINDOW
    hold = next(r for r in held.reasons if r.code == Code.HOLD_WINDOW)
    assert hold.values["keep_alive_s"] == 300.0
    assert "bursts came back within 300s: also what the load wanted for 30s" in hold.message


def test_bursts_far_apart_are_met_as_they_come_and_their_pods_given_back() -> None:
    """Bursts twelve minutes apart: holding their pods through the gap costs more than
    meeting each as it comes, so after each the count is back to one pod within minutes."""
    by_t = bursts_every(720)
    for b in (720, 1440, 2160):
        assert by_t[b + 300].replicas == 1
        assert all(
            "keep_alive_s" not in r.values for t in range(b, b + 720, 5) for r in by_t[t].reasons
        )


def test_a_spec_s_own_behavior_sets_the_scale_down_window_not_the_keep_alive() -> None:
    """The same bursts four minutes apart, with a `behavior` whose scale-down window is 0
    (the user's choice): no keep-alive, the pods go back between bursts."""
    no_window = {"scaleDown": {"stabilizationWindowSeconds": 0}}
    by_t = bursts_every(240, behavior=no_window)
    assert by_t[715].replicas == 1
    assert all("keep_alive_s" not in r.values for d in by_t.values() for r in d.reasons)


@given(st.lists(st.floats(0.0, 900.0), max_size=8), st.floats(0.0, 900.0))
def test_the_keep_alive_holds_where_three_in_four_gaps_between_bursts_are_short(
    gaps: list[float], open_gap: float
) -> None:
    """The keep-alive is in force exactly where the 75th-percentile gap between the panics'
    onsets (the one still open included, three gaps at least) is within HPA's 300 s."""
    panics = tuple(1_800_000_000.0 + t for t in accumulate(gaps))
    now = panics[-1] + open_gap if panics else 1_800_000_000.0
    expected = None
    if len(panics) >= 3:
        between = sorted([b - a for a, b in pairwise(panics)] + [now - panics[-1]])
        if between[math.ceil(0.75 * len(between)) - 1] <= KEEP_ALIVE_MAX_S:
            expected = KEEP_ALIVE_MAX_S
    assert keep_alive_s(panics, now) == expected


def test_the_keep_alive_survives_the_store_round_trip_and_reads_an_older_state() -> None:
    """The panics' onsets and the lows' saturation travel through the stored JSON; a state
    written before them (two-field lows, no panics) reads as unsaturated lows, no panics."""
    state = bursts_every(240)[715].state
    assert len(state.panics) == 3 and state.lows
    doc = json.loads(json.dumps(state.to_dict()))
    assert ScalerState.from_dict(doc) == state
    older = {**doc, "lows": [[t, v] for t, v, _ in doc["lows"]]}
    del older["panics"]
    back = ScalerState.from_dict(older)
    assert back.panics == ()
    assert [low[2] for low in back.lows] == [0.0] * len(state.lows)


def test_a_stored_state_reads_back_in_time_order_and_decides_as_the_ordered_one() -> None:
    """The windows are sliced by bisection (they are in time order as decisions write them);
    a stored document whose entries were reordered (by hand, by another writer) reads back
    ordered, so it decides exactly as the state it was written from."""
    state = bursts_every(240)[715].state
    doc = json.loads(json.dumps(state.to_dict()))
    shuffled = {**doc, "recent": doc["recent"][::-1], "lows": doc["lows"][::-1]}
    back = ScalerState.from_dict(shuffled)
    assert back == state
    s = spec(metrics=TWO, capacity={"request_rate": "0.5/s"})
    o = obs(3, gpu=40.0, queue=0.0, load_rate=1.0)
    assert decide(s, o, None, back, T0 + 720) == decide(s, o, None, state, T0 + 720)


def test_after_a_queue_burst_drains_the_backlog_s_pods_go_back_as_it_is_served() -> None:
    """Eight pods at their 50 % target (2 req/s at 0.5 per pod), a 10 req/s burst that the
    queue shows, then 2 req/s again. Once the queue has drained, the pods are busy with the
    backlog it left (100 % for 20 s): the arrivals, not that use, say what the load needs, so
    the count is back at 8 within one cold start of the drain instead of a window later."""
    s = spec(metrics=TWO, capacity={"request_rate": "0.5/s"}, scaler="reactive")
    state, current, by_t = running(), 8, {}
    for t in range(0, 240, 5):
        if t < 60:
            o = obs(current, gpu=50.0, queue=0.0, load_rate=2.0)
        elif t < 70:
            o = obs(current, gpu=100.0, queue=30.0, load_rate=10.0)  # the burst
        elif t < 90:
            o = obs(current, gpu=100.0, queue=0.0, load_rate=2.0)  # drained: the backlog
        else:
            o = obs(current, gpu=min(100.0, 400.0 / current), queue=0.0, load_rate=2.0)
        d = decide(s, o, None, state, T0 + t)
        state, current = d.state, d.replicas
        by_t[t] = d
    assert max(d.replicas for d in by_t.values()) >= 30  # the burst was met
    assert by_t[70].reasons[0].values["need_now"] == pytest.approx(8.0)  # the arrivals' need
    assert all(by_t[t].replicas <= 10 for t in range(135, 240, 5))


@pytest.mark.parametrize(("behavior", "window"), [(None, 300.0), ({"scaleDown": {}}, None)])
def test_the_keep_alive_is_decided_once_for_both_steps_that_read_it(
    behavior: dict[str, Any] | None, window: float | None
) -> None:
    """Panics a minute apart: without a `behavior` of the spec's own the keep-alive is in
    force for the reactive step (which then does not read a drained burst down to the
    arrivals) and the hold alike; with one, for neither."""
    fields = {} if behavior is None else {"behavior": behavior}
    s = spec(metrics=TWO, capacity={"request_rate": "0.5/s"}, scaler="reactive", **fields)
    state = running(panics=(T0 - 120, T0 - 60, T0 - 5))
    o = obs(8, gpu=50.0, queue=0.0, load_rate=2.0)
    reading = read_metrics(s, o)
    assert reactive_need(s, o, reading, 0.5, state, T0).keep_alive == window
