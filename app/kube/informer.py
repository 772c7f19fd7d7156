"""A cache of one kind of object, kept current by a list-then-watch loop (client-go's informer,
kopf's watcher).

List (which yields a resourceVersion), then watch from that version; when a watch ends (server
timeout, dropped connection), watch again from the last version seen; when the API server
answers 410 Gone (the version was compacted away), list again and diff the fresh list against
the cache, so every change is reported exactly once; on errors, back off exponentially (longer
on 403/404, which only an operator can fix). `stop()` ends it.

Objects are kept as small frozen views (`view(model)`), keyed by name; `changed(kind, view)`
is called for each ADDED / MODIFIED / DELETED, relists included.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import aiohttp
from kubernetes_asyncio import watch
from kubernetes_asyncio.client.exceptions import ApiException

from app.kube.calls import TRANSIENT_ERRORS, Resource, RetryPolicy, api_message, call, map_error
from app.kube.cluster import ClusterError, ClusterForbidden, ClusterUnavailable, TargetNotFound

__all__ = ["Informer", "Versioned", "WatchStats"]

log = logging.getLogger("ciuic.kube.informer")


class Versioned(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def resource_version(self) -> str: ...


V = TypeVar("V", bound=Versioned)


@dataclass
class WatchStats:
    lists: int = 0
    watches: int = 0
    expired: int = 0  # 410 Gone answers that forced a relist
    errors: int = 0
    events: int = 0


class Informer(Generic[V]):
    permanent_pause_s = 10.0  # between attempts after a 403 or 404

    def __init__(
        self,
        list_call: Callable[..., Awaitable[Any]],  # e.g. CoreV1Api.list_namespaced_pod
        *,
        resource: Resource,
        namespace: str,
        selector: str,
        retry: RetryPolicy,
        view: Callable[[Any], V],
        watch_timeout_s: float = 300.0,
    ) -> None:
        self.list_call = list_call
        self.resource = resource
        self.namespace = namespace
        self.selector = selector
        self.retry = retry
        self.view = view
        self.watch_timeout_s = watch_timeout_s
        self.items: dict[str, V] = {}
        self.resource_version: str | None = None
        self.error: ClusterError | None = None
        self.stats = WatchStats()
        self.synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._progress: asyncio.Event | None = None  # set on each list or failure

    def changed(self, kind: str, item: V) -> None:
        """Called for every change; subclasses react here."""

    def start(self) -> None:
        if self._task is None:
            what = f"{self.resource.plural} {self.namespace}/{self.selector}"
            self._task = asyncio.create_task(self._run(), name=what)

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def wait_synced(self, timeout_s: float) -> None:
        """Until the first list succeeds; raises at once when listing cannot work (403,
        404), TimeoutError when it has not listed within `timeout_s`."""
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

    async def _run(self) -> None:
        failures = 0
        plural = self.resource.plural
        while not self._stopping:
            try:
                if self.resource_version is None:
                    await self._list()
                await self._watch()
                failures = 0
                self.error = None
                continue
            except ApiException as exc:
                if exc.status == 410:
                    log.info(
                        "%s %s: watch expired (410 Gone); listing again", plural, self.selector
                    )
                    self.stats.expired += 1
                    self.resource_version = None
                    continue
                mapped = map_error(
                    exc, verb="watch", resource=self.resource, namespace=self.namespace
                )
                self._failed(mapped or ClusterUnavailable(f"watch {plural}: {api_message(exc)}"))
            except ClusterError as exc:  # from the list, after its own retries
                self._failed(exc)
            except TRANSIENT_ERRORS as exc:
                self._failed(ClusterUnavailable(f"watch {plural}: {type(exc).__name__}: {exc}"))
            except Exception as exc:  # a bug or an odd object: keep watching, loudly
                log.exception(
                    "%s %s in %s: unexpected error", plural, self.selector, self.namespace
                )
                self._failed(ClusterError(f"watch {plural}: {type(exc).__name__}: {exc}"))
            failures += 1
            pause = self.retry.pause(min(failures - 1, 10))
            if isinstance(self.error, ClusterForbidden | TargetNotFound):
                pause = max(pause, self.permanent_pause_s)
            await asyncio.sleep(pause)

    def _failed(self, exc: ClusterError) -> None:
        self.stats.errors += 1
        self.error = exc
        self._signal()
        log.warning("%s %s in %s: %s", self.resource.plural, self.selector, self.namespace, exc)

    def _signal(self) -> None:
        if self._progress is not None:
            self._progress.set()

    async def _list(self) -> None:
        listed = await call(
            lambda: self.list_call(
                self.namespace,
                label_selector=self.selector,
                _request_timeout=self.retry.timeout_s,
            ),
            verb="list",
            resource=self.resource,
            namespace=self.namespace,
            retry=self.retry,
        )
        self.stats.lists += 1
        fresh = {item.name: item for item in map(self.view, listed.items)}
        for name, gone in list(self.items.items()):
            if name not in fresh:
                del self.items[name]
                self._emit("DELETED", gone)
        for name, item in fresh.items():
            known = self.items.get(name)
            if known is None or known.resource_version != item.resource_version:
                self.items[name] = item
                self._emit("ADDED" if known is None else "MODIFIED", item)
        self.resource_version = listed.metadata.resource_version
        self.error = None
        self.synced.set()
        self._signal()

    async def _watch(self) -> None:
        self.stats.watches += 1
        timeout = aiohttp.ClientTimeout(
            sock_connect=self.retry.timeout_s, sock_read=self.watch_timeout_s + 30
        )
        stream = watch.Watch().stream(
            self.list_call,
            self.namespace,
            label_selector=self.selector,
            resource_version=self.resource_version,
            timeout_seconds=max(1, int(self.watch_timeout_s)),
            allow_watch_bookmarks=True,
            _request_timeout=timeout,
        )
        try:
            while True:
                # `next()`, not `async for`: the iterator releases its response itself on any
                # exception, before the connection could be aborted below
                try:
                    event = await stream.next()
                except StopAsyncIteration:
                    return
                self._on_event(event)
        finally:
            _abort_unfinished(stream.resp)
            await stream.close()

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        raw = event.get("raw_object") or {}
        version = (raw.get("metadata") or {}).get("resourceVersion")
        if kind != "BOOKMARK":
            item = self.view(event["object"])
            known = self.items.get(item.name)
            if kind == "DELETED":
                if known is not None:
                    del self.items[item.name]
                    self._emit("DELETED", item)
            elif known is None or known.resource_version != item.resource_version:
                self.items[item.name] = item
                self._emit("ADDED" if known is None else "MODIFIED", item)
        self.resource_version = version or self.resource_version

    def _emit(self, kind: str, item: V) -> None:
        self.stats.events += 1
        self.changed(kind, item)


def _abort_unfinished(response: aiohttp.ClientResponse | None) -> None:
    """Drop a watch's connection that is still streaming (stopped, cancelled, failed). Released
    unfinished, aiohttp closes it gracefully: a TLS close waits for the API server's answer and
    nothing awaits it, so an event loop that ends meanwhile (a shutdown) leaks the socket.
    Aborted, it is closed on the loop's next turn; a finished watch's connection was already
    handed back to the pool at its end."""
    connection = response.connection if response is not None else None
    if connection is not None and connection.protocol is not None:
        connection.protocol.abort()
