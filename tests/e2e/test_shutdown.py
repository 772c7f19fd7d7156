"""Shutting down against a real API server: the adapter's close leaves no connection behind,
even when the API server does not answer at that moment (a shutdown under load)."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from app.kube.adapter import KubernetesCluster
from app.kube.calls import RetryPolicy
from app.kube.cluster import ClusterUnavailable
from app.kube.config import api_client
from app.policy.spec import TargetRef
from app.settings import Settings
from tests.e2e.controlplane import Admin, ControlPlane, deployment, kubeconfig

NAME = "llm"


def leaks_of(
    control_plane: ControlPlane, tmp_path: Path, scenario: Callable[..., Awaitable[None]]
) -> list[str]:
    """Runs `scenario(cluster, stall)` in an event loop of its own that ends as soon as it
    returns (as a shutdown's does), with our adapter on the admin's credentials; `stall()`
    stops the API server (SIGSTOP) until the loop has ended. The ResourceWarnings of what the
    loop left open, once collected."""
    config = tmp_path / "kubeconfig"
    config.write_text(
        kubeconfig(control_plane.server, control_plane.admin_token, control_plane.ca_pem)
    )
    apiserver = int((control_plane.state / "run" / "apiserver.pid").read_text())

    async def run() -> None:
        api = await api_client(Settings(kubeconfig=str(config)))
        cluster = KubernetesCluster(api, retry=RetryPolicy(attempts=1, timeout_s=1.0))
        await scenario(cluster, lambda: os.kill(apiserver, signal.SIGSTOP))

    gc.collect()  # what earlier tests left is theirs: collected before, under pytest's rules
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        try:
            asyncio.run(run())
        finally:
            os.kill(apiserver, signal.SIGCONT)
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def test_closing_the_adapter_while_the_api_server_stalls_leaves_no_socket_open(
    control_plane: ControlPlane, admin: Admin, namespace: str, tmp_path: Path
) -> None:
    """Protects every process and test that stops the service: the watches are streaming when
    close() cancels them. Released unfinished, a TLS connection is closed gracefully, waiting
    for the API server's answer with nobody waiting for it; the event loop ended first and the
    sockets were left open (a ResourceWarning whenever they were collected, which failed an
    unrelated test now and then). A stopped API server makes that wait certain."""
    admin.create(deployment(NAME, namespace, replicas=1, ready_s=0.3))

    async def watch_then_close(cluster: KubernetesCluster, stall: Callable[[], None]) -> None:
        observed = await cluster.observe(TargetRef(namespace=namespace, name=NAME))
        assert observed.replicas == 1  # the workload and pod watches are streaming
        stall()
        await cluster.close()

    assert leaks_of(control_plane, tmp_path, watch_then_close) == []


def test_a_request_that_timed_out_leaves_no_socket_open_after_close(
    control_plane: ControlPlane, admin: Admin, namespace: str, tmp_path: Path
) -> None:
    """Protects the same from the other way a connection ends unfinished: a request that
    times out (the API server too slow, as under load) is closed by the HTTP client, which
    on this Python waits for the server's answer to its TLS close unless told to abort."""
    admin.create(deployment(NAME, namespace, replicas=1, ready_s=0.3))

    async def time_out_then_close(cluster: KubernetesCluster, stall: Callable[[], None]) -> None:
        target = TargetRef(namespace=namespace, name=NAME)
        assert (await cluster.template(target))["spec"]["containers"]  # a connection, pooled
        stall()
        with pytest.raises(ClusterUnavailable, match="timed out"):
            await cluster.template(target)
        await cluster.close()

    assert leaks_of(control_plane, tmp_path, time_out_then_close) == []
