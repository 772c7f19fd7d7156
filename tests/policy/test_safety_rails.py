"""Safety rails (issue #8): a metric or a forecast gone wild cannot scale past the bounds, a bad
reading never scales down, silence reads as stale (hold), not as idle.

Scenarios first (one row per kind of bad value, each with the reason it must give), then
hypothesis properties over random specs, states and observations where some readings are bad.
"""

from __future__ import annotations

import math
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.policy import Code, LoadForecast, MetricReading, Observation, ScalerSpec, ScalerState
from app.policy import decide as decide_fn
from tests.policy.helpers import GPU, QUEUE, T0, code_of, flat_forecast, obs, parse_spec, run
from tests.policy.test_decide import specs, states, times

PROPS = settings(
    max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

WILD = [math.nan, math.inf, -math.inf, -1.0, 1e12, 1e308, None]
BAD = [math.nan, math.inf, -math.inf, -1.0, -1e12, None]  # never load: count as missing


def two_metrics(**extra: Any) -> ScalerSpec:
    """The brief's two metrics (GPU 85 %, queue < 5, weighted), bounds 1..10, no schedule."""
    doc: dict[str, Any] = {
        "target": "svc",
        "metrics": [
            {"name": GPU, "target": "85%", "weight": 0.6},
            {"name": QUEUE, "target": "<5", "weight": 0.4},
        ],
        "min_replicas": 1,
        "max_replicas": 10,
    }
    return parse_spec({**doc, **extra})


# ---- scenarios: metrics ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gpu", "queue", "replicas", "reactive", "says"),
    [
        # Both metrics unusable: hold the 4 pods, and say which and why.
        pytest.param(
            math.nan, math.nan, 4, Code.REACTIVE_FALLBACK_HOLD, "invalid value nan", id="nan"
        ),
        pytest.param(
            math.inf, math.inf, 4, Code.REACTIVE_FALLBACK_HOLD, "invalid value inf", id="inf"
        ),
        pytest.param(-3.0, -3.0, 4, Code.REACTIVE_FALLBACK_HOLD, "invalid value -3.0", id="neg"),
        pytest.param(None, None, 4, Code.REACTIVE_FALLBACK_HOLD, "no data", id="missing"),
        # One metric bad and the other says "scale down": partial data never scales down.
        pytest.param(
            math.nan, 0.0, 4, Code.REACTIVE_PARTIAL_HOLD, "not scaling down", id="nan-and-idle"
        ),
        pytest.param(10.0, -1.0, 4, Code.REACTIVE_PARTIAL_HOLD, "invalid value -1.0", id="neg-q"),
        # A finite value gone wild is load: up at the scale-up rate (see the next test),
        # never past max_replicas (10 here). The newest reading asks for a multiple of the
        # pods: a panic.
        pytest.param(1e12, 1e12, 10, Code.REACTIVE_PANIC, "panic", id="1e12"),
        # So large the pods overflow a float: left out like NaN, with the value named.
        pytest.param(
            math.nan, 1e308, 4, Code.REACTIVE_FALLBACK_HOLD, "more pods than a float", id="1e308"
        ),
        pytest.param(
            10.0, 1e308, 4, Code.REACTIVE_PARTIAL_HOLD, "more pods than a float", id="1e308-q"
        ),
    ],
)
def test_a_wild_metric_never_scales_down_or_past_max(
    gpu: float | None, queue: float | None, replicas: int, reactive: str, says: str
) -> None:
    s = two_metrics(metrics=[
        {"name": GPU, "target": "85%", "weight": 0.6},
        {"name": QUEUE, "target": 0.001, "weight": 0.4},  # tiny target: 1e308 overflows
    ]) if queue == 1e308 else two_metrics()  # fmt: skip
    d = run(s, obs(4, gpu=gpu, queue=queue))
    assert d.replicas == replicas
    assert code_of(d, "reactive") == reactive
    assert says in d.reasons[0].message
    assert math.isfinite(d.need)


@pytest.mark.parametrize(
    ("behavior", "expected"),
    [
        # Knative's rate (x1000 per 15 s): the cap at once, and no further
        pytest.param(None, [500] * 6, id="default"),
        # HPA's (the spec sets `behavior`): +4 pods or x2 per 15 s, then the cap
        pytest.param({}, [5, 10, 20, 40, 80, 160], id="hpa-behavior"),
    ],
)
def test_a_wild_metric_for_long_reaches_max_and_stops_there(
    behavior: dict[str, Any] | None, expected: list[int]
) -> None:
    extra = {} if behavior is None else {"behavior": behavior}
    s, state, current, now = two_metrics(max_replicas=500, **extra), ScalerState(), 1, T0
    seen = []
    for _ in range(6):  # 6 ticks of 15 s with 1e12 on both metrics
        d = run(s, obs(current, gpu=1e12, queue=1e12), state=state, now=now)
        state, current, now = d.state, d.replicas, now + 15
        seen.append(current)
    assert seen == expected
    assert all(r <= 500 for r in seen)


