"""Scale to zero on the real control plane: a Deployment at zero replicas, a request held by
`ciuic-hold` wakes it through the scale subresource, the request succeeds once a pod is Ready
(KWOK's delay standing for the model's load), and the idle Deployment goes back to zero."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from ciuic_sdk.hold import HoldConfig, HoldProxy
from tests.conftest import LiveServer, free_port
from tests.e2e.controlplane import Admin, deployment, pod_ready, wait_until
from tests.sdk.servers import ModelServer, model_server

NAME = "llm"
READY_S = 3.0  # the pods' cold start (KWOK's delay)
LABELS = {"deployment": NAME}


def spec(namespace: str) -> dict[str, Any]:
    return {
        "name": NAME,
        "target": {"kind": "Deployment", "namespace": namespace, "name": NAME},
        "min_replicas": 0,
        "max_replicas": 4,
        "metrics": [
            {"name": "gpu_utilization", "weight": 0.6, "target": "85%", "selector": LABELS},
            {"name": "request_queue", "weight": 0.4, "target": "<5", "selector": LABELS},
        ],
        "preheat": {"enabled": True, "min_ready": 1, "strategy": "eager"},
        "cold_start": "learn",
    }


@contextmanager
def hold_proxy(config: HoldConfig) -> Iterator[str]:
    proxy = HoldProxy(config)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(proxy.app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 10, "the hold proxy started")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def ready_pods(admin: Admin, namespace: str) -> list[dict[str, Any]]:
    return [p for p in admin.pods(namespace, f"app={NAME}") if pod_ready(p)]


def actions(live: LiveServer) -> list[dict[str, Any]]:
    body = httpx.get(f"{live.url}/v1/scalers/{NAME}/events", params={"kind": "action"}).json()
    found: list[dict[str, Any]] = body["events"][::-1]
    return found


def test_a_request_wakes_a_deployment_at_zero_and_it_sleeps_again(
    admin: Admin, namespace: str, service: Callable[..., LiveServer]
) -> None:
    admin.create(deployment(NAME, namespace, replicas=0, ready_s=READY_S))
    live = service()
    assert httpx.post(f"{live.url}/v1/scalers", json=spec(namespace)).status_code == 201
    upstream = ModelServer(port=free_port())  # no pod: nothing answers yet
    config = HoldConfig(
        upstream=upstream.url, ciuic_url=live.url, labels=LABELS, probe_s=0.1, interval_s=0.5
    )
    stop = threading.Event()

    def the_pods_model_server() -> None:
        """Answers once the Deployment has a Ready pod, and pushes what each Ready pod would
        (idle once the request is served), as ciuic-agent does in every pod."""
        wait_until(lambda: ready_pods(admin, namespace), 30, "a Ready pod")
        with model_server(upstream):
            while not stop.is_set():
                samples = [
                    {"metric": m, "labels": {**LABELS, "pod": p["metadata"]["name"]}, "value": 0.0}
                    for p in ready_pods(admin, namespace)
                    for m in ("gpu_utilization", "request_queue")
                ]
                if samples:
                    httpx.post(f"{live.url}/v1/samples", json={"samples": samples})
                time.sleep(0.5)

    with hold_proxy(config) as proxy_url:
        thread = threading.Thread(target=the_pods_model_server, daemon=True)
        thread.start()
        try:
            sent = time.monotonic()
            answer = httpx.post(f"{proxy_url}/v1/completions", json={"prompt": "hi"}, timeout=60)
            waited = time.monotonic() - sent
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"choices": [{"text": "ok"}]}
            assert waited >= READY_S - 1.0  # through the pod's cold start (whole seconds)

            woke = actions(live)[0]
            assert woke["message"] == f"scaled {NAME} from 0 to 1"
            assert "zero.wake_queue" in [r["code"] for r in woke["payload"]["reasons"]]

            # Idle from then on: back to zero through the scale subresource, saying why.
            try:
                wait_until(
                    lambda: admin.get("Deployment", namespace, NAME)["spec"]["replicas"] == 0,
                    60,
                    "the idle Deployment back at zero",
                )
            except AssertionError as exc:
                now = httpx.get(f"{live.url}/v1/scalers/{NAME}/decision").json()
                why = [(r["code"], r["message"]) for r in now["reasons"]]
                raise AssertionError(f"{exc}; the decision now: {now['cluster']} {why}") from exc
            slept = actions(live)[-1]
            # from 1, or 2 where preheat's spare joined once it was awake
            assert slept["message"].startswith(f"scaled {NAME} from ")
            assert slept["message"].endswith(" to 0")
            assert "zero.scale_down" in [r["code"] for r in slept["payload"]["reasons"]]
        finally:
            stop.set()
            thread.join(timeout=10)
