"""decide(): the steps together (scenario table with every reason code), purity, and
hypothesis properties (bounds, monotone in load, no scale-down while bursting, rate limits)."""

from __future__ import annotations

import copy
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.policy import ALL_CODES, Code, LoadForecast, Observation, ScalerSpec, ScalerState
from app.policy import decide as decide_fn
from tests.policy.helpers import (
    GPU,
    QUEUE,
    T0,
    brief_document,
    codes,
    flat_forecast,
    obs,
    parse_spec,
    run,
    running,
    spec,
)

AT_10 = T0 + 2 * 3600  # 10:00 UTC: the brief's 09:00 floor (4) is in force
AT_2330 = T0 + 15.5 * 3600  # 23:30 UTC: the 23:00 floor (2)
C = Code


def brief(**extra: Any) -> ScalerSpec:
    return parse_spec({**brief_document(), **extra})


FRACTIONAL_PRED = {
    "capacity": {"request_rate": "30/min"},
    "cold_start": "60s",
    "fractional": {"enabled": True},
}

HPA_WINDOW = {"scaleDown": {"stabilizationWindowSeconds": 300}}

SCENARIOS: list[Any] = [
    # the brief at 10:00 under load: the queue (8 a pod) is over its <5 ceiling; without a
    # capacity it asks like KEDA, 8 / 5 x 3 = 4.8 (the GPU's 95 % / 85 % x 3 = 3.35 is less),
    # + 1 warm spare above that demand -> 5.8 -> 6
    pytest.param(
        brief(),
        obs(3, gpu=95.0, queue=8.0),
        None,
        running(),
        AT_10,
        6,
        [
            C.REACTIVE_SCALE,
            C.PREDICTIVE_NO_CAPACITY,
            C.SCHEDULE_ACTIVE,
            C.EMERGENCY_IDLE,
            C.PREHEAT_EAGER,
            C.BEHAVIOR_WITHIN_RANGE,
            C.HOLD_NONE,
            C.BOUNDS_WITHIN,
            C.FRACTIONAL_DISABLED,
        ],
        id="brief-busy-morning",
    ),
    # the brief at 10:00, quiet: 0.6 busy pods + 1 spare -> 2, the 09:00 floor lifts it to 4
    pytest.param(
        brief(),
        obs(3, gpu=20.0, queue=0.5),
        None,
        running(),
        AT_10,
        4,
        [
            C.REACTIVE_SCALE,
            C.PREDICTIVE_NO_CAPACITY,
            C.SCHEDULE_ACTIVE,
            C.EMERGENCY_IDLE,
            C.PREHEAT_EAGER,
            C.BEHAVIOR_WITHIN_RANGE,
            C.HOLD_DOWN,
            C.BOUNDS_SCHEDULE_FLOOR,
            C.FRACTIONAL_DISABLED,
        ],
        id="brief-quiet-morning-floor",
    ),
    # the same at 23:30: the 23:00 floor is 2, which the need already meets
    pytest.param(
        brief(),
        obs(3, gpu=20.0, queue=0.5),
        None,
        running(),
        AT_2330,
        2,
        [
            C.REACTIVE_SCALE,
            C.PREDICTIVE_NO_CAPACITY,
            C.SCHEDULE_ACTIVE,
            C.EMERGENCY_IDLE,
            C.PREHEAT_EAGER,
            C.BEHAVIOR_WITHIN_RANGE,
            C.HOLD_DOWN,
            C.BOUNDS_WITHIN,
            C.FRACTIONAL_DISABLED,
        ],
        id="brief-quiet-night",
    ),
    # a new scaler (no window of data yet) gives nothing back: the same quiet 23:30 holds 3
    pytest.param(
        brief(),
        obs(3, gpu=20.0, queue=0.5),
        None,
        ScalerState(),
        AT_2330,
        3,
        [
            C.REACTIVE_SCALE,
            C.PREDICTIVE_NO_CAPACITY,
            C.SCHEDULE_ACTIVE,
            C.EMERGENCY_IDLE,
            C.PREHEAT_EAGER,
            C.BEHAVIOR_WITHIN_RANGE,
            C.HOLD_WARMUP,
            C.BOUNDS_WITHIN,
            C.FRACTIONAL_DISABLED,
        ],
        id="new-scaler-warms-up",
    ),
    # ... nor does one whose decisions within the window (60 s) wanted more: down to 3 only
    pytest.param(
        brief(),
        obs(5, gpu=20.0, queue=0.5),
        None,
        running(lows=((AT_2330 - 70, 5.0, 0.0), (AT_2330 - 40, 3.0, 0.0))),
        AT_2330,
        3,
        [
            C.REACTIVE_SCALE,
            C.PREDICTIVE_NO_CAPACITY,
            C.SCHEDULE_ACTIVE,
            C.EMERGENCY_IDLE,
            C.PREHEAT_EAGER,
            C.BEHAVIOR_WITHIN_RANGE,
            C.HOLD_WINDOW,
            C.BOUNDS_WITHIN,
            C.FRACTIONAL_DISABLED,
        ],
        id="hold-what-the-window-wanted",
    ),
    # the brief's queue held at 80 a pod for 30 s: the newest reading asks for 16 x 3 pods
    # (a panic), the burst for 3 x 3 at once; max_replicas 10 caps both
    pytest.param(
        brief(),
        obs(3, gpu=85.0, queue=80.0),
        None,
        running(trigger_since={f"0:{QUEUE}": AT_10 - 30}),
        AT_10,
        10,
        [
            C.REACTIVE_PANIC,
            C.PREDICTIVE_NO_CAPACITY,
            C.SCHEDULE_ACTIVE,
            C.EMERGENCY_START,
            C.PREHEAT_EAGER,
            C.BEHAVIOR_WITHIN_RANGE,
            C.HOLD_NONE,
            C.BOUNDS_MAX,
            C.FRACTIONAL_DISABLED,
        ],
        id="brief-burst",
    ),
    # a burst with a capacity is sized to the shortfall, not multiplied: 5 pods at 100 % and
    # 60 waiting each; 5 req/s arriving at 0.5 per pod are 10 busy pods' worth (at the 85 %
    # target 11.8, a panic: >= 2 x 5), and 150 will be waiting when new pods are Ready (30 s
    # of arrivals): 10 pods more; so the burst floor is 22, not 10 x 3 = 30
    pytest.param(
        brief(capacity={"request_rate": "30/min"}, max_replicas=50, preheat={}),
        obs(5, gpu=100.0, queue=60.0, load_rate=5.0),
        None,
        running(burst_until=AT_10 + 30, burst_base=10, trigger_since={f"0:{QUEUE}": AT_10 - 60}),
        AT_10,
        22,
        [
            C.REACTIVE_PANIC,
            C.PREDICTIVE_MISSING,
            C.SCHEDULE_ACTIVE,
            C.EMERGENCY_ACTIVE,
            C.PREHEAT_DISABLED,
            C.BEHAVIOR_WITHIN_RANGE,
            C.HOLD_NONE,
            C.BOUNDS_WITHIN,
            C.FRACTIONAL_DISABLED,
        ],
        id="burst-sized-to-the-shortfall",
    ),
    # no metrics at all at 10:00: hold 1, the floor still applies; the decision is not valid
    pytest.param(
        brief(),
        obs(1),
        None,
        running(),
        AT_10,
        4,
        [
            C.REACTIVE_FALLBACK_HOLD,
            C.PREDICTIVE_NO_CAPACITY,
            C.SCHEDULE_ACTIVE,
            C.EMERGENCY_IDLE,
            C.PREHEAT_EAGER,
            C.BEHAVIOR_WITHIN_RANGE,
            C.HOLD_NONE,
            C.BOUNDS_SCHEDULE_FLOOR,
            C.FRACTIONAL_DISABLED,
        ],
        id="no-data-floor",
    ),
    # forecast 1.85 req/s at 0.5 per pod = 3.7 over an in-tolerance 3: 3 full + 1 at 70 %
    pytest.param(
        spec(**FRACTIONAL_PRED),
        obs(3, gpu=50.0),
        flat_forecast(1.85),
        running(),
        T0,
        4,
        [
            C.REACTIVE_IN_TOLERANCE,
            C.PREDICTIVE_FLOOR,
            C.SCHEDULE_NONE,
            C.EMERGENCY_DISABLED,
            C.PREHEAT_DISABLED,
            C.BEHAVIOR_WITHIN_RANGE,
            C.HOLD_NONE,
            C.BOUNDS_WITHIN,
            C.FRACTIONAL_PARTIAL,
        ],
        id="forecast-fractional",
    ),
    # the forecast falls to 1 pod, and the 8 pods are 0.8 busy: scale down to 1 at once
    pytest.param(
        spec(**FRACTIONAL_PRED),
        obs(8, gpu=10.0),
        flat_forecast(0.5),
        running(),
        T0,
        1,
        [
            C.REACTIVE_SCALE,
            C.PREDICTIVE_FLOOR,
            C.SCHEDULE_NONE,
            C.EMERGENCY_DISABLED,
            C.PREHEAT_DISABLED,
            C.BEHAVIOR_WITHIN_RANGE,
            C.HOLD_DOWN,
            C.BOUNDS_WITHIN,
            C.FRACTIONAL_WHOLE,
        ],
        id="falling-forecast-scales-down",
    ),
    # ... unless the spec sets an HPA window: a recommendation of 8 from 100 s ago holds it
    pytest.param(
        spec(**FRACTIONAL_PRED, behavior=HPA_WINDOW),
        obs(8, gpu=10.0),
        flat_forecast(0.5),
        running(recommendations=((T0 - 100, 8),)),
        T0,
        8,
        [
            C.REACTIVE_SCALE,
            C.PREDICTIVE_FLOOR,
            C.SCHEDULE_NONE,
            C.EMERGENCY_DISABLED,
            C.PREHEAT_DISABLED,
            C.BEHAVIOR_DOWN_STABILIZED,
            C.HOLD_NONE,
            C.BOUNDS_WITHIN,
            C.FRACTIONAL_OVERRIDDEN,
        ],
        id="falling-forecast-held-by-the-spec-window",
    ),
    # a stale forecast is ignored: 4 pods at 20 % (target 50 %) ask for 1.6, the eager
    # spare above the 0.8 busy pods for 1.8: 1 full + 1 at 80 %
    pytest.param(
        spec(**FRACTIONAL_PRED, preheat={"enabled": True}),
        obs(4, gpu=20.0),
        flat_forecast(9.0, made_at=T0 - 3600),
        running(),
        T0,
        2,
        [
            C.REACTIVE_SCALE,
            C.PREDICTIVE_STALE,
            C.SCHEDULE_NONE,
            C.EMERGENCY_DISABLED,
            C.PREHEAT_EAGER,
            C.BEHAVIOR_WITHIN_RANGE,
            C.HOLD_DOWN,
            C.BOUNDS_WITHIN,
            C.FRACTIONAL_PARTIAL,
        ],
        id="stale-forecast-eager",
    ),
    # a big forecast ramp from 1 pod under the spec's HPA behaviour: max(+4, x2) per 15 s: 5
    pytest.param(
        spec(**FRACTIONAL_PRED, behavior={}),
        obs(1, gpu=50.0),
        flat_forecast(10.0),
        running(),
        T0,
        5,
        [
            C.REACTIVE_IN_TOLERANCE,
            C.PREDICTIVE_FLOOR,
            C.SCHEDULE_NONE,
            C.EMERGENCY_DISABLED,
            C.PREHEAT_DISABLED,
            C.BEHAVIOR_UP_LIMIT,
            C.HOLD_NONE,
            C.BOUNDS_WITHIN,
            C.FRACTIONAL_OVERRIDDEN,
        ],
        id="forecast-ramp-rate-limited",
    ),
    # partial data that says "down" is held even with a forecast below current
    pytest.param(
        spec(
            **FRACTIONAL_PRED,
            metrics=[{"name": GPU, "target": "50%"}, {"name": QUEUE, "target": "<5"}],
        ),
        obs(6, gpu=10.0, queue=None),
        flat_forecast(1.0),
        running(),
        T0,
        6,
        [
            C.REACTIVE_PARTIAL_HOLD,
            C.PREDICTIVE_FLOOR,
            C.SCHEDULE_NONE,
            C.EMERGENCY_DISABLED,
            C.PREHEAT_DISABLED,
            C.BEHAVIOR_WITHIN_RANGE,
            C.HOLD_PARTIAL,
            C.BOUNDS_WITHIN,
            C.FRACTIONAL_OVERRIDDEN,
        ],
        id="partial-data-hold",
    ),
]


