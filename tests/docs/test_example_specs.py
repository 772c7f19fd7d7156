"""Every spec under examples/ is one the service takes as it is, and the vLLM ones read the
names vLLM, DCGM and the agent really use (the agent's mapping and the examples stay one)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from app.policy import parse_spec
from app.services.backfill import load_query
from ciuic_sdk.agent import DEFAULT_QUEUE_METRIC, LATENCY_HISTOGRAMS, AgentConfig, Scraper

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SPECS = sorted(EXAMPLES.rglob("*.yaml"))


def test_there_are_examples_of_every_source() -> None:
    names = {p.relative_to(EXAMPLES).as_posix() for p in SPECS}
    assert {
        "ciuic-config.yaml",
        "vllm/pushed-by-the-agent.yaml",
        "vllm/from-prometheus.yaml",
        "vllm/remote-written.yaml",
    } <= names


@pytest.mark.parametrize("path", SPECS, ids=[p.name for p in SPECS])
def test_each_example_spec_is_valid(path: Path) -> None:
    spec = parse_spec(yaml.safe_load(path.read_text()))
    assert spec.metrics


def test_the_vllm_examples_name_what_vllm_and_the_agent_push() -> None:
    pushed = parse_spec(yaml.safe_load((EXAMPLES / "vllm/pushed-by-the-agent.yaml").read_text()))
    scraper = Scraper(AgentConfig(metrics_url=None))
    scraper.close()
    agent_names = set(scraper.names.values()) | {"gpu_utilization"}
    assert {m.name for m in pushed.metrics} <= agent_names
    # the objective's attainment reads the TTFT the agent pushes, from vLLM's own histogram
    assert pushed.objective is not None and pushed.objective.ttft_p95 is not None
    assert ("ttft_p95", ("vllm:time_to_first_token_seconds",)) in LATENCY_HISTOGRAMS
    written = parse_spec(yaml.safe_load((EXAMPLES / "vllm/remote-written.yaml").read_text()))
    assert DEFAULT_QUEUE_METRIC in {m.name for m in written.metrics}
    queried = (EXAMPLES / "vllm/from-prometheus.yaml").read_text()
    assert DEFAULT_QUEUE_METRIC in queried and "gpu_cache_usage_perc" in queried


def test_the_prometheus_example_reads_its_load_from_prometheus_so_it_is_backfilled() -> None:
    spec = parse_spec(yaml.safe_load((EXAMPLES / "vllm/from-prometheus.yaml").read_text()))
    query = load_query(spec)
    assert query is not None and "vllm:request_success_total" in query
