"""The `Cluster` the reconciler drives when a Kubernetes API is configured.

`observe` takes the workload (Deployment or StatefulSet: spec.replicas and its selector) from a
per-namespace list-then-watch cache, falling back to a GET while that cache is not listed yet
or lacks the object (so a missing target is a plain 404), and counts the target's pods from a
per-namespace pod cache (`PodCache`): ready, starting, and the measured cold start. With the
caches warm, a reconcile of a thousand scalers costs no request at all, and the open watches
are two per namespace, whatever the number of scalers.

`scale` writes spec.replicas through the `scale` subresource with a JSON merge patch carrying
the resourceVersion it read, so a concurrent writer (a rollout, kubectl) makes it re-read and
retry instead of silently overwriting. Between tries it pauses (the retry policy's backoff
with jitter): right after someone else's spec change, the controller's own status writes move
the resourceVersion several times in a second, and a re-read at once would race them again.
After a few conflicts in a row it gives up until the next reconcile.

Watches start on a namespace's first `observe`; a target not observed for `idle_s` is
forgotten, and a namespace's watches stop with its last target, or on `close()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from kubernetes_asyncio import client

from app.kube.calls import Resource, RetryPolicy, call
from app.kube.cluster import (
    ClusterConflict,
    ClusterForbidden,
    DeploymentState,
    RolloutStatus,
    TargetNotFound,
    restore_patch,
)
from app.kube.informer import Informer, WatchStats
from app.kube.pods import (
    PODS,
    ColdStarts,
    LabelSelector,
    PodCache,
    PodListener,
    PodView,
    TargetPods,
)
from app.kube.resources import full_resources, partial_resources
from app.policy.deletion import DELETION_COST, deletion_costs
from app.policy.spec import TargetRef

__all__ = ["KubernetesCluster"]

log = logging.getLogger("ciuic.kube")
POD_RESIZE = Resource("pods/resize", "")

Key = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class _Kind:
    workload: Resource
    scale: Resource
    read: str  # AppsV1Api method names
    read_scale: str
    patch_scale: str
    list: str


@dataclass(frozen=True, slots=True)
class WorkloadView:
    """What observe needs of a Deployment or StatefulSet."""

    name: str
    resource_version: str
    replicas: int  # spec.replicas (the API's default, 1, when unset)
    selector: LabelSelector
    ready_replicas: int  # status, for when the pods cannot be listed
    status_replicas: int

    @classmethod
    def of(cls, obj: Any) -> WorkloadView:
        spec, status = obj.spec, obj.status
        return cls(
            name=obj.metadata.name,
            resource_version=obj.metadata.resource_version or "",
            replicas=1 if spec.replicas is None else int(spec.replicas),
            selector=LabelSelector.of(spec.selector),
            ready_replicas=int((status.ready_replicas if status else 0) or 0),
            status_replicas=int((status.replicas if status else 0) or 0),
        )


KINDS = {
    "Deployment": _Kind(
        Resource("deployments", "apps"),
        Resource("deployments/scale", "apps"),
        "read_namespaced_deployment",
        "read_namespaced_deployment_scale",
        "patch_namespaced_deployment_scale",
        "list_namespaced_deployment",
    ),
    "StatefulSet": _Kind(
        Resource("statefulsets", "apps"),
        Resource("statefulsets/scale", "apps"),
        "read_namespaced_stateful_set",
        "read_namespaced_stateful_set_scale",
        "patch_namespaced_stateful_set_scale",
        "list_namespaced_stateful_set",
    ),
}


@dataclass
class _Namespace:
    """The watch caches a target uses: its kind's workloads and the pods of its namespace."""

    workloads: Informer[WorkloadView]
    pods: PodCache


