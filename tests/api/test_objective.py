"""A scaler's latency objective over time, over real HTTP on both databases: the pods push
their TTFT p95 (as ciuic-agent does), the API and the Grafana datasource say when it was met."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from ciuic_sdk import AsyncClient, Client, NotFound
from tests.conftest import LiveServer

SPEC: dict[str, Any] = {
    "target": {"kind": "Deployment", "namespace": "llm", "name": "vllm-deepseek-7b"},
    "metrics": [
        {"name": "gpu_utilization", "target": "85%", "selector": {"job": "vllm"}},
        {"name": "request_queue", "target": "<5", "selector": {"job": "vllm"}},
    ],
    "max_replicas": 16,
    "objective": {"ttft_p95": "2s"},
}
MINUTE = 60


def base_s() -> int:
    """A whole hour two hours back: inside retention, aligned for a 1-minute step."""
    now = int(time.time())
    return now - now % 3600 - 2 * 3600


def push_ttft(server: LiveServer, start: int) -> None:
    """Ten minutes, a push every 20 s per pod: p0 keeps 1 s; p1 1.5 s, then 3 s from minute 7
    (three of ten minutes miss a 2 s objective). A pod of another job at 10 s is not ours."""
    samples = []
    for i in range(30):
        t = start + 20 * i + 5
        minute = i // 3
        for pod, job, value in (
            ("p0", "vllm", 1.0),
            ("p1", "vllm", 1.5 if minute < 7 else 3.0),
            ("x0", "other", 10.0),
        ):
            samples.append(
                {
                    "metric": "ttft_p95",
                    "labels": {"pod": pod, "job": job},
                    "value": value,
                    "timestamp": t,
                }
            )
    r = httpx.post(f"{server.url}/v1/samples", json={"samples": samples})
    assert r.status_code == 200, r.text


def create(server: LiveServer, name: str, spec: dict[str, Any]) -> None:
    r = httpx.post(f"{server.url}/v1/scalers", json={**spec, "name": name})
    assert r.status_code == 201, r.text


def test_attainment_step_by_step_from_the_pushed_ttft(server: LiveServer) -> None:
    create(server, "chat", SPEC)
    start = base_s()
    push_ttft(server, start)
    r = httpx.get(
        f"{server.url}/v1/scalers/chat/objective",
        params={"since": start, "until": start + 10 * MINUTE, "step": "1m"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["objective"] == {"ttft_p95": "2s", "concurrency": 1} and body["step_s"] == 60
    (ttft,) = body["attainment"]
    assert (ttft["objective"], ttft["target_s"], ttft["steps"]) == ("ttft_p95", 2.0, 10)
    assert ttft["met_share"] == pytest.approx(0.7) and ttft["worst_p95_s"] == 3.0
    assert [p["met"] for p in ttft["points"]] == [True] * 7 + [False] * 3
    assert [p["p95_s"] for p in ttft["points"]] == [1.5] * 7 + [3.0] * 3
    first = datetime.fromisoformat(ttft["points"][0]["time"].replace("Z", "+00:00"))
    assert first == datetime.fromtimestamp(start, tz=UTC)


def test_the_sdk_reads_the_same_attainment(server: LiveServer) -> None:
    """`Client.objective` (sync and async) over real HTTP: the same steps as the JSON."""
    create(server, "chat", SPEC)
    start = base_s()
    push_ttft(server, start)
    window = {"since": start, "until": start + 10 * MINUTE, "step": "1m"}
    with Client(server.url) as client:
        got = client.objective("chat", **window)
    (ttft,) = got.attainment
    assert got.step_s == 60 and got.objective == {"ttft_p95": "2s", "concurrency": 1}
    assert ttft.met_share == pytest.approx(0.7) and ttft.worst_p95_s == 3.0
    assert [p.met for p in ttft.points] == [True] * 7 + [False] * 3

    async def read() -> Any:
        async with AsyncClient(server.url) as client:
            return await client.objective("chat", **window)

    assert asyncio.run(read()) == got
    with Client(server.url) as client, pytest.raises(NotFound):
        client.objective("nope")


def test_the_grafana_target_draws_p95_objective_and_met(server: LiveServer) -> None:
    create(server, "chat", SPEC)
    start = base_s()
    push_ttft(server, start)
    iso = lambda s: datetime.fromtimestamp(s, tz=UTC).isoformat().replace("+00:00", "Z")  # noqa: E731
    listed = httpx.post(f"{server.url}/grafana/search", json={"target": ""}).json()
    assert "scaler:chat:objective" in listed
    r = httpx.post(
        f"{server.url}/grafana/query",
        json={
            "range": {"from": iso(start), "to": iso(start + 10 * MINUTE - 1)},
            "intervalMs": 60_000,
            "maxDataPoints": 100,
            "targets": [{"refId": "A", "target": "scaler:chat:objective"}],
        },
    )
    assert r.status_code == 200, r.text
    by_name = {s["target"]: [v for v, _ in s["datapoints"]] for s in r.json()}
    assert set(by_name) == {"chat ttft_p95", "chat ttft_p95 objective", "chat ttft_p95 met"}
    assert by_name["chat ttft_p95"] == [1.5] * 7 + [3.0] * 3
    assert by_name["chat ttft_p95 objective"] == [2.0] * 10
    assert by_name["chat ttft_p95 met"] == [1.0] * 7 + [0.0] * 3


def test_a_scaler_without_an_objective_has_nothing_to_attain(server: LiveServer) -> None:
    create(server, "plain", {k: v for k, v in SPEC.items() if k != "objective"})
    r = httpx.get(f"{server.url}/v1/scalers/plain/objective")
    assert r.status_code == 200, r.text
    assert (r.json()["objective"], r.json()["attainment"]) == (None, [])


def test_no_pushes_is_no_data_not_a_miss(server: LiveServer) -> None:
    create(server, "chat", SPEC)
    (ttft,) = httpx.get(f"{server.url}/v1/scalers/chat/objective").json()["attainment"]
    assert (ttft["steps"], ttft["met_share"], ttft["points"]) == (0, None, [])


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"since": "2030-01-01T00:00:00Z", "until": "2029-01-01T00:00:00Z"}, "invalid_parameter"),
        ({"step": "0s"}, "invalid_parameter"),
        ({"step": "1ms"}, "invalid_parameter"),  # 3.6 million steps in the default hour
        ({"since": "yesterday"}, "invalid_time"),
    ],
    ids=["since-after-until", "zero-step", "too-many-steps", "bad-time"],
)
def test_bad_windows_are_400(server: LiveServer, params: dict[str, str], code: str) -> None:
    create(server, "chat", SPEC)
    r = httpx.get(f"{server.url}/v1/scalers/chat/objective", params=params)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == code


def test_unknown_scaler_is_404(server: LiveServer) -> None:
    r = httpx.get(f"{server.url}/v1/scalers/nope/objective")
    assert r.status_code == 404 and r.json()["error"]["code"]


def test_the_decision_sizes_for_the_objective_with_what_the_pods_measured(
    server: LiveServer,
) -> None:
    """One pod at its GPU target takes 4 req/s (0.5/s per pod at full use). It measures a
    1.5 s prefill p95, which leaves 0.5 s of the 2 s TTFT objective to queue: M/M/c asks for
    13 pods (12 would wait 0.51 s). Its ITL p95 of 200 ms against 50 ms asks for only 4."""
    spec = {**SPEC, "capacity": "0.5/s", "objective": {"ttft_p95": "2s", "itl_p95": "50ms"}}
    create(server, "chat", spec)
    labels = {"pod": "p0", "job": "vllm"}
    pushed = [("gpu_utilization", 50.0), ("request_queue", 0.0), ("request_rate", 4.0)]
    pushed += [("prefill_p95", 1.5), ("itl_p95", 0.2)]
    r = httpx.post(
        f"{server.url}/v1/samples",
        json={"samples": [{"metric": m, "labels": labels, "value": v} for m, v in pushed]},
    )
    assert r.status_code == 200, r.text
    body = httpx.get(f"{server.url}/v1/scalers/chat/decision").json()
    objective = body["reasons"][-1]
    assert objective["code"] == "objective.raise", objective
    assert objective["values"]["wait_budget_s"] == pytest.approx(0.5)
    assert objective["values"]["itl_p95_s"] == pytest.approx(0.2)
    assert body["replicas"] == 13 and "drives the count" in objective["message"]
