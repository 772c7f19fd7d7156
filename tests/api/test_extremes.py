"""Extreme numbers and times in every body and query parameter: a 4xx JSON error that names
the field and changes nothing, never a 500 (issue 14: `"timestamp": 1e308` was a 500).

The same extremes feed the schemathesis run (tests/api/test_fuzz_api.py); this table keeps
the cases found by hand, each with the reason it once failed.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import LiveServer

JSON = {"Content-Type": "application/json"}
CSV = {"Content-Type": "text/csv"}
BIG = "1" + "0" * 400  # a JSON integer beyond any float
NOW = time.time()
SPEC = '{"target":"demo","metrics":[{"name":"q","target":5}]}'

# (method, path, query, body, headers): each one a 4xx today, a 500 before issue 14
CASES = [
    pytest.param(
        "POST",
        "/v1/samples",
        {},
        '{"samples":[{"metric":"x","value":1,"timestamp":1e308}]}',
        JSON,
        id="samples-timestamp-1e308",  # microseconds overflowed int
    ),
    pytest.param(
        "POST",
        "/v1/samples",
        {},
        '{"samples":[{"metric":"x","value":1,"timestamp":' + BIG + "}]}",
        JSON,
        id="samples-timestamp-400-digits",
    ),
    pytest.param(
        "POST",
        "/v1/samples",
        {},
        '{"samples":[{"metric":"x","value":NaN}]}',
        JSON,
        id="samples-value-nan",
    ),
    pytest.param(
        "GET",
        "/v1/query_range",
        {"query": "x", "start": NOW - 60, "end": NOW, "step": "1e308"},
        "",
        {},
        id="query-step-1e308",  # the step's microseconds overflowed SQLite's INTEGER
    ),
    pytest.param(
        "GET",
        "/v1/query_range",
        {"query": "x", "start": NOW - 60, "end": "1e19"},
        "",
        {},
        id="query-end-1e19",
    ),
    pytest.param("GET", "/v1/audit", {"since": "1e19"}, "", {}, id="audit-since-1e19"),
    pytest.param("GET", "/v1/audit", {"until": "9.3e18"}, "", {}, id="audit-until-9.3e18"),
    pytest.param(
        "GET", "/v1/scalers/demo/events", {"since": "1e308"}, "", {}, id="events-since-1e308"
    ),
    pytest.param(
        "POST",
        "/grafana/annotations",
        {},
        '{"range":{"from":1e19,"to":1e19},"annotation":{"query":"demo"}}',
        JSON,
        id="grafana-annotations-range-1e19",
    ),
    pytest.param(
        "POST",
        "/grafana/query",
        {},
        '{"range":{"from":"2024-01-01T00:00:00Z","to":"2024-01-02T00:00:00Z"},'
        '"targets":[{"target":"x"}],"intervalMs":9223372036854775808}',
        JSON,
        id="grafana-interval-2**63",
    ),
    pytest.param(
        "POST",
        "/v1/forecasts",
        {"step": "Infinity"},
        "timestamp,value\n1,1\n2,2\n",
        CSV,
        id="forecast-step-infinity",  # the forecaster's ConfigError leaked
    ),
    pytest.param(
        "POST",
        "/v1/forecasts",
        {},
        '{"points":[[0,1],[60,NaN]],"step":60}',
        JSON,
        id="forecast-value-nan",
    ),
    pytest.param(
        "POST",
        "/v1/scalers/validate",
        {},
        '{"target":"d","metrics":[{"name":"q","target":5,"window":' + BIG + "}]}",
        JSON,
        id="spec-window-400-digits",
    ),
    pytest.param(
        "POST",
        "/v1/scalers/validate",
        {},
        '{"target":"d","metrics":[{"name":"q","target":5}],"capacity":{"q":' + BIG + "}}",
        JSON,
        id="spec-capacity-400-digits",
    ),
    pytest.param(
        "POST",
        "/v1/scalers/validate",
        {},
        '{"target":"d","metrics":[{"name":"q","target":5,"window":1e308}]}',
        JSON,
        id="spec-window-1e308",  # accepted, it overflowed later in the reconciler's query
    ),
    pytest.param("PUT", "/metrics/job/x", {}, f"m {BIG}\n", {}, id="push-value-400-digits"),
]


def _state(server: LiveServer) -> tuple[object, ...]:
    return tuple(
        httpx.get(f"{server.url}{path}", params=params).json()
        for path, params in (
            ("/v1/series", {"match": '{__name__=~".+"}'}),
            ("/api/v1/metrics", {}),
            ("/v1/scalers", {}),
        )
    )


@pytest.mark.parametrize(("method", "path", "query", "body", "headers"), CASES)
def test_extremes_are_refused_with_a_json_error_and_change_nothing(
    server: LiveServer,
    method: str,
    path: str,
    query: dict[str, object],
    body: str,
    headers: dict[str, str],
) -> None:
    assert httpx.put(f"{server.url}/v1/scalers/demo", content=SPEC, headers=JSON).is_success
    before = _state(server)
    response = httpx.request(
        method, f"{server.url}{path}", params=query, content=body, headers=headers
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["message"]
    assert _state(server) == before
