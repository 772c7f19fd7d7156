"""The brief's pod code, unchanged, pushing with the real prometheus_client to the service."""

from __future__ import annotations

import time

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import (
    basic_auth_handler,
    delete_from_gateway,
    push_to_gateway,
    pushadd_to_gateway,
)

from tests.conftest import ADMIN_TOKEN, LiveServer


def brief_registry(util: float, memory: float, queue: float) -> CollectorRegistry:
    """The brief's monitor_resources loop body: three gauges."""
    registry = CollectorRegistry()
    Gauge("gpu_utilization", "GPU utilisation", registry=registry).set(util)
    Gauge("gpu_memory", "GPU memory used", registry=registry).set(memory)
    Gauge("request_queue", "Pending requests", registry=registry).set(queue)
    return registry


def groups(server: LiveServer, **headers: str) -> list[dict[str, object]]:
    response = httpx.get(f"{server.url}/api/v1/metrics", headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "success"
    data: list[dict[str, object]] = body["data"]
    return data


def series_points(server: LiveServer, selector: str, **headers: str) -> list[list[float]]:
    now = time.time()
    response = httpx.get(
        f"{server.url}/v1/query_range",
        params={"query": selector, "start": now - 600, "end": now + 5, "step": "1", "agg": "max"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    return [p for s in response.json()["series"] for p in s["points"]]


def test_brief_push_to_gateway_is_stored_as_group_and_time_series(server: LiveServer) -> None:
    registry = brief_registry(87.5, 14.2e9, 3)
    push_to_gateway(server.hostport, job="deepseek-monitor", registry=registry)

    [group] = groups(server)
    assert group["labels"] == {"job": "deepseek-monitor"}
    assert group["last_push_successful"] is True
    util = group["gpu_utilization"]
    assert isinstance(util, dict)
    assert util["type"] == "GAUGE"
    assert util["help"] == "GPU utilisation"
    assert util["metrics"] == [
        {"labels": {"job": "deepseek-monitor", "instance": ""}, "value": "87.5"}
    ]
    assert "push_time_seconds" in group and "push_failure_time_seconds" in group
    assert [p[1] for p in series_points(server, 'gpu_utilization{job="deepseek-monitor"}')] == [
        87.5
    ]
    assert [p[1] for p in series_points(server, "request_queue")] == [3.0]


def test_pushes_every_few_seconds_accumulate_history_but_keep_one_group(
    server: LiveServer,
) -> None:
    for util in (10.0, 20.0, 30.0):
        push_to_gateway(
            server.hostport, job="deepseek-monitor", registry=brief_registry(util, 1, 0)
        )
    [group] = groups(server)
    util_metrics = group["gpu_utilization"]
    assert isinstance(util_metrics, dict)
    assert util_metrics["metrics"][0]["value"] == "30"
    response = httpx.get(
        f"{server.url}/v1/query_range",
        params={
            "query": "gpu_utilization",
            "start": time.time() - 60,
            "end": time.time() + 1,
            "step": "10",
            "agg": "count",
        },
    )
    assert response.status_code == 200, response.text
    values = sorted(v for s in response.json()["series"] for _, v in s["points"])
    assert sum(values) == 3  # three samples, none lost


def test_pushadd_replaces_only_named_families_and_delete_drops_group(server: LiveServer) -> None:
    push_to_gateway(server.hostport, job="pods", registry=brief_registry(50, 2, 1))
    extra = CollectorRegistry()
    Gauge("gpu_utilization", "GPU utilisation", registry=extra).set(99)
    Counter("tokens_generated", "Tokens", registry=extra).inc(7)
    pushadd_to_gateway(server.hostport, job="pods", registry=extra)

    [group] = groups(server)
    assert {k for k in group if k not in ("labels", "last_push_successful")} >= {
        "gpu_utilization",
        "gpu_memory",
        "request_queue",
        "tokens_generated_total",
    }
    util = group["gpu_utilization"]
    assert isinstance(util, dict) and util["metrics"][0]["value"] == "99"
    memory = group["gpu_memory"]
    assert isinstance(memory, dict) and memory["metrics"][0]["value"] == "2"

    push_to_gateway(server.hostport, job="pods", registry=brief_registry(1, 1, 1))
    [group] = groups(server)
    assert "tokens_generated_total" not in group  # PUT replaced the whole group

    delete_from_gateway(server.hostport, job="pods")
    assert groups(server) == []
    delete_from_gateway(server.hostport, job="never-pushed")  # 202 as well


def test_grouping_key_with_slash_space_and_empty_value(server: LiveServer) -> None:
    key = {"pod": "deepseek/7b-0", "zone": "eu west", "shard": ""}
    push_to_gateway(
        server.hostport, job="deepseek-monitor", registry=brief_registry(1, 2, 3), grouping_key=key
    )
    [group] = groups(server)
    assert group["labels"] == {"job": "deepseek-monitor", **key}
    points = series_points(server, 'gpu_utilization{pod="deepseek/7b-0",zone="eu west"}')
    assert [v for _, v in points] == [1.0]
    delete_from_gateway(server.hostport, job="deepseek-monitor", grouping_key=key)
    assert groups(server) == []


def test_basic_auth_handler_with_a_push_token(secured_server: LiveServer) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    created = httpx.post(
        f"{secured_server.url}/v1/tokens", json={"name": "pods", "scope": "push"}, headers=admin
    )
    assert created.status_code == 201, created.text
    secret = created.json()["token"]

    def handler(
        url: str, method: str, timeout: float | None, headers: list[tuple[str, str]], data: bytes
    ):  # type: ignore[no-untyped-def]
        return basic_auth_handler(url, method, timeout, headers, data, "pod", secret)

    push_to_gateway(
        secured_server.hostport,
        job="deepseek-monitor",
        registry=brief_registry(5, 6, 7),
        handler=handler,
    )
    assert len(groups(secured_server, **admin)) == 1

    def bad(
        url: str, method: str, timeout: float | None, headers: list[tuple[str, str]], data: bytes
    ):  # type: ignore[no-untyped-def]
        return basic_auth_handler(url, method, timeout, headers, data, "pod", "wrong")

    with pytest.raises(Exception, match="401"):
        push_to_gateway(
            secured_server.hostport, job="x", registry=brief_registry(1, 1, 1), handler=bad
        )
