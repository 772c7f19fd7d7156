"""The pods of one workload, kept current by a list-then-watch loop, and their cold starts.

The loop is kopf's and client-go's informer shape: list (which yields a resourceVersion), then
watch from that version; when a watch ends, watch again from the last version seen; when the
API server answers 410 Gone (the version was compacted away), list again and diff the fresh
list against the cache, so every change is reported exactly once; on errors, back off
exponentially. It stops when told to (`stop`).

A pod counts as *ready* when its Ready condition is True and its warm-up is done, and as
*starting* otherwise (created, not Ready; or Ready but still warming up). Warm-up is done
unless the pod carries the annotation `ciuic.io/warm: "false"`, or declares the readiness
gate `ciuic.io/warm` whose condition is not True (the SDK's warm-up helper sets either).

Cold start is measured per pod as creationTimestamp -> the moment it could serve (Ready's
lastTransitionTime, or the warm gate's if later), once per pod uid.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
from kubernetes_asyncio import watch
from kubernetes_asyncio.client.exceptions import ApiException

from app.kube.api import TRANSIENT_ERRORS, Resource, RetryPolicy, api_message, call, map_error
from app.kube.cluster import ClusterError, ClusterForbidden, ClusterUnavailable, TargetNotFound

__all__ = [
    "WARM_ANNOTATION",
    "WARM_CONDITION",
    "ColdStarts",
    "PodEvent",
    "PodView",
    "PodWatcher",
    "WatchStats",
    "selector_string",
]

log = logging.getLogger("ciuic.kube.pods")

PODS = Resource("pods", "")
WARM_ANNOTATION = "ciuic.io/warm"
WARM_CONDITION = "ciuic.io/warm"


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True, slots=True)
class PodView:
    """What we need of a pod, taken from the client's V1Pod model."""

    name: str
    uid: str
    resource_version: str
    created: float | None
    ready: bool  # the Ready condition is True
    warm: bool  # warm-up done (or none declared)
    serving_since: float | None  # Ready (and warm gate) lastTransitionTime
    terminating: bool
    phase: str

    @property
    def serving(self) -> bool:
        return self.ready and self.warm and not self.terminating

    @property
    def counts(self) -> bool:
        """Finished pods and pods being deleted are neither ready nor starting."""
        return not self.terminating and self.phase not in ("Succeeded", "Failed")

    @classmethod
    def of(cls, pod: Any) -> PodView:
        meta, spec, status = pod.metadata, pod.spec, pod.status
        conditions = {c.type: c for c in (status.conditions if status else None) or []}
        ready_cond = conditions.get("Ready")
        ready = ready_cond is not None and ready_cond.status == "True"
        gates = {g.condition_type for g in (spec.readiness_gates if spec else None) or []}
        warm_cond = conditions.get(WARM_CONDITION)
        gated = WARM_CONDITION in gates and (warm_cond is None or warm_cond.status != "True")
        annotated = str((meta.annotations or {}).get(WARM_ANNOTATION, "")).lower() == "false"
        since = _epoch(ready_cond.last_transition_time) if ready and ready_cond else None
        if since is not None and warm_cond is not None and warm_cond.status == "True":
            warm_at = _epoch(warm_cond.last_transition_time)
            since = max(since, warm_at) if warm_at is not None else since
        return cls(
            name=meta.name,
            uid=meta.uid or meta.name,
            resource_version=meta.resource_version or "",
            created=_epoch(meta.creation_timestamp),
            ready=ready,
            warm=not (gated or annotated),
            serving_since=since,
            terminating=meta.deletion_timestamp is not None,
            phase=(status.phase if status else None) or "Pending",
        )


@dataclass(frozen=True, slots=True)
class PodEvent:
    type: str  # ADDED, MODIFIED, DELETED (relists synthesise the same three)
    pod: PodView


class ColdStarts:
    """Recent pods' cold starts; `value()` is a high quantile (nearest rank), robust to the
    odd slow node yet conservative enough to scale ahead in time."""

    def __init__(self, window: int = 20, quantile: float = 0.9) -> None:
        self.samples: deque[float] = deque(maxlen=window)
        self.quantile = quantile
        self._seen: deque[str] = deque(maxlen=window * 10)

    def offer(self, pod: PodView) -> None:
        if not pod.serving or pod.created is None or pod.serving_since is None:
            return
        if pod.uid in self._seen:
            return
        self._seen.append(pod.uid)
        took = pod.serving_since - pod.created
        if 0 <= took <= 3600:  # a pod Ready an hour late was not cold starting
            self.samples.append(took)

    def value(self) -> float | None:
        if not self.samples:
            return None
        ordered = sorted(self.samples)
        rank = max(1, math.ceil(self.quantile * len(ordered)))
        return ordered[rank - 1]


@dataclass
class WatchStats:
    lists: int = 0
    watches: int = 0
    expired: int = 0  # 410 Gone answers that forced a relist
    errors: int = 0
    events: int = 0


PodListener = Callable[[PodEvent], None]