class KubernetesCluster:
    """kubernetes-asyncio over HTTP; see the module docstring for the behaviour."""

    name = "kubernetes"

    def __init__(
        self,
        api: Any,  # kubernetes_asyncio.client.ApiClient; closed by close()
        *,
        retry: RetryPolicy | None = None,
        conflict_retries: int = 3,
        sync_timeout_s: float = 5.0,
        watch_timeout_s: float = 300.0,
        idle_s: float = 600.0,
        cold_start_window: int = 20,
        cold_start_quantile: float = 0.9,
        pod_listener: PodListener | None = None,
    ) -> None:
        self.api = api
        self.retry = retry or RetryPolicy()
        self.conflict_retries = conflict_retries
        self.sync_timeout_s = sync_timeout_s
        self.watch_timeout_s = watch_timeout_s
        self.idle_s = idle_s
        self.cold_start_window = cold_start_window
        self.cold_start_quantile = cold_start_quantile
        self.pod_listener = pod_listener
        self._apps = client.AppsV1Api(api)
        self._core = client.CoreV1Api(api)
        self._resized: dict[Key, tuple[str, float]] = {}  # target -> (pod, fraction) resized
        self._workloads: dict[tuple[str, str], Informer[WorkloadView]] = {}  # (kind, ns)
        self._pods: dict[str, PodCache] = {}  # by namespace
        self._used: dict[Key, float] = {}  # when each target was last observed
        self._cold_starts: dict[Key, ColdStarts] = {}

    @staticmethod
    def _key(target: TargetRef) -> Key:
        return (target.kind, target.namespace, target.name)

    async def observe(self, target: TargetRef) -> DeploymentState:
        space = await self._space(target)
        if isinstance(space.workloads.error, ClusterForbidden):
            # list or watch refused: a GET would still answer, so say so rather than serve
            # every reconcile by GETs (or from a cache that no longer follows the API)
            raise space.workloads.error
        workload = self._cached(space, target) or await self._read(target)
        key = self._key(target)
        cold_starts = self._cold_starts.setdefault(
            key, ColdStarts(self.cold_start_window, self.cold_start_quantile)
        )
        mine = space.pods.track(key, workload.selector, cold_starts)
        try:
            await space.pods.wait_synced(self.sync_timeout_s)
        except TimeoutError:
            # The pods cannot be listed yet: the workload's own counts are the best we have
            # (no warm-up gating), and the scaler still gets a decision.
            ready, total = workload.ready_replicas, workload.status_replicas
            log.warning(
                "pods of %s/%s not listed (%s); using the workload's status",
                target.namespace,
                target.name,
                space.pods.error,
            )
            return DeploymentState(
                workload.replicas, ready, max(0, total - ready), cold_starts.value()
            )
        if isinstance(space.pods.error, ClusterForbidden):
            raise space.pods.error  # e.g. list allowed, watch not: the counts would go stale
        ready, starting = mine.counts()
        return DeploymentState(
            workload.replicas,
            ready,
            starting,
            cold_starts.value(),
            ready_pods=mine.serving(),
            unscheduled_since=mine.unscheduled(),
        )

    async def _read(self, target: TargetRef) -> WorkloadView:
        kind = KINDS[target.kind]
        workload = await call(
            lambda: getattr(self._apps, kind.read)(
                target.name, target.namespace, _request_timeout=self.retry.timeout_s
            ),
            verb="get",
            resource=kind.workload,
            namespace=target.namespace,
            name=target.name,
            retry=self.retry,
        )
        return WorkloadView.of(workload)

    @staticmethod
    def _cached(space: _Namespace, target: TargetRef) -> WorkloadView | None:
        """The workload from the namespace's watch cache, once that has listed."""
        if not space.workloads.synced.is_set():
            return None
        return space.workloads.items.get(target.name)

    async def _space(self, target: TargetRef) -> _Namespace:
        """The target's watch caches (started on first use); forgets idle targets and stops
        the caches no target uses any more."""
        now = time.monotonic()
        key = self._key(target)
        self._used[key] = now
        idle = [k for k, used in self._used.items() if now - used > self.idle_s]
        for other in idle:
            del self._used[other]
            if other[1] in self._pods:
                self._pods[other[1]].untrack(other)
        if idle:
            for where in set(self._workloads) - {(k, ns) for k, ns, _ in self._used}:
                await self._workloads.pop(where).stop()
            for ns in set(self._pods) - {ns for _, ns, _ in self._used}:
                await self._pods.pop(ns).stop()
        workloads = self._workloads.get((target.kind, target.namespace))
        if workloads is None:
            kind = KINDS[target.kind]
            workloads = self._workloads[(target.kind, target.namespace)] = Informer(
                getattr(self._apps, kind.list),
                resource=kind.workload,
                namespace=target.namespace,
                selector="",
                retry=self.retry,
                view=WorkloadView.of,
                watch_timeout_s=self.watch_timeout_s,
            )
            workloads.start()
        pods = self._pods.get(target.namespace)
        if pods is None:
            pods = self._pods[target.namespace] = PodCache(
                self._core,
                namespace=target.namespace,
                retry=self.retry,
                watch_timeout_s=self.watch_timeout_s,
                listener=self.pod_listener,
            )
            pods.start()
        return _Namespace(workloads, pods)

    async def _pause_after_conflict(self, attempt: int) -> None:
        """Let the writes that raced ours settle before reading again (see the module doc)."""
        await asyncio.sleep(self.retry.pause(attempt - 1))

    async def scale(self, target: TargetRef, replicas: int) -> None:
        kind = KINDS[target.kind]
        ns, name = target.namespace, target.name
        for attempt in range(self.conflict_retries + 1):
            if attempt:
                await self._pause_after_conflict(attempt)
            current = await call(
                lambda: getattr(self._apps, kind.read_scale)(
                    name, ns, _request_timeout=self.retry.timeout_s
                ),
                verb="get",
                resource=kind.scale,
                namespace=ns,
                name=name,
                retry=self.retry,
            )
            if current.spec.replicas == replicas:
                return
            patch = {
                "metadata": {"resourceVersion": current.metadata.resource_version},
                "spec": {"replicas": replicas},
            }
            try:
                await call(
                    partial(
                        getattr(self._apps, kind.patch_scale),
                        name,
                        ns,
                        patch,
                        _content_type="application/merge-patch+json",
                        _request_timeout=self.retry.timeout_s,
                    ),
                    verb="patch",
                    resource=kind.scale,
                    namespace=ns,
                    name=name,
                    retry=self.retry,
                )
                return
            except ClusterConflict:
                log.info("scale %s/%s: conflict, reading it again", ns, name)
        raise ClusterConflict(
            f'{kind.workload.qualified} "{name}" in namespace {ns} kept changing: '
            f"{self.conflict_retries + 1} conflicting writes in a row; will retry next reconcile"
        )

    # ---- rollouts: the pod template and the controller's progress ---------------------------
    # Patching spec.template needs `patch` on deployments (statefulsets), granted by its own
    # ClusterRole (deploy/kubernetes/rbac.yaml: ciuic-rollouts), so scaling alone stays
    # least-privilege.

    async def _read_workload(self, target: TargetRef) -> Any:
        kind = KINDS[target.kind]
        return await call(
            lambda: getattr(self._apps, kind.read)(
                target.name, target.namespace, _request_timeout=self.retry.timeout_s
            ),
            verb="get",
            resource=kind.workload,
            namespace=target.namespace,
            name=target.name,
            retry=self.retry,
        )

    async def _patch_workload(
        self, target: TargetRef, body: dict[str, Any], content_type: str
    ) -> None:
        kind = KINDS[target.kind]
        method = "patch" + kind.read.removeprefix("read")
        await call(
            partial(
                getattr(self._apps, method),
                target.name,
                target.namespace,
                body,
                # An unknown field is a 400, not a warning and an unchanged object that a
                # rollout would follow to "succeeded".
                field_validation="Strict",
                _content_type=content_type,
                _request_timeout=self.retry.timeout_s,
            ),
            verb="patch",
            resource=kind.workload,
            namespace=target.namespace,
            name=target.name,
            retry=self.retry,
        )

    async def template(self, target: TargetRef) -> dict[str, Any]:
        workload = await self._read_workload(target)
        template: dict[str, Any] = self.api.sanitize_for_serialization(workload.spec.template)
        return template

    async def patch_template(self, target: TargetRef, patch: dict[str, Any]) -> None:
        """A strategic merge patch (containers merge by name), as `kubectl patch` sends."""
        await self._patch_workload(
            target, {"spec": {"template": patch}}, "application/strategic-merge-patch+json"
        )

    async def set_template(self, target: TargetRef, template: dict[str, Any]) -> None:
        """Restore `template` exactly: a merge patch of the difference, conditional on the
        resourceVersion read, re-read and retried on a conflict."""
        for attempt in range(self.conflict_retries + 1):
            if attempt:
                await self._pause_after_conflict(attempt)
            workload = await self._read_workload(target)
            current = self.api.sanitize_for_serialization(workload.spec.template)
            diff = restore_patch(current, template)
            if not diff:
                return
            body = {
                "metadata": {"resourceVersion": workload.metadata.resource_version},
                "spec": {"template": diff},
            }
            try:
                await self._patch_workload(target, body, "application/merge-patch+json")
                return
            except ClusterConflict:
                log.info(
                    "template %s/%s: conflict, reading it again", target.namespace, target.name
                )
        raise ClusterConflict(
            f"{target.kind} {target.name!r} in namespace {target.namespace} kept changing: "
            f"{self.conflict_retries + 1} conflicting writes in a row"
        )

    async def rollout_status(self, target: TargetRef) -> RolloutStatus:
        workload = await self._read_workload(target)
        status = workload.status
        spec_replicas = workload.spec.replicas

        def count(field_name: str) -> int:
            return int(getattr(status, field_name, None) or 0) if status else 0

        return RolloutStatus(
            generation=int(workload.metadata.generation or 0),
            observed_generation=count("observed_generation"),
            replicas=1 if spec_replicas is None else int(spec_replicas),
            updated=count("updated_replicas"),
            available=count("available_replicas"),
            total=count("replicas"),
            ready=count("ready_replicas"),
        )

    async def resize_partial(self, target: TargetRef, fraction: float | None) -> str | None:
        """In-place resize (`pods/{name}/resize`) of the youngest serving pod to `fraction`
        of the template's CPU and memory; None puts a resized pod back to whole. A cluster
        without the subresource (before Kubernetes 1.33) gets the plan rounded up."""
        key = self._key(target)
        previous = self._resized.get(key)
        tracked = self.cached_pods(target)
        serving = sorted(
            (p for p in (tracked.pods.values() if tracked else ()) if p.serving),
            key=lambda p: (p.created or 0.0, p.name),
        )
        names = {p.name for p in serving}
        if fraction is None:
            if previous is not None and previous[0] in names:
                await self._resize(target, previous[0], full_resources(await self.template(target)))
            self._resized.pop(key, None)
            return None
        if not serving:
            return "no serving pod to resize yet: the partial pod runs whole"
        pick = serving[-1].name
        if previous == (pick, fraction):
            return None  # already applied: no request
        template = await self.template(target)
        containers = partial_resources(template, fraction)
        if not containers:
            return "the pod template sets no CPU or memory to share: the partial pod runs whole"
        try:
            if previous is not None and previous[0] != pick and previous[0] in names:
                await self._resize(target, previous[0], full_resources(template))
            await self._resize(target, pick, containers)
        except TargetNotFound:
            self._resized.pop(key, None)
            return (
                "in-place pod resize (pods/resize, Kubernetes >= 1.33) is not available: "
                "the partial pod runs whole"
            )
        self._resized[key] = (pick, fraction)
        return None

    async def _resize(self, target: TargetRef, pod: str, containers: list[dict[str, Any]]) -> None:
        await call(
            partial(
                self._core.patch_namespaced_pod_resize,
                pod,
                target.namespace,
                {"spec": {"containers": containers}},
                _request_timeout=self.retry.timeout_s,
            ),
            verb="patch",
            resource=POD_RESIZE,
            namespace=target.namespace,
            name=pod,
            retry=self.retry,
        )

    async def prefer_deletion(self, target: TargetRef, busy: Mapping[str, float]) -> int:
        """Annotate the serving pods whose deletion cost changed (`patch` on pods). A pod
        gone meanwhile is skipped: it is going anyway. Deployments only: a StatefulSet
        always removes its highest ordinals."""
        if target.kind != "Deployment":
            return 0
        tracked = self.cached_pods(target)
        serving = [p for p in (tracked.pods.values() if tracked else ()) if p.serving]
        costs = deletion_costs(
            {p.name: busy.get(p.name) for p in serving}, {p.name: p.deletion_cost for p in serving}
        )
        for pod, cost in sorted(costs.items()):
            body = {"metadata": {"annotations": {DELETION_COST: str(cost)}}}
            with contextlib.suppress(TargetNotFound):
                await call(
                    partial(
                        self._core.patch_namespaced_pod,
                        pod,
                        target.namespace,
                        body,  # a strategic merge patch: the one annotation, merged
                        _request_timeout=self.retry.timeout_s,
                    ),
                    verb="patch",
                    resource=PODS,
                    namespace=target.namespace,
                    name=pod,
                    retry=self.retry,
                )
        return len(costs)

    def learned_cold_start_s(self, target: TargetRef) -> float | None:
        found = self._cold_starts.get(self._key(target))
        return found.value() if found else None

    def watch_stats(self, target: TargetRef) -> WatchStats | None:
        """The pod watch of the target's namespace (lists, watches, 410s, errors, events)."""
        pods = self._pods.get(target.namespace)
        return pods.stats if pods else None

    def cached_pods(self, target: TargetRef) -> TargetPods | None:
        """The target's pods as the watch has them now (no request)."""
        pods = self._pods.get(target.namespace)
        return pods.targets.get(self._key(target)) if pods else None

    def cached_pod(self, target: TargetRef, name: str) -> PodView | None:
        pods = self._pods.get(target.namespace)
        return pods.items.get(name) if pods else None

    async def close(self) -> None:
        """Stop every watch and close the HTTP client."""
        informers: list[Informer[Any]] = [*self._workloads.values(), *self._pods.values()]
        self._workloads, self._pods, self._used = {}, {}, {}
        for informer in informers:
            await informer.stop()
        await self.api.close()
