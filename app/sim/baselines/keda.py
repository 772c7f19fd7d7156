"""KEDA's queue-length scaler feeding the HPA (`pkg/scalers`): the scaler exposes the waiting
requests as an external metric with an AverageValue target per pod (5 waiting requests); the
HPA, syncing every 15 s, turns that into `ceil(queue / target)` through the same controller
pipeline as `hpa` (tolerance, rate limits, 300 s scale-down window).

The metric is read fresh at every HPA sync: KEDA's metrics adapter queries the scaler on each
request of the HPA unless the trigger sets `useCachedMetrics: true`, and its `pollingInterval`
(30 s) only drives activation (0 <-> 1 replicas), which a deployment with min 1 never uses.
`use_cached_metrics=True` models the cached variant (the reading refreshed once per polling
interval)."""

from __future__ import annotations

from app.sim.baselines.hpa import HPABehavior, HPAController, replicas_for_average_value
from app.sim.engine import ClusterView

__all__ = ["KEDA"]


class KEDA:
    name = "keda"
    phase_s = 0

    def __init__(
        self,
        *,
        queue_target: float = 5.0,
        polling_interval_s: int = 30,
        use_cached_metrics: bool = False,
        sync_period_s: int = 15,
        tolerance: float = 0.1,
        min_replicas: int = 1,
        max_replicas: int = 80,
        behavior: HPABehavior | None = None,
    ) -> None:
        self.period_s = sync_period_s
        self.queue_target = queue_target
        self.polling_interval_s = polling_interval_s
        self.use_cached_metrics = use_cached_metrics
        self.tolerance = tolerance
        self.controller = HPAController(min_replicas, max_replicas, behavior or HPABehavior())
        self._value: float | None = None
        self._polled_at: int | None = None

    def poll(self, view: ClusterView) -> float | None:
        """The queue the HPA gets now: the newest visible sample, or with cached metrics the
        reading taken at the last polling interval."""
        if self.use_cached_metrics and (
            self._polled_at is not None and view.now - self._polled_at < self.polling_interval_s
        ):
            return self._value
        s = view.sample()
        if s is not None:
            self._value = float(s.queue)
            self._polled_at = view.now
        return self._value

    def decide(self, view: ClusterView) -> int:
        current = view.replicas
        value = self.poll(view)
        desired = (
            current
            if value is None
            else replicas_for_average_value(current, value, self.queue_target, self.tolerance)
        )
        return self.controller.normalize(view.now, current, desired)
