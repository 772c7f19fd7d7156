"""Concurrent pushes to one group: last write wins for the group, no sample is lost."""

from __future__ import annotations

import asyncio

import httpx

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
