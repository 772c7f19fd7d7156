"""The agent's latency p95s: TTFT as clients see it (vLLM's histogram, queue wait included),
over each push interval, scraped from a real vLLM-style server and pushed to the real service."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from ciuic_sdk import Client
from ciuic_sdk.agent import Agent, AgentConfig, histogram_quantile, parse_histograms
from tests.conftest import LiveServer
from tests.sdk.servers import VLLM_METRICS, ModelServer, model_server


def histogram(name: str, buckets: dict[str, float], model: str = "deepseek-7b") -> str:
    lines = [f"# HELP {name} latency", f"# TYPE {name} histogram"]
    for le, count in buckets.items():
        lines.append(f'{name}_bucket{{le="{le}",model_name="{model}"}} {count}')
    total = buckets["+Inf"]
    lines += [
        f'{name}_count{{model_name="{model}"}} {total}',
        f'{name}_sum{{model_name="{model}"}} 1.0',
    ]
    return "\n".join(lines) + "\n"


TTFT = "vllm:time_to_first_token_seconds"
PREFILL = "vllm:request_prefill_time_seconds"


def metrics(ttft: dict[str, float], prefill: dict[str, float]) -> str:
    return VLLM_METRICS + histogram(TTFT, ttft) + histogram(PREFILL, prefill)


# Since the server started: 20 requests, all with a first token within 1 s.
BEFORE = metrics(
    {"0.5": 10, "1.0": 20, "2.5": 20, "5.0": 20, "+Inf": 20},
    {"0.1": 15, "0.25": 20, "0.5": 20, "+Inf": 20},
)
# One interval later: 100 more, 90 of them queued to 1-2.5 s and 10 to 2.5-5 s; their prefill
# stayed under 0.25 s. The p95 over the interval is 3.75 s (rank 95 of 100: halfway into the
# 2.5-5 s bucket); since the server started it would read 2.5 s-ish, and prefill alone 0.24 s.
AFTER = metrics(
    {"0.5": 10, "1.0": 20, "2.5": 110, "5.0": 120, "+Inf": 120},
    {"0.1": 15, "0.25": 120, "0.5": 120, "+Inf": 120},
)


@pytest.fixture
def vllm() -> Iterator[ModelServer]:
    with model_server(ModelServer(metrics=BEFORE)) as state:
        yield state


def test_histogram_quantile_reads_like_prometheus() -> None:
    buckets = {0.5: 0.0, 1.0: 0.0, 2.5: 90.0, 5.0: 100.0, float("inf"): 100.0}
    assert histogram_quantile(0.95, buckets) == pytest.approx(3.75)
    assert histogram_quantile(0.5, buckets) == pytest.approx(1.0 + 1.5 * 50 / 90)
    assert histogram_quantile(0.95, {1.0: 0.0, float("inf"): 10.0}) == 1.0  # in +Inf
    assert histogram_quantile(0.95, {1.0: 0.0, float("inf"): 0.0}) is None  # no requests


def test_histograms_are_summed_over_models() -> None:
    text = (
        histogram(TTFT, {"1.0": 3, "+Inf": 4})
        + histogram(TTFT, {"1.0": 1, "+Inf": 1}, model="lora").split("\n", 2)[2]
    )
    assert parse_histograms(text, [TTFT]) == {TTFT: {1.0: 4.0, float("inf"): 5.0}}


def test_the_agent_pushes_ttft_p95_over_the_interval_queue_included(
    server: LiveServer, vllm: ModelServer
) -> None:
    cfg = AgentConfig(
        ciuic_url=server.url,
        job="ttft-check",
        pod="deepseek-7b-0",
        metrics_url=f"{vllm.url}/metrics",
        gpu=False,
    )
    with Agent(cfg) as agent:
        t0 = time.time()
        agent.tick(t0)
        assert not agent.buffer
        vllm.metrics = AFTER
        agent.check_change(t0 + 1)  # the queue watch between rounds leaves the interval whole
        agent.tick(t0 + 5)
        assert not agent.buffer
    with Client(server.url) as ciuic:
        names = {s.metric for s in ciuic.series('{job="ttft-check"}')}
        assert {"ttft_p95", "prefill_p95"} <= names
        assert "queue_wait_p95" not in names  # this server has no queue-time histogram
        ttft = ciuic.query_range("ttft_p95", t0 - 1, t0 + 6, step=1).series[0].points
        prefill = ciuic.query_range("prefill_p95", t0 - 1, t0 + 6, step=1).series[0].points
    # one value each, at the second tick: the first read only sets the interval's start
    assert [round(v, 4) for _, v in ttft] == [3.75]
    assert [round(v, 4) for _, v in prefill] == pytest.approx([0.1 + 0.15 * 0.95])


def test_a_server_restart_reads_its_new_counts_whole(vllm: ModelServer) -> None:
    cfg = AgentConfig(metrics_url=f"{vllm.url}/metrics", gpu=False, ciuic_url="http://127.0.0.1:9")
    with Agent(cfg) as agent:
        vllm.metrics = AFTER
        agent.scraper.read()
        vllm.metrics = BEFORE  # the counts fell: vLLM restarted, these 20 are all new
        ttft = {r.metric: r.value for r in agent.scraper.read()}["ttft_p95"]
    assert ttft == pytest.approx(0.5 + 0.5 * (19 - 10) / 10)


def test_latency_can_be_turned_off(vllm: ModelServer) -> None:
    cfg = AgentConfig(
        metrics_url=f"{vllm.url}/metrics", gpu=False, latency=False, ciuic_url="http://127.0.0.1:9"
    )
    with Agent(cfg) as agent:
        agent.scraper.read()
        vllm.metrics = AFTER
        assert {r.metric for r in agent.scraper.read()} == {"request_queue", "requests_running"}
