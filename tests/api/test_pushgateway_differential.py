"""Ciuic against the real Pushgateway: one sequence of pushes sent to both, step by step.

After every step the two must have answered the same status and must show the same
`/api/v1/metrics` document, once the values that cannot agree are normalised: the timestamps
(each records its own clock) and the order of groups and of series (the Pushgateway lists them
in map order). Everything else — the labels, which families exist, their types and help, the
rendering of values, `push_time_seconds` / `push_failure_time_seconds` being zero or not,
`last_push_successful` — is compared as it is.

The real one is Debian's `prometheus-pushgateway` (`/usr/bin/prometheus-pushgateway`, or
CIUIC_PUSHGATEWAY), started here on a free loopback port with a fresh persistence file. Without
it the test is skipped, naming the package; under CI=true it FAILS instead (.ci/run installs
it).
"""

from __future__ import annotations

import base64
import difflib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.exposition import (
    delete_from_gateway,
    push_to_gateway,
    pushadd_to_gateway,
)

from testkit.programs import required_program, serving
from tests.conftest import IN_CI, LiveServer, free_port

PUSHGATEWAY = os.environ.get("CIUIC_PUSHGATEWAY", "/usr/bin/prometheus-pushgateway")
TEXT = {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}


@pytest.fixture
def real_pushgateway(tmp_path: Path) -> Iterator[str]:
    """A fresh real Pushgateway per test; yields its base URL."""
    binary = required_program(PUSHGATEWAY, "prometheus-pushgateway", in_ci=IN_CI)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        binary,
        f"--web.listen-address=127.0.0.1:{port}",
        # Debian's default is /var/lib/prometheus/pushgateway.data: state from earlier runs
        # (or the system service) must not leak in
        f"--persistence.file={tmp_path / 'pushgateway.data'}",
        "--log.level=warn",
    ]
    with serving(argv, url, tmp_path / "pushgateway.log", timeout_s=20):
        yield url


# --- what is compared ----------------------------------------------------------------------


def _labels_key(labels: dict[str, str]) -> str:
    return json.dumps(labels, sort_keys=True)


def normalised(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The document with what must differ taken out: timestamps' values (a push time is
    kept as zero or not-zero, which is what a reader checks) and the order of groups and
    series."""
    assert document["status"] == "success"
    groups = []
    for group in document["data"]:
        out: dict[str, Any] = {}
        for key, value in group.items():
            if not isinstance(value, dict) or "metrics" not in value:
                out[key] = value  # labels, last_push_successful
                continue
            family = {**value, "time_stamp": "<time>"}
            metrics = sorted(value["metrics"], key=lambda m: _labels_key(m["labels"]))
            if key in ("push_time_seconds", "push_failure_time_seconds"):
                metrics = [{**m, "value": "0" if m["value"] == "0" else "<time>"} for m in metrics]
            family["metrics"] = metrics
            out[key] = family
        groups.append(out)
    return sorted(groups, key=lambda g: _labels_key(g["labels"]))


# --- the steps -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """One HTTP request, as a pod or curl would send it."""

    method: str
    path: str  # after /metrics/
    body: str = ""

    def send(self, base: str) -> int:
        response = httpx.request(
            self.method, f"{base}/metrics/{self.path}", content=self.body.encode(), headers=TEXT
        )
        return response.status_code


@dataclass(frozen=True)
class Client:
    """A push through prometheus_client (its URL encoding, its exposition of each type)."""

    call: Callable[..., None]
    job: str
    registry: CollectorRegistry | None  # built once: both get the same `_created` values
    grouping: dict[str, str]

    def send(self, base: str) -> int:
        statuses: list[int] = []

        def handler(
            url: str, method: str, timeout: float | None, headers: Any, data: bytes
        ) -> Callable[[], None]:
            def do() -> None:
                response = httpx.request(method, url, content=data, headers=dict(headers))
                statuses.append(response.status_code)

            return do

        if self.registry is None:
            self.call(base, self.job, grouping_key=self.grouping, handler=handler)
        else:
            self.call(base, self.job, self.registry, grouping_key=self.grouping, handler=handler)
        [status] = statuses
        return status


def b64(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def pod_registry() -> CollectorRegistry:
    """One of each type, as a pod's monitor would make them."""
    registry = CollectorRegistry()
    requests = Counter("requests", "Requests served", ["route"], registry=registry)
    requests.labels("/generate").inc(41)
    requests.labels("/health").inc(3)
    Gauge("gpu_utilization", "GPU utilisation", registry=registry).set(87.5)
    Gauge("gpu_memory_bytes", "GPU memory used", registry=registry).set(1234567)
    latency = Histogram(
        "latency_seconds", "Request latency", buckets=(0.1, 0.5, 2.5), registry=registry
    )
    for value in (0.05, 0.3, 0.3, 4.0):
        latency.observe(value)
    Summary("batch_tokens", "Tokens per batch", registry=registry).observe(512)
    return registry


