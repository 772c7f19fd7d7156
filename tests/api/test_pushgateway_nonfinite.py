"""NaN and ±Inf pushed with the real prometheus_client, then every surface that reads them.

The Pushgateway protocol allows them (`NaN`, `+Inf`, `-Inf` are sample values), so the push
is accepted and the group re-exposes exactly what was pushed, as the real Pushgateway does.
They never reach the time series that queries, rollups, Grafana and the policy read: there a
non-finite value would be an answer that is not JSON (`Infinity`), a 500, or an average that
is inf for the whole minute.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.exposition import push_to_gateway

from app.kube.cluster import RecordingCluster
from app.store.db import Database
from app.store.rollups import roll_up
from app.store.tables import rollups_1h, rollups_1m, samples
from app.workers.reconciler import reconcile_once
from tests.api.test_scalers_api import BRIEF
from tests.conftest import LiveServer

JOB = "deepseek-monitor"


def strict_json(response: httpx.Response) -> Any:
    """The body as JSON proper: `NaN`, `Infinity` and `-Infinity` are not JSON."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in the body of {response.request.url}")

    assert response.status_code == 200, response.text
    return json.loads(response.text, parse_constant=refuse)


def push(server: LiveServer, a: float, b: float = 60.0) -> None:
    """The brief's gauge, one sample per pod: `gpu_utilization{pod="a"} <a>`."""
    registry = CollectorRegistry()
    gauge = Gauge("gpu_utilization", "GPU utilisation", ["pod"], registry=registry)
    gauge.labels(pod="a").set(a)
    gauge.labels(pod="b").set(b)
    push_to_gateway(server.hostport, job=JOB, registry=registry)


def group_values(server: LiveServer) -> dict[str, str]:
    [group] = strict_json(httpx.get(f"{server.url}/api/v1/metrics"))["data"]
    return {m["labels"]["pod"]: m["value"] for m in group["gpu_utilization"]["metrics"]}


def stored_values(server: LiveServer) -> list[float]:
    async def read() -> list[float]:
        db = Database(server.settings.database_url)
        try:
            async with db.read() as conn:
                return [float(v) for (v,) in (await conn.execute(sa.select(samples.c.value)))]
        finally:
            await db.dispose()

    return asyncio.run(read())


def points_by_pod(server: LiveServer, agg: str, step: str) -> tuple[str, dict[str, list[float]]]:
    now = time.time()
    body = strict_json(
        httpx.get(
            f"{server.url}/v1/query_range",
            params={
                "query": f'gpu_utilization{{job="{JOB}"}}',
                "start": now - 7200,
                "end": now + 300,
                "step": step,
                "agg": agg,
            },
        )
    )
    return body["source"], {s["labels"]["pod"]: [v for _, v in s["points"]] for s in body["series"]}


# Pod "a" pushes each value in turn (pod "b" stays at 60): what the group shows after each.
PUSHES = [
    pytest.param(40.0, "40", id="finite"),
    pytest.param(math.inf, "+Inf", id="plus-inf"),
    pytest.param(math.nan, "NaN", id="nan"),
    pytest.param(-math.inf, "-Inf", id="minus-inf"),
]


def test_non_finite_pushes_are_kept_in_the_group_and_kept_out_of_the_series(
    server: LiveServer,
) -> None:
    doc = yaml.safe_load(BRIEF) | {"schedule": [], "preheat": {"enabled": False}}
    doc["metrics"] = [dict(m, selector={"job": JOB}) for m in doc["metrics"]]
    assert httpx.post(f"{server.url}/v1/scalers", json=doc).status_code == 201

    # The Pushgateway side: every push is accepted, and GET shows exactly what was pushed.
    for param in PUSHES:
        value, shown = param.values
        push(server, float(value))  # type: ignore[arg-type]
        assert group_values(server) == {"a": shown, "b": "60"}, param.id

    # The samples table holds only the finite readings: a = 40, b = 60 four times.
    assert sorted(stored_values(server)) == [40.0] + [60.0] * 4

    # /v1/query_range over raw samples: valid JSON, and no aggregate poisoned.
    for agg, a_expected in (("avg", 40.0), ("min", 40.0), ("max", 40.0), ("sum", 40.0)):
        source, pods = points_by_pod(server, agg, "3h")
        assert source == "rollup_1h" or source == "raw"
        assert pods["a"] and all(v == a_expected for v in pods["a"]), (agg, pods)
        assert all(math.isfinite(v) for v in pods["b"])

    # The rollups: every bucket finite; the 1-minute query served from them agrees.
    async def rollup() -> list[tuple[float, float, float]]:
        db = Database(server.settings.database_url)
        try:
            await roll_up(db, now_us=round((time.time() + 120) * 1e6), lateness_us=0)
            async with db.read() as conn:
                rows = []
                for table in (rollups_1m, rollups_1h):
                    query = sa.select(table.c.sum, table.c.min, table.c.max)
                    rows += [tuple(map(float, r)) for r in await conn.execute(query)]
                return rows
        finally:
            await db.dispose()

    rolled = asyncio.run(rollup())
    assert rolled and all(math.isfinite(v) for row in rolled for v in row), rolled
    source, pods = points_by_pod(server, "avg", "1m")
    assert source == "rollup_1m"
    assert pods["a"] and all(v == 40.0 for v in pods["a"]), pods

    # Grafana's datasource: strict JSON, finite datapoints.
    now_ms = int(time.time() * 1000)
    frames = strict_json(
        httpx.post(
            f"{server.url}/grafana/query",
            json={
                "range": {"from": now_ms - 3_600_000, "to": now_ms + 60_000},
                "intervalMs": 60_000,
                "maxDataPoints": 100,
                "targets": [{"refId": "A", "target": f'gpu_utilization{{job="{JOB}"}}'}],
            },
        )
    )
    datapoints = [p[0] for f in frames for p in f["datapoints"]]
    assert datapoints and all(math.isfinite(v) for v in datapoints), frames

    # The policy: the decision reads the newest finite reading of each pod (a 40, b 60).
    decision = strict_json(httpx.get(f"{server.url}/v1/scalers/deepseek-service/decision"))
    reading = decision["observation"]["metrics"]["gpu_utilization"]
    assert (reading["value"], reading["pods_reporting"]) == (50.0, 2), decision
    assert "invalid value" not in json.dumps(decision["reasons"])

    # A real reconcile pass records that decision; the scaler and its events read back.
    async def reconcile() -> None:
        db = Database(server.settings.database_url)
        try:
            await reconcile_once(
                db, RecordingCluster(initial_replicas=1), server.app.state.ctx.clock
            )
        finally:
            await db.dispose()

    asyncio.run(reconcile())
    scaler = strict_json(httpx.get(f"{server.url}/v1/scalers/deepseek-service"))
    assert scaler["status"]["last_decision"]["replicas"] == decision["replicas"], scaler
    events = strict_json(httpx.get(f"{server.url}/v1/scalers/deepseek-service/events"))
    assert {e["kind"] for e in events["events"]} >= {"spec", "action"}, events