@pytest.mark.parametrize("s,o,forecast,state,now,replicas,expected_codes", SCENARIOS)
def test_scenarios(
    s: ScalerSpec,
    o: Observation,
    forecast: LoadForecast | None,
    state: ScalerState,
    now: float,
    replicas: int,
    expected_codes: list[str],
) -> None:
    d = run(s, o, forecast=forecast, state=state, now=now)
    assert (d.replicas, codes(d)) == (replicas, expected_codes)
    assert d.plan.pods == d.replicas


def test_decision_details_of_the_brief() -> None:
    d = run(brief(), obs(3, gpu=95.0, queue=8.0), now=AT_10)
    assert d.need == pytest.approx(4.8 + 1)  # the queue's 4.8 pods, one spare above them
    assert d.valid
    assert d.state.recommendations == ((AT_10, 6),)
    assert d.state.scale_events == ((AT_10, 3),)
    assert d.state.recent == ((AT_10, pytest.approx(4.8), pytest.approx(4.8), 1.0),)  # saturated
    reactive = d.reasons[0]
    assert reactive.values["gpu_utilization.need"] == pytest.approx(95 / 85 * 3)
    assert reactive.values["request_queue.value"] == 8.0  # a ceiling: no need of its own
    assert reactive.values["queue_over_ceiling"] == pytest.approx((8 - 5) * 3)
    assert reactive.values["need_stable"] == pytest.approx(8 / 5 * 3)
    assert all(r.message for r in d.reasons)


