"""Every operation that reads a body, by the type it is sent with: a type the operation does
not read (text, a form as `curl -d` sends, XML) is a 415 naming the types it does read, and
changes nothing; a body without a Content-Type is read as JSON (as POST /v1/samples always
did). Remote write's own types: tests/api/test_remote_write.py."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.api.test_access_matrix import _snapshot
from tests.conftest import LiveServer

SPEC = {"name": "typed", "target": "typed", "metrics": [{"name": "gpu_utilization"}]}
FORM = "application/x-www-form-urlencoded"
NOW = time.time()

# (method, path, a body each operation would accept as JSON, the types it reads). Before the
# fix, each row but /v1/samples read its body as JSON whatever its type said.
BODY_READERS: list[Any] = [
    # the one that was right: the model for the rest
    pytest.param(
        "POST",
        "/v1/samples",
        {"samples": [{"metric": "typed", "value": 1}]},
        ["application/json"],
        id="samples",
    ),
    # a spec: JSON or YAML (four spellings of its type)
    pytest.param(
        "POST", "/v1/scalers", SPEC, ["application/json", "application/yaml"], id="create"
    ),
    pytest.param(
        "PUT", "/v1/scalers/typed", SPEC, ["application/json", "application/yaml"], id="put"
    ),
    pytest.param(
        "POST",
        "/v1/scalers/validate",
        SPEC,
        ["application/json", "application/yaml"],
        id="validate",
    ),
    # JSON bodies read by `json_body`
    pytest.param(
        "POST", "/v1/tokens", {"name": "t", "scope": "read"}, ["application/json"], id="token"
    ),
    pytest.param(
        "POST",
        "/v1/scalers/typed/rollouts",
        {"image": "vllm:2"},
        ["application/json"],
        id="rollout",
    ),
    pytest.param("POST", "/v1/scalers/typed/tune", {}, ["application/json"], id="tune"),
    # an optional body: refused by its type only when there is one (see below)
    pytest.param(
        "POST", "/v1/simulations/j/apply", {"mode": "apply"}, ["application/json"], id="apply"
    ),
    # JSON, or a CSV series / trace
    pytest.param(
        "POST",
        "/v1/forecasts",
        {"points": [[NOW - 60, 1], [NOW, 2]], "model": "naive"},
        ["application/json", "text/csv"],
        id="forecast",
    ),
    pytest.param(
        "POST",
        "/v1/simulations",
        {"scaler": "typed"},
        ["application/json", "text/csv", "text/plain"],
        id="simulation",
    ),
    # Grafana's JSON datasource posts JSON
    pytest.param("POST", "/grafana/search", {"target": ""}, ["application/json"], id="grafana"),
    pytest.param(
        "POST",
        "/grafana/query",
        {"range": {"from": "now-1h", "to": "now"}, "targets": []},
        ["application/json"],
        id="grafana-query",
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "reads"), BODY_READERS)
def test_a_body_of_a_type_the_operation_does_not_read_is_415_and_changes_nothing(
    server: LiveServer,
    database_url: str,
    method: str,
    path: str,
    body: dict[str, Any],
    reads: list[str],
) -> None:
    before = _snapshot(database_url)
    refused = [t for t in ("text/plain", FORM, "application/xml") if t not in reads]
    for content_type in refused:
        response = httpx.request(
            method,
            f"{server.url}{path}",
            content=json.dumps(body),  # JSON inside: read by its type, it is not JSON
            headers={"Content-Type": f"{content_type}; charset=utf-8"},
        )
        assert response.status_code == 415, (content_type, response.text)
        error = response.json()["error"]
        assert error["code"] == "unsupported_media_type"
        assert f"{content_type}; charset=utf-8" in error["message"]
        assert "this operation reads " + " or ".join(reads) in error["message"]
        assert (
            "curl -d sends a form: add -H 'Content-Type: application/json'" in error["message"]
        ) == (content_type == FORM)
        assert error["details"]["content_type"] == f"{content_type}; charset=utf-8"
        assert set(reads) <= set(error["details"]["supported"])
    assert _snapshot(database_url) == before


@pytest.mark.parametrize(
    ("path", "status"),
    [
        pytest.param("/grafana/search", 200, id="grafana"),  # no body is `{}`
        pytest.param("/v1/simulations/j/apply", 404, id="apply"),  # no body: the defaults
    ],
)
def test_no_body_at_all_is_not_refused_for_its_type(
    server: LiveServer, path: str, status: int
) -> None:
    """`curl -X POST -d ''` names a form's type on an empty body: there is nothing to read."""
    response = httpx.post(f"{server.url}{path}", content=b"", headers={"Content-Type": FORM})
    assert response.status_code == status, response.text


def test_a_pushgateway_push_in_protobuf_is_415_and_any_text_is_read(server: LiveServer) -> None:
    """The Pushgateway's routes read the text format whatever the type says, as the
    Pushgateway does (`curl --data-binary @-` sends a form's type); protobuf is refused."""
    url = f"{server.url}/metrics/job/typed"
    protobuf = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily"
    response = httpx.put(url, content=b"\x00", headers={"Content-Type": protobuf})
    assert response.status_code == 415, response.text
    error = response.json()["error"]
    assert error["code"] == "unsupported_media_type"
    assert error["details"] == {"content_type": protobuf, "supported": ["text/plain"]}
    for content_type in (FORM, "text/plain; version=0.0.4"):
        pushed = httpx.put(url, content=b"typed 1\n", headers={"Content-Type": content_type})
        assert pushed.status_code == 200, pushed.text
