"""From settings to a Kubernetes client: a kubeconfig file, the pod's service account, or none.

`build_cluster(settings)` returns a `KubernetesCluster`, or None when no cluster is configured
(the caller then uses the built-in one). `build_elector(settings, cluster)` makes the Lease
elector on the same HTTP client.
"""

from __future__ import annotations

import socket
import sys
import uuid
from typing import Any

from kubernetes_asyncio import client, config

from app.clock import Clock
from app.kube.adapter import KubernetesCluster
from app.kube.calls import RetryPolicy
from app.kube.cluster import ClusterError
from app.kube.lease import LeaseElector
from app.settings import Settings

__all__ = ["api_client", "build_cluster", "build_elector", "default_identity"]


async def api_client(settings: Settings) -> Any | None:
    """An ApiClient for the configured cluster, or None when none is configured."""
    configuration = client.Configuration()
    try:
        if settings.kubeconfig:
            await config.load_kube_config(
                config_file=settings.kubeconfig,
                context=settings.kube_context,
                client_configuration=configuration,
                persist_config=False,
            )
        elif settings.in_cluster:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            return None
    except (config.ConfigException, OSError, ValueError) as exc:
        source = settings.kubeconfig or "the in-cluster service account"
        raise ClusterError(
            f"cannot load the Kubernetes configuration from {source}: {exc}"
        ) from exc
    api = client.ApiClient(configuration=configuration)
    _abort_abandoned_tls(api)
    return api


def _abort_abandoned_tls(api: Any) -> None:
    """Have the HTTP client abort the TLS connections it closed unfinished (a request that
    timed out): within 2 s, and at once when it closes. Before Python 3.12.8 asyncio keeps
    such a connection open until the API server answers its TLS close: 30 s against a stalled
    one, and for good if the event loop ends first (a shutdown). That is aiohttp's
    `enable_cleanup_closed`, which kubernetes_asyncio does not set on the connector it builds;
    aiohttp has no public way to set it afterwards."""
    v = sys.version_info
    if v >= (3, 12, 8) and not (3, 13, 0) <= v < (3, 13, 1):  # fixed in asyncio (aiohttp then
        return  # ignores the setting, with a warning)
    connector = api.rest_client.pool_manager.connector
    arm = getattr(connector, "_cleanup_closed", None)
    if arm is None or not hasattr(connector, "_cleanup_closed_disabled"):
        return  # an aiohttp without it: the leak is the library's again, nothing breaks
    connector._cleanup_closed_disabled = False
    arm()  # the periodic pass; the connector's close aborts what is left


async def build_cluster(settings: Settings) -> KubernetesCluster | None:
    api = await api_client(settings)
    if api is None:
        return None
    retry = RetryPolicy(attempts=settings.kube_retries, timeout_s=settings.kube_request_timeout_s)
    return KubernetesCluster(api, retry=retry)


def default_identity() -> str:
    """Host name plus a random suffix: two processes on one host never share an identity."""
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"


def build_elector(
    settings: Settings, cluster: KubernetesCluster, clock: Clock | None = None
) -> LeaseElector:
    return LeaseElector(
        cluster.api,
        name=settings.lease_name,
        namespace=settings.namespace,
        identity=settings.leader_identity or default_identity(),
        lease_duration_s=settings.lease_duration_s,
        renew_deadline_s=settings.lease_renew_deadline_s,
        retry_period_s=settings.lease_retry_period_s,
        clock=clock,
    )