def test_stale_metrics_hold_and_say_they_are_stale() -> None:
    """Pods stopped pushing 5 minutes ago (fallback.stale_after is 60 s): hold the count,
    never fall to min_replicas because the load "looks" like zero."""
    d = run(two_metrics(), obs(6, gpu=10.0, queue=0.0, age_s=300.0))
    assert d.replicas == 6 and not d.valid
    reason = d.reasons[0]
    assert reason.code == Code.REACTIVE_FALLBACK_HOLD
    assert "gpu_utilization: stale (300s old > 60s)" in reason.message
    assert reason.values["gpu_utilization.stale_s"] == 300.0


def test_a_stale_metric_next_to_a_fresh_one_is_partial_data() -> None:
    o = Observation(
        metrics={GPU: MetricReading(10.0, 6, 0.0), QUEUE: MetricReading(0.0, 6, 120.0)},
        current_replicas=6,
        ready_pods=6,
    )
    d = run(two_metrics(), o)
    assert d.replicas == 6
    assert code_of(d, "reactive") == Code.REACTIVE_PARTIAL_HOLD
    assert "request_queue: stale (120s old > 60s)" in d.reasons[0].message


def test_a_stale_after_from_the_spec_is_honoured() -> None:
    s = two_metrics(fallback={"stale_after": "10m"})
    d = run(s, obs(6, gpu=10.0, queue=0.0, age_s=300.0))  # 5 min old, fresh enough: scale down
    assert code_of(d, "reactive") == Code.REACTIVE_SCALE and d.reasons[0].values["need"] < 6


# ---- scenarios: forecasts ----------------------------------------------------------------

PREDICTIVE = {"scaler": "predictive", "capacity": {"request_rate": "1/s"}, "cold_start": "60s"}


def spiked(value: float, at: int = 3) -> LoadForecast:
    """A 1 req/s forecast on a 30 s grid with one point (at + 30 s x `at`) set to `value`."""
    path = tuple(value if i == at else 1.0 for i in range(40))
    return LoadForecast("test", T0, T0, 30.0, path, {0.9: path}, skill=0.5)


@pytest.mark.parametrize(
    ("forecast", "replicas", "predictive", "later"),
    [
        pytest.param(
            flat_forecast(math.nan, q90=math.nan), 4, Code.PREDICTIVE_INVALID, 4, id="nan"
        ),
        pytest.param(
            flat_forecast(math.inf, q90=math.inf), 4, Code.PREDICTIVE_INVALID, 4, id="inf"
        ),
        pytest.param(spiked(math.nan), 4, Code.PREDICTIVE_INVALID, 4, id="one-nan-point"),
        pytest.param(spiked(math.inf), 4, Code.PREDICTIVE_INVALID, 4, id="one-inf-point"),
        pytest.param(spiked(math.nan, at=30), 4, Code.PREDICTIVE_FLOOR, 4, id="nan-past-horizon"),
        pytest.param(flat_forecast(1e308, q90=1e308), 10, Code.PREDICTIVE_FLOOR, 10, id="1e308"),
        pytest.param(flat_forecast(1e12, q90=1e12), 10, Code.PREDICTIVE_FLOOR, 10, id="1e12-rate"),
        pytest.param(flat_forecast(-5.0, q90=-5.0), 4, Code.PREDICTIVE_FLOOR, 4, id="negative"),
    ],
)
def test_a_wild_forecast_is_ignored_or_rate_limited_and_capped(
    forecast: LoadForecast, replicas: int, predictive: str, later: int
) -> None:
    """The metrics are on target (4 pods at 85 %: 3.4 busy). A non-finite forecast is ignored
    with a reason; a finite wild one raises the need, but the count moves only as fast as the
    scale-up behaviour allows (x1000 per 15 s by default: 4 -> 4000) and never past max_replicas
    (10); a negative one cannot take the count under what the pods are busy with."""
    s = two_metrics(**PREDICTIVE)
    d = run(s, obs(4, gpu=85.0, queue=5.0), forecast=forecast)
    assert d.replicas == replicas
    assert code_of(d, "predictive") == predictive
    assert math.isfinite(d.need)
    # Over time the same forecast reaches max_replicas and no further.
    state, current = d.state, d.replicas
    for tick in range(1, 6):
        d = run(s, obs(current, gpu=85.0, queue=5.0), forecast=forecast, state=state,
                now=T0 + 15 * tick)  # fmt: skip
        state, current = d.state, d.replicas
    assert current == later


