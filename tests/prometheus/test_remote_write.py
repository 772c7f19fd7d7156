"""A real Prometheus scrapes a vLLM-like exporter and remote-writes into Ciuic: the samples
arrive in the store with Prometheus' names, labels and values, on both backends."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from testkit.programs import eventually
from tests.conftest import ADMIN_TOKEN, LiveServer
from tests.prometheus.conftest import Exporter, Prometheus, start_prometheus

DEADLINE_S = 45  # scrape 1 s + WAL read + batch deadline 1 s, on a loaded machine


def _eventually(check: Callable[[], Any], prometheus: Prometheus, what: str) -> Any:
    return eventually(check, what, prometheus.log_tail, DEADLINE_S)


def _series(server: LiveServer, match: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    r = httpx.get(f"{server.url}/v1/series", params={"match": match}, headers=headers)
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["series"]
    return found


def _latest(server: LiveServer, selector: str, headers: dict[str, str]) -> float | None:
    now = time.time()
    r = httpx.get(
        f"{server.url}/v1/query_range",
        params={"query": selector, "start": now - 60, "end": now + 1, "step": "1", "agg": "max"},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    points = [p for s in r.json()["series"] for p in s["points"]]
    return points[-1][1] if points else None


@pytest.fixture
def prometheus(
    prometheus_binary: str, exporter: Exporter, server: LiveServer, tmp_path: Path
) -> Iterator[Prometheus]:
    remote = {"url": f"{server.url}/api/v1/write"}
    with start_prometheus(prometheus_binary, tmp_path, exporter.url, remote) as running:
        yield running


def test_scraped_vllm_gauges_arrive_with_their_names_labels_and_values(
    exporter: Exporter, prometheus: Prometheus, server: LiveServer
) -> None:
    exporter.waiting.labels(pod="deepseek-0").set(7)
    exporter.waiting.labels(pod="deepseek-1").set(2)
    exporter.running.labels(pod="deepseek-0").set(16)
    exporter.cache.labels(pod="deepseek-0").set(0.625)

    found = _eventually(
        lambda: len(s := _series(server, "vllm:num_requests_waiting", {})) == 2 and s,
        prometheus,
        "both pods' vllm:num_requests_waiting did not arrive",
    )
    # Prometheus adds the target's job and instance; the exporter's pod label is kept as is.
    assert sorted((s["metric"], s["labels"]["pod"]) for s in found) == [
        ("vllm:num_requests_waiting", "deepseek-0"),
        ("vllm:num_requests_waiting", "deepseek-1"),
    ]
    assert {s["labels"]["job"] for s in found} == {"vllm"}
    assert {s["labels"]["instance"] for s in found} == {exporter.url}
    assert set(found[0]["labels"]) == {"job", "instance", "pod"}

    for selector, value in (
        ('vllm:num_requests_waiting{pod="deepseek-0"}', 7.0),
        ('vllm:num_requests_waiting{pod="deepseek-1"}', 2.0),
        ('vllm:num_requests_running{pod="deepseek-0"}', 16.0),
        ('vllm:gpu_cache_usage_perc{pod="deepseek-0"}', 0.625),
    ):
        _eventually(
            lambda s=selector, v=value: _latest(server, s, {}) == v,
            prometheus,
            f"{selector} = {value} did not arrive",
        )
    # Prometheus' own series come along too (up: the target's health), and every series it
    # holds for the target is in the store under the same name and labels.
    assert _eventually(lambda: _latest(server, 'up{job="vllm"}', {}), prometheus, "no up") == 1.0
    held = httpx.get(f"{prometheus.url}/api/v1/series", params={"match[]": '{job="vllm"}'})
    theirs = {(s.pop("__name__"), tuple(sorted(s.items()))) for s in held.json()["data"]}
    ours = {
        (s["metric"], tuple(sorted(s["labels"].items())))
        for s in _series(server, '{job="vllm"}', {})
    }
    assert theirs == ours

    # The flow goes on: a new value on the pod arrives.
    exporter.waiting.labels(pod="deepseek-0").set(31)
    _eventually(
        lambda: _latest(server, 'vllm:num_requests_waiting{pod="deepseek-0"}', {}) == 31.0,
        prometheus,
        "the new queue length did not arrive",
    )
    # Nothing Prometheus sent was refused (a 4xx is dropped by Prometheus, not retried).
    assert prometheus.metric("prometheus_remote_storage_samples_failed_total") == 0
    assert prometheus.metric("prometheus_remote_storage_samples_total") > 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # auth reaches no further
def test_prometheus_authenticates_with_a_push_token(
    prometheus_binary: str, exporter: Exporter, secured_server: LiveServer, tmp_path: Path
) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    created = httpx.post(
        f"{secured_server.url}/v1/tokens", json={"name": "prom", "scope": "push"}, headers=admin
    )
    assert created.status_code == 201, created.text
    exporter.waiting.labels(pod="deepseek-0").set(5)
    remote = {
        "url": f"{secured_server.url}/api/v1/write",
        "authorization": {"credentials": created.json()["token"]},
    }
    with start_prometheus(prometheus_binary, tmp_path, exporter.url, remote) as prometheus:
        _eventually(
            lambda: _latest(secured_server, "vllm:num_requests_waiting", admin) == 5.0,
            prometheus,
            "the sample sent with the push token did not arrive",
        )
