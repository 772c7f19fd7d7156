"""The pods of one workload, kept current by a list-then-watch loop, and their cold starts.

The list-then-watch loop itself is `Informer` (app/kube/informer.py).

A pod counts as *ready* when its Ready condition is True and its warm-up is done, and as
*starting* otherwise (created, not Ready; or Ready but still warming up). Warm-up is done
unless the pod carries the annotation `ciuic.io/warm: "false"`, or declares the readiness
gate `ciuic.io/warm` whose condition is not True (the SDK's warm-up helper sets either).

Cold start is measured per pod as creationTimestamp -> the moment it could serve (Ready's
lastTransitionTime, or the warm gate's if later), once per pod uid.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.kube.api import Resource, RetryPolicy
from app.kube.informer import Informer, WatchStats

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


PodListener = Callable[[PodEvent], None]


class PodWatcher(Informer[PodView]):
    """Pods matching `selector` in `namespace`, kept current until `stop()`; feeds the
    target's cold-start samples and an optional listener (tests, metrics)."""

    def __init__(
        self,
        core: Any,  # client.CoreV1Api
        *,
        namespace: str,
        selector: str,
        retry: RetryPolicy,
        cold_starts: ColdStarts,
        watch_timeout_s: float = 300.0,
        listener: PodListener | None = None,
    ) -> None:
        super().__init__(
            core.list_namespaced_pod,
            resource=PODS,
            namespace=namespace,
            selector=selector,
            retry=retry,
            view=PodView.of,
            watch_timeout_s=watch_timeout_s,
        )
        self.cold_starts = cold_starts
        self.listener = listener

    @property
    def pods(self) -> dict[str, PodView]:
        return self.items

    def changed(self, kind: str, item: PodView) -> None:
        if kind != "DELETED":
            self.cold_starts.offer(item)
        if self.listener is not None:
            self.listener(PodEvent(kind, item))

    def counts(self) -> tuple[int, int]:
        """(ready, starting) among the pods that count."""
        live = [p for p in self.pods.values() if p.counts]
        ready = sum(1 for p in live if p.serving)
        return ready, len(live) - ready


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
