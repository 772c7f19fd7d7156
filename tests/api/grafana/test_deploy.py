"""deploy/: the provisioning files, the dashboard's every query against the real service, and
the sidecar manifest's arguments against the programs' own parsers."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.api.grafana.annotations import ANNOTATION_KINDS, _annotation_filter
from ciuic_sdk import agent, warmup
from tests.conftest import LiveServer

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
DASHBOARD = json.loads((DEPLOY / "grafana" / "dashboards" / "ciuic.json").read_text())
BRIEF = (Path(__file__).parents[2] / "policy" / "brief.yaml").read_text()


def test_datasource_provisioning() -> None:
    doc = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/ciuic.yaml").read_text())
    (ds,) = doc["datasources"]
    assert ds["type"] == "simpod-json-datasource"
    assert ds["url"] == "http://ciuic:8080/grafana"
    assert ds["uid"] == "ciuic" and ds["access"] == "proxy"
    assert (
        ds["basicAuth"] is True and ds["secureJsonData"]["basicAuthPassword"] == "$CIUIC_READ_TOKEN"
    )
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/ciuic.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/ciuic"


def _substitute(value: Any) -> Any:
    """What Grafana's template service does with our variables (regex format)."""
    text = (
        json.dumps(value).replace("$scaler", "deepseek-service").replace("$deployment", "deepseek")
    )
    return json.loads(text)


def test_every_dashboard_query_is_answered(server: LiveServer) -> None:
    assert (
        httpx.post(
            f"{server.url}/v1/scalers", content=BRIEF, headers={"Content-Type": "application/yaml"}
        ).status_code
        == 201
    )
    now = time.time()
    samples = [
        {
            "metric": m,
            "labels": {"pod": "p0", "deployment": "deepseek"},
            "value": v,
            "timestamp": now - 30,
        }
        for m, v in (
            ("gpu_utilization", 70),
            ("gpu_memory", 14e9),
            ("request_queue", 3),
            ("request_rate", 4),
        )
    ]
    assert httpx.post(f"{server.url}/v1/samples", json={"samples": samples}).status_code == 200
    grafana = f"{server.url}/grafana"
    assert DASHBOARD["panels"], "the dashboard has panels"
    rng = {"from": "now-6h", "to": "now"}
    body_range = {
        "from": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 6 * 3600)),
        "to": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 1)),
        "raw": rng,
    }
    answered: dict[str, Any] = {}
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"]["type"] == "simpod-json-datasource"
        r = httpx.post(
            f"{grafana}/query",
            json={
                "range": body_range,
                "rangeRaw": rng,
                "intervalMs": 60_000,
                "maxDataPoints": 800,
                "targets": _substitute(panel["targets"]),
                "adhocFilters": [],
            },
        )
        assert r.status_code == 200, (panel["title"], r.text)
        answered[panel["title"]] = r.json()
    assert {s["target"] for s in answered["GPU utilisation per pod"]} == {"p0"}
    assert {s["target"] for s in answered["Request queue per pod (and total)"]} == {"p0", "total"}
    assert answered["Latest decision, step by step"][0]["type"] == "table"
    objective = next(t for t in answered if t.startswith("Latency objective"))
    assert answered[objective] == []  # the brief states no objective: nothing to draw
    demand = answered["Demand vs forecast (P50–P90 band, an hour ahead)"]
    assert [s["target"] for s in demand] == ["demand"]  # no forecast fitted yet: no band
    for annotation in DASHBOARD["annotations"]["list"][1:]:
        r = httpx.post(
            f"{grafana}/query",
            json={
                "range": body_range,
                "rangeRaw": rng,
                "requestId": "AQ1",
                "targets": [_substitute(annotation["target"])],
            },
        )
        assert r.status_code == 200 and r.json()[0]["type"] == "table"
    for variable in DASHBOARD["templating"]["list"]:
        if variable["type"] != "query":
            continue
        r = httpx.post(
            f"{grafana}/variable",
            json={"payload": {"target": variable["query"]["query"]}, "range": body_range},
        )
        assert r.status_code == 200 and r.json(), variable["name"]


