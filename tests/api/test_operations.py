"""Operations endpoints and the service's own metrics."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import LiveServer


def own_metrics(server: LiveServer) -> dict[str, float]:
    text = httpx.get(f"{server.url}/metrics").text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = s.name + "".join(f"|{k}={v}" for k, v in sorted(s.labels.items()))
            out[key] = s.value
    return out


def test_health_and_readiness(server: LiveServer) -> None:
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/readyz").json()
    assert ready == {"status": "ready", "database": "ok", "leader": False}  # workers are off


def test_own_metrics_count_pushes_samples_rejects_and_latency(server: LiveServer) -> None:
    before = own_metrics(server)
    httpx.put(f"{server.url}/metrics/job/a", content=b"x 1\ny 2\n")
    httpx.put(f"{server.url}/metrics/job/a", content=b"x 1 5\n")
    after = own_metrics(server)

    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("ciuic_pushes_total|outcome=accepted|protocol=pushgateway") == 1
    assert delta("ciuic_samples_ingested_total|protocol=pushgateway") == 2
    assert delta("ciuic_rejects_total|code=timestamp_not_allowed") == 1
    assert (
        delta("ciuic_request_duration_seconds_count|method=PUT|route=/metrics/{grouping:grouping}")
        == 2
    )


def test_refused_pushes_are_counted_by_protocol(server: LiveServer) -> None:
    before = own_metrics(server)
    # A Pushgateway push with a timestamp, a JSON batch that is no batch, a remote write that
    # is no protobuf, and a sample the JSON route takes.
    assert httpx.put(f"{server.url}/metrics/job/a", content=b"x 1 5\n").status_code == 400
    r = httpx.post(f"{server.url}/v1/samples", json={"samples": "none"})
    assert r.status_code in (400, 422), r.text
    r = httpx.post(f"{server.url}/api/v1/write", content=b"x", headers={"Content-Type": "a/b"})
    assert 400 <= r.status_code < 500, r.text
    sample = {"metric": "x", "labels": {"job": "a"}, "value": 1.0}
    r = httpx.post(f"{server.url}/v1/samples", json={"samples": [sample]})
    assert r.status_code == 200, r.text
    after = own_metrics(server)

    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("ciuic_pushes_total|outcome=refused|protocol=pushgateway") == 1
    assert delta("ciuic_pushes_total|outcome=refused|protocol=json") == 1
    assert delta("ciuic_pushes_total|outcome=refused|protocol=remote_write") == 1
    assert delta("ciuic_pushes_total|outcome=accepted|protocol=json") == 1
    assert delta("ciuic_pushes_total|outcome=accepted|protocol=pushgateway") == 0


def test_unknown_routes_and_methods_answer_json(server: LiveServer) -> None:
    missing = httpx.get(f"{server.url}/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = httpx.patch(f"{server.url}/metrics/job/a")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"