def test_decide_is_pure() -> None:
    s = brief()
    o = obs(3, gpu=95.0, queue=80.0)
    state = ScalerState(
        recommendations=((AT_10 - 30, 4),),
        scale_events=((AT_10 - 10, 1),),
        trigger_since={f"0:{QUEUE}": AT_10 - 20},
    )
    before = copy.deepcopy(state)
    first = decide_fn(s, o, None, state, AT_10)
    second = decide_fn(s, o, None, state, AT_10)
    assert first == second
    assert state == before


def test_dry_run_decides_the_same_but_records_no_scale_event() -> None:
    o = obs(3, gpu=95.0, queue=8.0)
    dry = run(brief(mode="dry_run"), o, now=AT_10)
    applied = run(brief(), o, now=AT_10)
    assert dry.replicas == applied.replicas == 6
    assert applied.state.scale_events == ((AT_10, 3),)
    assert dry.state.scale_events == ()
    # The cluster stayed at 3: the next dry-run decision is not rate-limited by a phantom +2.
    s = spec(
        mode="dry_run",
        behavior={"scaleUp": {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]}},
    )
    first = run(s, obs(3, gpu=100.0), now=T0)
    second = run(s, obs(3, gpu=100.0), state=first.state, now=T0 + 15)
    assert first.replicas == second.replicas == 5


