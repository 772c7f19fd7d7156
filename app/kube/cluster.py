"""The cluster as the reconciler sees it: read a target's replicas, set them.

`RecordingCluster` stands in when no Kubernetes API is configured: it remembers the replicas
it was asked for and reports them all ready. It never pretends to be a real cluster; the
Kubernetes adapter and the simulated cluster implement the same protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from app.policy.spec import TargetRef

__all__ = [
    "Cluster",
    "ClusterConflict",
    "ClusterError",
    "ClusterForbidden",
    "ClusterUnavailable",
    "DeploymentState",
    "RecordingCluster",
    "TargetNotFound",
]


class ClusterError(Exception):
    """The cluster could not be read or changed (the scaler's status shows the message).

    The tree: `TargetNotFound` (404), `ClusterForbidden` (403, RBAC), `ClusterConflict` (409
    that outlived its retries), `ClusterUnavailable` (5xx, 429, timeouts, refused connections
    that outlived their retries). Anything else is a plain `ClusterError`.
    """


class TargetNotFound(ClusterError):
    pass


class ClusterForbidden(ClusterError):
    """The service account lacks a permission; `verb` and `resource` name what to grant."""

    def __init__(
        self, message: str, *, verb: str = "", resource: str = "", group: str = ""
    ) -> None:
        super().__init__(message)
        self.verb = verb
        self.resource = resource
        self.group = group


class ClusterConflict(ClusterError):
    """Someone else kept changing the object between our read and our write."""


class ClusterUnavailable(ClusterError):
    """The API server did not answer usefully after the retries (5xx, 429, timeouts)."""


@dataclass(frozen=True, slots=True)
class DeploymentState:
    replicas: int  # spec.replicas
    ready: int  # Ready and warmed up: serving traffic
    starting: int = 0  # created but not Ready, or Ready but still warming up
    # Measured pod cold start (created -> Ready), a robust high quantile of recent pods; None
    # until a pod has been seen becoming Ready. Feeds the lead time of `cold_start: learn`.
    learned_cold_start_s: float | None = None


class Cluster(Protocol):
    name: str

    async def observe(self, target: TargetRef) -> DeploymentState: ...

    async def scale(self, target: TargetRef, replicas: int) -> None: ...


class RecordingCluster:
    name = "recording"

    def __init__(self, initial_replicas: int = 1) -> None:
        self.initial_replicas = initial_replicas
        self.replicas: dict[tuple[str, str, str], int] = {}

    @staticmethod
    def _key(target: TargetRef) -> tuple[str, str, str]:
        return (target.kind, target.namespace, target.name)

    async def observe(self, target: TargetRef) -> DeploymentState:
        n = self.replicas.get(self._key(target), self.initial_replicas)
        return DeploymentState(replicas=n, ready=n)

    async def scale(self, target: TargetRef, replicas: int) -> None:
        self.replicas[self._key(target)] = replicas
