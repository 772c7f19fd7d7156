"""Simulations over HTTP: a trace upload, a scaler's stored load replayed, tuning, refusals."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import numpy as np
import pytest

from app.store.db import Database
from app.store.series import SampleRow, SeriesKey, SeriesStore
from tests.conftest import LiveServer

DAY = 86400.0
SPEC: dict[str, Any] = {
    "target": "deepseek-service",
    "metrics": [
        {"name": "gpu_utilization", "weight": 0.6, "target": "85%", "selector": {"job": "llm"}},
        {"name": "request_queue", "weight": 0.4, "target": "<5", "selector": {"job": "llm"}},
    ],
    "capacity": {"request_rate": "30/min"},
    "max_replicas": 20,
}
KEYS = {
    "policy",
    "requests",
    "dropped",
    "drop_rate",
    "gpu_hours",
    "cost_usd",
    "utilization",
    "p50_wait_s",
    "p99_wait_s",
    "scale_up_latency_s",
    "scale_actions",
    "cost_vs_oracle",
}


def count_trace(days: int = 2) -> str:
    start = 1_420_070_400  # 2015-01-01
    lines = ["timestamp,value"]
    for i in range(days * 48):
        t = start + i * 1800
        value = 500 + 400 * np.sin(2 * np.pi * (i % 48) / 48)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))
        lines.append(f"{stamp},{int(value)}")
    return "\n".join(lines) + "\n"


def wait_for(server: LiveServer, job_id: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = httpx.get(f"{server.url}/v1/simulations/{job_id}").json()
        if body["status"] in ("done", "failed"):
            return body
        time.sleep(0.5)
    raise AssertionError(f"simulation {job_id} did not finish")


def test_a_trace_upload_is_simulated_in_the_background(server: LiveServer) -> None:
    response = httpx.post(
        f"{server.url}/v1/simulations",
        content=count_trace(),
        headers={"Content-Type": "text/csv"},
        params=[("policy", "hpa"), ("policy", "oracle"), ("window", "1d"), ("seed", "3")],
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/v1/simulations/{job['id']}"
    done = wait_for(server, job["id"])
    assert done["status"] == "done", done["error"]
    reports = done["result"]["reports"]
    assert [r["policy"] for r in reports] == ["hpa", "oracle"]
    for r in reports:
        assert set(r) >= KEYS
        assert r["requests"] > 0 and 0 <= r["drop_rate"] <= 1
    oracle = reports[1]
    assert oracle["cost_vs_oracle"] == pytest.approx(1.0)
    assert "| hpa |" in done["result"]["markdown"]


@pytest.mark.parametrize(
    ("body", "params", "status"),
    [
        pytest.param("not,a\ntrace,at all\n", {}, 422, id="unreadable-trace"),
        pytest.param(count_trace(), {"policy": "magic"}, 422, id="unknown-policy"),
        pytest.param(count_trace(), {"window": "soon"}, 400, id="bad-window"),
    ],
)
def test_bad_uploads(server: LiveServer, body: str, params: dict[str, str], status: int) -> None:
    response = httpx.post(
        f"{server.url}/v1/simulations",
        content=body,
        headers={"Content-Type": "text/csv"},
        params=params,
    )
    assert response.status_code == status, response.text


def push_load(server: LiveServer, end: float, hours: float) -> None:
    async def write() -> None:
        db = Database(server.settings.database_url)
        store = SeriesStore(max_series_per_job=100, lateness_us=10**13)
        times = np.arange(end - hours * 3600, end, 60.0)
        rows = [
            SampleRow(
                SeriesKey.of("request_rate", {"job": "llm", "pod": "p0"}),
                round(t * 1e6),
                float(3 + 2 * np.sin(2 * np.pi * t / DAY)),
            )
            for t in times
        ]
        async with db.transaction() as conn:
            await store.write(conn, rows, now_us=round(end * 1e6))
        await db.dispose()

    asyncio.run(write())


def test_a_scalers_stored_load_is_replayed_with_its_spec(server: LiveServer) -> None:
    assert httpx.post(f"{server.url}/v1/scalers", json=SPEC).status_code == 201
    now = time.time()
    push_load(server, now, hours=6)
    response = httpx.post(
        f"{server.url}/v1/simulations",
        json={
            "scaler": "deepseek-service",
            "start": now - 6 * 3600,
            "end": now,
            "policies": ["ciuic", "hpa"],
        },
    )
    assert response.status_code == 202, response.text
    done = wait_for(server, response.json()["id"])
    assert done["status"] == "done", done["error"]
    assert done["scaler"] == "deepseek-service"
    assert [r["policy"] for r in done["result"]["reports"]] == ["ciuic", "hpa"]


def test_tuning_returns_the_best_spec_and_the_frontier(server: LiveServer) -> None:
    assert httpx.post(f"{server.url}/v1/scalers", json=SPEC).status_code == 201
    now = time.time()
    push_load(server, now, hours=3)
    response = httpx.post(
        f"{server.url}/v1/scalers/deepseek-service/tune",
        json={"start": now - 3 * 3600, "end": now, "max_drop_rate": 0.05},
    )
    assert response.status_code == 202, response.text
    done = wait_for(server, response.json()["id"])
    assert done["status"] == "done", done["error"]
    result = done["result"]
    assert result["frontier"] and result["best_spec"] is not None
    assert result["best"]["drop_rate"] <= 0.05


@pytest.mark.parametrize(
    ("spec", "push_hours", "status"),
    [
        pytest.param({k: v for k, v in SPEC.items() if k != "capacity"}, 3, 422, id="no-capacity"),
        pytest.param(SPEC, 0, 422, id="no-history"),
    ],
)
def test_replays_need_a_capacity_and_history(
    server: LiveServer, spec: dict[str, Any], push_hours: int, status: int
) -> None:
    assert httpx.post(f"{server.url}/v1/scalers", json=spec).status_code == 201
    now = time.time()
    if push_hours:
        push_load(server, now, hours=push_hours)
    response = httpx.post(f"{server.url}/v1/simulations", json={"scaler": "deepseek-service"})
    assert response.status_code == status, response.text


def test_unknown_things_are_404(server: LiveServer) -> None:
    assert httpx.get(f"{server.url}/v1/simulations/nope").status_code == 404
    assert httpx.post(f"{server.url}/v1/simulations", json={"scaler": "nope"}).status_code == 404
    assert httpx.post(f"{server.url}/v1/scalers/nope/tune", json={}).status_code == 404
