"""One call to the Kubernetes API: retries where a retry can help, and errors that say what to do.

Every request the adapter makes goes through `call`, so the mapping from HTTP statuses to our
exception tree lives in one place:

- 404 -> `TargetNotFound` ('deployments.apps "x" not found in namespace y');
- 403 -> `ClusterForbidden`, naming the verb and resource the service account's RBAC lacks;
- 409 -> `ClusterConflict` at once (the caller re-reads and retries: only it knows how);
- 429, 5xx, timeouts and connection errors -> retried with exponential backoff and jitter,
  then `ClusterUnavailable`;
- 401 and anything else -> `ClusterError` with the API server's own message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException

from app.kube.cluster import (
    ClusterConflict,
    ClusterError,
    ClusterForbidden,
    ClusterInvalid,
    ClusterUnavailable,
    TargetNotFound,
)

__all__ = ["TRANSIENT_STATUSES", "Resource", "RetryPolicy", "api_message", "call", "map_error"]

log = logging.getLogger("ciuic.kube")

T = TypeVar("T")

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TimeoutError,
    aiohttp.ClientError,
    ConnectionError,
)


@dataclass(frozen=True, slots=True)
class Resource:
    """A resource as RBAC names it: `deployments/scale` in API group `apps`."""

    plural: str
    group: str

    @property
    def qualified(self) -> str:
        """`deployments.apps`, `pods`: the spelling kubectl and the API server use."""
        base = self.plural.split("/")[0]
        return f"{base}.{self.group}" if self.group else base

    @property
    def rbac_group(self) -> str:
        return self.group or '""'


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 4  # tries per request on transient failures
    backoff_s: float = 0.2  # first pause; doubles each time
    max_backoff_s: float = 5.0
    timeout_s: float = 10.0  # total time of one request

    def pause(self, attempt: int) -> float:
        """Exponential backoff with jitter (half fixed, half random), so replicas spread out."""
        base = min(self.max_backoff_s, self.backoff_s * (2.0**attempt))
        return base / 2 + random.uniform(0, base / 2)


def api_message(exc: ApiException) -> str:
    """The Status message the API server sent, else the HTTP reason."""
    body = getattr(exc, "body", None)
    if body:
        try:
            status = json.loads(body)
        except (TypeError, ValueError):
            status = None
        if isinstance(status, dict) and status.get("message"):
            return str(status["message"])
    return str(getattr(exc, "reason", "") or f"HTTP {exc.status}")


def map_error(
    exc: ApiException, *, verb: str, resource: Resource, namespace: str, name: str = ""
) -> ClusterError | None:
    """Our exception for an API error, or None when it is worth retrying."""
    status = int(exc.status or 0)
    message = api_message(exc)
    target = f'{resource.qualified} "{name}"' if name else resource.qualified
    if status in TRANSIENT_STATUSES or status == 0:
        return None
    if status == 404:
        return TargetNotFound(f"{target} not found in namespace {namespace}")
    if status == 403:
        return ClusterForbidden(
            f"forbidden: the service account may not {verb} {resource.plural} (API group "
            f"{resource.rbac_group}) in namespace {namespace}; grant verb {verb!r} on "
            f"{resource.plural!r} in its Role (deploy/kubernetes/rbac.yaml). "
            f"API server: {message}",
            verb=verb,
            resource=resource.plural,
            group=resource.group,
        )
    if status == 409:
        return ClusterConflict(f"{verb} {target} in namespace {namespace}: conflict: {message}")
    if status == 401:
        return ClusterError(
            f"unauthorized: the API server rejected our credentials ({message}); "
            "check CIUIC_KUBECONFIG or the service account token"
        )
    if status in (400, 422):
        return ClusterInvalid(f"{verb} {target} in namespace {namespace}: HTTP {status}: {message}")
    return ClusterError(f"{verb} {target} in namespace {namespace}: HTTP {status}: {message}")


async def call(
    request: Callable[[], Awaitable[T]],
    *,
    verb: str,
    resource: Resource,
    namespace: str,
    name: str = "",
    retry: RetryPolicy,
) -> T:
    """Run `request` (one API call), retrying transient failures, mapping the rest."""
    last = ""
    for attempt in range(retry.attempts):
        if attempt:
            await asyncio.sleep(retry.pause(attempt - 1))
        try:
            return await request()
        except ApiException as exc:
            mapped = map_error(exc, verb=verb, resource=resource, namespace=namespace, name=name)
            if mapped is not None:
                raise mapped from exc
            last = f"HTTP {exc.status}: {api_message(exc)}"
        except TRANSIENT_ERRORS as exc:
            if isinstance(exc, TimeoutError):
                last = f"timed out after {retry.timeout_s:g} s"
            else:
                last = f"{type(exc).__name__}: {exc}"
        log.debug("%s %s %s/%s failed (%s); retrying", verb, resource.plural, namespace, name, last)
    target = f'{resource.qualified} "{name}"' if name else resource.qualified
    raise ClusterUnavailable(
        f"{verb} {target} in namespace {namespace} failed after {retry.attempts} attempts: {last}"
    )
