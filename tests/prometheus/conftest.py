"""Fixtures of the Prometheus tier: Debian's real Prometheus server (apt-get install prometheus),
scraping a small vLLM-like exporter every second, and remote-writing into the live service.

Without the `prometheus` binary the tier is skipped, naming what is missing; under CI=true it
FAILS instead (.ci/run installs it), so CI never passes without having run it
(testkit.programs, shared with the Pushgateway's differential test).
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, Gauge, make_wsgi_app

from testkit.programs import log_tail, required_program, serving, stop
from tests.conftest import IN_CI, free_port

HERE = Path(__file__).parent
PROMETHEUS = os.environ.get("CIUIC_PROMETHEUS", "/usr/bin/prometheus")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == HERE:
            item.add_marker(pytest.mark.prometheus)


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    return required_program(PROMETHEUS, "prometheus; or set CIUIC_PROMETHEUS", in_ci=IN_CI)


@dataclass
class Exporter:
    """What a vLLM server exposes on /metrics, for two pods, set by the test (`rate`: the
    requests per second a gateway in front of them would count)."""

    url: str
    waiting: Gauge
    running: Gauge
    cache: Gauge
    rate: Gauge


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    registry = CollectorRegistry()  # ours alone: no process or GC metrics
    gauges = [
        Gauge(name, doc, ["pod"], registry=registry)
        for name, doc in (
            ("vllm:num_requests_waiting", "Requests waiting to be processed."),
            ("vllm:num_requests_running", "Requests running on the GPU."),
            ("vllm:gpu_cache_usage_perc", "GPU KV-cache usage; 1 means 100 percent."),
            ("llm_request_rate", "Requests per second."),
        )
    ]
    metrics = make_wsgi_app(registry)

    def text_format(environ: dict[str, Any], start_response: Any) -> Any:
        # Prometheus 2.42 asks for OpenMetrics first, and prometheus_client (0.26) then
        # escapes the names' colons (vllm_num_requests_waiting). Served as the text format
        # 0.0.4, as vLLM's exporter is with the clients it pins, the names keep them.
        environ.pop("HTTP_ACCEPT", None)
        return metrics(environ, start_response)

    http = make_server("127.0.0.1", free_port(), text_format, handler_class=_Quiet)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield Exporter(f"127.0.0.1:{http.server_port}", *gauges)
    finally:
        http.shutdown()
        http.server_close()
        thread.join(timeout=5)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a line per scrape otherwise


@dataclass
class Prometheus:
    url: str
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        """Prometheus gone (before the test ends): its port refuses connections."""
        if self.process is not None:
            stop(self.process)

    def metric(self, name: str) -> float:
        """A value from Prometheus' own /metrics (unlabelled, or the sum over its labels)."""
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith((name + " ", name + "{"))
        )

    def log_tail(self) -> str:
        return log_tail(self.log)


@contextmanager
def start_prometheus(
    binary: str,
    folder: Path,
    scrape: str,
    remote_write: dict[str, object] | None = None,
    port: int | None = None,
) -> Iterator[Prometheus]:
    """Prometheus scraping `scrape` (host:port) every second as job `vllm`, and sending each
    scraped sample to `remote_write` (a remote_write entry: url, auth, ...) within a second
    when given (without it, Prometheus only answers queries). Its TSDB is `folder/data`: blocks
    put there first (promtool's backfill) are its history. On `port`, or a free one."""
    config: dict[str, object] = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "vllm", "static_configs": [{"targets": [scrape]}]}],
    }
    if remote_write is not None:
        config["remote_write"] = [
            {
                **remote_write,
                "queue_config": {
                    "batch_send_deadline": "1s",
                    "min_backoff": "100ms",
                    "max_backoff": "1s",
                },
            }
        ]
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log = folder / "prometheus.log"
    argv = [
        binary,
        f"--config.file={folder / 'prometheus.yml'}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=info",
    ]
    with serving(argv, url, log) as process:
        yield Prometheus(url, log, process)
