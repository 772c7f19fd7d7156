"""The `Cluster` the reconciler drives when a Kubernetes API is configured.

`observe` takes the workload (Deployment or StatefulSet: spec.replicas and its selector) from a
per-namespace list-then-watch cache, falling back to a GET while that cache is not listed yet
or lacks the object (so a missing target is a plain 404), and counts pods from a per-target
cache (`PodWatcher`): ready, starting, and the measured cold start. With the caches warm, a
reconcile of a thousand scalers costs no request at all.

`scale` writes spec.replicas through the `scale` subresource with a JSON merge patch carrying
the resourceVersion it read, so a concurrent writer (a rollout, kubectl) makes it re-read and
retry instead of silently overwriting; after a few conflicts in a row it gives up until the
next reconcile.

Watches start on a target's first `observe`, restart when its selector changes, and stop
after `idle_s` without an `observe`, or on `close()`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from kubernetes_asyncio import client

from app.kube.api import Resource, RetryPolicy, call
from app.kube.cluster import ClusterConflict, DeploymentState
from app.kube.informer import Informer, WatchStats
from app.kube.pods import ColdStarts, PodListener, PodWatcher, selector_string
from app.policy.spec import TargetRef

__all__ = ["KubernetesCluster"]

log = logging.getLogger("ciuic.kube")

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
    selector: str
    ready_replicas: int  # status, for when the pods cannot be listed
    status_replicas: int

    @classmethod
    def of(cls, obj: Any) -> WorkloadView:
        spec, status = obj.spec, obj.status
        return cls(
            name=obj.metadata.name,
            resource_version=obj.metadata.resource_version or "",
            replicas=1 if spec.replicas is None else int(spec.replicas),
            selector=selector_string(spec.selector),
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
class _Tracked:
    watcher: PodWatcher
    used: float = field(default_factory=time.monotonic)


@dataclass
class _Workloads:
    informer: Informer[WorkloadView]
    used: float = field(default_factory=time.monotonic)


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
        self._tracked: dict[Key, _Tracked] = {}
        self._workloads: dict[tuple[str, str], _Workloads] = {}
        self._cold_starts: dict[Key, ColdStarts] = {}

    @staticmethod
    def _key(target: TargetRef) -> Key:
        return (target.kind, target.namespace, target.name)

    async def observe(self, target: TargetRef) -> DeploymentState:
        workload = self._cached(target) or await self._read(target)
        replicas = workload.replicas
        watcher = await self._watcher(target, workload.selector)
        cold_starts = self._cold_starts[self._key(target)]
        try:
            await watcher.wait_synced(self.sync_timeout_s)
        except TimeoutError:
            # The pods cannot be listed yet: the workload's own counts are the best we have
            # (no warm-up gating), and the scaler still gets a decision.
            ready, total = workload.ready_replicas, workload.status_replicas
            log.warning(
                "pods of %s/%s not listed (%s); using the workload's status",
                target.namespace,
                target.name,
                watcher.error,
            )
            return DeploymentState(replicas, ready, max(0, total - ready), cold_starts.value())
        ready, starting = watcher.counts()
        return DeploymentState(replicas, ready, starting, cold_starts.value())

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

    def _cached(self, target: TargetRef) -> WorkloadView | None:
        """The workload from the namespace's watch cache, once it has listed; starts that
        watch on first use."""
        key = (target.kind, target.namespace)
        found = self._workloads.get(key)
        if found is None:
            kind = KINDS[target.kind]
            informer: Informer[WorkloadView] = Informer(
                getattr(self._apps, kind.list),
                resource=kind.workload,
                namespace=target.namespace,
                selector="",
                retry=self.retry,
                view=WorkloadView.of,
                watch_timeout_s=self.watch_timeout_s,
            )
            informer.start()
            found = self._workloads[key] = _Workloads(informer)
        found.used = time.monotonic()
        if not found.informer.synced.is_set():
            return None
        return found.informer.items.get(target.name)

    async def scale(self, target: TargetRef, replicas: int) -> None:
        kind = KINDS[target.kind]
        ns, name = target.namespace, target.name
        for _ in range(self.conflict_retries + 1):
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

    def learned_cold_start_s(self, target: TargetRef) -> float | None:
        found = self._cold_starts.get(self._key(target))
        return found.value() if found else None

    def watch_stats(self, target: TargetRef) -> WatchStats | None:
        tracked = self._tracked.get(self._key(target))
        return tracked.watcher.stats if tracked else None

    async def _watcher(self, target: TargetRef, selector: str) -> PodWatcher:
        key = self._key(target)
        now = time.monotonic()
        for other, tracked in list(self._tracked.items()):
            if other != key and now - tracked.used > self.idle_s:
                del self._tracked[other]
                await tracked.watcher.stop()
        for space, workloads in list(self._workloads.items()):
            if now - workloads.used > self.idle_s:
                del self._workloads[space]
                await workloads.informer.stop()
        tracked_here = self._tracked.get(key)
        if tracked_here is not None and tracked_here.watcher.selector != selector:
            del self._tracked[key]
            await tracked_here.watcher.stop()
            tracked_here = None
        if tracked_here is None:
            cold = self._cold_starts.setdefault(
                key, ColdStarts(self.cold_start_window, self.cold_start_quantile)
            )
            watcher = PodWatcher(
                core=self._core,
                namespace=target.namespace,
                selector=selector,
                retry=self.retry,
                cold_starts=cold,
                watch_timeout_s=self.watch_timeout_s,
                listener=self.pod_listener,
            )
            watcher.start()
            tracked_here = self._tracked[key] = _Tracked(watcher)
        tracked_here.used = now
        return tracked_here.watcher

    async def close(self) -> None:
        """Stop every watch and close the HTTP client."""
        tracked, self._tracked = self._tracked, {}
        for item in tracked.values():
            await item.watcher.stop()
        workloads, self._workloads = self._workloads, {}
        for cache in workloads.values():
            await cache.informer.stop()
        await self.api.close()
