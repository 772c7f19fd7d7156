"""`ciuic-hold` at zero: a real HTTP client's request waits through a cold start and succeeds.

The live service (its reconcile loop running, on each database backend) drives the built-in
simulated cluster with a scaler at `min_replicas: 0`. The hold proxy sits in front of a model
server that is not there yet: it holds the client's request and pushes its held queue to the
service; the scaler wakes the deployment from zero; the model server starts answering only
once the scaler has scaled to at least one pod and a cold start has passed; the proxy then
forwards the request, and the client gets the model's answer.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn

from app.clock import SystemClock
from app.kube.simulated import SimulatedCluster
from app.main import create_app
from app.settings import Settings
from ciuic_sdk.hold import HoldConfig, HoldProxy, build_parser, config_from_args
from tests.conftest import LiveServer, free_port, start_server, truncate_all
from tests.sdk.servers import ModelServer, model_server

COLD_START_S = (2.0, 3.0)  # the simulated pods' cold start: short, but a real wait
SPEC: dict[str, Any] = {
    "name": "llm",
    "target": "llm",
    "min_replicas": 0,
    "max_replicas": 4,
    "metrics": [
        {
            "name": "gpu_utilization",
            "weight": 0.6,
            "target": "85%",
            "selector": {"deployment": "llm"},
        },
        {"name": "request_queue", "weight": 0.4, "target": "<5", "selector": {"deployment": "llm"}},
    ],
    "preheat": {"enabled": True, "min_ready": 1, "strategy": "eager"},
}


@contextmanager
def live_service(database_url: str) -> Iterator[LiveServer]:
    """The service with its loops, reconciling every 0.5 s, on a cluster that starts at zero."""
    asyncio.run(truncate_all(database_url))
    clock = SystemClock()
    cluster = SimulatedCluster(clock, initial_replicas=0, cold_start_s=COLD_START_S)
    settings = Settings(database_url=database_url, reconcile_interval_s=0.5, leader_interval_s=0.2)
    live = start_server(settings, create_app(settings, clock=clock, cluster=cluster))
    try:
        yield live
    finally:
        live.stop()


@contextmanager
def hold_proxy(config: HoldConfig) -> Iterator[tuple[str, HoldProxy]]:
    proxy = HoldProxy(config)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(proxy.app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the proxy did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", proxy
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def last_codes(live: LiveServer) -> set[str]:
    status = httpx.get(f"{live.url}/v1/scalers/llm").json()["status"]
    decision = status["last_decision"] or {}
    return {r["code"] for r in decision.get("reasons", [])}


def wake_action(live: LiveServer) -> dict[str, Any] | None:
    events = httpx.get(f"{live.url}/v1/scalers/llm/events", params={"kind": "action"}).json()
    woke = [e for e in events["events"] if e["payload"].get("from") == 0 and e["replicas"] >= 1]
    return woke[0] if woke else None


def test_a_request_at_zero_waits_through_the_cold_start_and_succeeds(database_url: str) -> None:
    upstream = ModelServer(port=free_port())  # not listening yet: no pod runs
    with live_service(database_url) as live:
        assert httpx.post(f"{live.url}/v1/scalers", json=SPEC).status_code == 201
        config = HoldConfig(
            upstream=upstream.url,
            ciuic_url=live.url,
            labels={"deployment": "llm"},
            probe_s=0.1,
            interval_s=1.0,
            max_hold_s=60.0,
        )
        with hold_proxy(config) as (proxy_url, proxy):
            # At zero with nothing held: the scaler stays there and says why.
            wait_for(lambda: "zero.idle" in last_codes(live), 20, "a decision at zero")

            started = threading.Event()

            def pods_then_model_server() -> None:
                """The model server answers only once the scaler has woken the deployment
                and a cold start has passed (its pods loading the model)."""
                wait_for(lambda: wake_action(live), 30, "the scaler to wake the deployment")
                time.sleep(COLD_START_S[1])
                with model_server(upstream):
                    started.set()
                    time.sleep(15)

            thread = threading.Thread(target=pods_then_model_server, daemon=True)
            thread.start()
            sent = time.monotonic()
            answer = httpx.post(
                f"{proxy_url}/v1/completions",
                json={"model": "llm", "prompt": "Hello"},
                timeout=60,
            )
            waited = time.monotonic() - sent
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"choices": [{"text": "ok"}]}
            assert upstream.posts == [{"model": "llm", "prompt": "Hello"}]  # once, not twice
            assert started.is_set()
            assert waited >= COLD_START_S[1]  # it really waited through the cold start
            assert proxy.stats.held_total == 1 and proxy.stats.expired == 0
            assert proxy.stats.held == 0

            action = wake_action(live)
            assert action is not None and action["message"] == "scaled llm from 0 to 1"
            codes = [r["code"] for r in action["payload"]["reasons"]]
            assert "zero.wake_queue" in codes  # woken by the held request, and it says so
            thread.join(timeout=20)


@pytest.fixture
def ciuic(server: LiveServer) -> LiveServer:
    return server


def test_a_request_held_past_max_hold_gets_a_clear_503_and_the_queue_is_pushed(
    ciuic: LiveServer,
) -> None:
    """The model server never comes: after `max_hold` the client gets a 503 with a JSON error
    and Retry-After, and Ciuic saw the held request in `request_queue` meanwhile."""
    config = HoldConfig(
        upstream=f"http://127.0.0.1:{free_port()}",
        ciuic_url=ciuic.url,
        labels={"deployment": "llm"},
        probe_s=0.1,
        interval_s=0.2,
        max_hold_s=1.5,
    )
    with hold_proxy(config) as (proxy_url, proxy):
        seen: list[float] = []

        def watch() -> None:
            deadline = time.monotonic() + 1.4
            while time.monotonic() < deadline:
                found = httpx.get(f"{ciuic.url}/api/v1/metrics").json()
                for group in found.get("data", []):
                    family = group.get("request_queue")
                    if family:
                        seen.extend(float(m["value"]) for m in family["metrics"])
                time.sleep(0.1)

        watcher = threading.Thread(target=watch)
        watcher.start()
        answer = httpx.post(f"{proxy_url}/v1/completions", json={"prompt": "x"}, timeout=10)
        watcher.join()
        assert answer.status_code == 503
        assert answer.headers["Retry-After"] == "30"
        assert answer.json()["error"]["code"] == "upstream_not_ready"
        assert proxy.stats.expired == 1 and proxy.stats.held == 0
        assert 1.0 in seen  # the held request reached Ciuic as the queue
        assert proxy.stats.pushes_failed == 0


def test_the_command_line_builds_the_config() -> None:
    args = build_parser().parse_args(
        ["--upstream", "http://vllm:8000", "--label", "deployment=llm", "--max-hold", "120"]
    )
    config = config_from_args(args)
    assert config.upstream == "http://vllm:8000"
    assert dict(config.labels) == {"deployment": "llm"}
    assert config.max_hold_s == 120.0 and config.metric == "request_queue"
    with pytest.raises(SystemExit):
        config_from_args(build_parser().parse_args(["--label", "x=y"]))
