"""Reading a metric from Prometheus: its instant-query answers (recorded from Prometheus 2.42's
/api/v1/query) turned into the metric's samples, or refused with a reason an operator can act
on; and the client's failures (a bad query, a server down, auth) as PrometheusErrors."""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest

from app.policy import ALL_CODES
from app.policy.types import Decision, FractionalPlan, Reason, ScalerState
from app.prometheus import PrometheusClient, PrometheusError, Sample, parse_instant
from app.services.sources import SOURCE_FAILED, SourceNote, explain, to_found
from app.settings import Settings
from tests.conftest import free_port

T = 1796531040.123


def vector(*series: tuple[dict[str, str], str]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": labels, "value": [T, value]} for labels, value in series],
        },
    }


POD = {"__name__": "vllm:num_requests_waiting", "instance": "127.0.0.1:9000", "job": "vllm"}

ANSWERS = [
    pytest.param(vector(({}, "20")), [Sample({}, T, 20.0)], id="sum(): one series, no labels"),
    pytest.param(
        {"status": "success", "data": {"resultType": "scalar", "result": [T, "3.5"]}},
        [Sample({}, T, 3.5)],
        id="a scalar",
    ),
    pytest.param(
        vector((POD | {"pod": "llm-0"}, "12"), (POD | {"pod": "llm-1"}, "8")),
        [Sample(POD | {"pod": "llm-0"}, T, 12.0), Sample(POD | {"pod": "llm-1"}, T, 8.0)],
        id="one series per pod",
    ),
    pytest.param(vector(), [], id="no series (nothing scraped yet)"),
]


@pytest.mark.parametrize(("body", "samples"), ANSWERS)
def test_instant_answers_parse_into_samples(body: dict[str, Any], samples: list[Sample]) -> None:
    assert parse_instant(body) == samples


def test_nan_is_kept_for_the_policy_to_leave_out() -> None:
    (sample,) = parse_instant(vector(({}, "NaN")))
    assert math.isnan(sample.value)


REFUSED = [
    pytest.param(
        {
            "status": "error",
            "errorType": "bad_data",
            "error": 'invalid parameter "query": 1:5: parse error: unexpected right parenthesis',
        },
        "bad_data: invalid parameter",
        id="a query that does not parse",
    ),
    pytest.param(
        {
            "status": "success",
            "data": {
                "resultType": "matrix",
                "result": [{"metric": {}, "values": [[T, "1"], [T + 1, "2"]]}],
            },
        },
        "returned a matrix",
        id="a range selector",
    ),
    pytest.param(
        {"status": "success", "data": {"resultType": "string", "result": [T, "hi"]}},
        "returned a string",
        id="a string",
    ),
    pytest.param(
        vector(({}, "many")),
        "not numbers",
        id="a value that is no number",
    ),
    pytest.param(["not", "an", "object"], "not a JSON object", id="not an object"),
]


@pytest.mark.parametrize(("body", "why"), REFUSED)
def test_unusable_answers_are_refused_saying_why(body: object, why: str) -> None:
    with pytest.raises(PrometheusError, match=why):
        parse_instant(body)


def test_one_sample_is_the_value_and_names_no_pod() -> None:
    # A single series stands for the whole target, whatever labels it kept.
    assert to_found([Sample(POD | {"pod": "llm-0"}, T, 7.0)]) == [(round(T * 1e6), 7.0, None)]


def test_one_series_per_pod_is_read_per_pod() -> None:
    found = to_found([Sample({"pod": "a"}, T, 1.0), Sample({"pod": "b"}, T, 3.0)])
    assert [(value, pod) for _, value, pod in found] == [(1.0, "a"), (3.0, "b")]


MANY = [
    pytest.param([Sample({"gpu": "0"}, T, 1.0), Sample({"gpu": "1"}, T, 2.0)], id="no pod label"),
    pytest.param(
        [Sample({"pod": "a", "gpu": "0"}, T, 1.0), Sample({"pod": "a", "gpu": "1"}, T, 2.0)],
        id="two series of one pod",
    ),
]


@pytest.mark.parametrize("samples", MANY)
def test_several_series_not_one_per_pod_are_refused(samples: list[Sample]) -> None:
    with pytest.raises(PrometheusError, match=r"2 series, not one per pod.*aggregate them"):
        to_found(samples)