def queue_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Gauge("request_queue", "Pending requests", registry=registry).set(7)
    Gauge("gpu_utilization", "GPU utilisation", registry=registry).set(12)
    return registry


APP_LOAD = (
    "# HELP load Load.\n# TYPE load gauge\nload 3\n# TYPE served_total counter\nserved_total 10\n"
)
VALUES = (  # Go's shortest float forms: exponents from 1e+06 up and below 1e-04
    '# TYPE v gauge\nv{k="a"} 1000000\nv{k="b"} 100000\nv{k="c"} 0.00001\n'
    'v{k="d"} 1234567\nv{k="e"} NaN\nv{k="f"} -Inf\nv{k="g"} 123456789012345678\n'
    'v{k="h"} 0.0001\nv{k="i"} -2.5\n'
)
HISTOGRAM_SUMMARY = (
    '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_count 2\nh_sum 3\n'
    '# TYPE s summary\ns{quantile="0.5"} 1\ns_count 2\ns_sum 3\n'
)
POD = {"pod": "deep/seek", "zone": ""}  # the client sends both as @base64
B64_GROUP = f"job@base64/{b64('a/b')}/pod@base64/{b64('deep/seek ?')}"
SHARD = "job/app/shard@base64/="

STEPS: list[tuple[str, Raw | Client]] = [
    ("put-typed-with-help", Raw("PUT", "job/app/instance/i1", APP_LOAD)),
    ("put-untyped-empty-label", Raw("PUT", SHARD, "up 1\n")),
    ("put-base64-job-and-label", Raw("PUT", B64_GROUP, 'up{pod="body"} 1\n')),
    ("put-body-instance-kept", Raw("PUT", "job/mine", 'up{instance="me",job="x"} 1\n')),
    ("put-values", Raw("PUT", "job/values", VALUES)),
    ("put-histogram-summary-raw", Raw("PUT", "job/raw", HISTOGRAM_SUMMARY)),
    ("client-push-every-type", Client(push_to_gateway, "pod", pod_registry(), POD)),
    ("client-pushadd-replaces-named", Client(pushadd_to_gateway, "pod", queue_registry(), POD)),
    ("post-adds-family", Raw("POST", "job/app/instance/i1", "# TYPE extra gauge\nextra 1\n")),
    ("post-replaces-family", Raw("POST", "job/app/instance/i1", "# TYPE load gauge\nload 4\n")),
    ("unparsable-to-existing-group", Raw("PUT", "job/app/instance/i1", "load{ 1\n")),
    ("unparsable-to-new-group", Raw("PUT", "job/never", "up one\n")),
    ("type-clash-new-group", Raw("PUT", "job/clash", "# TYPE load counter\nload 1\n")),
    ("type-clash-existing-group", Raw("POST", SHARD, "# TYPE load counter\nload 1\n")),
    ("duplicate-after-grouping", Raw("PUT", "job/values", 'v{job="values"} 1\nv 2\n')),
    ("timestamped-sample", Raw("PUT", "job/stamped", "up 1 1700000000000\n")),
    ("success-after-failure", Raw("POST", SHARD, "up 2\n")),
    ("put-empty-body", Raw("PUT", "job/raw", "")),
    ("delete-group", Raw("DELETE", "job/mine")),
    ("delete-failed-group", Raw("DELETE", "job/clash")),
    ("delete-missing-group", Raw("DELETE", "job/nobody")),
    ("client-delete", Client(delete_from_gateway, "pod", None, POD)),
    ("put-after-clash-deleted", Raw("PUT", "job/clash", "# TYPE other gauge\nother 1\n")),
]


def test_ciuic_answers_every_step_as_the_real_pushgateway_does(
    real_pushgateway: str, server: LiveServer
) -> None:
    for step, request in STEPS:
        real_status = request.send(real_pushgateway)
        ours_status = request.send(server.url)
        assert ours_status == real_status, f"{step}: status"
        real = normalised(httpx.get(f"{real_pushgateway}/api/v1/metrics").json())
        ours = normalised(httpx.get(f"{server.url}/api/v1/metrics").json())
        if ours != real:
            diff = difflib.unified_diff(
                json.dumps(real, indent=1, sort_keys=True).splitlines(),
                json.dumps(ours, indent=1, sort_keys=True).splitlines(),
                "pushgateway",
                "ciuic",
                lineterm="",
            )
            pytest.fail(f"after step {step}:\n" + "\n".join(diff))
