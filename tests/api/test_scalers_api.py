"""The scalers API over HTTP: the brief's file in and out, concurrency, refusals, decisions."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.exposition import push_to_gateway

from app.policy import parse_spec
from tests.conftest import LiveServer

BRIEF = (Path(__file__).parents[1] / "policy" / "brief.yaml").read_text()
YAML = {"Content-Type": "application/yaml"}
AS_YAML = {"Accept": "application/yaml"}


CHANGED = f"{BRIEF}max_replicas: 12\n"  # the brief's file with one change


def create_brief(server: LiveServer) -> httpx.Response:
    response = httpx.post(f"{server.url}/v1/scalers", content=BRIEF, headers=YAML)
    assert response.status_code == 201, response.text
    return response


def test_the_briefs_yaml_round_trips_yaml_in_yaml_out(server: LiveServer) -> None:
    created = create_brief(server)
    assert created.headers["location"] == "/v1/scalers/deepseek-service"
    assert created.headers["etag"] == '"1"'
    fetched = httpx.get(f"{server.url}/v1/scalers/deepseek-service", headers=AS_YAML)
    assert fetched.status_code == 200
    assert fetched.headers["content-type"].startswith("application/yaml")
    document = yaml.safe_load(fetched.text)
    assert document["spec"]["metrics"][0] == {
        "name": "gpu_utilization",
        "weight": 0.6,
        "target": "85%",
    }
    assert document["spec"]["metrics"][1]["target"] == "<5"
    assert document["spec"]["emergency"]["triggers"][0]["duration"] == "30s"
    # Same meaning: the spec read back parses to the same spec as the brief's file (named
    # as the scaler is: the target's name).
    assert document["spec"]["name"] == "deepseek-service"
    assert parse_spec(document["spec"]) == parse_spec(
        {"name": "deepseek-service", **yaml.safe_load(BRIEF)}
    )
    # And it can be sent back as it came (PUT with the YAML we got): nothing changes.
    again = httpx.put(
        f"{server.url}/v1/scalers/deepseek-service",
        content=yaml.safe_dump(document["spec"]),
        headers=YAML,
    )
    assert again.status_code == 200 and again.headers["etag"] == '"1"'


def test_json_works_the_same(server: LiveServer) -> None:
    spec = yaml.safe_load(BRIEF) | {"name": "deepseek-json"}
    response = httpx.post(f"{server.url}/v1/scalers", json=spec)
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "deepseek-json"
    assert body["status"]["generation"] == 1 and body["status"]["paused"] is False
    listing = httpx.get(f"{server.url}/v1/scalers").json()
    assert [s["name"] for s in listing] == ["deepseek-json"]


def test_create_twice_is_409_and_put_replaces(server: LiveServer) -> None:
    create_brief(server)
    again = httpx.post(f"{server.url}/v1/scalers", content=BRIEF, headers=YAML)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    put = httpx.put(f"{server.url}/v1/scalers/deepseek-service", content=CHANGED, headers=YAML)
    assert put.status_code == 200 and put.json()["status"]["generation"] == 2
    created = httpx.put(f"{server.url}/v1/scalers/other", content=BRIEF, headers=YAML)
    assert created.status_code == 201 and created.json()["name"] == "other"


def test_if_match_guards_concurrent_edits(server: LiveServer) -> None:
    create_brief(server)
    url = f"{server.url}/v1/scalers/deepseek-service"
    first = httpx.put(url, content=CHANGED, headers={**YAML, "If-Match": '"1"'})
    assert first.status_code == 200
    stale = httpx.put(url, content=CHANGED, headers={**YAML, "If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.json()["error"]["details"] == {"generation": 2}
    assert httpx.delete(url, headers={"If-Match": '"1"'}).status_code == 412
    assert httpx.delete(url, headers={"If-Match": '"2"'}).status_code == 204
    assert httpx.get(url).status_code == 404
    missing = httpx.put(url, content=BRIEF, headers={**YAML, "If-Match": '"1"'})
    assert missing.status_code == 412


def test_a_put_that_changes_nothing_keeps_the_generation(server: LiveServer) -> None:
    """Issue: PUTting the file as it is made a new generation (and an event, and an audit
    entry with no changes). The spec stored has its name, however it came: POSTed without
    one, or PUT with the name from the path."""
    create_brief(server)
    url = f"{server.url}/v1/scalers/deepseek-service"
    assert httpx.get(url).json()["spec"]["name"] == "deepseek-service"
    for if_match in (None, '"1"', "*"):
        headers = YAML if if_match is None else {**YAML, "If-Match": if_match}
        same = httpx.put(url, content=BRIEF, headers=headers)
        assert same.status_code == 200, same.text
        assert same.headers["etag"] == '"1"' and same.json()["status"]["generation"] == 1
    # If-Match still guards it: a stale one is refused even though nothing would change.
    stale = httpx.put(url, content=BRIEF, headers={**YAML, "If-Match": '"7"'})
    assert stale.status_code == 412
    events = httpx.get(f"{url}/events").json()["events"]
    assert [e["message"] for e in events] == ["created"]
    changed = httpx.put(url, content=CHANGED, headers=YAML)
    assert changed.headers["etag"] == '"2"' and changed.json()["spec"]["max_replicas"] == 12


def test_validate_stores_nothing_and_fills_defaults(server: LiveServer) -> None:
    response = httpx.post(f"{server.url}/v1/scalers/validate", content=BRIEF, headers=YAML)
    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is True and body["name"] == "deepseek-service"
    assert body["spec"]["max_replicas"] == 10 and "reactive" in body["spec"]
    assert body["spec"]["capacity"] == "learn"  # the default: learned from the pods' pushes
    assert httpx.get(f"{server.url}/v1/scalers").json() == []


def brief_with(path: str, value: Any) -> dict[str, Any]:
    doc: Any = yaml.safe_load(BRIEF)
    node = doc
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return dict(doc)


BAD_SPECS = [
    # (document, field the 422 names, words its message contains)
    (brief_with("color", "blue"), "color", "unknown key"),
    (brief_with("target", ""), "target", ""),
    (brief_with("scaler", "magic"), "scaler", ""),
    (brief_with("metrics", []), "metrics", ""),
    (brief_with("metrics.0.target", "185%"), "metrics.0.target", "%"),
    (brief_with("metrics.0.target", "fast"), "metrics.0.target", "target"),
    (brief_with("metrics.0.target", -5), "metrics.0.target", "> 0"),
    (brief_with("metrics.1.target", 1e308), "metrics.1.target", "at most 1e+12"),
    (brief_with("metrics.0.weight", -0.6), "metrics.0.weight", ""),
    (brief_with("metrics.1.name", "request-queue"), "metrics.1.name", ""),
    (brief_with("metrics.0.aggregation", "median"), "metrics.0.aggregation", ""),
    (brief_with("algorithm.name", "crystal_ball"), "algorithm.name", "crystal_ball"),
    (brief_with("preheat.strategy", "lukewarm"), "preheat.strategy", ""),
    (brief_with("preheat.min_ready", -1), "preheat.min_ready", ""),
    (
        {**brief_with("preheat.min_ready", 500), "max_replicas": 3, "schedule": []},
        "preheat.min_ready",
        "exceeds the scaler's max_replicas (3)",
    ),
    (brief_with("schedule.0.time", "at nine"), "schedule.0.time", "cron"),
    (brief_with("schedule.0.time", "0 25 * * *"), "schedule.0.time", ""),
    (brief_with("schedule.0.min_replicas", "four"), "schedule.0.min_replicas", ""),
    (brief_with("timezone", "Mars/Olympus"), "timezone", "time zone"),
    (brief_with("emergency.burst_multiplier", 0.5), "emergency.burst_multiplier", ""),
    (brief_with("emergency.triggers.0.duration", "30x"), "emergency.triggers.0.duration", ""),
    (brief_with("emergency.triggers.0.threshold", "lots"), "emergency.triggers.0.threshold", ""),
    (brief_with("emergency.triggers.0.threshold", -5), "emergency.triggers.0.threshold", ">= 0"),
    (
        brief_with("emergency.triggers.0.aggregation", "median"),
        "emergency.triggers.0.aggregation",
        "",
    ),
    (
        brief_with("schedule.1", {"time": "0 9 * * *", "min_replicas": 2}),
        "schedule.1.time",
        "schedule.0 and schedule.1 both fire",
    ),
    (brief_with("min_replicas", 12), "max_replicas", ""),
    (brief_with("max_replicas", 0), "max_replicas", ""),
    (brief_with("cold_start", "forever"), "cold_start", ""),
    (brief_with("mode", "yolo"), "mode", ""),
    (brief_with("emergency.enabled", "yes"), "emergency.enabled", "boolean"),
    # numbers given as text, as JSON "5": a 422 as booleans given as text are
    (brief_with("max_replicas", "5"), "max_replicas", "integer"),
    (brief_with("emergency.triggers.0.threshold", "50"), "emergency.triggers.0.threshold", "text"),
    (brief_with("metrics.0.weight", "0.6"), "metrics.0.weight", "not text"),
    (brief_with("metrics.1.target", "5"), "metrics.1.target", "is text"),
    (brief_with("tolerance", "0.1"), "tolerance", "not text"),
    (brief_with("fractional", {"enabled": True, "step": 0.3}), "fractional.step", ""),
    (brief_with("capacity", {"request_rate": "fast"}), "capacity", ""),
]


@pytest.mark.parametrize(
    ("document", "field", "words"), BAD_SPECS, ids=[f for _, f, _ in BAD_SPECS]
)
def test_bad_specs_get_422_naming_field_value_and_rule(
    server: LiveServer, document: dict[str, Any], field: str, words: str
) -> None:
    response = httpx.post(f"{server.url}/v1/scalers", json=document)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_spec"
    fields = [d["field"] for d in error["details"]]
    assert any(f == field or f.startswith(field + ".") for f in fields), fields
    issue = next(
        d for d in error["details"] if d["field"] == field or d["field"].startswith(field + ".")
    )
    assert issue["message"] and issue["rule"] and "value" in issue
    assert words.lower() in issue["message"].lower()
    assert httpx.get(f"{server.url}/v1/scalers").json() == []


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        pytest.param(b"target: [unclosed", YAML, 400, id="bad-yaml"),
        pytest.param(b"{not json", {}, 400, id="bad-json"),
        pytest.param(b"- a\n- b\n", YAML, 422, id="yaml-list"),
        pytest.param(b'"just a string"', {}, 422, id="json-string"),
    ],
)
def test_unreadable_bodies(
    server: LiveServer, body: bytes, headers: dict[str, str], status: int
) -> None:
    response = httpx.post(f"{server.url}/v1/scalers", content=body, headers=headers)
    assert response.status_code == status


SPEC_JSON = yaml.safe_load(BRIEF) | {"name": "deepseek-service"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("POST", "/v1/scalers", id="create"),
        pytest.param("PUT", "/v1/scalers/deepseek-service", id="put"),
        pytest.param("POST", "/v1/scalers/validate", id="validate"),
    ],
)
@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        # issue: each was read as JSON (a valid JSON spec was stored, whatever its type said)
        pytest.param("text/plain", json.dumps(SPEC_JSON), id="text"),
        # what `curl -d` and `curl --data-binary` send unless told otherwise
        pytest.param("application/x-www-form-urlencoded", json.dumps(SPEC_JSON), id="form"),
        pytest.param("application/xml", "<scaler><target>x</target></scaler>", id="xml"),
    ],
)
def test_a_spec_that_is_neither_json_nor_yaml_by_its_type_is_415(
    server: LiveServer, method: str, path: str, content_type: str, body: str
) -> None:
    response = httpx.request(
        method, f"{server.url}{path}", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 415, response.text
    error = response.json()["error"]
    assert error["code"] == "unsupported_media_type"
    assert content_type in error["message"]
    assert "application/json or application/yaml" in error["message"]
    assert ("curl -d sends a form" in error["message"]) == (content_type.endswith("urlencoded"))
    assert error["details"]["content_type"] == content_type
    assert {"application/json", "application/yaml"} <= set(error["details"]["supported"])
    assert httpx.get(f"{server.url}/v1/scalers").json() == []


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-content-type"),  # read as JSON, as /v1/samples does
        pytest.param({"Content-Type": "Application/JSON; charset=utf-8"}, id="json"),
        pytest.param({"Content-Type": "TEXT/YAML"}, id="yaml-any-case"),
    ],
)
def test_a_spec_without_a_type_is_json_and_types_are_read_in_any_case(
    server: LiveServer, headers: dict[str, str]
) -> None:
    response = httpx.post(
        f"{server.url}/v1/scalers/validate", content=json.dumps(SPEC_JSON), headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "deepseek-service"


def test_numbers_quoted_in_yaml_are_422_naming_each_field(server: LiveServer) -> None:
    """`max_replicas: "5"` is text in YAML: refused (as `enabled: "yes"` is), not read as 5;
    the durations' text ('30s') stays what the spec reference documents."""
    text = BRIEF.replace("threshold: 50", 'threshold: "50"') + 'max_replicas: "5"\n'
    response = httpx.post(f"{server.url}/v1/scalers", content=text, headers=YAML)
    assert response.status_code == 422, response.text
    issues = {d["field"]: d for d in response.json()["error"]["details"]}
    assert set(issues) == {"max_replicas", "emergency.triggers.0.threshold"}, issues
    assert issues["max_replicas"]["value"] == "5"
    assert issues["emergency.triggers.0.threshold"]["rule"] == "float_type"
    assert "write 50 without quotes" in issues["emergency.triggers.0.threshold"]["message"]
    assert httpx.get(f"{server.url}/v1/scalers").json() == []
    assert "duration: 30s" in BRIEF  # and the brief as written is accepted
    create_brief(server)