def test_no_series_is_no_reading() -> None:
    with pytest.raises(PrometheusError, match="no series"):
        to_found([])


def _client(handler: Any, **options: Any) -> PrometheusClient:
    return PrometheusClient(
        "http://prometheus:9090/", transport=httpx.MockTransport(handler), **options
    )


async def test_the_query_is_evaluated_at_the_decisions_time_with_its_own_deadline() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=vector(({}, "4")))

    client = _client(answer, timeout_s=2.5, headers={"Authorization": "Bearer t0k"})
    assert await client.query("sum(x)", T) == [Sample({}, T, 4.0)]
    form = dict(httpx.QueryParams(seen[0].content.decode()))
    assert seen[0].url.path == "/api/v1/query"
    assert form == {"query": "sum(x)", "time": f"{T:.3f}", "timeout": "2500ms"}
    assert seen[0].headers["Authorization"] == "Bearer t0k"
    await client.aclose()


async def test_an_http_error_without_json_names_the_status() -> None:
    client = _client(lambda _: httpx.Response(401, text="Unauthorized\n"))
    with pytest.raises(PrometheusError, match="HTTP 401: Unauthorized"):
        await client.query("up", T)


async def test_a_server_down_is_unreachable() -> None:
    client = PrometheusClient(f"http://127.0.0.1:{free_port()}", timeout_s=1.0)
    with pytest.raises(PrometheusError, match=r"^unreachable: ConnectError"):
        await client.query("up", T)
    await client.aclose()


def test_settings_build_the_client_with_basic_auth_or_none_at_all() -> None:
    assert PrometheusClient.from_settings(Settings()) is None
    client = PrometheusClient.from_settings(
        Settings(prometheus_url="https://prom.example/", prometheus_username="ciuic")
    )
    assert client is not None and client.url == "https://prom.example"
    with pytest.raises(ValueError, match="not both"):
        Settings(prometheus_bearer_token="t", prometheus_username="u")


def test_a_failed_source_is_the_decisions_first_reason() -> None:
    held = Decision(
        1.0, 3, FractionalPlan(3), (Reason("reactive.fallback_hold", "hold"),), ScalerState()
    )
    client = PrometheusClient("http://prom:9090")
    notes = {
        "request_queue": SourceNote("sum(q)", error="unreachable: ConnectError: refused"),
        "gpu": SourceNote("avg(g)", series=1),
    }
    explained = explain(held, notes, client)
    assert [r.code for r in explained.reasons] == [SOURCE_FAILED, "reactive.fallback_hold"]
    assert explained.reasons[0].message == (
        "request_queue: no reading from Prometheus at http://prom:9090: "
        "unreachable: ConnectError: refused"
    )
    assert explain(held, {"gpu": notes["gpu"]}, client) is held


def test_the_source_code_is_listed_with_the_policys_codes() -> None:
    # Dashboards match on the codes listed in app.policy.codes: the shell's one is there too.
    assert SOURCE_FAILED == "source.prometheus_failed"
    assert SOURCE_FAILED in ALL_CODES


def test_a_load_read_from_prometheus_is_the_load_capacity_is_learned_from() -> None:
    """A scaler whose `request_rate` comes from a query has no pushed load: the query's answer
    is the decision's load rate (what `capacity: learn` learns from), not nothing."""
    from app.policy import parse_spec
    from app.store.observations import _view

    spec = parse_spec(
        {
            "target": "llm",
            "metrics": [
                {"name": "gpu_utilization", "target": "80%"},
                {
                    "name": "request_rate",
                    "target": 4,
                    "source": {"prometheus": "sum(rate(vllm:request_success_total[1m]))"},
                },
            ],
        }
    )
    now_us = round(T * 1e6)
    pushed = _view(spec, now_us, {"gpu_utilization": [(now_us, 70.0, "llm-0")],
                                  "request_rate": []}, [])  # fmt: skip
    assert pushed.load_rate is None
    answer = to_found([Sample({}, T, 12.5)])
    read = pushed.with_found({"request_rate": answer}, frozenset({"request_rate"}))
    assert read.load_rate == 12.5
    assert read.readings["gpu_utilization"].value == 70.0  # the pushed ones stay