# ---- properties --------------------------------------------------------------------------

bad_values = st.sampled_from(BAD)
wild_values = st.sampled_from(WILD)
any_values = st.one_of(st.floats(0, 500, allow_nan=False), wild_values)


def holding(s: ScalerSpec) -> ScalerSpec:
    """`s` with the default fallback (hold): a fixed fallback count is the operator's choice
    of where to go without data, so "no scale-down" is a property of `hold` only."""
    doc = s.model_dump(mode="json", by_alias=True, exclude_none=True)
    doc["fallback"] = {}
    return parse_spec(doc)


@st.composite
def wild_observations(draw: st.DrawFn) -> Observation:
    """Current count 0..40; at least one metric bad (NaN, inf, negative, missing or stale),
    the other anything, wild or not."""
    ready = draw(st.integers(0, 40))
    starting = draw(st.integers(0, 3))
    reporting = draw(st.integers(0, ready)) if ready else 0
    bad = draw(bad_values)
    stale = draw(st.booleans())
    other = draw(any_values)
    age = draw(st.floats(0, 30))
    bad_reading = MetricReading(20.0, reporting, 3600.0) if stale else MetricReading(bad, reporting)
    readings = [bad_reading, MetricReading(other, reporting, age)]
    if draw(st.booleans()):
        readings.reverse()
    return Observation(
        metrics={GPU: readings[0], QUEUE: readings[1]},
        current_replicas=ready + starting,
        ready_pods=ready,
        starting_pods=starting,
    )


@PROPS
@given(data=st.data())
def test_bad_readings_never_scale_down_nor_leave_the_bounds(data: st.DataObject) -> None:
    s = holding(data.draw(specs()))
    now = data.draw(times)
    o = data.draw(wild_observations())
    d = decide_fn(s, o, None, data.draw(states(now)), now)
    assert s.min_replicas <= d.replicas <= s.max_replicas
    assert d.replicas >= min(o.current_replicas, s.max_replicas), d.reasons
    assert math.isfinite(d.need)


@PROPS
@given(data=st.data())
def test_wild_readings_and_forecasts_stay_within_the_bounds(data: st.DataObject) -> None:
    s = data.draw(specs())
    now = data.draw(times)
    gpu, queue = data.draw(any_values), data.draw(any_values)
    current = data.draw(st.integers(0, 40))
    path = tuple(data.draw(st.lists(any_values.map(_or_zero), min_size=30, max_size=30)))
    fc = LoadForecast("wild", now, now, 30.0, path, {0.9: path})
    d = decide_fn(s, obs(current, gpu=gpu, queue=queue), fc, data.draw(states(now)), now)
    assert s.min_replicas <= d.replicas <= s.max_replicas
    assert d.plan.pods == d.replicas
    assert math.isfinite(d.need)


def _or_zero(v: float | None) -> float:
    return 0.0 if v is None else v


@PROPS
@given(
    current=st.integers(1, 40),
    value=wild_values.map(_or_zero),
    point=st.integers(0, 29),
    gpu=st.floats(0, 200, allow_nan=False),
)
def test_a_forecast_only_adds_what_the_rate_limit_allows(
    current: int, value: float, point: int, gpu: float
) -> None:
    """Whatever the forecast says, the count is never above what the reactive path alone
    would give *and* the scale-up rate limit allows (HPA default: x2 or +4 per 15 s), and a
    non-finite forecast changes nothing at all."""
    s = two_metrics(max_replicas=60, **PREDICTIVE)
    path = tuple(value if i == point else 1.0 for i in range(30))
    fc = LoadForecast("wild", T0, T0, 30.0, path, {0.9: path})
    o = obs(current, gpu=gpu, queue=0.0)
    alone = run(s, o)
    d = run(s, o, forecast=fc)
    rate_cap = max(2 * current, current + 4)
    assert d.replicas <= min(s.max_replicas, max(alone.replicas, rate_cap))
    assert d.replicas >= alone.replicas  # a forecast never lowers the count
    if not math.isfinite(value) and code_of(d, "predictive") == Code.PREDICTIVE_INVALID:
        assert d.replicas == alone.replicas
