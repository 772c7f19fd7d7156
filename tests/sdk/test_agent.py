"""The pod agent: scrapes a real vLLM-style HTTP server, pushes to the real service, buffers
and backs off while the service is unreachable, and handles NVML's absence cleanly."""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from ciuic_sdk import Client
from ciuic_sdk.agent import (
    Agent,
    AgentConfig,
    GpuReader,
    Scraper,
    build_parser,
    config_from_args,
    main,
    parse_metrics,
)
from tests.conftest import LiveServer, free_port
from tests.sdk.servers import VLLM_METRICS, ModelServer, model_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def make_agent() -> Iterator[Callable[[AgentConfig], Agent]]:
    """Agents closed at teardown, also when a test fails (no leaked connections)."""
    made: list[Agent] = []

    def make(cfg: AgentConfig) -> Agent:
        made.append(Agent(cfg))
        return made[-1]

    yield make
    for agent in made:
        agent.close()


@pytest.fixture
def vllm() -> Iterator[ModelServer]:
    with model_server(ModelServer()) as state:
        yield state


def config(ciuic_url: str, metrics_url: str | None, **changes: Any) -> AgentConfig:
    values: dict[str, Any] = {
        "ciuic_url": ciuic_url,
        "job": "deepseek-monitor",
        "pod": "deepseek-7b-0",
        "namespace": "inference",
        "deployment": "deepseek-7b",
        "metrics_url": metrics_url,
        "gpu": False,
    }
    return AgentConfig(**{**values, **changes})


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        (["vllm:num_requests_waiting"], {"vllm:num_requests_waiting": 9.0}),  # summed over models
        (["vllm:num_requests_running"], {"vllm:num_requests_running": 5.0}),
        (["vllm:gpu_cache_usage_perc"], {"vllm:gpu_cache_usage_perc": 0.42}),
        (["vllm:prompt_tokens_total"], {"vllm:prompt_tokens_total": 12345.0}),  # a counter
        (
            ["vllm:e2e_request_latency_seconds_count"],
            {"vllm:e2e_request_latency_seconds_count": 5.0},
        ),
        (["no_such_metric"], {}),
    ],
    ids=["queue", "running", "gauge", "counter-total", "histogram-count", "absent"],
)
def test_parse_vllm_metrics(wanted: list[str], expected: dict[str, float]) -> None:
    assert parse_metrics(VLLM_METRICS, wanted) == expected


def test_agent_pushes_queue_gauges_with_the_pods_labels(
    make_agent: Callable[[AgentConfig], Agent], server: LiveServer, vllm: ModelServer
) -> None:
    agent = make_agent(config(server.url, f"{vllm.url}/metrics"))
    now = time.time()
    agent.tick(now)
    assert agent.stats.sent == 2 and not agent.buffer
    with Client(server.url) as ciuic:
        found = {s.metric: s.labels for s in ciuic.series('{job="deepseek-monitor"}')}
        assert found == {
            "request_queue": {
                "job": "deepseek-monitor",
                "pod": "deepseek-7b-0",
                "namespace": "inference",
                "deployment": "deepseek-7b",
            },
            "requests_running": {
                "job": "deepseek-monitor",
                "pod": "deepseek-7b-0",
                "namespace": "inference",
                "deployment": "deepseek-7b",
            },
        }
        points = ciuic.query_range("request_queue", now - 1, now + 1, step=1).series[0].points
        assert [v for _, v in points] == [9.0]


def test_a_configured_metric_name_feeds_request_queue(
    make_agent: Callable[[AgentConfig], Agent], server: LiveServer, vllm: ModelServer
) -> None:
    agent = make_agent(
        config(
            server.url,
            f"{vllm.url}/metrics",
            queue_metric="vllm:gpu_cache_usage_perc",
            running_metric=None,
        )
    )
    agent.tick()
    with Client(server.url) as ciuic:
        assert [s.metric for s in ciuic.series('{job="deepseek-monitor"}')] == ["request_queue"]
        result = ciuic.query_range("request_queue", time.time() - 60, time.time() + 1, step=120)
        assert result.series[0].points[0][1] == 0.42


