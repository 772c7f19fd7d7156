"""Latency objectives: the spec's `objective`, and the fewest pods whose predicted p95 TTFT
(queue wait + prefill) meets it.

The deployment in these scenarios serves 0.5 requests/s per pod (`capacity: 0.5/s`, e.g. 8
slots of 16 s requests). At 4 requests/s, M/M/c with each pod one server predicts a p95 wait of
2.10 s on 10 pods and 1.06 s on 11 (`p95_wait_s`), so a 2 s TTFT objective asks for 11."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.policy import Code, SpecError, parse_spec
from app.policy.objective import erlang_c, p95_wait_s
from tests.policy.helpers import GPU, QUEUE, code_of, obs, run, spec

BASE: dict[str, Any] = {
    "metrics": [{"name": GPU, "target": "50%"}, {"name": QUEUE, "target": "<5"}],
    "capacity": "0.5/s",
    "max_replicas": 100,
}


def slo(objective: dict[str, Any] | None, **overrides: Any) -> Any:
    return spec(**{**BASE, **overrides, "objective": objective})


def steady(current: int = 8, *, rate: float = 4.0, queue: float = 0.0, **latency: float) -> Any:
    """`current` pods at their 50 % GPU target (the metrics keep the count), `rate` req/s in,
    `queue` requests waiting in all (pushed per pod), and measured `prefill_s`, `itl_p95_s`."""
    o = obs(current, gpu=50.0, queue=queue / current, load_rate=rate)
    return replace(o, **latency)


# ---------------------------------------------------------------------------------------------
# the queueing model


def test_erlang_c_matches_the_textbook_values() -> None:
    # M/M/2 at offered load 1: C = 1/3; M/M/1: C = rho; overloaded: everyone waits.
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(1, 0.6) == pytest.approx(0.6)
    assert erlang_c(3, 3.0) == 1.0 and erlang_c(0, 0.0) == 1.0


def test_more_servers_per_pod_wait_less_for_the_same_throughput() -> None:
    # 10 pods of 0.5 req/s at 4 req/s: one pooled server each waits 2.1 s at p95; eight
    # slots each (M/M/80 of 1/16 s) rarely wait at all. The queue ahead counts the same.
    assert p95_wait_s(10, 4.0, 0.5, k=8) == 0.0 < p95_wait_s(10, 4.0, 0.5, k=1)
    assert p95_wait_s(9, 4.0, 0.5, k=8) < p95_wait_s(9, 4.0, 0.5, k=1)
    assert p95_wait_s(10, 4.0, 0.5, queue=10, k=8) == pytest.approx(10 / 5)


def test_p95_wait_falls_with_pods_and_grows_with_the_queue_ahead() -> None:
    waits = [p95_wait_s(c, 4.0, 0.5) for c in range(8, 16)]
    assert math.isinf(waits[0])  # 8 pods serve exactly the 4 req/s: the queue never clears
    assert all(a > b or b == 0.0 for a, b in itertools.pairwise(waits[1:]))
    assert p95_wait_s(10, 4.0, 0.5) > 2.0 > p95_wait_s(11, 4.0, 0.5)
    # ten requests ahead take 11 pods 10 / 5.5 s more to start
    assert p95_wait_s(11, 4.0, 0.5, queue=10) == pytest.approx(p95_wait_s(11, 4.0, 0.5) + 10 / 5.5)


# ---------------------------------------------------------------------------------------------
# sizing: one row per scenario
#   (id, objective, observation, spec overrides, replicas, code)

SCENARIOS = [
    # the metrics keep 8 pods; a 2 s TTFT needs 11 at 4 req/s
    ("ttft-drives-the-count", {"ttft_p95": "2s"}, steady(), {}, 11, Code.OBJECTIVE_RAISE),
    # pods running 8 requests at once (8 servers of 1/16 s each): 10 pods already wait 0 s
    (
        "eight-slots-per-pod",
        {"ttft_p95": "2s", "concurrency": 8},
        steady(),
        {},
        10,
        Code.OBJECTIVE_RAISE,
    ),
    # the same load with ten requests waiting: 13 pods start them and the arrivals within 2 s
    ("queue-ahead-counts", {"ttft_p95": "2s"}, steady(queue=10), {}, 13, Code.OBJECTIVE_RAISE),
    # the same queue on 12 pods that out-serve the arrivals: gone before new pods are Ready
    (
        "passing-queue",
        {"ttft_p95": "2s"},
        steady(12, queue=10),
        {},
        12,
        Code.OBJECTIVE_COVERED,
    ),
    # 500 waiting: no count starts them within 2 s, so the objective sizes the arrivals (11)
    # and the reactive step's drain of the queue (24 pods) decides
    (
        "queue-beyond-reach",
        {"ttft_p95": "2s"},
        steady(queue=500),
        {},
        24,
        Code.OBJECTIVE_COVERED,
    ),
    # 1.5 s of prefill leaves 0.5 s to queue: 13 pods (12 wait 0.51 s)
    (
        "prefill-eats-the-budget",
        {"ttft_p95": "2s", "prefill": "1.5s"},
        steady(),
        {},
        13,
        Code.OBJECTIVE_RAISE,
    ),
    # no prefill in the spec: the one the pods measured counts
    (
        "measured-prefill",
        {"ttft_p95": "2s"},
        steady(prefill_s=1.5),
        {},
        13,
        Code.OBJECTIVE_RAISE,
    ),
    # a queue-wait objective alone
    ("queue-wait", {"queue_wait_p95": "1s"}, steady(), {}, 12, Code.OBJECTIVE_RAISE),
    # 40 pods busy at 100 %: the metrics ask for 80, more than the objective's 11
    (
        "never-fewer-than-the-metrics",
        {"ttft_p95": "2s"},
        obs(40, gpu=100.0, queue=0.0, load_rate=4.0),
        {},
        80,
        Code.OBJECTIVE_COVERED,
    ),
    # capped at max_replicas, and the reason says the objective cannot be met
    (
        "unreachable",
        {"ttft_p95": "2s"},
        steady(),
        {"max_replicas": 9},
        9,
        Code.OBJECTIVE_UNREACHABLE,
    ),
    # ITL twice its objective on 8 pods asks for 16
    (
        "itl-over-objective",
        {"itl_p95": "50ms"},
        steady(itl_p95_s=0.1),
        {},
        16,
        Code.OBJECTIVE_RAISE,
    ),
    # ITL within its objective: nothing to add
    (
        "itl-met",
        {"itl_p95": "50ms"},
        steady(itl_p95_s=0.03),
        {},
        8,
        Code.OBJECTIVE_COVERED,
    ),
    # no request rate measured: the objective cannot size, the metrics decide
    (
        "no-rate",
        {"ttft_p95": "2s"},
        obs(8, gpu=50.0, queue=0.0),
        {},
        8,
        Code.OBJECTIVE_UNKNOWN,
    ),
    # capacity still to be learned: the same
    (
        "capacity-not-learned",
        {"ttft_p95": "2s"},
        steady(),
        {"capacity": "learn"},
        8,
        Code.OBJECTIVE_UNKNOWN,
    ),
]


@pytest.mark.parametrize(
    ("objective", "observation", "overrides", "replicas", "code"),
    [s[1:] for s in SCENARIOS],
    ids=[s[0] for s in SCENARIOS],
)
def test_objective_sizing(
    objective: dict[str, Any], observation: Any, overrides: dict[str, Any], replicas: int,
    code: str,
) -> None:  # fmt: skip
    d = run(slo(objective, **overrides), observation)
    assert (d.replicas, code_of(d, "objective")) == (replicas, code)
    assert len(d.reasons) == 10 and d.reasons[-1].code == code


def test_the_count_is_the_fewest_that_meets_it() -> None:
    d = run(slo({"ttft_p95": "2s"}), steady())
    values = d.reasons[-1].values
    assert values["wait_p95_predicted_s"] <= 2.0
    assert p95_wait_s(d.replicas - 1, 4.0, 0.5) > 2.0
    assert "drives the count" in d.reasons[-1].message


def test_a_queue_beyond_reach_is_said_and_left_to_the_reactive_drain() -> None:
    d = run(slo({"ttft_p95": "2s"}), steady(queue=500))
    reason = d.reasons[-1]
    assert reason.values["queue_unreachable"] == 1.0 and reason.values["need"] == 11
    assert "500 queued cannot start within the objective" in reason.message


def test_without_an_objective_nothing_changes() -> None:
    with_none = run(spec(**BASE), steady())
    assert with_none.replicas == 8 and len(with_none.reasons) == 9
    assert Code.OBJECTIVE_NONE not in [r.code for r in with_none.reasons]


def test_objective_pods_are_held_like_any_need() -> None:
    """The load eases a minute after the objective raised the count: the pods stay for the
    window (hold step), not dropped at the next decision."""
    s = slo({"ttft_p95": "2s"})
    first = run(s, steady())
    assert first.replicas == 11
    later = run(s, obs(11, gpu=50.0 * 8 / 11, queue=0.0, load_rate=1.0), state=first.state,
                now=first.state.recent[-1][0] + 15)  # fmt: skip
    assert later.replicas == 11


@settings(max_examples=60, deadline=None)
@given(
    rate=st.floats(0.1, 20.0),
    more=st.floats(0.0, 10.0),
    queue=st.integers(0, 50),
    extra_queue=st.integers(0, 50),
)
def test_more_load_or_queue_never_yields_fewer_pods(
    rate: float, more: float, queue: int, extra_queue: int
) -> None:
    s = slo({"ttft_p95": "3s"})
    low = run(s, steady(rate=rate, queue=queue))
    high = run(s, steady(rate=rate + more, queue=queue + extra_queue))
    assert high.replicas >= low.replicas
    assert 1 <= low.replicas <= 100


# ---------------------------------------------------------------------------------------------
# the spec: (id, objective, field, rule)

BAD = [
    ("empty", {}, "objective", "required"),
    ("zero", {"ttft_p95": "0s"}, "objective.ttft_p95", "duration"),
    ("implausible", {"ttft_p95": "2h"}, "objective.ttft_p95", "duration"),
    ("not-a-duration", {"queue_wait_p95": "fast"}, "objective.queue_wait_p95", "duration"),
    ("unknown-key", {"ttft": "2s"}, "objective.ttft", "extra_forbidden"),
    (
        "prefill-alone",
        {"queue_wait_p95": "1s", "prefill": "1s"},
        "objective.prefill",
        "prefill_without_ttft",
    ),
    (
        "prefill-over",
        {"ttft_p95": "1s", "prefill": "2s"},
        "objective.prefill",
        "prefill_over_objective",
    ),
    ("not-a-mapping", "2s", "objective", "model_type"),
    (
        "zero-concurrency",
        {"ttft_p95": "2s", "concurrency": 0},
        "objective.concurrency",
        "greater_than_equal",
    ),
    (
        "fractional-concurrency",
        {"ttft_p95": "2s", "concurrency": 2.5},
        "objective.concurrency",
        "int_type",
    ),
]


@pytest.mark.parametrize(
    ("objective", "field", "rule"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_objectives_are_named_at_their_key(objective: Any, field: str, rule: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec({**BASE, "target": "svc", "objective": objective})
    assert [(i["field"], i["rule"]) for i in err.value.issues] == [(field, rule)]
    assert all(i["message"] for i in err.value.issues)


def test_objective_durations_round_trip_as_written() -> None:
    doc = {**BASE, "target": "svc", "objective": {"ttft_p95": "2s", "itl_p95": "50ms",
                                                   "prefill": "300ms"}}  # fmt: skip
    s = parse_spec(doc)
    assert s.objective is not None
    assert (s.objective.ttft_p95, s.objective.itl_p95, s.objective.prefill) == (2.0, 0.05, 0.3)
    assert s.to_document()["objective"] == {"ttft_p95": "2s", "itl_p95": "50ms", "prefill": "300ms"}
    assert parse_spec(s.to_document()) == s