def test_put_with_a_different_name_in_the_body_is_422(server: LiveServer) -> None:
    doc = yaml.safe_load(BRIEF) | {"name": "alpha"}
    response = httpx.put(f"{server.url}/v1/scalers/beta", json=doc)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "name"


def push_pods(server: LiveServer, utilisations: list[float], queues: list[float]) -> None:
    for i, (util, queue) in enumerate(zip(utilisations, queues, strict=True)):
        registry = CollectorRegistry()
        Gauge("gpu_utilization", "", registry=registry).set(util)
        Gauge("request_queue", "", registry=registry).set(queue)
        push_to_gateway(
            server.hostport,
            job="deepseek-monitor",
            registry=registry,
            grouping_key={"pod": f"p{i}"},
        )


def test_decision_from_pushed_metrics_explains_itself(server: LiveServer) -> None:
    doc = yaml.safe_load(BRIEF) | {"schedule": [], "preheat": {"enabled": False}}
    assert httpx.post(f"{server.url}/v1/scalers", json=doc).status_code == 201
    push_pods(server, [170.0], [10.0])  # one pod, twice its GPU target, twice its queue target
    response = httpx.get(f"{server.url}/v1/scalers/deepseek-service/decision")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["observation"]["metrics"]["gpu_utilization"]["value"] == 170.0
    assert body["observation"]["metrics"]["request_queue"]["pods_reporting"] == 1
    assert body["cluster"] == {
        "source": "simulated",  # no Kubernetes configured: the built-in cluster
        "replicas": 1,
        "ready": 1,
        "starting": 0,
        "cold_start_s": None,
    }
    assert body["replicas"] == 2
    codes = [r["code"] for r in body["reasons"]]
    assert len(codes) == 9 and all(isinstance(c, str) and c for c in codes)
    # Nothing was acted on: no decision recorded, status unchanged.
    status = httpx.get(f"{server.url}/v1/scalers/deepseek-service").json()["status"]
    assert status["last_decision"] is None


