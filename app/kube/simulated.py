"""The built-in simulated cluster: what `ciuic serve` drives when no Kubernetes API is set.

Pods follow the simulator's model in real time: a created pod becomes Ready after a cold start
drawn uniformly from the scenario's range (30-60 s for the deepseek-7b scenario); scaling down
removes pods that are still starting first, then the youngest ready ones. Each pod's cold
start is recorded, so `cold_start: learn` works here as on a real cluster.

A template change rolls out like a Deployment's RollingUpdate with the defaults (maxSurge 25 %
rounded up, maxUnavailable 25 % rounded down): new pods are created while the total stays
within replicas + maxSurge, and old pods leave while the ready count stays at least replicas -
maxUnavailable; each new pod takes its cold start. The controller is replayed lazily, event by
event (each pod becoming Ready), up to the clock's now, so jumps of a fake clock are exact.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.clock import Clock
from app.kube.cluster import DeploymentState, RolloutStatus, strategic_merge
from app.policy.coldstart import COLD_START_WINDOW, learned_cold_start
from app.policy.spec import TargetRef

__all__ = ["SimulatedCluster"]


@dataclass
class _Pod:
    created: float
    ready_at: float
    measured: bool = False  # its cold start has been recorded (seen Ready)
    revision: str = ""  # the hash of the template it was created from


def _hash(template: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


@dataclass
class _Deployment:
    pods: list[_Pod] = field(default_factory=list)
    cold_starts: list[float] = field(default_factory=list)
    replicas: int = 0  # spec.replicas (pods may exceed it while a rollout surges)
    template: dict[str, Any] = field(default_factory=dict)
    revision: str = ""
    generation: int = 1
    t: float = 0.0  # the controller has acted on everything up to this time


class SimulatedCluster:
    name = "simulated"

    def __init__(
        self,
        clock: Clock,
        *,
        initial_replicas: int = 1,
        cold_start_s: tuple[float, float] = (30.0, 60.0),
        seed: int = 7,
    ) -> None:
        self.clock = clock
        self.initial_replicas = initial_replicas
        self.cold_start_s = cold_start_s
        self._rng = random.Random(seed)
        self._deployments: dict[tuple[str, str, str], _Deployment] = {}
        # The share of CPU and memory the partial pod of each target runs with (in place).
        self.partial: dict[tuple[str, str, str], float] = {}

    def _deployment(self, target: TargetRef) -> _Deployment:
        key = (target.kind, target.namespace, target.name)
        found = self._deployments.get(key)
        if found is None:
            # A target appears as an existing deployment whose pods are already warm.
            now = self.clock.now()
            template = {
                "metadata": {"labels": {"app": target.name}},
                "spec": {"containers": [{"name": "model", "image": f"{target.name}:1"}]},
            }
            revision = _hash(template)
            found = _Deployment(
                [
                    _Pod(now, now, measured=True, revision=revision)
                    for _ in range(self.initial_replicas)
                ],
                replicas=self.initial_replicas,
                template=template,
                revision=revision,
                t=now,
            )
            self._deployments[key] = found
        self._advance(found, self.clock.now())
        return found

    def _new_pod(self, d: _Deployment, t: float) -> None:
        d.pods.append(_Pod(t, t + self._rng.uniform(*self.cold_start_s), revision=d.revision))

    def _control(self, d: _Deployment, t: float) -> None:
        """One pass of the deployment controller at time `t` (repeated to a fixed point)."""
        new = [p for p in d.pods if p.revision == d.revision]
        old = [p for p in d.pods if p.revision != d.revision]
        if not old:
            while len(d.pods) < d.replicas:
                self._new_pod(d, t)
            if len(d.pods) > d.replicas:
                # Starting pods go first (they serve nothing yet), then the youngest ready ones.
                d.pods.sort(key=lambda p: (p.ready_at <= t, -p.created))
                del d.pods[: len(d.pods) - d.replicas]
            return
        surge = math.ceil(d.replicas * 0.25)
        unavailable = math.floor(d.replicas * 0.25)
        if surge == 0 and unavailable == 0:
            unavailable = 1  # the API server's rule when both round to zero
        min_available = d.replicas - unavailable
        while len(d.pods) < d.replicas + surge and len(new) < d.replicas:
            self._new_pod(d, t)
            new.append(d.pods[-1])
        # Old pods that are not ready serve nothing: they go first, then ready ones while
        # enough pods stay available.
        for p in sorted(old, key=lambda p: (p.ready_at <= t, -p.created)):
            ready = sum(1 for q in d.pods if q.ready_at <= t)
            if p.ready_at <= t and ready - 1 < min_available:
                break
            d.pods.remove(p)

    def _advance(self, d: _Deployment, now: float) -> None:
        """Replay the controller at each moment a pod became Ready, up to `now`."""
        t = d.t
        while True:
            before = -1
            while before != len(d.pods) + sum(1 for p in d.pods if p.revision == d.revision):
                before = len(d.pods) + sum(1 for p in d.pods if p.revision == d.revision)
                self._control(d, t)
            due = [p.ready_at for p in d.pods if t < p.ready_at <= now]
            if not due:
                break
            t = min(due)
        d.t = max(d.t, now)

    async def observe(self, target: TargetRef) -> DeploymentState:
        d = self._deployment(target)
        now = self.clock.now()
        ready = 0
        for p in d.pods:
            if p.ready_at <= now:
                ready += 1
                if not p.measured:  # seen Ready: its cold start is now known
                    p.measured = True
                    d.cold_starts = [*d.cold_starts[-99:], p.ready_at - p.created]
        learned = learned_cold_start(d.cold_starts[-COLD_START_WINDOW:])
        return DeploymentState(
            replicas=d.replicas,
            ready=ready,
            starting=len(d.pods) - ready,
            learned_cold_start_s=learned,
        )

    async def scale(self, target: TargetRef, replicas: int) -> None:
        d = self._deployment(target)
        d.replicas = replicas
        self._advance(d, self.clock.now())

    async def prefer_deletion(self, target: TargetRef, busy: Mapping[str, float]) -> int:
        """Its pods push no load of their own (no names): its rule (starting first, then
        the youngest) stands."""
        return 0

    async def resize_partial(self, target: TargetRef, fraction: float | None) -> str | None:
        key = (target.kind, target.namespace, target.name)
        if fraction is None:
            self.partial.pop(key, None)
        else:
            self.partial[key] = fraction
        return None

    async def template(self, target: TargetRef) -> dict[str, Any]:
        return copy.deepcopy(self._deployment(target).template)

    async def patch_template(self, target: TargetRef, patch: dict[str, Any]) -> None:
        d = self._deployment(target)
        await self.set_template(target, strategic_merge(d.template, patch))

    async def set_template(self, target: TargetRef, template: dict[str, Any]) -> None:
        d = self._deployment(target)
        if template == d.template:
            return
        d.template = copy.deepcopy(template)
        d.revision = _hash(d.template)
        d.generation += 1
        self._advance(d, self.clock.now())

    async def rollout_status(self, target: TargetRef) -> RolloutStatus:
        d = self._deployment(target)
        now = self.clock.now()
        ready = sum(1 for p in d.pods if p.ready_at <= now)
        updated = sum(1 for p in d.pods if p.revision == d.revision)
        return RolloutStatus(
            generation=d.generation,
            observed_generation=d.generation,
            replicas=d.replicas,
            updated=updated,
            available=ready,
            total=len(d.pods),
            ready=ready,
        )
