"""A scaler whose queue metric is read from a real Prometheus (scraping a vLLM-like exporter),
not pushed: the live service scales the target up on the exporter's waiting requests, and
when Prometheus goes away the decision holds and names Prometheus and the error."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from app.settings import Settings
from testkit.programs import eventually
from tests.conftest import LiveServer, start_server, truncate_all
from tests.prometheus.conftest import Exporter, start_prometheus

DEADLINE_S = 45  # a scrape a second, a reconcile every half second, on a loaded machine
QUERY = "sum(vllm:num_requests_waiting)"
SPEC = {
    "target": "llm",
    "min_replicas": 1,
    "max_replicas": 10,
    "metrics": [
        {
            "name": "request_queue",
            "target": "<5",
            "aggregation": "sum",  # the query's total, over 5 waiting per pod
            "source": {"prometheus": QUERY},
        }
    ],
}


def _eventually(check: Callable[[], Any], what: str, log: Callable[[], str]) -> Any:
    return eventually(check, what, log, DEADLINE_S)


@contextmanager
def _service(database_url: str, prometheus_url: str) -> Iterator[LiveServer]:
    """The service with its workers (the reconciler drives the built-in simulated cluster),
    reading Prometheus at `prometheus_url`."""
    asyncio.run(truncate_all(database_url))
    live = start_server(
        Settings(
            database_url=database_url,
            prometheus_url=prometheus_url,
            prometheus_timeout_s=2.0,
            reconcile_interval_s=0.5,
            leader_interval_s=0.5,
        )
    )
    try:
        yield live
    finally:
        live.stop()


def _decision(live: LiveServer) -> dict[str, Any]:
    r = httpx.get(f"{live.url}/v1/scalers/llm/decision", timeout=10)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_queue_read_from_prometheus_scales_up_then_holds_when_prometheus_stops(
    prometheus_binary: str, exporter: Exporter, tmp_path: Path, sqlite_url: str
) -> None:
    exporter.waiting.labels(pod="llm-0").set(12)
    exporter.waiting.labels(pod="llm-1").set(8)
    with (
        start_prometheus(prometheus_binary, tmp_path, exporter.url) as prometheus,
        _service(sqlite_url, prometheus.url) as live,
    ):
        r = httpx.post(f"{live.url}/v1/scalers", json=SPEC)
        assert r.status_code == 201, r.text

        # 20 waiting at 5 per pod: the reconciler scales the target from 1 to 4.
        def scaled() -> int | None:
            status = httpx.get(f"{live.url}/v1/scalers/llm").json()["status"]
            replicas = (status.get("last_decision") or {}).get("replicas")
            return replicas if replicas is not None and replicas > 1 else None

        def why() -> str:
            status = httpx.get(f"{live.url}/v1/scalers/llm").json()["status"]
            return f"status: {status}\ndecision now: {_decision(live)}\n{prometheus.log_tail()}"

        assert _eventually(scaled, "a scale-up on 20 waiting", why) == 4
        reading = _decision(live)["observation"]["metrics"]["request_queue"]
        assert reading["value"] == 20.0
        assert reading["source"] == {"prometheus": QUERY, "series": 1, "error": None}

        prometheus.stop()
        body = _decision(live)
        reading = body["observation"]["metrics"]["request_queue"]
        assert reading["value"] is None
        assert reading["source"]["error"].startswith("unreachable"), reading
        # Missing data never scales down: the 4 pods stay, and the first reason says why.
        assert body["cluster"]["replicas"] == 4
        assert body["replicas"] == 4, body["reasons"]
        first = body["reasons"][0]
        assert first["code"] == "source.prometheus_failed"
        assert f"Prometheus at {prometheus.url}" in first["message"], first
        assert "unreachable" in first["message"], first