def test_decision_without_metrics_holds_and_says_why(server: LiveServer) -> None:
    create_brief(server)
    body = httpx.get(f"{server.url}/v1/scalers/deepseek-service/decision").json()
    assert body["observation"]["metrics"]["gpu_utilization"]["value"] is None
    assert body["replicas"] >= 1
    assert any("missing" in r["code"] or "fallback" in r["code"] for r in body["reasons"]), body[
        "reasons"
    ]


def test_events_record_spec_changes_and_paginate(server: LiveServer) -> None:
    create_brief(server)
    for i in range(4):
        changed = f"{BRIEF}max_replicas: {11 + i}\n"
        httpx.put(f"{server.url}/v1/scalers/deepseek-service", content=changed, headers=YAML)
    url = f"{server.url}/v1/scalers/deepseek-service/events"
    page = httpx.get(url, params={"limit": 2}).json()
    assert [e["message"] for e in page["events"]] == [
        "replaced (generation 5)",
        "replaced (generation 4)",
    ]
    rest = httpx.get(url, params={"limit": 10, "cursor": page["next_cursor"]}).json()
    assert [e["payload"]["generation"] for e in rest["events"]] == [3, 2, 1]
    assert rest["next_cursor"] is None
    future = httpx.get(url, params={"since": time.time() + 3600}).json()
    assert future["events"] == []
    assert httpx.get(f"{server.url}/v1/scalers/nope/events").status_code == 404
    assert httpx.get(url, params={"since": "tomorrow"}).status_code == 400


