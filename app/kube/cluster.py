"""The cluster as the reconciler sees it: read a target's replicas, set them.

`RecordingCluster` stands in when no Kubernetes API is configured: it remembers the replicas
it was asked for and reports them all ready. It never pretends to be a real cluster; the
Kubernetes adapter and the simulated cluster implement the same protocol.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from app.policy.deletion import deletion_costs
from app.policy.spec import TargetRef

__all__ = [
    "Cluster",
    "ClusterConflict",
    "ClusterError",
    "ClusterForbidden",
    "ClusterInvalid",
    "ClusterUnavailable",
    "DeploymentState",
    "RecordingCluster",
    "RolloutStatus",
    "TargetNotFound",
    "merge_patch",
    "restore_patch",
    "strategic_merge",
]


class ClusterError(Exception):
    """The cluster could not be read or changed (the scaler's status shows the message).

    The tree: `TargetNotFound` (404), `ClusterForbidden` (403, RBAC), `ClusterConflict` (409
    that outlived its retries), `ClusterInvalid` (400, 422: the request itself is refused),
    `ClusterUnavailable` (5xx, 429, timeouts, refused connections that outlived their
    retries). Anything else is a plain `ClusterError`.
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


class ClusterInvalid(ClusterError):
    """The API server refused the request itself (400, 422): sending it again changes
    nothing, e.g. a template patch naming a field the object does not have."""


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
    # The names of the Ready pods (their pushes are the load), None when not known: a pod
    # being deleted keeps its last samples in the store for a metric's window.
    ready_pods: frozenset[str] | None = None
    # The creation times of the starting pods the scheduler has found no node for (Pending,
    # unscheduled): past a cold start, capacity that is not coming (app.policy.pending).
    unscheduled_since: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class RolloutStatus:
    """A workload's rollout progress, as `kubectl rollout status` reads it."""

    generation: int  # metadata.generation
    observed_generation: int  # status.observedGeneration
    replicas: int  # spec.replicas
    updated: int  # status.updatedReplicas: pods of the current template
    available: int  # status.availableReplicas
    total: int = 0  # status.replicas: every pod, old templates included
    ready: int = 0  # status.readyReplicas

    @property
    def complete(self) -> bool:
        """The controller saw the latest spec, every pod runs it, all are available and no
        pod of an older template is left."""
        return (
            self.observed_generation >= self.generation
            and self.updated == self.replicas
            and self.available >= self.replicas
            and self.total <= self.replicas
        )


class Cluster(Protocol):
    name: str

    async def observe(self, target: TargetRef) -> DeploymentState: ...

    async def scale(self, target: TargetRef, replicas: int) -> None: ...

    async def template(self, target: TargetRef) -> dict[str, Any]:
        """The workload's pod template (spec.template), as JSON."""
        ...

    async def patch_template(self, target: TargetRef, patch: dict[str, Any]) -> None:
        """Apply a strategic merge patch to spec.template (a no-op patch changes nothing)."""
        ...

    async def set_template(self, target: TargetRef, template: dict[str, Any]) -> None:
        """Make spec.template exactly `template` (a rollback)."""
        ...

    async def rollout_status(self, target: TargetRef) -> RolloutStatus: ...

    async def prefer_deletion(self, target: TargetRef, busy: Mapping[str, float]) -> int:
        """Before a scale-down: mark the serving pods with deletion costs from their load
        (`busy`, by pod name; app.policy.deletion) so the idle ones go first. Returns how
        many pods were marked (only those whose cost changed)."""
        ...

    async def resize_partial(self, target: TargetRef, fraction: float | None) -> str | None:
        """Give one serving pod `fraction` of its CPU and memory in place (None: every pod
        whole again). Returns why the plan was rounded up instead, or None when applied."""
        ...


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: dicts merge, None deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _named(items: list[Any]) -> bool:
    return all(isinstance(i, dict) and "name" in i for i in items)


def strategic_merge(target: Any, patch: Any) -> Any:
    """A strategic merge patch as the API server applies it to a pod template, for the parts
    a rollout uses: dicts merge, None deletes, and lists of named items (containers, env,
    volumes, ports) merge by `name`; other lists are replaced."""
    if isinstance(patch, list) and isinstance(target, list) and _named(patch) and _named(target):
        out = [copy.deepcopy(i) for i in target]
        for item in patch:
            at = next((n for n, t in enumerate(out) if t["name"] == item["name"]), None)
            if at is None:
                out.append(copy.deepcopy(item))
            else:
                out[at] = strategic_merge(out[at], item)
        return out
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out_d = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out_d.pop(key, None)
        else:
            out_d[key] = strategic_merge(out_d.get(key), value)
    return out_d


def restore_patch(current: Any, wanted: Any) -> Any:
    """The JSON merge patch that turns `current` into `wanted` (keys only in `current` are
    deleted with None; lists and scalars are replaced whole)."""
    if not isinstance(current, dict) or not isinstance(wanted, dict):
        return copy.deepcopy(wanted)
    patch: dict[str, Any] = {k: None for k in current if k not in wanted}
    for key, value in wanted.items():
        if key not in current:
            patch[key] = copy.deepcopy(value)
        elif current[key] != value:
            patch[key] = restore_patch(current[key], value)
    return patch


class RecordingCluster:
    name = "recording"

    def __init__(self, initial_replicas: int = 1, *, pod_names: bool = False) -> None:
        self.initial_replicas = initial_replicas
        self.pod_names = pod_names  # report `<target>-<i>` as the Ready pods' names
        self.replicas: dict[tuple[str, str, str], int] = {}
        self.templates: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.generations: dict[tuple[str, str, str], int] = {}
        self.template_patches: list[dict[str, Any]] = []
        self.partial: dict[tuple[str, str, str], float] = {}
        self.deletion_costs: dict[tuple[str, str, str], dict[str, int]] = {}

    @staticmethod
    def _key(target: TargetRef) -> tuple[str, str, str]:
        return (target.kind, target.namespace, target.name)

    async def resize_partial(self, target: TargetRef, fraction: float | None) -> str | None:
        if fraction is None:
            self.partial.pop(self._key(target), None)
        else:
            self.partial[self._key(target)] = fraction
        return None

    async def prefer_deletion(self, target: TargetRef, busy: Mapping[str, float]) -> int:
        state = await self.observe(target)
        costs = self.deletion_costs.setdefault(self._key(target), {})
        pods = state.ready_pods or frozenset()
        changed = deletion_costs({p: busy.get(p) for p in pods}, costs)
        costs.update(changed)
        return len(changed)

    async def observe(self, target: TargetRef) -> DeploymentState:
        n = self.replicas.get(self._key(target), self.initial_replicas)
        names = frozenset(f"{target.name}-{i}" for i in range(n)) if self.pod_names else None
        return DeploymentState(replicas=n, ready=n, ready_pods=names)

    async def scale(self, target: TargetRef, replicas: int) -> None:
        self.replicas[self._key(target)] = replicas

    async def template(self, target: TargetRef) -> dict[str, Any]:
        default = {
            "metadata": {"labels": {"app": target.name}},
            "spec": {"containers": [{"name": "main", "image": f"{target.name}:1"}]},
        }
        return copy.deepcopy(self.templates.get(self._key(target), default))

    async def patch_template(self, target: TargetRef, patch: dict[str, Any]) -> None:
        self.template_patches.append(copy.deepcopy(patch))
        await self.set_template(target, strategic_merge(await self.template(target), patch))

    async def set_template(self, target: TargetRef, template: dict[str, Any]) -> None:
        key = self._key(target)
        if template != await self.template(target):
            self.generations[key] = self.generations.get(key, 1) + 1
        self.templates[key] = copy.deepcopy(template)

    async def rollout_status(self, target: TargetRef) -> RolloutStatus:
        """A recording cluster rolls out at once: every pod is updated and available."""
        n = self.replicas.get(self._key(target), self.initial_replicas)
        gen = self.generations.get(self._key(target), 1)
        return RolloutStatus(gen, gen, n, n, n, n, n)