def test_without_nvml_the_gpu_gauges_are_skipped_with_one_log_line(
    make_agent: Callable[[AgentConfig], Agent],
    server: LiveServer,
    vllm: ModelServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """NVML is absent on these machines (no nvidia-ml-py, no driver): the norm, not an error."""
    caplog.set_level(logging.INFO, logger="ciuic.agent")
    agent = make_agent(config(server.url, f"{vllm.url}/metrics", gpu=True))
    for i in range(3):
        agent.tick(time.time() + i)
    assert agent.gpu is not None and agent.gpu.disabled_reason is not None
    skipped = [r for r in caplog.records if "GPU gauges skipped" in r.getMessage()]
    assert len(skipped) == 1
    assert agent.stats.sent == 6  # the queue gauges still flow


class FakeNvmlError(Exception):
    pass


def _nvml(init_error: bool = False, count: int = 2, read_error: bool = False) -> Any:
    """A stand-in for pynvml's functions (the real library needs a driver these machines lack)."""

    def init() -> None:
        if init_error:
            raise FakeNvmlError("NVML Shared Library Not Found")

    def utilisation(handle: int) -> Any:
        if read_error:
            raise FakeNvmlError("GPU is lost")
        return SimpleNamespace(gpu=[80, 90][handle])

    return SimpleNamespace(
        NVMLError=FakeNvmlError,
        nvmlInit=init,
        nvmlDeviceGetCount=lambda: count,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetUtilizationRates=utilisation,
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(used=[14e9, 2e9][h]),
        nvmlShutdown=lambda: None,
    )


@pytest.mark.parametrize(
    ("nvml", "readings", "reason"),
    [
        (_nvml(), {"gpu_utilization": 85.0, "gpu_memory": 16e9}, None),
        (_nvml(init_error=True), {}, "NVML cannot be initialised"),
        (_nvml(count=0), {}, "no GPU"),
        (_nvml(read_error=True), {}, None),  # a failed read skips the tick, retried next tick
    ],
    ids=["two-gpus", "no-driver", "no-device", "read-error"],
)
def test_gpu_reader(nvml: Any, readings: dict[str, float], reason: str | None) -> None:
    reader = GpuReader(loader=lambda: nvml)
    for _ in range(2):
        assert {r.metric: r.value for r in reader.read()} == readings
    assert (reader.disabled_reason is None) == (reason is None)
    if reason:
        assert reason in (reader.disabled_reason or "")
    reader.close()


def test_missing_nvml_library_is_reported_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def missing() -> Any:
        raise ImportError("No module named 'pynvml'")

    reader = GpuReader(loader=missing)
    assert reader.read() == [] and reader.read() == []
    assert "nvidia-ml-py is not installed" in (reader.disabled_reason or "")


def test_metrics_endpoint_failure_logs_once_and_recovers(
    vllm: ModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ciuic.agent")
    scraper = Scraper(config("http://unused", f"{vllm.url}/metrics"))
    vllm.metrics_status = 500
    assert scraper.read() == [] and scraper.read() == []
    assert len([r for r in caplog.records if "cannot read" in r.getMessage()]) == 1
    vllm.metrics_status = 200
    assert {r.metric for r in scraper.read()} == {"request_queue", "requests_running"}
    assert any("answers again" in r.getMessage() for r in caplog.records)
    vllm.metrics = "this is { not prometheus text"
    assert scraper.read() == []
    scraper.close()


def test_unreachable_ciuic_buffers_bounded_backs_off_then_delivers_with_original_times(
    make_agent: Callable[[AgentConfig], Agent], server: LiveServer, vllm: ModelServer
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    agent = make_agent(
        config(down, f"{vllm.url}/metrics", buffer_size=6, interval_s=5, max_backoff_s=40)
    )
    t0 = float(int(time.time()) - 120)  # whole seconds: 1 s buckets start at the samples
    delays = []
    for i in range(5):  # 5 ticks, 2 samples each, into a buffer of 6
        now = t0 + 5 * i
        agent.tick(now)
        delays.append(agent.next_push_at - now if agent.next_push_at > now else None)
    assert len(agent.buffer) == 6
    assert agent.stats.dropped == 4  # the oldest two ticks
    assert agent.stats.sent == 0
    # pushes are attempted at t0, t0+5 (backoff 5 s), then t0+15 (10 s): 3 failures in 5 ticks
    assert agent.stats.failures == 3
    assert agent.backoff_s == 20
    # Ciuic comes back: the next due push drains the buffer, with the samples' own times
    agent.client.close()
    agent.client = Client(server.url)
    agent.flush(t0 + 60)
    assert agent.stats.sent == 6 and not agent.buffer and agent.backoff_s == 0
    with Client(server.url) as ciuic:
        result = ciuic.query_range('request_queue{pod="deepseek-7b-0"}', t0 - 1, t0 + 60, step=1)
        times = [round(t - t0) for t, _ in result.series[0].points]
        assert times == [10, 15, 20]


def test_samples_ciuic_refuses_are_dropped_and_counted(
    make_agent: Callable[[AgentConfig], Agent], server: LiveServer, vllm: ModelServer
) -> None:
    agent = make_agent(config(server.url, f"{vllm.url}/metrics"))
    agent.tick(time.time() - 30 * 86400)  # older than the raw retention: never valid
    assert agent.stats.rejected == 2 and agent.stats.sent == 0 and not agent.buffer
    agent.tick(time.time())
    assert agent.stats.sent == 2


def waiting(n: float) -> str:
    return (
        "# TYPE vllm:num_requests_waiting gauge\n"
        f'vllm:num_requests_waiting{{model_name="deepseek-7b"}} {n}\n'
    )


def test_a_growing_queue_is_pushed_at_once_between_rounds(
    make_agent: Callable[[AgentConfig], Agent], server: LiveServer, vllm: ModelServer
) -> None:
    """Push on change, as the benchmark's simulator models it: between the 5 s rounds the
    queue is read every second and pushed at once when it is at least 5 and longer than at
    the last push; a queue that is short, or no longer than pushed, waits for the round."""
    agent = make_agent(config(server.url, f"{vllm.url}/metrics", running_metric=None))
    t0 = time.time() - 30
    vllm.metrics = waiting(6)
    agent.tick(t0)  # the round: 6 pushed
    pushed = []
    for dt, n in [(1, 6), (2, 9), (3, 9), (4, 14), (5, 3)]:
        vllm.metrics = waiting(n)
        pushed.append(agent.check_change(t0 + dt))
    assert pushed == [False, True, False, True, False]
    agent.tick(t0 + 5)  # the next round pushes 3 (below the threshold: no change push)
    vllm.metrics = waiting(4)
    assert agent.check_change(t0 + 6) is False  # growing, but under 5
    vllm.metrics = waiting(5)
    assert agent.check_change(t0 + 7) is True  # at 5 and longer than the 3 pushed last
    with Client(server.url) as ciuic:
        points = ciuic.query_range("request_queue", t0 - 1, t0 + 8, step=1).series[0].points
    assert [v for _, v in points] == [6.0, 9.0, 14.0, 3.0, 5.0]
    assert agent.change_pushes == 3


def test_push_on_change_can_be_turned_off(
    make_agent: Callable[[AgentConfig], Agent], server: LiveServer, vllm: ModelServer
) -> None:
    args = build_parser().parse_args(["--push-on-queue", "0", "--no-gpu"])
    assert config_from_args(args, {}).push_on_queue is None
    assert AgentConfig().push_on_queue == 5.0 and AgentConfig().change_poll_s == 1.0
    agent = make_agent(config(server.url, f"{vllm.url}/metrics", push_on_queue=None))
    vllm.metrics = waiting(50)
    assert agent.check_change(time.time()) is False and agent.stats.sent == 0


def test_config_from_env_and_flags() -> None:
    env = {
        "CIUIC_URL": "http://ciuic.example:8080",
        "POD_NAME": "p-0",
        "POD_NAMESPACE": "ns",
        "DEPLOYMENT_NAME": "from-env",
        "CIUIC_INTERVAL": "2.5",
    }
    args = build_parser().parse_args(
        ["--deployment", "from-flag", "--label", "gpu_type=h100", "--no-gpu"]
    )
    cfg = config_from_args(args, env)
    assert cfg.ciuic_url == "http://ciuic.example:8080"
    assert cfg.interval_s == 2.5 and cfg.gpu is False
    assert cfg.labels == {
        "job": "ciuic-agent",
        "pod": "p-0",
        "namespace": "ns",
        "deployment": "from-flag",
        "gpu_type": "h100",
    }


def test_cli_once_against_the_real_service(server: LiveServer, vllm: ModelServer) -> None:
    code = main(
        [
            "--once",
            "--ciuic-url",
            server.url,
            "--metrics-url",
            f"{vllm.url}/metrics",
            "--pod",
            "cli-pod",
            "--job",
            "cli",
            "--no-gpu",
        ]
    )
    assert code == 0
    found = httpx.get(f"{server.url}/v1/series", params={"match": '{job="cli"}'}).json()["series"]
    assert sorted(s["metric"] for s in found) == ["request_queue", "requests_running"]


def test_agent_process_runs_every_interval_and_stops_on_sigterm(
    server: LiveServer, vllm: ModelServer
) -> None:
    """The console program as a sidecar runs it: a process, stopped by SIGTERM."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "sdk"), "POD_NAME": "proc-pod"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ciuic_sdk.agent",
            "--ciuic-url",
            server.url,
            "--metrics-url",
            f"{vllm.url}/metrics",
            "--interval",
            "0.2",
            "--job",
            "proc",
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        points: list[Any] = []
        while time.monotonic() < deadline and len(points) < 3:
            time.sleep(0.2)
            r = httpx.get(
                f"{server.url}/v1/query_range",
                params={
                    "query": 'request_queue{job="proc",pod="proc-pod"}',
                    "start": time.time() - 60,
                    "end": time.time() + 1,
                    "step": "0.1",
                },
            )
            series = r.json()["series"]
            points = series[0]["points"] if series else []
        assert len(points) >= 3, "pushes every interval"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    if importlib.util.find_spec("pynvml") is None:  # the norm here: said once, not per tick
        assert stderr.count("GPU gauges skipped") == 1
    assert "stats:" in stderr
