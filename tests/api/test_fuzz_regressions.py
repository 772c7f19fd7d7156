"""Defects the fuzzers found, each pinned by the smallest request that showed it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml
from fastapi.responses import JSONResponse

from app.api.errors import error_body, field_errors
from tests.conftest import LiveServer

BRIEF = yaml.safe_load((Path(__file__).parents[1] / "policy" / "brief.yaml").read_text())


def test_a_nan_in_a_refused_spec_is_a_422_not_a_500(server: LiveServer) -> None:
    # YAML's .nan reaches the spec parser's issue list as a float NaN; strict JSON has no
    # NaN, so rendering the 422 used to fail and the client got a 500.
    doc = {**BRIEF, "max_replicas": float("nan")}
    response = httpx.post(
        f"{server.url}/v1/scalers",
        content=yaml.safe_dump(doc),
        headers={"Content-Type": "application/yaml"},
    )
    assert response.status_code == 422, response.text
    issue = next(i for i in response.json()["error"]["details"] if i["field"] == "max_replicas")
    assert issue["value"] == "nan"
    assert httpx.get(f"{server.url}/v1/scalers").json() == []


def test_a_refused_body_of_raw_bytes_renders_as_json() -> None:
    # FastAPI reports a body it could not read as JSON with the raw bytes as pydantic's
    # `input`; rendering that 422 used to fail (bytes are not JSON) and the client got a 500.
    errors = [{"loc": ("body",), "msg": "not a dict", "type": "dict_type", "input": b"\xff{x"}]
    details = field_errors(errors)
    assert details == [
        {"field": "body", "message": "not a dict", "type": "dict_type", "value": "\ufffd{x"}
    ]
    body = error_body("invalid", "1 invalid field(s)", {"nan": float("nan"), "raw": b"ok"})
    assert json.loads(JSONResponse(body).body)["error"]["details"] == {"nan": "nan", "raw": "ok"}


@pytest.mark.parametrize(
    "path",
    ["/v1/tokens", "/v1/scalers/brief/rollouts", "/v1/scalers/brief/tune"],
    ids=["token", "rollout", "tune"],
)
def test_no_token_is_refused_before_the_body_is_read(secured_server: LiveServer, path: str) -> None:
    # FastAPI parsed these routes' bodies before the token check ran: a malformed body
    # without a token got 400, not 401, and any size was read (no CIUIC_MAX_BODY_BYTES).
    response = httpx.post(
        f"{secured_server.url}{path}",
        content=b"\xff not json",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    "path",
    ["/v1/tokens", "/v1/scalers/brief/rollouts", "/v1/scalers/brief/tune"],
    ids=["token", "rollout", "tune"],
)
def test_a_body_over_the_limit_is_a_413(limited_server: LiveServer, path: str) -> None:
    body = json.dumps({"name": "x" * 5000, "scope": "read"})
    response = httpx.post(
        f"{limited_server.url}{path}", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_pushed_nan_is_kept_in_the_group_but_not_in_the_series(server: LiveServer) -> None:
    # SQLite stores a NaN as NULL: the samples table refused it and the push got a 500.
    response = httpx.put(f"{server.url}/metrics/job/nan", content=b"up NaN\nready 1\n")
    assert response.status_code == 200, response.text
    [group] = httpx.get(f"{server.url}/api/v1/metrics").json()["data"]
    assert group["up"]["metrics"][0]["value"] == "NaN"
    series = httpx.get(f"{server.url}/v1/series", params={"match": '{job="nan"}'}).json()
    assert [s["metric"] for s in series["series"]] == ["ready"]


@pytest.mark.parametrize(
    "limits",
    [
        {"push_burst": 704244613833766252551602176},  # found by schemathesis: int32 overflow
        {"push_burst": 10_000_001},
        {"push_rate_per_s": 1e12},
        {"push_rate_per_s": "Infinity"},
    ],
)
def test_token_limits_out_of_range_are_a_422_and_no_token(
    server: LiveServer, limits: dict[str, object]
) -> None:
    body = json.dumps({"name": "fleet", "scope": "push", **limits}).replace(
        '"Infinity"', "Infinity"
    )
    response = httpx.post(
        f"{server.url}/v1/tokens", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid"
    assert httpx.get(f"{server.url}/v1/tokens").json() == []


@pytest.mark.parametrize("path", ["/v1/rollouts/{}", "/v1/rollouts/{}/cancel"])
def test_a_rollout_id_past_the_bigint_range_is_a_422_not_a_500(
    server: LiveServer, path: str
) -> None:
    # The database's BIGINT cannot bind 2**63: the query failed and the client got a 500.
    huge = 2**63
    method = "POST" if path.endswith("cancel") else "GET"
    response = httpx.request(method, f"{server.url}{path.format(huge)}")
    assert response.status_code == 422, response.text
    assert httpx.get(f"{server.url}{f'/v1/rollouts/{2**63 - 1}'}").status_code == 404
