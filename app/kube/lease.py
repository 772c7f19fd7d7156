"""Leader election on a `coordination.k8s.io/v1` Lease, the way Kubernetes' own clients do it.

The record: `holderIdentity`, `leaseDurationSeconds`, `acquireTime`, `renewTime` (MicroTime)
and `leaseTransitions`. A candidate takes the Lease when it is missing, free (no holder) or
expired; the holder renews it every `retry_period_s`. Writes carry the resourceVersion read,
so of two candidates racing for an expired Lease exactly one wins (the other gets 409).

Expiry is judged on *our* monotonic clock, as client-go does: a follower notes when it last
saw the record change and treats the Lease as expired `leaseDurationSeconds` later. Clock skew
between replicas therefore cannot make two leaders. A leader that cannot renew for
`renew_deadline_s` (< lease duration) steps down before anyone may take over.

`LeaseElector` fits `LeaderElector` (try_acquire / still_leader / release, polled by the
caller, e.g. the workers' `Leadership`), and can also drive itself: `run(stop)` keeps
`is_leader` and the `leading` / `following` events current.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from datetime import UTC, datetime
from typing import Any, Protocol

from kubernetes_asyncio import client

from app.clock import Clock, SystemClock
from app.kube.calls import Resource, RetryPolicy, call
from app.kube.cluster import ClusterConflict, ClusterError, TargetNotFound

__all__ = ["LeaderElector", "LeaseElector", "micro_time"]

log = logging.getLogger("ciuic.kube.lease")

LEASES = Resource("leases", "coordination.k8s.io")


class LeaderElector(Protocol):
    """What the workers need of any elector (this Lease, or a database lock)."""

    async def try_acquire(self) -> bool: ...

    async def still_leader(self) -> bool: ...

    async def release(self) -> None: ...


def micro_time(epoch_s: float) -> str:
    """metav1.MicroTime: RFC 3339 with exactly six fractional digits (never omitted)."""
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    def __init__(
        self,
        api: Any,  # kubernetes_asyncio.client.ApiClient (not closed here)
        *,
        name: str,
        namespace: str,
        identity: str,
        lease_duration_s: float = 15.0,
        renew_deadline_s: float = 10.0,
        retry_period_s: float = 2.0,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not retry_period_s < renew_deadline_s < lease_duration_s:
            raise ValueError("need retry_period_s < renew_deadline_s < lease_duration_s")
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.lease_duration_s = lease_duration_s
        self.renew_deadline_s = renew_deadline_s
        self.retry_period_s = retry_period_s
        # One quick attempt per request: the election loop itself is the retry.
        self.retry = retry or RetryPolicy(attempts=1, timeout_s=max(0.5, retry_period_s))
        self.clock = clock or SystemClock()
        self._api = client.CoordinationV1Api(api)
        self.is_leader = False
        self.leading = asyncio.Event()  # set while this replica leads
        self.following = asyncio.Event()  # set while it does not
        self.following.set()
        self.holder: str | None = None  # the last holder seen
        self.error: str | None = None  # why the last attempt failed (RBAC, the API down)
        self._observed_version: str | None = None
        self._observed_at = 0.0
        self._renewed_at = 0.0

    # ---- the LeaderElector protocol --------------------------------------------------------

    async def try_acquire(self) -> bool:
        """One attempt to take (or keep) the Lease; True when we hold it now."""
        try:
            won = await self._attempt()
        except ClusterError as exc:
            log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
            self.error = f"lease {self.namespace}/{self.name}: {exc}"
            won = False
        else:
            self.error = None
        if won:
            self._set_leader(True)
        elif self.is_leader and self.clock.monotonic() - self._renewed_at > self.renew_deadline_s:
            log.warning(
                "lease %s: no renewal for %.1f s; stepping down", self.name, self.renew_deadline_s
            )
            self._set_leader(False)
        return self.is_leader

    async def still_leader(self) -> bool:
        """Renew; a failed renewal is tolerated until the renew deadline passes."""
        if not self.is_leader:
            return False
        return await self.try_acquire()

    async def release(self) -> None:
        """Give the Lease up at once (as client-go's ReleaseOnCancel), so a follower need not
        wait for it to expire."""
        if not self.is_leader:
            return
        self._set_leader(False)
        with contextlib.suppress(ClusterError):
            lease = await self._get()
            spec = lease.spec
            if spec is None or spec.holder_identity != self.identity:
                return
            now = micro_time(self.clock.now())
            body = self._body(
                lease.metadata.resource_version,
                holder=None,
                duration=1,
                acquire=now,
                renew=now,
                transitions=int(spec.lease_transitions or 0),
            )
            await self._replace(body)
            log.info("lease %s released by %s", self.name, self.identity)

    # ---- running on its own ----------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Acquire, then renew every retry period, until `stop` is set; then release. A
        cancelled run does not release (a crash does not either): the Lease expires."""
        while not stop.is_set():
            await self.try_acquire()
            pause = self.retry_period_s * (1 if self.is_leader else random.uniform(1, 1.2))
            await self.clock.wait_for(stop, timeout_s=pause)
        await self.release()

    # ---- internals -------------------------------------------------------------------------

    def _set_leader(self, leader: bool) -> None:
        if leader != self.is_leader:
            log.info(
                "%s %s leadership of lease %s/%s",
                self.identity,
                "took" if leader else "lost",
                self.namespace,
                self.name,
            )
        self.is_leader = leader
        (self.leading if leader else self.following).set()
        (self.following if leader else self.leading).clear()

    async def _get(self) -> Any:
        return await call(
            lambda: self._api.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=self.retry.timeout_s
            ),
            verb="get",
            resource=LEASES,
            namespace=self.namespace,
            name=self.name,
            retry=self.retry,
        )

    async def _replace(self, body: dict[str, Any]) -> Any:
        return await call(
            # A dict, not a V1Lease: the model would write MicroTime without its digits when
            # they are zero, which the API server rejects.
            lambda: self._api.replace_namespaced_lease(
                self.name,
                self.namespace,
                body,  # type: ignore[arg-type]
                _request_timeout=self.retry.timeout_s,
            ),
            verb="update",
            resource=LEASES,
            namespace=self.namespace,
            name=self.name,
            retry=self.retry,
        )

    def _body(
        self,
        version: str | None,
        *,
        holder: str | None,
        duration: int,
        acquire: str,
        renew: str,
        transitions: int,
    ) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if version is not None:
            metadata["resourceVersion"] = version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": holder,
                "leaseDurationSeconds": duration,
                "acquireTime": acquire,
                "renewTime": renew,
                "leaseTransitions": transitions,
            },
        }

    async def _attempt(self) -> bool:
        now_mono, now = self.clock.monotonic(), micro_time(self.clock.now())
        duration = max(1, math.ceil(self.lease_duration_s))
        try:
            lease = await self._get()
        except TargetNotFound:
            body = self._body(
                None, holder=self.identity, duration=duration, acquire=now, renew=now, transitions=0
            )
            try:
                await call(
                    lambda: self._api.create_namespaced_lease(
                        self.namespace,
                        body,  # type: ignore[arg-type]
                        _request_timeout=self.retry.timeout_s,
                    ),
                    verb="create",
                    resource=LEASES,
                    namespace=self.namespace,
                    name=self.name,
                    retry=self.retry,
                )
            except ClusterConflict:  # another replica created it first
                return False
            self._won(now_mono, self.identity)
            return True
        spec = lease.spec or client.V1LeaseSpec()
        version = lease.metadata.resource_version
        if version != self._observed_version:
            self._observed_version, self._observed_at = version, now_mono
        holder = spec.holder_identity or ""
        self.holder = holder or None
        held_for = float(spec.lease_duration_seconds or self.lease_duration_s)
        if holder and holder != self.identity and now_mono < self._observed_at + held_for:
            if self.is_leader:  # someone took it from us: our renewals must have failed
                self._set_leader(False)
            return False
        mine = holder == self.identity
        acquire = spec.acquire_time if mine else None
        body = self._body(
            version,
            holder=self.identity,
            duration=duration,
            acquire=micro_time(acquire.timestamp()) if acquire is not None else now,
            renew=now,
            transitions=int(spec.lease_transitions or 0) + (0 if mine else 1),
        )
        try:
            await self._replace(body)
        except ClusterConflict:  # someone wrote first; we'll see who at the next attempt
            return False
        self._won(now_mono, self.identity)
        return True

    def _won(self, now_mono: float, holder: str) -> None:
        self._renewed_at = now_mono
        self.holder = holder
