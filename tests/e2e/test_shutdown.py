"""Shutting down against a real API server: the adapter's close leaves no connection behind,
even when the API server does not answer at that moment (a shutdown under load)."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import warnings
from pathlib import Path

from app.kube.adapter import KubernetesCluster
from app.kube.config import api_client
from app.policy.spec import TargetRef
from app.settings import Settings
from tests.e2e.controlplane import Admin, ControlPlane, deployment, kubeconfig

NAME = "llm"


def test_closing_the_adapter_while_the_api_server_stalls_leaves_no_socket_open(
    control_plane: ControlPlane, admin: Admin, namespace: str, tmp_path: Path
) -> None:
    """Protects every process and test that stops the service: the watches are streaming when
    close() cancels them. Released unfinished, a TLS connection is closed gracefully, waiting
    for the API server's answer with nobody waiting for it; the event loop ended first and the
    sockets were left open (a ResourceWarning whenever they were collected, which failed an
    unrelated test now and then). A stopped API server makes that wait certain."""
    admin.create(deployment(NAME, namespace, replicas=1, ready_s=0.3))
    config = tmp_path / "kubeconfig"
    config.write_text(
        kubeconfig(control_plane.server, control_plane.admin_token, control_plane.ca_pem)
    )
    apiserver = int((control_plane.state / "run" / "apiserver.pid").read_text())

    async def watch_then_close() -> None:
        cluster = KubernetesCluster(await api_client(Settings(kubeconfig=str(config))))
        observed = await cluster.observe(TargetRef(namespace=namespace, name=NAME))
        assert observed.replicas == 1  # the workload and pod watches are streaming
        os.kill(apiserver, signal.SIGSTOP)
        await cluster.close()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        try:
            asyncio.run(watch_then_close())  # the loop ends right after the close
        finally:
            os.kill(apiserver, signal.SIGCONT)
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []
