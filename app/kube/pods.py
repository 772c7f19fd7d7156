"""The pods of a namespace, kept current by one list-then-watch loop (`Informer`), split by
target: each scaled workload registers its label selector and keeps its own set of pods and
cold-start samples, updated as the events arrive. One watch per namespace, not per target:
the client's connection pool (100) would otherwise run dry at a hundred scalers.

A pod counts as *ready* when its Ready condition is True and its warm-up is done, and as
*starting* otherwise (created, not Ready; or Ready but still warming up). Warm-up is done
unless the pod carries the annotation `ciuic.io/warm: "false"`, or declares the readiness
gate `ciuic.io/warm` whose condition is not True (the SDK's warm-up helper sets either).

Cold start is measured per pod as creationTimestamp -> the moment it could serve (Ready's
lastTransitionTime, or the warm gate's if later), once per pod uid.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.kube.calls import Resource, RetryPolicy
from app.kube.informer import Informer, WatchStats
from app.policy.coldstart import COLD_START_QUANTILE, COLD_START_WINDOW, learned_cold_start
from app.policy.deletion import DELETION_COST

__all__ = [
    "WARM_ANNOTATION",
    "WARM_CONDITION",
    "ColdStarts",
    "LabelSelector",
    "PodCache",
    "PodEvent",
    "PodView",
    "TargetPods",
    "WatchStats",
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


def _true(condition: Any) -> bool:
    return condition is not None and condition.status == "True"


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


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
    labels: Mapping[str, str] = field(default_factory=dict)
    deletion_cost: int | None = None  # its pod-deletion-cost annotation, when it has one
    scheduled: bool = True  # bound to a node (spec.nodeName, or PodScheduled True)

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
            labels=dict(meta.labels or {}),
            deletion_cost=_int((meta.annotations or {}).get(DELETION_COST)),
            scheduled=bool(spec and spec.node_name) or _true(conditions.get("PodScheduled")),
        )


@dataclass(frozen=True, slots=True)
class PodEvent:
    type: str  # ADDED, MODIFIED, DELETED (relists synthesise the same three)
    pod: PodView


class ColdStarts:
    """Recent pods' cold starts; `value()` is a high quantile (nearest rank), robust to the
    odd slow node yet conservative enough to scale ahead in time."""

    def __init__(
        self, window: int = COLD_START_WINDOW, quantile: float = COLD_START_QUANTILE
    ) -> None:
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
        return learned_cold_start(self.samples, self.quantile)


PodListener = Callable[[PodEvent], None]


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A workload's spec.selector, matched here against pod labels."""

    match_labels: tuple[tuple[str, str], ...] = ()
    expressions: tuple[tuple[str, str, frozenset[str]], ...] = ()  # key, operator, values

    @classmethod
    def of(cls, selector: Any) -> LabelSelector:
        if selector is None:
            return cls()
        return cls(
            tuple(sorted((selector.match_labels or {}).items())),
            tuple(
                (e.key, e.operator, frozenset(e.values or []))
                for e in selector.match_expressions or []
            ),
        )

    def matches(self, labels: Mapping[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.match_labels):
            return False
        for key, op, values in self.expressions:
            present = key in labels
            if op == "In" and not (present and labels[key] in values):
                return False
            if op == "NotIn" and present and labels[key] in values:
                return False
            if op == "Exists" and not present:
                return False
            if op == "DoesNotExist" and present:
                return False
        return True

    def __str__(self) -> str:
        """As the `labelSelector` query parameter spells it."""
        terms = [f"{k}={v}" for k, v in self.match_labels]
        for key, op, values in self.expressions:
            listed = ",".join(sorted(values))
            terms.append(
                {
                    "In": f"{key} in ({listed})",
                    "NotIn": f"{key} notin ({listed})",
                    "Exists": key,
                    "DoesNotExist": f"!{key}",
                }.get(op, "")
            )
        return ",".join(t for t in terms if t)


@dataclass
class TargetPods:
    """One target's pods (those its selector matches) and its cold-start samples."""

    selector: LabelSelector
    cold_starts: ColdStarts
    pods: dict[str, PodView] = field(default_factory=dict)

    def counts(self) -> tuple[int, int]:
        """(ready, starting) among the pods that count."""
        live = [p for p in self.pods.values() if p.counts]
        ready = sum(1 for p in live if p.serving)
        return ready, len(live) - ready

    def serving(self) -> frozenset[str]:
        """The names of the pods taking traffic (Ready, warmed up, not being deleted)."""
        return frozenset(p.name for p in self.pods.values() if p.counts and p.serving)

    def unscheduled(self) -> tuple[float, ...]:
        """The creation times of the pods waiting for a node (Pending, not bound)."""
        return tuple(
            sorted(
                p.created
                for p in self.pods.values()
                if p.counts and p.phase == "Pending" and not p.scheduled and p.created is not None
            )
        )

    def apply(self, kind: str, pod: PodView) -> None:
        if kind != "DELETED" and self.selector.matches(pod.labels):
            self.pods[pod.name] = pod
            self.cold_starts.offer(pod)
        else:
            self.pods.pop(pod.name, None)


class PodCache(Informer[PodView]):
    """Every pod of a namespace; targets register (`track`) to have theirs sorted out."""

    def __init__(
        self,
        core: Any,  # client.CoreV1Api
        *,
        namespace: str,
        retry: RetryPolicy,
        watch_timeout_s: float = 300.0,
        listener: PodListener | None = None,
    ) -> None:
        super().__init__(
            core.list_namespaced_pod,
            resource=PODS,
            namespace=namespace,
            selector="",
            retry=retry,
            view=PodView.of,
            watch_timeout_s=watch_timeout_s,
        )
        self.listener = listener
        self.targets: dict[Hashable, TargetPods] = {}

    def track(self, key: Hashable, selector: LabelSelector, cold_starts: ColdStarts) -> TargetPods:
        """The target's pods; a changed selector re-sorts them from the cache."""
        found = self.targets.get(key)
        if found is None or found.selector != selector:
            found = self.targets[key] = TargetPods(selector, cold_starts)
            for pod in self.items.values():
                found.apply("ADDED", pod)
        return found

    def untrack(self, key: Hashable) -> None:
        self.targets.pop(key, None)

    def changed(self, kind: str, item: PodView) -> None:
        for target in self.targets.values():
            target.apply(kind, item)
        if self.listener is not None:
            self.listener(PodEvent(kind, item))