@pytest.mark.parametrize(
    "kinds",
    [
        pytest.param(["bogus"], id="unknown"),  # issue: was 200 with no events
        pytest.param(["spec", "specs"], id="one-of-two-unknown"),
        pytest.param(["Spec"], id="wrong-case"),
    ],
)
def test_an_unknown_event_kind_is_422_naming_the_known_ones(
    server: LiveServer, kinds: list[str]
) -> None:
    create_brief(server)
    url = f"{server.url}/v1/scalers/deepseek-service/events"
    response = httpx.get(url, params={"kind": kinds})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    [detail] = error["details"]
    assert detail["field"] == f"query.kind.{len(kinds) - 1}" and detail["value"] == kinds[-1]
    for known in (
        "decision",
        "action",
        "dry_run",
        "error",
        "spec",
        "backfill",
        "rollout",
        "skip",
        "drift",
    ):
        assert f"'{known}'" in detail["message"]
    # the known kinds filter as before
    spec_only = httpx.get(url, params={"kind": ["spec", "action"]})
    assert [e["kind"] for e in spec_only.json()["events"]] == ["spec"]


def test_pause_and_resume_are_recorded_with_who_did_it(server: LiveServer) -> None:
    create_brief(server)
    paused = httpx.post(f"{server.url}/v1/scalers/deepseek-service/pause")
    assert paused.status_code == 200 and paused.json()["status"]["paused"] is True
    assert httpx.post(f"{server.url}/v1/scalers/deepseek-service/pause").status_code == 200
    resumed = httpx.post(f"{server.url}/v1/scalers/deepseek-service/resume")
    assert resumed.json()["status"]["paused"] is False
    events = httpx.get(f"{server.url}/v1/scalers/deepseek-service/events").json()["events"]
    assert [e["message"].split(":")[0] for e in events] == ["resumed", "paused", "created"]
    assert {e["payload"]["actor"] for e in events} == {"anonymous"}
    assert httpx.post(f"{server.url}/v1/scalers/nope/pause").status_code == 404


def test_a_yaml_date_where_a_duration_belongs_is_422_not_500(server: LiveServer) -> None:
    body = BRIEF.replace("duration: 30s", "duration: 2026-01-01")
    response = httpx.post(f"{server.url}/v1/scalers", content=body, headers=YAML)
    assert response.status_code == 422
    issue = response.json()["error"]["details"][0]
    assert issue["field"] == "emergency.triggers.0.duration" and issue["value"] == "2026-01-01"


def test_the_list_reads_as_yaml_too(server: LiveServer) -> None:
    create_brief(server)
    response = httpx.get(f"{server.url}/v1/scalers", headers=AS_YAML)
    assert response.headers["content-type"].startswith("application/yaml")
    [scaler] = yaml.safe_load(response.text)["scalers"]
    assert scaler["name"] == "deepseek-service" and scaler["spec"]["metrics"][1]["target"] == "<5"
