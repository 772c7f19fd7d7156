"""The `Cluster` the reconciler drives when a Kubernetes API is configured.

`observe` reads the workload (Deployment or StatefulSet) for spec.replicas and its selector,
and counts pods from a per-target list-then-watch cache (`PodWatcher`): ready, starting, and
the measured cold start. `scale` writes spec.replicas through the `scale` subresource with a
JSON merge patch carrying the resourceVersion it read, so a concurrent writer (a rollout,
kubectl) makes it re-read and retry instead of silently overwriting; after a few conflicts in
a row it gives up until the next reconcile.

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
from app.kube.cluster import ClusterConflict, DeploymentState, RolloutStatus, restore_patch
from app.kube.pods import ColdStarts, PodListener, PodWatcher, WatchStats, selector_string
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


KINDS = {
    "Deployment": _Kind(
        Resource("deployments", "apps"),
        Resource("deployments/scale", "apps"),
        "read_namespaced_deployment",
        "read_namespaced_deployment_scale",
        "patch_namespaced_deployment_scale",
    ),
    "StatefulSet": _Kind(
        Resource("statefulsets", "apps"),
        Resource("statefulsets/scale", "apps"),
        "read_namespaced_stateful_set",
        "read_namespaced_stateful_set_scale",
        "patch_namespaced_stateful_set_scale",
    ),
}


@dataclass
class _Tracked:
    watcher: PodWatcher
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
        self._cold_starts: dict[Key, ColdStarts] = {}

    @staticmethod
    def _key(target: TargetRef) -> Key:
        return (target.kind, target.namespace, target.name)

    async def observe(self, target: TargetRef) -> DeploymentState:
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
        spec_replicas = workload.spec.replicas
        replicas = 1 if spec_replicas is None else int(spec_replicas)
        watcher = await self._watcher(target, selector_string(workload.spec.selector))
        cold_starts = self._cold_starts[self._key(target)]
        try:
            await watcher.wait_synced(self.sync_timeout_s)
        except TimeoutError:
            # The pods cannot be listed yet: the workload's own counts are the best we have
            # (no warm-up gating), and the scaler still gets a decision.
            status = workload.status
            ready = int((status.ready_replicas if status else 0) or 0)
            total = int((status.replicas if status else 0) or 0)
            log.warning(
                "pods of %s/%s not listed (%s); using the workload's status",
                target.namespace,
                target.name,
                watcher.error,
            )
            return DeploymentState(replicas, ready, max(0, total - ready), cold_starts.value())
        ready, starting = watcher.counts()
        return DeploymentState(replicas, ready, starting, cold_starts.value())

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
        for _ in range(self.conflict_retries + 1):
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
        await self.api.close()