def _annotation_texts(server: LiveServer, annotation: dict[str, Any]) -> set[str]:
    """The texts of the annotations one of the dashboard's annotation queries draws (the last
    hour), as Grafana asks for them."""
    now = time.time()
    rng = {"from": "now-1h", "to": "now"}
    r = httpx.post(
        f"{server.url}/grafana/query",
        json={
            "range": {
                "from": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600)),
                "to": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 1)),
                "raw": rng,
            },
            "rangeRaw": rng,
            "requestId": "AQ1",
            "targets": [_substitute(annotation["target"])],
        },
    )
    assert r.status_code == 200, r.text
    (frame,) = r.json()
    text = [c["text"] for c in frame["columns"]].index("text")
    return {row[text] for row in frame["rows"]}


def test_the_dashboard_marks_each_rollout_on_its_graphs(server: LiveServer) -> None:
    """An SRE reading the replica graph sees why the count jumped by half and came back: every
    rollout event (requested, each step, succeeded, failed, cancelled) is an annotation of
    the shipped dashboard, enabled, beside the scaling actions."""
    r = httpx.post(
        f"{server.url}/v1/scalers", content=BRIEF, headers={"Content-Type": "application/yaml"}
    )
    assert r.status_code == 201, r.text
    r = httpx.post(
        f"{server.url}/v1/scalers/deepseek-service/rollouts", json={"image": "deepseek:7b-v2"}
    )
    assert r.status_code == 201, r.text
    assert httpx.post(f"{server.url}/v1/rollouts/{r.json()['id']}/cancel").status_code == 202
    page = httpx.get(
        f"{server.url}/v1/scalers/deepseek-service/events", params={"kind": "rollout"}
    ).json()
    rollouts = {e["message"] for e in page["events"]}
    assert len(rollouts) == 2, rollouts  # requested, cancel requested
    drawn = {
        a["name"]: _annotation_texts(server, a)
        for a in DASHBOARD["annotations"]["list"][1:]
        if a["enable"]
    }
    assert any(rollouts <= texts for texts in drawn.values()), drawn


def test_the_dashboard_draws_each_event_once() -> None:
    """The default annotation query drew errors too, so every error sat twice on each graph,
    under "Scaling events" and under "Errors": the enabled queries select disjoint kinds."""
    seen: dict[str, str] = {}
    for annotation in DASHBOARD["annotations"]["list"][1:]:
        if not annotation["enable"]:
            continue
        _, kinds = _annotation_filter(annotation["target"]["target"].replace("$scaler", ""))
        for kind in kinds:
            assert kind not in seen, (kind, seen[kind], annotation["name"])
            seen[kind] = annotation["name"]
    assert set(ANNOTATION_KINDS) | {"rollout"} <= set(seen), seen


def _containers() -> dict[str, dict[str, Any]]:
    docs = list(yaml.safe_load_all((DEPLOY / "examples/inference-sidecars.yaml").read_text()))
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    return {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}


@pytest.mark.parametrize(
    ("container", "parser"),
    [("ciuic-agent", agent.build_parser), ("ciuic-warmup", warmup.build_parser)],
    ids=["agent", "warmup"],
)
def test_sidecar_arguments_parse(container: str, parser: Any) -> None:
    c = _containers()[container]
    args = parser().parse_args(c["args"])
    if container == "ciuic-warmup":
        probe = _containers()["vllm"]["readinessProbe"]["httpGet"]
        assert probe == {"path": "/ready", "port": args.ready_port}
    else:
        assert args.token_file == "/var/run/ciuic/token"
        env = {e["name"] for e in c["env"]}
        assert {"POD_NAME", "POD_NAMESPACE", "DEPLOYMENT_NAME"} <= env
