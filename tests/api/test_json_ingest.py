"""POST /v1/samples: all or nothing, and clear refusals."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer


def read(
    server: LiveServer, selector: str, start: float, end: float, step: str = "1"
) -> list[list[float]]:
    response = httpx.get(
        f"{server.url}/v1/query_range",
        params={"query": selector, "start": start, "end": end, "step": step, "agg": "max"},
    )
    assert response.status_code == 200, response.text
    return [p for s in response.json()["series"] for p in s["points"]]


def test_a_batch_with_every_timestamp_form_is_stored(server: LiveServer) -> None:
    now = time.time()
    iso = datetime.fromtimestamp(now - 20, tz=UTC).isoformat()
    body = {
        "samples": [
            {
                "metric": "request_rate",
                "labels": {"deployment": "deepseek"},
                "value": 4.5,
                "timestamp": now - 30,
            },
            {
                "metric": "request_rate",
                "labels": {"deployment": "deepseek"},
                "value": 5.5,
                "timestamp": iso,
            },
            {"metric": "request_rate", "labels": {"deployment": "deepseek"}, "value": 6.5},
        ]
    }
    response = httpx.post(f"{server.url}/v1/samples", json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 3}
    points = read(server, 'request_rate{deployment="deepseek"}', now - 60, now + 5)
    assert [v for _, v in points] == [4.5, 5.5, 6.5]


def test_a_retried_batch_is_idempotent(server: LiveServer) -> None:
    now = time.time()
    body = {
        "samples": [{"metric": "m", "value": float(i), "timestamp": now - 10 + i} for i in range(5)]
    }
    for _ in range(2):
        assert httpx.post(f"{server.url}/v1/samples", json=body).status_code == 200
    assert len(read(server, "m", now - 20, now + 1)) == 5


GOOD: dict[str, Any] = {"metric": "gpu_utilization", "labels": {"pod": "p-0"}, "value": 50.0}


@pytest.mark.parametrize(
    ("bad_sample", "field"),
    [
        pytest.param({**GOOD, "metric": "1bad"}, "samples.1.metric", id="metric-starts-with-digit"),
        pytest.param({**GOOD, "metric": "a-b"}, "samples.1.metric", id="metric-with-dash"),
        pytest.param({**GOOD, "metric": ""}, "samples.1.metric", id="metric-empty"),
        pytest.param(
            {**GOOD, "labels": {"__name__": "x"}}, "samples.1.labels", id="reserved-label"
        ),
        pytest.param({**GOOD, "labels": {"a b": "x"}}, "samples.1.labels", id="label-with-space"),
        pytest.param({**GOOD, "labels": {"a": 1}}, "samples.1.labels.a", id="label-value-number"),
        pytest.param({**GOOD, "value": "NaN"}, "samples.1.value", id="nan"),
        pytest.param({**GOOD, "value": "Infinity"}, "samples.1.value", id="infinity"),
        pytest.param({**GOOD, "value": "fast"}, "samples.1.value", id="value-text"),
        # issue: a number written as text is not a number (nor is a boolean)
        pytest.param({**GOOD, "value": "4.2"}, "samples.1.value", id="value-number-as-text"),
        pytest.param({**GOOD, "value": True}, "samples.1.value", id="value-bool"),
        pytest.param({**GOOD, "value": None}, "samples.1.value", id="value-null"),
        pytest.param({"metric": "x", "labels": {}}, "samples.1.value", id="value-missing"),
        pytest.param(
            {**GOOD, "timestamp": "yesterday"}, "samples.1.timestamp", id="timestamp-text"
        ),
        pytest.param(
            {**GOOD, "timestamp": "2026-01-01T00:00:00"},
            "samples.1.timestamp",
            id="timestamp-no-zone",
        ),
        pytest.param({**GOOD, "timestamp": -5}, "samples.1.timestamp", id="timestamp-negative"),
        pytest.param(
            {**GOOD, "timestamp": time.time() + 86400}, "samples.1.timestamp", id="timestamp-future"
        ),
        pytest.param(
            {**GOOD, "timestamp": time.time() - 40 * 86400},
            "samples.1.timestamp",
            id="timestamp-too-old",
        ),
        pytest.param({**GOOD, "unit": "percent"}, "samples.1.unit", id="unknown-field"),
    ],
)
def test_one_bad_sample_rejects_the_whole_batch(
    server: LiveServer, bad_sample: dict[str, Any], field: str
) -> None:
    response = httpx.post(f"{server.url}/v1/samples", json={"samples": [GOOD, bad_sample]})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid"
    fields = [d["field"] for d in error["details"]]
    assert any(f == field or f.startswith(field + ".") for f in fields), fields
    assert httpx.get(f"{server.url}/v1/series", params={"match": "gpu_utilization"}).json() == {
        "series": []
    }


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        pytest.param(b"{not json", 400, "invalid_json", id="not-json"),
        pytest.param(b'{"points": []}', 422, "invalid", id="wrong-shape"),
        pytest.param(b'[{"metric": "x", "value": 1}]', 422, "invalid", id="bare-list"),
        pytest.param(b'{"samples": {"metric": "x"}}', 422, "invalid", id="samples-not-a-list"),
    ],
)
def test_malformed_documents(server: LiveServer, body: bytes, status: int, code: str) -> None:
    response = httpx.post(
        f"{server.url}/v1/samples", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


BATCH = b'{"samples": [{"metric": "gpu_utilization", "labels": {"pod": "p-0"}, "value": 50}]}'


@pytest.mark.parametrize(
    "content_type",
    [
        # issue: a YAML body (or the YAML type on a JSON body) was read as JSON: 400 invalid_json
        pytest.param("application/yaml", id="yaml"),
        pytest.param("text/plain", id="text"),
        # what `curl -d` sends unless told otherwise
        pytest.param("application/x-www-form-urlencoded", id="form"),
    ],
)
def test_a_body_that_is_not_json_by_its_type_is_415_naming_json(
    server: LiveServer, content_type: str
) -> None:
    response = httpx.post(
        f"{server.url}/v1/samples", content=BATCH, headers={"Content-Type": content_type}
    )
    assert response.status_code == 415, response.text
    error = response.json()["error"]
    assert error["code"] == "unsupported_media_type"
    assert content_type in error["message"] and "application/json" in error["message"]
    assert error["details"] == {"content_type": content_type, "supported": ["application/json"]}
    assert httpx.get(f"{server.url}/v1/series", params={"match": "gpu_utilization"}).json() == {
        "series": []
    }


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Content-Type": "application/json; charset=utf-8"}, id="with-charset"),
        pytest.param({"Content-Type": "Application/JSON"}, id="any-case"),
        pytest.param({}, id="no-content-type"),  # read as JSON, as before
    ],
)
def test_json_is_read_whatever_its_type_says_of_it(
    server: LiveServer, headers: dict[str, str]
) -> None:
    response = httpx.post(f"{server.url}/v1/samples", content=BATCH, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 1}