# ---------------------------------------------------------------------------------------------
# properties

# 200 examples keep the suite quick on shared 2-core machines; raise it to shake out rare cases.
PROPS = settings(
    max_examples=int(os.environ.get("CIUIC_PROPERTY_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def specs(draw: st.DrawFn, *, emergency: bool = True) -> ScalerSpec:
    lo = draw(st.integers(0, 10))
    hi = draw(st.integers(max(lo, 1), 60))
    doc: dict[str, Any] = {
        "target": "svc",
        "metrics": [
            {"name": GPU, "target": f"{draw(st.integers(20, 95))}%", "weight": 0.6},
            {
                "name": QUEUE,
                "target": f"<{draw(st.integers(1, 20))}",
                "weight": 0.4,
                "aggregation": draw(st.sampled_from(["avg", "sum"])),
            },
        ],
        "combine": draw(st.sampled_from(["weighted", "max"])),
        "min_replicas": lo,
        "max_replicas": hi,
        "capacity": {"request_rate": f"{draw(st.integers(1, 60))}/min"},
        "cold_start": draw(st.integers(0, 300)),
        "preheat": {
            "enabled": draw(st.booleans()),
            "min_ready": draw(st.integers(0, min(3, hi))),  # never above max_replicas
            "strategy": draw(st.sampled_from(["eager", "lazy"])),
        },
        "fractional": {"enabled": draw(st.booleans())},
        "fallback": draw(st.sampled_from([{}, {"replicas": lo}])),
    }
    if draw(st.booleans()):
        floor = draw(st.integers(0, hi))
        doc["schedule"] = [
            {"time": "0 9 * * *", "min_replicas": floor},
            {"time": "0 23 * * *", "min_replicas": 0, "max_replicas": max(hi, lo, 1)},
        ]
    if emergency:
        doc["emergency"] = {
            "enabled": True,
            "burst_multiplier": draw(st.sampled_from([1.5, 2.0, 3.0])),
            "triggers": [{"metric": QUEUE, "threshold": 50, "duration": "30s"}],
        }
    return parse_spec(doc)


loads = st.floats(0, 100, allow_nan=False)
queues = st.floats(0, 200, allow_nan=False)
times = st.floats(T0, T0 + 7 * 86400, allow_nan=False)


@st.composite
def states(draw: st.DrawFn, now: float) -> ScalerState:
    recs = tuple(
        sorted(
            (now - draw(st.floats(0, 600)), draw(st.integers(0, 60)))
            for _ in range(draw(st.integers(0, 4)))
        )
    )
    events = tuple(
        sorted(
            (now - draw(st.floats(0, 60)), draw(st.integers(-5, 5)))
            for _ in range(draw(st.integers(0, 3)))
        )
    )
    since = {f"0:{QUEUE}": now - draw(st.floats(0, 60))} if draw(st.booleans()) else {}
    burst = draw(st.booleans())
    return ScalerState(
        recommendations=recs,
        scale_events=events,
        trigger_since=since,
        burst_until=now + draw(st.floats(0, 60)) if burst else None,
        burst_base=draw(st.integers(1, 20)) if burst else None,
    )


@st.composite
def observations(
    draw: st.DrawFn, gpu: float | None = None, queue: float | None = None
) -> Observation:
    ready = draw(st.integers(0, 40))
    starting = draw(st.integers(0, 5))
    reporting = draw(st.integers(0, ready)) if ready else 0
    g = draw(st.one_of(st.none(), loads)) if gpu is None else gpu
    q = draw(st.one_of(st.none(), queues)) if queue is None else queue
    return obs(
        ready + starting, ready=ready, starting=starting, reporting=reporting, gpu=g, queue=q
    )


@PROPS
@given(data=st.data())
def test_result_within_bounds(data: st.DataObject) -> None:
    s = data.draw(specs())
    now = data.draw(times)
    fc = data.draw(
        st.one_of(st.none(), st.floats(0, 50).map(lambda v: flat_forecast(v, made_at=now)))
    )
    d = decide_fn(s, data.draw(observations()), fc, data.draw(states(now)), now)
    assert s.min_replicas <= d.replicas <= s.max_replicas
    assert d.plan.pods == d.replicas
    steps = [r.code.split(".")[0] for r in d.reasons]
    if steps[7] == "zero":  # with min_replicas 0, step 8 says why it is at zero or woke
        assert s.min_replicas == 0
        steps[7] = "bounds"
    assert steps == [
        "reactive",
        "predictive",
        "schedule",
        "emergency",
        "preheat",
        "behavior",
        "hold",
        "bounds",
        "fractional",
    ]
    assert {r.code for r in d.reasons} <= ALL_CODES
    if d.plan.partial is not None:
        assert s.fractional.min_fraction <= d.plan.partial < 1


@PROPS
@given(data=st.data(), g=st.tuples(loads, loads), q=st.tuples(queues, queues))
def test_more_load_never_fewer_replicas(
    data: st.DataObject, g: tuple[float, float], q: tuple[float, float]
) -> None:
    s = data.draw(specs())
    now = data.draw(times)
    state = data.draw(states(now))
    base = data.draw(observations(gpu=0.0, queue=0.0))
    fc = data.draw(
        st.one_of(st.none(), st.floats(0, 50).map(lambda v: flat_forecast(v, made_at=now)))
    )
    (g1, g2), (q1, q2) = sorted(g), sorted(q)

    def at(gpu: float, queue: float) -> int:
        o = obs(
            base.current_replicas,
            ready=base.ready_pods,
            starting=base.starting_pods,
            reporting=base.metrics[GPU].pods_reporting,
            gpu=gpu,
            queue=queue,
        )
        return decide_fn(s, o, fc, state, now).replicas

    assert at(g1, q1) <= at(g2, q1) <= at(g2, q2)
    assert at(g1, q1) <= at(g1, q2) <= at(g2, q2)


@PROPS
@given(data=st.data())
def test_no_scale_down_while_bursting(data: st.DataObject) -> None:
    s = data.draw(specs())
    now = data.draw(times)
    state = data.draw(states(now))
    state = ScalerState(
        recommendations=state.recommendations,
        scale_events=state.scale_events,
        burst_until=now + data.draw(st.floats(0.001, 60)),
        burst_base=data.draw(st.integers(1, 20)),
    )
    o = data.draw(observations())
    d = decide_fn(s, o, None, state, now)
    assert Code.EMERGENCY_ACTIVE in codes(d)
    assert d.replicas >= min(o.current_replicas, s.max_replicas)


@PROPS
@given(
    up=st.tuples(st.sampled_from(["Pods", "Percent"]), st.integers(1, 10), st.integers(1, 120)),
    down=st.tuples(st.sampled_from(["Pods", "Percent"]), st.integers(1, 100), st.integers(1, 120)),
    windows=st.tuples(st.integers(0, 120), st.integers(0, 300)),
    start=st.integers(1, 50),
    steps=st.lists(st.tuples(st.floats(1, 40), loads), min_size=1, max_size=40),
)
def test_rate_limits_never_exceeded_over_a_sequence(
    up: tuple[str, int, int],
    down: tuple[str, int, int],
    windows: tuple[int, int],
    start: int,
    steps: list[tuple[float, float]],
) -> None:
    """Applying each decision, every scale event keeps the count within each policy's limit
    from the count at the start of its period (HPA's periodStartReplicas)."""
    s = spec(
        min_replicas=1,
        max_replicas=100,
        behavior={
            "scaleUp": {
                "stabilizationWindowSeconds": windows[0],
                "policies": [{"type": up[0], "value": up[1], "periodSeconds": up[2]}],
            },
            "scaleDown": {
                "stabilizationWindowSeconds": windows[1],
                "policies": [{"type": down[0], "value": down[1], "periodSeconds": down[2]}],
            },
        },
    )
    state = ScalerState()
    replicas, now = start, T0
    history: list[tuple[float, int, int]] = []  # (time, delta, count after)
    for dt, gpu in steps:
        now += dt
        d = decide_fn(s, obs(replicas, gpu=gpu), None, state, now)
        delta = d.replicas - replicas
        state, replicas = d.state, d.replicas
        if delta == 0:
            continue
        history.append((now, delta, replicas))
        kind, value, period = up if delta > 0 else down
        in_period = sum(x for t, x, _ in history if t > now - period)
        period_start = replicas - in_period
        if delta > 0:
            allowed = (
                period_start + value if kind == "Pods" else -(-period_start * (100 + value) // 100)
            )
            assert replicas <= max(allowed, replicas - delta)
        else:
            allowed = (
                period_start - value if kind == "Pods" else period_start * (100 - value) // 100
            )
            assert replicas >= min(allowed, replicas - delta)


def test_forecast_brings_capacity_before_the_morning_ramp() -> None:
    """Load steps from 1 to 5 req/s at 09:00 and the forecast knows it: with a 60 s cold start
    and a 60 s buffer, 10 pods (5 / 0.5) are asked for from 08:58, at once, and are there a
    minute before the load, while the reactive side alone would keep 2."""
    nine = T0 + 3600.0
    s = spec(capacity={"request_rate": "30/min"}, cold_start="60s", min_replicas=2)
    path = tuple(1.0 if T0 + 60 * k < nine else 5.0 for k in range(180))
    fc = LoadForecast("t", nine - 600, T0, 60.0, path, skill=0.4)  # made at 08:50
    state, replicas = running(), 2
    seen: dict[float, int] = {}
    for k in range(-12, 8):  # 08:57 to 09:02 every 15 s
        now = nine + 15.0 * k
        load = 1.0 if now < nine else 5.0
        gpu = 50.0 * load / (0.5 * replicas)  # 50 % target == 0.5 req/s per pod
        d = decide_fn(s, obs(replicas, gpu=min(gpu, 100.0)), fc, state, now)
        state, replicas = d.state, d.replicas
        seen[now - nine] = replicas
    assert seen[-180.0] == 2  # 08:57: the step is beyond the horizon
    assert seen[-120.0] == 10  # 08:58: the forecast floor asks for 10, at once
    assert seen[-60.0] == 10  # 08:59: all there a cold start ahead of the load
    assert all(r == 10 for t, r in seen.items() if t >= -60.0)
