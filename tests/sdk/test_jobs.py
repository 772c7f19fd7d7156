"""The SDK's simulations, tuning and rollouts, against the real service over HTTP."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ciuic_sdk import Client, Conflict, Invalid, NotFound
from tests.conftest import LiveServer

BRIEF = (Path(__file__).resolve().parents[1] / "policy" / "brief.yaml").read_text()


def count_trace(days: int = 2) -> str:
    lines = ["timestamp,value"]
    for i in range(days * 48):
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(1_420_070_400 + i * 1800))
        lines.append(f"{stamp},{300 + (i % 48) * 20}")
    return "\n".join(lines) + "\n"


def test_simulate_a_trace_and_wait_for_the_report(server: LiveServer) -> None:
    with Client(server.url) as client:
        job = client.simulate(count_trace(), policies=["hpa", "oracle"], window="1d", seed=1)
        assert job.status == "pending" and not job.finished
        done = client.wait_simulation(job.id, timeout_s=240, poll_s=0.3)
    assert done.status == "done", done.error
    assert done.result is not None
    assert [r["policy"] for r in done.result["reports"]] == ["hpa", "oracle"]


def test_simulation_refusals_are_typed(server: LiveServer) -> None:
    with Client(server.url) as client:
        with pytest.raises(Invalid):
            client.simulate("no,trace\nhere,at all\n")
        with pytest.raises(NotFound):
            client.get_simulation("nope")
        with pytest.raises(NotFound):
            client.tune("nope")
        client.create_scaler(BRIEF)
        with pytest.raises(Invalid):  # the brief's spec has no capacity: nothing to replay
            client.simulate_scaler("deepseek-service")


def test_rollouts_start_list_get_and_cancel(server: LiveServer) -> None:
    with Client(server.url) as client:
        client.create_scaler(BRIEF)
        rollout = client.start_rollout("deepseek-service", image="deepseek:7b-v2", stabilize_s=0)
        assert rollout.scaler == "deepseek-service" and rollout.status == "pending"
        assert rollout.request["image"] == "deepseek:7b-v2"
        assert [r.id for r in client.rollouts("deepseek-service")] == [rollout.id]
        assert client.get_rollout(rollout.id).id == rollout.id
        with pytest.raises(Conflict):
            client.start_rollout("deepseek-service", image="deepseek:7b-v3")
        cancelled = client.cancel_rollout(rollout.id)
        assert cancelled.cancel_requested is True
        with pytest.raises(NotFound):
            client.get_rollout(999_999)
