"""Steps 2-5, 7, 8: predictive, schedule, emergency, preheat, bounds, fractional."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.policy import (
    Code,
    Decision,
    FractionalPlan,
    LoadForecast,
    MetricReading,
    Observation,
    ScalerState,
)
from app.policy.emergency import emergency_step
from app.policy.fractional import fractional_plan, pods_for
from app.policy.predictive import bucket_range
from app.policy.preheat import preheat_need, with_spares
from app.policy.schedule import schedule_bounds
from app.policy.spec import FractionalSpec
from tests.policy.helpers import (
    GPU,
    QUEUE,
    T0,
    code_of,
    codes,
    flat_forecast,
    obs,
    run,
    running,
    spec,
)

PRED = {"capacity": {"request_rate": "30/min"}, "cold_start": "60s"}  # 0.5 req/s per pod

# ---------------------------------------------------------------------------------------------
# 2. predictive

PREDICTIVE: list[Any] = [
    # 3 req/s forecast / 0.5 per pod = 6 > the 3 busy: the forecast raises the count
    pytest.param(PRED, flat_forecast(3.0), 6, Code.PREDICTIVE_FLOOR, id="floor-raises"),
    # a spec asking for the P90 band (3.5 req/s) gets it, not the mean
    pytest.param(
        {**PRED, "forecast": {"quantile": 0.9}},
        flat_forecast(3.0, q90=3.5),
        7,
        Code.PREDICTIVE_FLOOR,
        id="uses-p90",
    ),
    # 1 req/s = 2 pods: a skilled forecast scales in to what it and the demand need (the 3
    # pods at 50 % are 1.5 busy pods' worth): 2
    pytest.param(PRED, flat_forecast(1.0), 2, Code.PREDICTIVE_FLOOR, id="scales-in"),
    # planning for 75 % of capacity: 2.4 / (0.5 x 0.75) = 6.4 -> 7
    pytest.param(
        {**PRED, "capacity": {"request_rate": "0.5/s", "utilization": "75%"}},
        flat_forecast(2.4),
        7,
        Code.PREDICTIVE_FLOOR,
        id="utilization",
    ),
    # a forecast no better than the last value on its backtest adds nothing
    pytest.param(PRED, flat_forecast(9.0, skill=0.0), 3, Code.PREDICTIVE_NO_SKILL, id="no-skill"),
    pytest.param(
        PRED, flat_forecast(9.0, skill=-0.3), 3, Code.PREDICTIVE_NO_SKILL, id="worse-than-last"
    ),
    # skill not measured (too short a history to backtest): nothing either
    pytest.param(
        PRED, flat_forecast(9.0, skill=None), 3, Code.PREDICTIVE_NO_SKILL, id="skill-unknown"
    ),
    # no forecast yet
    pytest.param(PRED, None, 3, Code.PREDICTIVE_MISSING, id="missing"),
    # the last fit failed
    pytest.param(PRED, flat_forecast(9.0, failed="boom"), 3, Code.PREDICTIVE_FAILED, id="failed"),
    # made 31 minutes ago (max_age 30m)
    pytest.param(PRED, flat_forecast(9.0, made_at=T0 - 1860), 3, Code.PREDICTIVE_STALE, id="stale"),
    # ends before the horizon (now + 60 s cold start)
    pytest.param(
        PRED,
        LoadForecast("t", T0 - 600, T0 - 600, 300.0, (9.0, 9.0), skill=0.5),
        3,
        Code.PREDICTIVE_OUT_OF_RANGE,
        id="too-short",
    ),
    # capacity still to learn (no load signal pushed): a load cannot become pods yet
    pytest.param({}, flat_forecast(9.0), 3, Code.PREDICTIVE_NO_CAPACITY, id="no-capacity"),
    # scaler: reactive ignores forecasts
    pytest.param(
        {**PRED, "scaler": "reactive"}, flat_forecast(9.0), 3, Code.PREDICTIVE_OFF, id="off"
    ),
]


@pytest.mark.parametrize("extra,forecast,replicas,code", PREDICTIVE)
def test_predictive(
    extra: dict[str, Any], forecast: LoadForecast | None, replicas: int, code: str
) -> None:
    d = run(spec(**extra), obs(3, gpu=50.0), forecast=forecast)
    assert (d.replicas, code_of(d, "predictive")) == (replicas, code)


def test_forecast_is_read_one_cold_start_ahead_as_buckets() -> None:
    """A point is its bucket's mean load: the load at a time is its bucket's, a step, not a
    line drawn from one bucket start to the next (which would start a ramp half a bucket
    early and end it half a bucket late)."""
    # 1 req/s in [T0, T0 + 600), 5 req/s from T0 + 600.
    fc = LoadForecast("t", T0, T0, 300.0, (1.0, 1.0, 5.0, 5.0), skill=0.5)
    s = spec(capacity={"request_rate": "0.5/s"}, cold_start="400s", forecast={"buffer": "0s"})
    d = run(s, obs(1, gpu=50.0), forecast=fc)
    assert d.reasons[1].values["load"] == 1.0  # T0 + 400 is in the second bucket: 1 req/s
    assert d.replicas == 2
    # With a buffer reaching into the third bucket, the ramp is there to meet.
    s = spec(capacity={"request_rate": "0.5/s"}, cold_start="400s", forecast={"buffer": "200s"})
    d = run(s, obs(1, gpu=50.0), forecast=fc)
    assert d.reasons[1].values["load"] == 5.0
    assert d.replicas == 10


def test_learned_cold_start_and_default() -> None:
    fc = LoadForecast("t", T0, T0, 60.0, tuple(float(i) for i in range(20)), skill=0.5)
    s = spec(capacity={"request_rate": "1/s"}, forecast={"buffer": "0s"})  # cold_start: learn
    d = run(s, obs(1, gpu=50.0), forecast=fc)
    assert d.reasons[1].values["lead_s"] == 60.0  # DEFAULT_COLD_START_S
    d = run(s, obs(1, gpu=50.0, cold_start_s=180.0), forecast=fc)
    assert d.reasons[1].values["lead_s"] == 180.0 and d.reasons[1].values["load"] == 3.0


def test_the_demand_at_full_use_is_the_least_a_forecast_plans() -> None:
    """A forecast too low for what the pods are busy with right now does not win: 10 pods at
    95 % against a 50 % target are 9.5 busy pods, whatever the forecast says."""
    d = run(spec(**PRED), obs(10, gpu=95.0), forecast=flat_forecast(0.5))
    assert d.replicas == 10 and code_of(d, "predictive") == Code.PREDICTIVE_FLOOR


def _after_a_spike(load: float, forecast: LoadForecast, seconds: int) -> list[tuple[int, Decision]]:
    """Decisions every 5 s on pods of 0.5 req/s (PRED) that ran 24 pods for a spike of 10
    req/s (planned at 85 % of each pod) that has just ended at T0: the load is now `load`
    req/s; the forecast, made when the last bucket completed, still expects the spike's level
    for this one."""
    s = spec(**PRED)
    state, pods, out = running(), 24, []
    for t in range(0, seconds + 1, 5):
        gpu = 100.0 * load / (0.5 * pods)
        d = run(s, obs(pods, gpu=gpu, load_rate=load), forecast=forecast, state=state, now=T0 + t)
        state, pods = d.state, d.replicas
        out.append((t, d))
    return out


def test_a_forecast_the_load_has_proved_wrong_lets_the_spike_pods_go() -> None:
    """The spike is over at T0 (2 req/s, 4 pods' worth at full use), but the forecast made when
    the last bucket completed expects 10 req/s for this one (P90 12: its band reaches down to
    8). Until the readings of a cold start (60 s, the stable window) all show the load under
    that band, the floor holds the 24 pods, as a dip within a spike would need; from then on
    the forecast has missed this bucket, adds nothing, and the pods follow the load."""
    decisions = _after_a_spike(2.0, flat_forecast(10.0, q90=12.0), 150)
    by_t = dict(decisions)
    assert code_of(by_t[20], "predictive") == Code.PREDICTIVE_FLOOR and by_t[20].replicas == 24
    missed = [t for t, d in decisions if code_of(d, "predictive") == Code.PREDICTIVE_MISSED]
    assert missed and missed[0] == 30 and missed == list(range(30, 151, 5))
    reason = next(r for r in by_t[60].reasons if r.code == Code.PREDICTIVE_MISSED)
    assert reason.values["band_low"] == 8.0 and reason.values["load_observed"] < 8.0
    assert by_t[150].replicas <= 8  # the reactive need: 4 busy pods' worth at a 50 % target


@pytest.mark.parametrize(
    "load,forecast",
    [
        # 9 req/s is under the median but within the band (8-12): the forecast stands
        pytest.param(9.0, flat_forecast(10.0, q90=12.0), id="within-the-band"),
        # no P90 band: nothing says how far off the forecast may be, so it stands
        pytest.param(2.0, flat_forecast(10.0), id="no-band"),
    ],
)
def test_a_forecast_the_load_has_not_proved_wrong_keeps_its_floor(
    load: float, forecast: LoadForecast
) -> None:
    decisions = _after_a_spike(load, forecast, 150)
    assert all(code_of(d, "predictive") == Code.PREDICTIVE_FLOOR for _, d in decisions)
    # the floor's pods stay: the median's 20, or the 24 of the P90 band this spec plans on
    assert all(d.replicas >= 20 for _, d in decisions)


@pytest.mark.parametrize(
    "t0,t1,expected",
    [
        pytest.param(0.0, 0.0, range(0, 1), id="at-start"),
        pytest.param(50.0, 150.0, range(0, 2), id="across-an-edge"),
        pytest.param(100.0, 199.0, range(1, 2), id="one-bucket"),
        pytest.param(250.0, 900.0, range(2, 4), id="clamped-to-the-path"),
        pytest.param(-500.0, -100.0, range(0, 0), id="before-the-path"),
    ],
)
def test_bucket_range(t0: float, t1: float, expected: range) -> None:
    # four buckets of 100 s from 0
    assert bucket_range(0.0, 100.0, 4, t0, t1) == expected


# ---------------------------------------------------------------------------------------------
# 3. schedule


def at(text: str, tz: str = "UTC") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


BRIEF_SCHEDULE = [
    {"time": "0 9 * * *", "min_replicas": 4},
    {"time": "0 23 * * *", "min_replicas": 2},
]

SCHEDULE: list[Any] = [
    # 09:00 exactly: the 09:00 entry (at or before now)
    pytest.param(BRIEF_SCHEDULE, "UTC", "2027-01-15 09:00:00", 4, None, id="at-0900"),
    # 08:59:59: still the 23:00 entry from the day before
    pytest.param(BRIEF_SCHEDULE, "UTC", "2027-01-15 08:59:59", 2, None, id="before-0900"),
    # 23:30: the 23:00 entry
    pytest.param(BRIEF_SCHEDULE, "UTC", "2027-01-15 23:30:00", 2, None, id="after-2300"),
    # 09:00 in Paris is 08:00 UTC in winter: with timezone Europe/Paris, 08:30 UTC is past it
    pytest.param(BRIEF_SCHEDULE, "Europe/Paris", "2027-01-15 08:30:00", 4, None, id="paris-winter"),
    # in summer (CEST, UTC+2) 09:00 Paris is 07:00 UTC
    pytest.param(BRIEF_SCHEDULE, "Europe/Paris", "2027-07-15 07:30:00", 4, None, id="paris-summer"),
    # a weekday window with a cap: Saturday falls back to the previous entry
    pytest.param(
        [
            {"time": "0 0 * * *", "min_replicas": 1},
            {"time": "0 8 * * 1-5", "min_replicas": 6, "max_replicas": 9, "duration": "10h"},
        ],
        "UTC",
        "2027-01-16 09:00:00",
        1,
        None,
        id="weekend-falls-back",
    ),
    # the same window on Friday 09:00: floor 6, cap 9
    pytest.param(
        [
            {"time": "0 0 * * *", "min_replicas": 1},
            {"time": "0 8 * * 1-5", "min_replicas": 6, "max_replicas": 9, "duration": "10h"},
        ],
        "UTC",
        "2027-01-15 09:00:00",
        6,
        9,
        id="window-active",
    ),
    # after its 10 h duration the window lapses back to the 00:00 entry
    pytest.param(
        [
            {"time": "0 0 * * *", "min_replicas": 1},
            {"time": "0 8 * * 1-5", "min_replicas": 6, "max_replicas": 9, "duration": "10h"},
        ],
        "UTC",
        "2027-01-15 18:00:00",
        1,
        None,
        id="window-lapsed",
    ),
]


@pytest.mark.parametrize("entries,tz,when,floor,cap", SCHEDULE)
def test_schedule_floor(
    entries: list[dict[str, Any]], tz: str, when: str, floor: int, cap: int | None
) -> None:
    s = spec(schedule=entries, timezone=tz)
    out = schedule_bounds(s, at(when))
    assert (out.floor, out.cap) == (floor, cap)
    assert out.reason.code == Code.SCHEDULE_ACTIVE


def test_schedule_inactive_and_none() -> None:
    s = spec(schedule=[{"time": "0 9 * * *", "min_replicas": 4, "duration": "1h"}])
    assert schedule_bounds(s, at("2027-01-15 11:00:00")).reason.code == Code.SCHEDULE_INACTIVE
    assert schedule_bounds(spec(), T0).reason.code == Code.SCHEDULE_NONE


def test_schedule_floor_applies_at_once_and_cap_wins() -> None:
    s = spec(schedule=BRIEF_SCHEDULE)
    d = run(s, obs(1, gpu=50.0), now=at("2027-01-15 09:00:00"))
    assert d.replicas == 4 and code_of(d, "bounds") == Code.BOUNDS_SCHEDULE_FLOOR
    capped = spec(schedule=[{"time": "0 9 * * *", "min_replicas": 1, "max_replicas": 3}])
    d = run(capped, obs(3, gpu=100.0), now=at("2027-01-15 10:00:00"))
    assert d.replicas == 3 and code_of(d, "bounds") == Code.BOUNDS_SCHEDULE_CAP


# ---------------------------------------------------------------------------------------------
# 4. emergency

EMERGENCY = {
    "metrics": [{"name": GPU, "target": "85%"}, {"name": QUEUE, "target": "<5"}],
    "emergency": {
        "enabled": True,
        "burst_multiplier": 3.0,
        "stable_window": "60s",
        "triggers": [{"metric": QUEUE, "threshold": 50, "duration": "30s"}],
    },
}


def test_emergency_burst_lifecycle() -> None:
    """Queue 80 from t=0 (the queue only triggers: weight 0; no capacity to size the burst
    with, so the multiplier's): armed, burst at t=30 (2 -> 6 at once, past a 1 pod/min
    policy), no scale-down while it lasts, over 60 s (its `stable_window`) after the last
    over-threshold reading (t=45); the burst's own floor does not hold pods after it."""
    s = spec(
        **{
            **EMERGENCY,
            "combine": "weighted",
            "metrics": [
                {"name": GPU, "target": "85%", "weight": 1.0},
                {"name": QUEUE, "target": "<5", "weight": 0.0},
            ],
        },
        behavior={
            "scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
            "scaleDown": {"stabilizationWindowSeconds": 0},
        },
    )
    state = ScalerState()
    replicas = 2
    timeline = []
    # (t, queue, gpu): gpu on target until t=45, then the load falls away
    script = [
        (0, 80.0, 85.0),
        (15, 80.0, 85.0),
        (30, 80.0, 85.0),
        (45, 80.0, 85.0),
        (60, 10.0, 20.0),
        (90, 10.0, 20.0),
        (104, 10.0, 20.0),
        (105, 10.0, 20.0),
        (120, 10.0, 20.0),
        (170, 10.0, 20.0),
    ]
    for t, queue, gpu in script:
        d = run(s, obs(replicas, gpu=gpu, queue=queue), state=state, now=T0 + t)
        state, replicas = d.state, d.replicas
        timeline.append((t, replicas, code_of(d, "emergency"), code_of(d, "bounds")))
    assert timeline == [
        # over threshold, not yet for 30 s
        (0, 2, Code.EMERGENCY_ARMED, Code.BOUNDS_WITHIN),
        (15, 2, Code.EMERGENCY_ARMED, Code.BOUNDS_WITHIN),
        # held 30 s: 2 x 3 = 6 at once (the rate policy alone would allow 3)
        (30, 6, Code.EMERGENCY_START, Code.BOUNDS_BURST_FLOOR),
        # still over; the need (6, in tolerance) is the floor itself
        (45, 6, Code.EMERGENCY_ACTIVE, Code.BOUNDS_WITHIN),
        # load gone: reactive says 1, the burst keeps the need at its floor of 6
        (60, 6, Code.EMERGENCY_ACTIVE, Code.BOUNDS_WITHIN),
        (90, 6, Code.EMERGENCY_ACTIVE, Code.BOUNDS_WITHIN),
        (104, 6, Code.EMERGENCY_ACTIVE, Code.BOUNDS_WITHIN),
        # 45 + 60 s: over. The burst's 6 is not remembered; the metrics' window still
        # averages the busy readings before t=60 (3 pods' worth): down to 3, then less as the
        # window forgets them
        (105, 3, Code.EMERGENCY_END, Code.BOUNDS_WITHIN),
        (120, 3, Code.EMERGENCY_IDLE, Code.BOUNDS_WITHIN),
        (170, 2, Code.EMERGENCY_IDLE, Code.BOUNDS_WITHIN),
    ]
    assert state.burst_until is None and state.burst_base is None


def test_no_scale_down_while_bursting() -> None:
    s = spec(**EMERGENCY)
    state = running(burst_until=T0 + 30, burst_base=2)
    # reactive says 1 pod; the burst floor is 6, the current 8 is held
    d = run(s, obs(8, gpu=5.0, queue=0.0), state=state)
    assert d.replicas == 8
    assert code_of(d, "emergency") == Code.EMERGENCY_ACTIVE
    assert code_of(d, "bounds") == Code.BOUNDS_BURST_HOLD


@pytest.mark.parametrize(
    ("shortfall", "floor", "says"),
    [
        # no per-pod capacity: the multiplier's burst, 2 x 3; no shortfall was measured
        pytest.param(None, 6, "(2 x 3: no per-pod capacity to size it by)", id="multiplier"),
        # a capacity: sized to the shortfall the newest reading asks for, under the cap
        pytest.param(4.2, 5, "(the shortfall 4.2 pods, at most 2 x 3)", id="shortfall"),
    ],
)
def test_a_bursts_reasons_say_how_it_is_sized(
    shortfall: float | None, floor: int, says: str
) -> None:
    """The start and every later decision of a burst say what sized it, as the README's
    step 4 does: the shortfall once a capacity is known, else the multiplier's burst."""
    s = spec(**EMERGENCY)
    over = obs(2, gpu=85.0, queue=80.0)
    start = emergency_step(s, over, running(trigger_since={f"0:{QUEUE}": T0 - 30}), T0, shortfall)
    assert start.reason.code == Code.EMERGENCY_START and start.floor == floor
    assert says in start.reason.message, start.reason.message
    held = running(burst_until=start.burst_until, burst_base=start.burst_base)
    active = emergency_step(s, over, held, T0 + 15, shortfall)
    assert active.reason.code == Code.EMERGENCY_ACTIVE and active.floor == floor
    assert says in active.reason.message, active.reason.message


def test_trigger_clock_resets_when_under_or_missing() -> None:
    s = spec(**EMERGENCY)
    d = run(s, obs(2, gpu=80.0, queue=80.0), now=T0)
    assert dict(d.state.trigger_since) == {f"0:{QUEUE}": T0}
    d = run(s, obs(2, gpu=80.0, queue=None), state=d.state, now=T0 + 15)
    assert dict(d.state.trigger_since) == {}
    assert code_of(d, "emergency") == Code.EMERGENCY_IDLE


def queue_obs(current: int, per_pod: float, total: float | None) -> Observation:
    """`current` pods, each with `per_pod` waiting; the total summed over pods, if read."""
    o = obs(current, gpu=85.0, queue=per_pod)
    if total is None:
        return o
    return replace(o, by_aggregation={(QUEUE, "sum"): MetricReading(total, current)})


def trigger_on(aggregation: str | None) -> dict[str, Any]:
    """The brief's trigger (queue > 50 for 30 s), read `aggregation` over pods; the queue
    only triggers (weight 0) and the GPU is on target, so only a burst changes the count."""
    trigger: dict[str, Any] = {"metric": QUEUE, "threshold": 50, "duration": "30s"}
    if aggregation is not None:
        trigger["aggregation"] = aggregation
    return {
        **EMERGENCY,
        "combine": "weighted",
        "metrics": [
            {"name": GPU, "target": "85%", "weight": 1.0},
            {"name": QUEUE, "target": "<5", "weight": 0.0},
        ],
        "emergency": {**EMERGENCY["emergency"], "triggers": [trigger]},
    }


@pytest.mark.parametrize(
    "aggregation,total,expected",
    [
        # 4 pods x 15 waiting: 60 in all > 50 for 30 s -> 4 x 3 = 12 at once
        pytest.param("sum", 60.0, [(0, 4, Code.EMERGENCY_ARMED), (30, 12, Code.EMERGENCY_START)],
                     id="sum-over-bursts"),
        # the brief's trigger as written reads the per-pod average: 15 < 50, never over
        pytest.param(None, 60.0, [(0, 4, Code.EMERGENCY_IDLE), (30, 4, Code.EMERGENCY_IDLE)],
                     id="as-aggregated-never-over"),
        # 4 x 10 = 40 in all: under 50 either way
        pytest.param("sum", 40.0, [(0, 4, Code.EMERGENCY_IDLE), (30, 4, Code.EMERGENCY_IDLE)],
                     id="sum-under"),
        # no total was read: missing, not the per-pod reading in its place
        pytest.param("sum", None, [(0, 4, Code.EMERGENCY_IDLE), (30, 4, Code.EMERGENCY_IDLE)],
                     id="sum-missing"),
    ],
)  # fmt: skip
def test_a_trigger_reads_its_metric_aggregated_its_own_way(
    aggregation: str | None, total: float | None, expected: list[tuple[int, int, str]]
) -> None:
    s = spec(**trigger_on(aggregation))
    state, timeline = ScalerState(), []
    for t in (0, 30):
        d = run(s, queue_obs(4, per_pod=total / 4 if total else 15.0, total=total),
                state=state, now=T0 + t)  # fmt: skip
        state = d.state
        timeline.append((t, d.replicas, code_of(d, "emergency")))
    assert timeline == expected


def test_the_emergency_reason_says_which_aggregation_it_read() -> None:
    s = spec(**trigger_on("sum"))
    d = run(s, queue_obs(4, per_pod=15.0, total=60.0), now=T0)
    [reason] = [r for r in d.reasons if r.code == Code.EMERGENCY_ARMED]
    assert reason.values["request_queue.sum"] == 60.0
    assert "request_queue (sum) 60 > 50" in reason.message
    d = run(s, queue_obs(4, per_pod=15.0, total=60.0), state=d.state, now=T0 + 30)
    [reason] = [r for r in d.reasons if r.code == Code.EMERGENCY_START]
    assert "request_queue (sum) 60 > 50" in reason.message and reason.values["floor"] == 12
    # as written in the brief: the per-pod average is what it read
    d = run(spec(**trigger_on(None)), queue_obs(4, per_pod=15.0, total=60.0), now=T0)
    [reason] = [r for r in d.reasons if r.code == Code.EMERGENCY_IDLE]
    assert reason.values["request_queue.avg"] == 15.0 and "request_queue.sum" not in reason.values


# ---------------------------------------------------------------------------------------------
# 5. preheat

PREHEAT: list[Any] = [
    # eager: 3 pods at 50 % are 1.5 busy pods' worth: 1.5 spare already, >= 1
    pytest.param({"enabled": True, "min_ready": 1}, None, 3, Code.PREHEAT_EAGER, id="eager"),
    # eager with two spares: 1.5 busy + 2 = 3.5 -> 4
    pytest.param({"enabled": True, "min_ready": 2}, None, 4, Code.PREHEAT_EAGER, id="eager-2"),
    # lazy adds nothing now...
    pytest.param({"enabled": True, "strategy": "lazy"}, None, 3, Code.PREHEAT_LAZY, id="lazy"),
    # ...and pre-launches by forecast (3 req/s -> 6 pods)
    pytest.param(
        {"enabled": True, "strategy": "lazy"},
        flat_forecast(3.0),
        6,
        Code.PREHEAT_LAZY,
        id="lazy-forecast",
    ),
    # disabled
    pytest.param({}, None, 3, Code.PREHEAT_DISABLED, id="disabled"),
]


@pytest.mark.parametrize("preheat,forecast,replicas,code", PREHEAT)
def test_preheat(
    preheat: dict[str, Any], forecast: LoadForecast | None, replicas: int, code: str
) -> None:
    d = run(spec(preheat=preheat, **PRED), obs(3, gpu=50.0), forecast=forecast)
    assert d.replicas == replicas
    assert code_of(d, "preheat") == code


def test_eager_spares_are_capacity_above_the_demand_not_pods_above_the_need() -> None:
    """At a 95 % target the 3 pods are 2.85 busy: one spare pod's worth means a fourth; at 40
    busy pods planned at 85 % the six idle pods' worth is spare enough, nothing is added."""
    hot = spec(metrics=[{"name": GPU, "target": "95%"}], preheat={"enabled": True})
    assert run(hot, obs(3, gpu=95.0)).replicas == 4
    big = spec(metrics=[{"name": GPU, "target": "85%"}], preheat={"enabled": True})
    d = run(big, obs(47, gpu=85.0))
    assert d.replicas == 47
    assert d.reasons[4].values["demand"] == pytest.approx(47 * 0.85)


@given(
    min_ready=st.integers(0, 5),
    need=st.floats(0.0, 1e6),
    demand=st.none() | st.floats(0.0, 1e6),
)
def test_eager_spares_top_the_need_up_to_the_demand_plus_the_spares(
    min_ready: int, need: float, demand: float | None
) -> None:
    """The count step 5 plans, and the one the hold step remembers of a calm need: never below
    the need, and `min_ready` pods above the demand (above the need when no load metric
    gives a demand); lazy or disabled, the need itself."""
    eager = spec(preheat={"enabled": True, "min_ready": min_ready})
    out, _ = preheat_need(eager, need, demand)
    assert out == with_spares(eager, need, demand)
    assert out == (need + min_ready if demand is None else max(need, demand + min_ready))
    for off in ({}, {"enabled": True, "strategy": "lazy"}):
        assert with_spares(spec(preheat=off), need, demand) == need


# ---------------------------------------------------------------------------------------------
# 7. bounds


BOUNDS: list[Any] = [
    # need 0.3 -> 1 pod, min 2
    pytest.param({"min_replicas": 2}, 3, 10.0, 2, Code.BOUNDS_MIN, id="min"),
    # need 12, max 5
    pytest.param({"max_replicas": 5}, 3, 200.0, 5, Code.BOUNDS_MAX, id="max"),
    # current above max: straight to max
    pytest.param({"max_replicas": 5}, 9, 50.0, 5, Code.BOUNDS_MAX, id="current-above-max"),
    # within
    pytest.param({}, 3, 50.0, 3, Code.BOUNDS_WITHIN, id="within"),
]


@pytest.mark.parametrize("extra,current,gpu,replicas,code", BOUNDS)
def test_bounds(extra: dict[str, Any], current: int, gpu: float, replicas: int, code: str) -> None:
    d = run(spec(**extra), obs(current, gpu=gpu))
    assert d.replicas == replicas
    assert code_of(d, "bounds") == code


# ---------------------------------------------------------------------------------------------
# 8. fractional

FRACTIONAL: list[Any] = [
    # the brief: 3.7 -> 3 full + 1 at 70 %
    pytest.param(0.1, 0.3, 3.7, 3, 0.7, Code.FRACTIONAL_PARTIAL, id="brief-3.7"),
    # 3.2: remainder 0.2 < 0.3 absorbed by the full pods
    pytest.param(0.1, 0.3, 3.2, 3, None, Code.FRACTIONAL_ABSORBED, id="absorbed-3.2"),
    # exactly min_fraction keeps the partial pod
    pytest.param(0.1, 0.3, 3.3, 3, 0.3, Code.FRACTIONAL_PARTIAL, id="at-min-fraction"),
    # the share rounds up to the step: 3.71 -> 0.8 with step 0.1
    pytest.param(0.1, 0.3, 3.71, 3, 0.8, Code.FRACTIONAL_PARTIAL, id="round-up-step"),
    # ...and to 0.71 with step 0.01
    pytest.param(0.01, 0.3, 3.705, 3, 0.71, Code.FRACTIONAL_PARTIAL, id="hundredths"),
    # 3.95 rounds to a whole pod
    pytest.param(0.1, 0.3, 3.95, 4, None, Code.FRACTIONAL_WHOLE, id="rounds-to-whole"),
    # whole need
    pytest.param(0.1, 0.3, 4.0, 4, None, Code.FRACTIONAL_WHOLE, id="whole"),
]


@pytest.mark.parametrize("step,min_fraction,need,full,partial,code", FRACTIONAL)
def test_fractional_plan(
    step: float, min_fraction: float, need: float, full: int, partial: float | None, code: str
) -> None:
    f = FractionalSpec(enabled=True, step=step, min_fraction=min_fraction)
    pods = pods_for(f, need)
    plan, reason = fractional_plan(f, need, pods)
    assert plan == FractionalPlan(full, partial)
    assert plan.pods == pods
    assert reason.code == code


def test_fractional_disabled_is_ceil_and_overridden_is_full_pods() -> None:
    off = FractionalSpec()
    assert pods_for(off, 3.2) == 4
    assert fractional_plan(off, 3.2, 4)[0] == FractionalPlan(4)
    on = FractionalSpec(enabled=True)
    plan, reason = fractional_plan(on, 3.7, 6)  # behaviour held 6
    assert plan == FractionalPlan(6) and reason.code == Code.FRACTIONAL_OVERRIDDEN


def test_fractional_through_decide() -> None:
    # gpu 61.67 % of 50 % on 3 pods -> need 3.7
    d = run(spec(fractional={"enabled": True}), obs(3, gpu=3.7 / 3 * 50))
    assert d.need == pytest.approx(3.7)
    assert d.plan == FractionalPlan(3, 0.7) and d.replicas == 4
    assert codes(d)[-1] == Code.FRACTIONAL_PARTIAL
    d = run(spec(fractional={"enabled": True}), obs(4, gpu=3.2 / 4 * 50))
    assert d.plan == FractionalPlan(3) and d.replicas == 3
    assert math.isclose(d.need, 3.2)
