"""The built-in simulated cluster: what `ciuic serve` drives when no Kubernetes API is set.

Pods follow the simulator's model in real time: a created pod becomes Ready after a cold start
drawn uniformly from the scenario's range (30-60 s for the deepseek-7b scenario); scaling down
removes pods that are still starting first, then the youngest ready ones. Each pod's cold
start is recorded, so `cold_start: learn` works here as on a real cluster.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from app.clock import Clock
from app.kube.cluster import DeploymentState
from app.policy.spec import TargetRef

__all__ = ["SimulatedCluster"]


@dataclass
class _Pod:
    created: float
    ready_at: float
    measured: bool = False  # its cold start has been recorded (seen Ready)


@dataclass
class _Deployment:
    pods: list[_Pod] = field(default_factory=list)
    cold_starts: list[float] = field(default_factory=list)


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

    def _deployment(self, target: TargetRef) -> _Deployment:
        key = (target.kind, target.namespace, target.name)
        found = self._deployments.get(key)
        if found is None:
            # A target appears as an existing deployment whose pods are already warm.
            now = self.clock.now()
            found = _Deployment(
                [_Pod(now, now, measured=True) for _ in range(self.initial_replicas)]
            )
            self._deployments[key] = found
        return found

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
        recent = d.cold_starts[-20:]
        learned = sorted(recent)[len(recent) // 2] if recent else None
        return DeploymentState(
            replicas=len(d.pods),
            ready=ready,
            starting=len(d.pods) - ready,
            learned_cold_start_s=learned,
        )

    async def scale(self, target: TargetRef, replicas: int) -> None:
        d = self._deployment(target)
        now = self.clock.now()
        while len(d.pods) < replicas:
            d.pods.append(_Pod(now, now + self._rng.uniform(*self.cold_start_s)))
        if len(d.pods) > replicas:
            # Starting pods go first (they serve nothing yet), then the youngest ready ones.
            d.pods.sort(key=lambda p: (p.ready_at <= now, -p.created))
            del d.pods[: len(d.pods) - replicas]
