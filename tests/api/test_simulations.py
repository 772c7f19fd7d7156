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


def test_an_upload_replayed_with_a_scalers_spec_runs_ciuic_with_that_spec(
    server: LiveServer,
) -> None:
    """`?scaler=` drives ciuic with that scaler's spec: held to two pods, the same trace
    costs less and drops more than under the default spec (the spec used to be dropped on
    the way, and both rows came out the same)."""
    assert (
        httpx.post(f"{server.url}/v1/scalers", json={**SPEC, "max_replicas": 2}).status_code == 201
    )

    def ciuic_row(**extra: str) -> dict[str, Any]:
        response = httpx.post(
            f"{server.url}/v1/simulations",
            content=count_trace(),
            headers={"Content-Type": "text/csv"},
            params={"policy": "ciuic", "window": "6h", **extra},
        )
        assert response.status_code == 202, response.text
        done = wait_for(server, response.json()["id"])
        assert done["status"] == "done", done["error"]
        row: dict[str, Any] = done["result"]["reports"][0]
        return row

    default = ciuic_row()
    capped = ciuic_row(scaler="deepseek-service")
    assert capped["gpu_hours"] < default["gpu_hours"]
    assert capped["drop_rate"] > default["drop_rate"]


@pytest.mark.parametrize(
    ("body", "params", "status"),
    [
        pytest.param("not,a\ntrace,at all\n", {}, 422, id="unreadable-trace"),
        pytest.param(count_trace(), {"policy": "magic"}, 422, id="unknown-policy"),
        pytest.param(count_trace(), {"window": "soon"}, 400, id="bad-window"),
        pytest.param(
            "timestamp,value\n2014-07-01 00:00:00,0\n2014-07-01 00:30:00,0\n",
            {},
            422,
            id="no-load-to-score",
        ),
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


def tuned(server: LiveServer) -> dict[str, Any]:
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
    return done


def test_tuning_returns_the_best_spec_and_the_frontier(server: LiveServer) -> None:
    done = tuned(server)
    result = done["result"]
    assert result["frontier"] and result["best_spec"] is not None
    assert result["best"]["drop_rate"] <= 0.05
    # the search tried every knob: the GPU target, the warm spares and the forecast band
    frontier = result["frontier"]
    assert {p["spare"] for p in frontier} >= {0, 1, 2}
    assert {p["quantile"] for p in frontier} >= {0.5, 0.75, 0.9}
    assert len({p["gpu_target"] for p in frontier}) >= 9
    assert done["request"]["generation"] == 1


def test_a_tune_is_applied_in_dry_run_first_then_enforced(server: LiveServer) -> None:
    """The operator's loop: tune, apply the knobs with `mode: dry_run` (the scaler shows
    what the tuned spec would do, and acts on nothing), then enforce. Applying is one new
    generation, audited with its changes; the knobs land on the spec as written (the
    capacity it states stays stated, nothing the author did not write is added besides the
    knobs)."""
    job = tuned(server)
    changes = job["result"]["changes"]
    applied = httpx.post(f"{server.url}/v1/simulations/{job['id']}/apply", json={"mode": "dry_run"})
    assert applied.status_code == 200, applied.text
    body = applied.json()
    assert body["changes"] == changes
    spec = body["scaler"]["spec"]
    assert spec["mode"] == "dry_run"
    assert spec["capacity"] == SPEC["capacity"] and spec["max_replicas"] == 20
    gpu = next(m for m in spec["metrics"] if m["name"] == "gpu_utilization")
    assert gpu["target"] == f"{changes['gpu_target']:g}%"
    if "spare" in changes:
        assert spec["preheat"]["min_ready"] == changes["spare"]
    assert body["scaler"]["status"]["generation"] == 2
    audit = httpx.get(f"{server.url}/v1/audit", params={"action": "scaler.replace"}).json()
    assert any(e["details"]["generation"] == 2 for e in audit["entries"]), audit

    # The spec moved on (generation 2): the same tune is not applied again over it.
    again = httpx.post(f"{server.url}/v1/simulations/{job['id']}/apply")
    assert again.status_code == 412, again.text
    assert "tune again" in again.json()["error"]["message"]
    current = httpx.get(f"{server.url}/v1/scalers/deepseek-service").json()
    assert current["status"]["generation"] == 2 and current["spec"]["mode"] == "dry_run"

    # Satisfied with the dry run's decisions, the operator enforces the tuned spec.
    enforced = httpx.put(
        f"{server.url}/v1/scalers/deepseek-service",
        json={**spec, "mode": "apply"},
        headers={"If-Match": '"2"'},
    )
    assert enforced.status_code == 200, enforced.text
    assert enforced.json()["spec"]["metrics"] == spec["metrics"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param({"mode": "sometimes"}, 422, id="unknown-mode"),
        pytest.param({"mood": "dry_run"}, 422, id="unknown-field"),
        pytest.param(b"{", 400, id="not-json"),
    ],
)
def test_a_bad_apply_changes_nothing(server: LiveServer, body: Any, status: int) -> None:
    job = tuned(server)
    url = f"{server.url}/v1/simulations/{job['id']}/apply"
    response = (
        httpx.post(url, content=body, headers={"Content-Type": "application/json"})
        if isinstance(body, bytes)
        else httpx.post(url, json=body)
    )
    assert response.status_code == status, response.text
    assert (
        httpx.get(f"{server.url}/v1/scalers/deepseek-service").json()["status"]["generation"] == 1
    )


def test_a_tune_that_finds_nothing_says_why(server: LiveServer) -> None:
    """No candidate within the limits: the job is done with `best` and `changes` null and a
    `message` naming the limit (it used to say nothing until an apply was refused)."""
    assert httpx.post(f"{server.url}/v1/scalers", json=SPEC).status_code == 201
    now = time.time()
    push_load(server, now, hours=3)
    response = httpx.post(
        f"{server.url}/v1/scalers/deepseek-service/tune",
        json={"start": now - 3 * 3600, "end": now, "max_drop_rate": 1, "monthly_budget_usd": 1},
    )
    assert response.status_code == 202, response.text
    done = wait_for(server, response.json()["id"])
    assert done["status"] == "done", done["error"]
    result = done["result"]
    assert result["best"] is None and result["changes"] is None and result["frontier"]
    message = result["message"]
    assert "met monthly_budget_usd 1 " in message and "the current spec stays" in message
    refused = httpx.post(f"{server.url}/v1/simulations/{done['id']}/apply")
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "nothing_to_apply"
    assert message in refused.json()["error"]["message"]


def test_only_a_finished_tune_can_be_applied(server: LiveServer) -> None:
    assert httpx.post(f"{server.url}/v1/simulations/nope/apply").status_code == 404
    response = httpx.post(
        f"{server.url}/v1/simulations",
        content=count_trace(),
        headers={"Content-Type": "text/csv"},
        params=[("policy", "hpa")],
    )
    job = response.json()["id"]
    wait_for(server, job)
    refused = httpx.post(f"{server.url}/v1/simulations/{job}/apply")
    assert refused.status_code == 409, refused.text
    assert "not a tune" in refused.json()["error"]["message"]


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
