"""The cluster as the reconciler sees it: read a target's replicas, set them.

`RecordingCluster` stands in when no Kubernetes API is configured: it remembers the replicas
it was asked for and reports them all ready. It never pretends to be a real cluster; the
Kubernetes adapter and the simulated cluster implement the same protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from app.policy.spec import TargetRef

__all__ = ["Cluster", "ClusterError", "DeploymentState", "RecordingCluster", "TargetNotFound"]


class ClusterError(Exception):
    """The cluster could not be read or changed (the scaler's status shows the message)."""


class TargetNotFound(ClusterError):
    pass


@dataclass(frozen=True, slots=True)
class DeploymentState:
    replicas: int  # spec.replicas
    ready: int
    starting: int = 0


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
