"""Concurrent pushes to one group: last write wins for the group, no sample is lost; and a
rolling update's first pushes, with JSON batches of the same new series, create each once."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import sqlalchemy as sa

from app.store.tables import samples, series
from tests.conftest import LiveServer


async def test_concurrent_pushes_to_one_group(server: LiveServer) -> None:
    n = 30
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:

        async def push(i: int) -> int:
            body = f"# TYPE request_queue gauge\nrequest_queue {i}\n".encode()
            return (await client.put("/metrics/job/deepseek/pod/p0", content=body)).status_code

        statuses = await asyncio.gather(*(push(i) for i in range(n)))
        assert statuses == [200] * n
        [group] = (await client.get("/api/v1/metrics")).json()["data"]
        kept = int(group["request_queue"]["metrics"][0]["value"])
        assert 0 <= kept < n
        import time

        history = await client.get(
            "/v1/query_range",
            params={
                "query": "request_queue",
                "start": time.time() - 3600,
                "end": time.time() + 60,
                "step": "1h",
                "agg": "count",
            },
        )
        assert history.status_code == 200
        counts = [v for s in history.json()["series"] for _, v in s["points"]]
        assert sum(counts) == n  # every acknowledged push kept its sample


async def test_a_rolling_update_creates_each_new_series_once(
    server: LiveServer, engine_for: Any
) -> None:
    # Twenty renamed pods push their first 30 series at once, while four JSON batches carry
    # samples of the first four pods' very same series: every request succeeds, each series
    # is created once, and every sample is kept.
    def text(pod: int) -> bytes:
        lines = ["# TYPE gpu_utilization gauge"]
        lines += [f'gpu_utilization{{model="m{i}"}} {pod + i}' for i in range(30)]
        return ("\n".join(lines) + "\n").encode()

    def batch(pod: int) -> dict[str, Any]:
        labels = [{"job": "fleet", "pod": f"p{pod}", "model": f"m{i}"} for i in range(30)]
        return {
            "samples": [{"metric": "gpu_utilization", "labels": lab, "value": 1} for lab in labels]
        }

    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        pushes = [
            client.put(f"/metrics/job/fleet/pod/p{pod}", content=text(pod)) for pod in range(20)
        ]
        batches = [client.post("/v1/samples", json=batch(pod)) for pod in range(4)]
        answers = await asyncio.gather(*pushes, *batches)
    assert [a.status_code for a in answers] == [200] * 24, [a.text for a in answers]
    async with engine_for.connect() as conn:
        series_rows = await conn.scalar(sa.select(sa.func.count()).select_from(series))
        sample_rows = await conn.scalar(sa.select(sa.func.count()).select_from(samples))
    assert series_rows == 20 * 30
    assert sample_rows == 20 * 30 + 4 * 30  # each request stamped at its own receipt
