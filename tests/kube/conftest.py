"""Fixtures: a Kubernetes API emulator per test, and our adapter talking to it over HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from kubernetes_asyncio import client

from app.kube.adapter import KubernetesCluster
from app.kube.calls import RetryPolicy
from app.kube.pods import PodEvent
from testkit.kube_emulator import KubeEmulator

# Quick retries and timeouts, so failure scenarios take tenths of a second.
FAST = RetryPolicy(attempts=3, backoff_s=0.01, max_backoff_s=0.05, timeout_s=0.5)


@pytest.fixture
def kube() -> Iterator[KubeEmulator]:
    with KubeEmulator(cold_start_s=30) as emulator:
        yield emulator


def api_client(url: str, agent: str = "ciuic-test") -> client.ApiClient:
    api = client.ApiClient(client.Configuration(host=url))
    api.user_agent = agent
    return api


@pytest.fixture
async def events() -> list[PodEvent]:
    return []


@pytest.fixture
async def cluster(kube: KubeEmulator, events: list[PodEvent]) -> AsyncIterator[KubernetesCluster]:
    adapter = KubernetesCluster(
        api_client(kube.url), retry=FAST, sync_timeout_s=2.0, pod_listener=events.append
    )
    yield adapter
    await adapter.close()


async def eventually(check: Callable[[], object], timeout_s: float = 3.0) -> None:
    """Wait until `check()` is truthy (a watch delivers in milliseconds; CI may be slow)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.01)