@dataclass
class PodWatcher:
    """Pods matching `selector` in `namespace`, kept current until `stop()`."""

    core: Any  # client.CoreV1Api
    namespace: str
    selector: str
    retry: RetryPolicy
    cold_starts: ColdStarts
    watch_timeout_s: float = 300.0
    listener: PodListener | None = None
    pods: dict[str, PodView] = field(default_factory=dict)
    resource_version: str | None = None
    error: ClusterError | None = None
    stats: WatchStats = field(default_factory=WatchStats)
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _stopping: bool = False
    _progress: asyncio.Event | None = None  # set on each list or failure, for wait_synced

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(
                self._run(), name=f"pods {self.namespace}/{self.selector}"
            )

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def wait_synced(self, timeout_s: float) -> None:
        """Until the first list succeeds; raises at once when the watch cannot ever work
        (403, 404), TimeoutError when it has not listed within `timeout_s`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self.synced.is_set():
            if isinstance(self.error, ClusterForbidden | TargetNotFound):
                raise self.error
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError
            self._progress = progress = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(progress.wait(), left)

    def counts(self) -> tuple[int, int]:
        """(ready, starting) among the pods that count."""
        live = [p for p in self.pods.values() if p.counts]
        ready = sum(1 for p in live if p.serving)
        return ready, len(live) - ready

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            try:
                if self.resource_version is None:
                    await self._list()
                await self._watch()
                failures = 0
            except ApiException as exc:
                if exc.status == 410:
                    log.info("pods %s: watch expired (410 Gone); listing again", self.selector)
                    self.stats.expired += 1
                    self.resource_version = None
                    continue
                mapped = map_error(exc, verb="watch", resource=PODS, namespace=self.namespace)
                self._failed(mapped or ClusterUnavailable(f"watch pods: {api_message(exc)}"))
            except ClusterError as exc:  # from the list, after its own retries
                self._failed(exc)
            except TRANSIENT_ERRORS as exc:
                self._failed(ClusterUnavailable(f"watch pods: {type(exc).__name__}: {exc}"))
            except Exception as exc:  # a bug or an odd object: keep watching, loudly
                log.exception("pods %s in %s: unexpected error", self.selector, self.namespace)
                self._failed(ClusterError(f"watch pods: {type(exc).__name__}: {exc}"))
            else:
                continue
            failures += 1
            await asyncio.sleep(self.retry.pause(min(failures - 1, 10)))

    def _failed(self, exc: ClusterError) -> None:
        self.stats.errors += 1
        self.error = exc
        self._signal()
        log.warning("pods %s in %s: %s", self.selector, self.namespace, exc)

    async def _list(self) -> None:
        listed = await call(
            lambda: self.core.list_namespaced_pod(
                self.namespace,
                label_selector=self.selector,
                _request_timeout=self.retry.timeout_s,
            ),
            verb="list",
            resource=PODS,
            namespace=self.namespace,
            retry=self.retry,
        )
        self.stats.lists += 1
        fresh = {pod.name: pod for pod in map(PodView.of, listed.items)}
        for name, gone in list(self.pods.items()):
            if name not in fresh:
                del self.pods[name]
                self._emit(PodEvent("DELETED", gone))
        for name, pod in fresh.items():
            known = self.pods.get(name)
            if known is None or known.resource_version != pod.resource_version:
                self._store(PodEvent("ADDED" if known is None else "MODIFIED", pod))
        self.resource_version = listed.metadata.resource_version
        self.error = None
        self.synced.set()
        self._signal()

    def _signal(self) -> None:
        if self._progress is not None:
            self._progress.set()

    async def _watch(self) -> None:
        self.stats.watches += 1
        timeout = aiohttp.ClientTimeout(
            sock_connect=self.retry.timeout_s, sock_read=self.watch_timeout_s + 30
        )
        stream = watch.Watch()
        try:
            async for event in stream.stream(
                self.core.list_namespaced_pod,
                self.namespace,
                label_selector=self.selector,
                resource_version=self.resource_version,
                timeout_seconds=max(1, int(self.watch_timeout_s)),
                allow_watch_bookmarks=True,
                _request_timeout=timeout,
            ):
                self._on_event(event)
        finally:
            await stream.close()

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        raw = event.get("raw_object") or {}
        version = (raw.get("metadata") or {}).get("resourceVersion")
        if kind == "BOOKMARK":
            self.resource_version = version or self.resource_version
            return
        pod = PodView.of(event["object"])
        old = self.pods.get(pod.name)
        if kind == "DELETED":
            if old is not None:
                del self.pods[pod.name]
                self._emit(PodEvent("DELETED", pod))
        elif old is None or old.resource_version != pod.resource_version:
            self._store(PodEvent("ADDED" if old is None else "MODIFIED", pod))
        self.resource_version = version or self.resource_version

    def _store(self, event: PodEvent) -> None:
        self.pods[event.pod.name] = event.pod
        self.cold_starts.offer(event.pod)
        self._emit(event)

    def _emit(self, event: PodEvent) -> None:
        self.stats.events += 1
        if self.listener is not None:
            self.listener(event)


def selector_string(selector: Any) -> str:
    """A V1LabelSelector as the `labelSelector` query parameter spells it."""
    if selector is None:
        return ""
    terms = [f"{k}={v}" for k, v in sorted((selector.match_labels or {}).items())]
    for expr in selector.match_expressions or []:
        values = ",".join(sorted(expr.values or []))
        op = expr.operator
        if op == "In":
            terms.append(f"{expr.key} in ({values})")
        elif op == "NotIn":
            terms.append(f"{expr.key} notin ({values})")
        elif op == "Exists":
            terms.append(expr.key)
        elif op == "DoesNotExist":
            terms.append(f"!{expr.key}")
    return ",".join(terms)
