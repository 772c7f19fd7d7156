"""Drives the real `app.policy.decide` (and the real forecasters) from the simulated cluster.

Nothing here decides anything: it builds the `Observation` the live reconciler would build from
the pods' pushes (5 s samples, 5 s late), fits the spec's forecasting model on the history the
service would hold (the trace before the window plus what it has observed since), refits on a
cadence, and hands the policy's `Decision.replicas` to the cluster.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import struct
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from app.forecasting import History, to_load_forecast
from app.forecasting.base import Forecaster
from app.forecasting.from_spec import forecaster_for, history_span, lead_steps, model_name
from app.policy import decide, parse_spec
from app.policy.codes import Code
from app.policy.spec import ScalerSpec
from app.policy.types import Decision, LoadForecast, MetricReading, Observation, ScalerState
from app.sim.engine import ClusterView, Sample, Scenario
from app.sim.traces import Workload

__all__ = ["BRIEF_SPEC", "CiuicPolicy", "default_spec"]

# The brief's ciuic-config.yaml, as docs/benchmark.md runs it (no cron floors: the traces are not
# the product's service, and floors at 09:00/23:00 would only add cost).
BRIEF_SPEC: dict[str, Any] = {
    "target": "deepseek-service",
    "scaler": "predictive",
    "metrics": [
        {"name": "gpu_utilization", "weight": 0.6, "target": "85%"},
        {"name": "request_queue", "weight": 0.4, "target": "<5"},
    ],
    "algorithm": {"name": "auto"},
    "preheat": {"enabled": True, "min_ready": 1, "strategy": "eager"},
    "emergency": {
        "enabled": True,
        "burst_multiplier": 3.0,
        "triggers": [{"metric": "request_queue", "threshold": 50, "duration": "30s"}],
    },
}


def default_spec(scenario: Scenario, workload: Workload | None = None) -> dict[str, Any]:
    """The brief's spec for this scenario: the bounds from the scenario and nothing else. The
    per-pod capacity is learned online from what the pods push (`capacity: learn`, the
    default), as the live service learns it: nothing is read from the scored window."""
    del workload  # the same spec for every trace
    return {
        **BRIEF_SPEC,
        "min_replicas": scenario.min_replicas,
        "max_replicas": scenario.max_replicas,
    }


class CiuicPolicy:
    """The production policy, stepped every `period_s` like the live reconciler."""

    name = "ciuic"
    phase_s = 0
    # A push on change wakes the reconcile loop (app.services.wakeup), as in the service.
    wakes_on_push = True

    def __init__(
        self,
        spec: ScalerSpec,
        workload: Workload,
        *,
        period_s: int = 5,
        refit_s: float = 900.0,
        history_s: float | None = None,
    ) -> None:
        self.spec = spec
        self.period_s = period_s
        self.state = ScalerState()
        self.workload = workload
        self.step_s = workload.history_step_s
        # A full fit re-chooses the model; it learns something only once a couple of new grid
        # points arrived (15 min on the live 5 min grid, 1 h on nyc_taxi's 30 min grid).
        self.refit_s = max(refit_s, 2 * self.step_s)
        # as the live service reads it: 14 days, four weeks for a scaler that may sleep (its
        # model still fits the last 14 days: app.forecasting.from_spec)
        span = history_s if history_s is not None else history_span(spec)
        self.history_points = max(2, round(span / self.step_s))
        self._history = [float(v) for v in workload.history_rate]
        self._bucket_sum = 0.0
        self._bucket_n = 0
        self._bucket_end = self.step_s
        self._next_fit = 0.0
        self._model: Forecaster | None = None
        # the fits and refreshes asked for but not yet run on `_model` (their forecasts came
        # from the memo): (full, first index into _history, end index, first time)
        self._pending: list[tuple[bool, int, int, float]] = []
        self._chain = b""  # digest of every fit and refresh so far (set on the first)
        self._forecast: LoadForecast | None = None
        self._last_sample = -1
        self.decisions = 0
        self.last_decision: Decision | None = None  # the policy's answer, reasons included
        self.burst_starts: list[int] = []  # sim seconds of each `emergency.start` decision
        self._how = {name: spec.aggregation_of(name) for name in _METRICS}
        self._extra: tuple[tuple[str, str], ...] = tuple(
            p for p in spec.extra_readings if p[0] in _METRICS
        )

    @classmethod
    def build(
        cls, scenario: Scenario, workload: Workload, spec: Mapping[str, Any] | None
    ) -> CiuicPolicy:
        doc = dict(spec) if spec is not None else default_spec(scenario, workload)
        return cls(parse_spec(doc), workload)

    # -- the forecast the service would hold -----------------------------------------------

    def _observe_load(self, s: Sample | None) -> bool:
        """Add the newest sample's load to the grid; True when a bucket completed."""
        if s is None or s.time == self._last_sample:
            return False
        self._last_sample = s.time
        completed = False
        while s.time >= self._bucket_end:
            completed = True
            if self._bucket_n:
                self._history.append(self._bucket_sum / self._bucket_n)
            else:
                self._history.append(math.nan)
            self._bucket_sum, self._bucket_n = 0.0, 0
            self._bucket_end += self.step_s
        self._bucket_sum += s.arrival_rate
        self._bucket_n += 1
        return completed

    def _update_forecast(self, now_unix: float, full: bool) -> None:
        """A full `fit` (re-chooses the model, re-runs its backtest) on the refit cadence, a
        cheap `refresh` (same model, newer data) whenever a grid bucket completes in between,
        as the forecasting package intends; then a path for the lead plus one hour.

        A model's state after a sequence of fits and refreshes depends only on the histories it
        was given, so each forecast is remembered under a digest of that whole sequence: the
        tune job's candidates and the runs of one seed replay the same load and fit it once.
        The model itself catches up (the calls it missed, in order) only when a forecast is
        not in the memo, so every forecast is the one an unshared model would have made."""
        hist = self._history[-self.history_points :]
        name = model_name(self.spec)
        if len(hist) < 2 or name is None:
            return
        end = len(self._history)
        first = self.workload.start + (end - len(hist)) * self.step_s
        first -= len(self.workload.history_rate) * self.step_s
        lead = lead_steps(self.spec, self.step_s)  # as the live service: cold start + buffer
        horizon = lead + math.ceil(3600.0 / self.step_s) + 1
        if not self._chain:  # the first call: a new model, always a full fit
            full = True
            params = json.dumps(self.spec.algorithm.params, sort_keys=True, default=str)
            wake = self.spec.min_replicas == 0  # forecaster_for adds the wake model
            key = f"{name}|{params}|{lead}|{horizon}|{self.step_s}|{wake}"
            self._chain = _digest(key.encode())
        values = np.asarray(hist, dtype=np.float64)
        self._chain = _digest(
            self._chain + struct.pack("<?dd", full, first, now_unix) + values.tobytes()
        )
        self._pending.append((full, end - len(hist), end, first))
        known = _FORECASTS.get(self._chain)
        if known is not None:
            _FORECASTS.move_to_end(self._chain)
            self._forecast = known
            return
        if self._model is None:
            self._model = forecaster_for(self.spec, lead=lead)
        model = self._model
        for was_full, lo, hi, at in self._pending:
            history = History(at, self.step_s, np.asarray(self._history[lo:hi], np.float64))
            model = model.fit(history) if was_full else model.refresh(history)
        self._model, self._pending = model, []
        self._forecast = to_load_forecast(model.predict(horizon), None, made_at=now_unix)
        _FORECASTS[self._chain] = self._forecast
        if len(_FORECASTS) > _FORECASTS_KEPT:
            _FORECASTS.popitem(last=False)

    def _restamp(self, now_unix: float) -> None:
        """The live service refreshes its forecast every minute; with no new bucket since the
        last one it gets the same forecast back, so here it is only re-dated (a forecast on
        an hourly grid is never read as stale between buckets)."""
        f = self._forecast
        if f is not None and now_unix - f.made_at >= 60.0:
            self._forecast = dataclasses.replace(f, made_at=now_unix)

    # -- one reconcile tick -------------------------------------------------------------------

    def decide(self, view: ClusterView) -> int:
        now_unix = self.workload.start + view.now
        # the load history is the periodic pushes' (a push on change would count twice)
        completed = self._observe_load(view.sample())
        s = view.sample(pushed=True)
        if view.now >= self._next_fit:
            self._next_fit = view.now + self.refit_s
            self._update_forecast(now_unix, full=True)
        elif completed:
            self._update_forecast(now_unix, full=False)
        else:
            self._restamp(now_unix)
        if s is None:
            metrics = {name: MetricReading(None) for name in _METRICS}
            extra = {pair: MetricReading(None) for pair in self._extra}
            load: float | None = None
        else:
            age, ready = float(view.now - s.time), s.ready
            per_pod = {
                "gpu_utilization": s.gpu_utilization,
                "request_queue": s.queue / ready if ready else None,
            }
            metrics = {}
            for name, how in self._how.items():  # loops, not a closure: once per decision
                metrics[name] = MetricReading(_over_pods(per_pod[name], ready, how), ready, age)
            extra = {}
            for name, agg in self._extra:
                extra[name, agg] = MetricReading(_over_pods(per_pod[name], ready, agg), ready, age)
            load = s.arrival_rate
            if not ready:
                # No pod pushes: what holds the requests (the SDK's hold proxy, a gateway)
                # pushes its queue with no pod label, one series; nothing pushes the rate.
                held = MetricReading(float(s.queue), 1, age)
                metrics = {**metrics, "request_queue": held}
                extra = {k: held if k[0] == "request_queue" else v for k, v in extra.items()}
                load = None
        obs = Observation(
            metrics=metrics,
            current_replicas=view.replicas,
            ready_pods=view.ready,
            starting_pods=view.starting,
            load_rate=load,
            cold_start_s=view.cold_start_s,
            by_aggregation=extra,
        )
        d = decide(self.spec, obs, self._forecast, self.state, now_unix)
        self.decisions += 1
        self.last_decision = d
        self.state = d.state  # kept whatever the decision, as the reconciler stores it
        # (an invalid decision, nothing measured yet, is the count moved into the bounds: the
        # reconciler applies it like any other)
        if any(r.code == Code.EMERGENCY_START for r in d.reasons):
            self.burst_starts.append(view.now)
        return d.replicas


_METRICS = ("gpu_utilization", "request_queue")  # what the simulated pods push

# The forecasts of this process's recent replays, by the digest of the calls that made them
# (a few runs' worth: one run refits or refreshes a few thousand times at most).
_FORECASTS: OrderedDict[bytes, LoadForecast] = OrderedDict()
_FORECASTS_KEPT = 20_000


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def _over_pods(per_pod: float | None, ready: int, how: str) -> float | None:
    """A per-pod value aggregated over the Ready pods the way the live store would. The
    simulated pods are interchangeable (pooled slots, one FIFO), so every pod reports the
    per-pod value: the sum is it times the Ready pods; avg, max and min are it."""
    if per_pod is None:
        return None
    return per_pod * ready if how == "sum" else per_pod
