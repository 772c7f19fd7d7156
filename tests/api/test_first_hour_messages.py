"""Issue 14 ("a user's first hour"): each mistake a newcomer makes is answered with what to
do about it, not only with what went wrong."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import ADMIN_TOKEN, LiveServer

BRIEF = (Path(__file__).parents[1] / "policy" / "brief.yaml").read_text()


def test_yaml_posted_as_json_is_told_its_content_type(server: LiveServer) -> None:
    """`curl --data-binary @spec.yaml` without the header: the body reads as YAML."""
    response = httpx.post(f"{server.url}/v1/scalers", content=BRIEF)
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert message.startswith("the body is not valid JSON")
    assert "looks like YAML" in message and "Content-Type: application/yaml" in message
    assert httpx.get(f"{server.url}/v1/scalers").json() == []


def test_plain_bad_json_gets_no_yaml_hint(server: LiveServer) -> None:
    response = httpx.post(f"{server.url}/v1/scalers", content=b'{"target": ')
    assert response.status_code == 400
    assert "YAML" not in response.json()["error"]["message"]


def test_a_token_without_its_scheme_is_told_to_prefix_bearer(
    secured_server: LiveServer,
) -> None:
    url = f"{secured_server.url}/v1/tokens"
    bare = httpx.get(url, headers={"Authorization": ADMIN_TOKEN})
    assert bare.status_code == 401
    assert "prefix the token with `Bearer `" in bare.json()["error"]["message"]
    none = httpx.get(url)
    assert none.status_code == 401
    assert "Authorization: Bearer <token>" in none.json()["error"]["message"]
    fixed = httpx.get(url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert fixed.status_code == 200


def test_an_unclosed_label_quote_names_its_line(server: LiveServer) -> None:
    """printf 'm{pod="a} 1\\n' | curl -X PUT --data-binary @- .../metrics/job/x"""
    body = 'ok 1\nm{pod="a} 1\n'
    response = httpx.put(f"{server.url}/metrics/job/x", content=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "parse_error"
    assert "on line 2" in error["message"]
    assert "closing quote is missing" in error["message"]
    assert "'m{pod=\"a} 1'" in error["message"]


def test_a_spec_reports_every_problem_at_once(server: LiveServer) -> None:
    """A wrong cron used to hide the min/max rule: fix one, meet the next."""
    spec = {
        "target": "demo-llm",
        "metrics": [{"name": "request_queue", "target": 5}],
        "min_replicas": 4,
        "max_replicas": 3,
        "schedule": [{"time": "0 25 * * *", "min_replicas": 1}],
    }
    response = httpx.post(f"{server.url}/v1/scalers", json=spec)
    assert response.status_code == 422, response.text
    details = response.json()["error"]["details"]
    assert [(d["field"], d["rule"]) for d in details] == [
        ("schedule.0.time", "cron"),
        ("max_replicas", "min_gt_max"),
    ]
    assert "hour 25 is out of range 0-23" in details[0]["message"]
