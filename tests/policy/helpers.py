"""Builders shared by the policy tests: small specs, observations and forecasts."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from app.policy import (
    Decision,
    LoadForecast,
    MetricReading,
    Observation,
    ScalerSpec,
    ScalerState,
    decide,
    parse_spec,
)

BRIEF_PATH = Path(__file__).parent / "brief.yaml"
T0 = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC, a Friday
GPU = "gpu_utilization"
QUEUE = "request_queue"


def brief_document() -> dict[str, Any]:
    doc = yaml.safe_load(BRIEF_PATH.read_text())
    assert isinstance(doc, dict)
    return doc


def spec(**overrides: Any) -> ScalerSpec:
    """One GPU metric at 50 %, HPA-like combine, defaults elsewhere; `overrides` replace keys."""
    doc: dict[str, Any] = {
        "target": "svc",
        "metrics": [{"name": GPU, "target": "50%"}],
        "combine": "max",
        "min_replicas": 1,
        "max_replicas": 100,
    }
    doc.update(overrides)
    return parse_spec(doc)


def obs(
    current: int = 3,
    *,
    ready: int | None = None,
    starting: int = 0,
    reporting: int | None = None,
    age_s: float = 0.0,
    cold_start_s: float | None = None,
    load_rate: float | None = None,
    **values: float | None,
) -> Observation:
    """`gpu=...`, `queue=...` or any metric name as keywords; ready defaults to current;
    `load_rate` is the load signal's total (requests/s)."""
    ready = current if ready is None else ready
    names = {"gpu": GPU, "queue": QUEUE}
    metrics: Mapping[str, MetricReading] = {
        names.get(k, k): MetricReading(v, ready if reporting is None else reporting, age_s)
        for k, v in values.items()
    }
    return Observation(
        metrics=metrics,
        current_replicas=current,
        ready_pods=ready,
        starting_pods=starting,
        cold_start_s=cold_start_s,
        load_rate=load_rate,
    )


def flat_forecast(
    load: float,
    *,
    made_at: float = T0,
    q90: float | None = None,
    hours: int = 2,
    failed: str | None = None,
    skill: float | None = 0.5,
) -> LoadForecast:
    """A constant forecast on a 5-minute grid from `made_at`."""
    n = hours * 12 + 1
    quantiles = {} if q90 is None else {0.9: (q90,) * n}
    return LoadForecast(
        "test", made_at, made_at, 300.0, (load,) * n, quantiles, failed, skill=skill
    )


def running(**fields: Any) -> ScalerState:
    """The state of a scaler that has had data for an hour (past its warm-up window)."""
    return ScalerState(since=T0 - 3600, **fields)


def run(
    s: ScalerSpec,
    o: Observation,
    *,
    forecast: LoadForecast | None = None,
    state: ScalerState | None = None,
    now: float = T0,
) -> Decision:
    """One decision; by default for a scaler that has been running (`running()`)."""
    return decide(s, o, forecast, state if state is not None else running(), now)


def codes(d: Decision) -> list[str]:
    return [r.code for r in d.reasons]


def code_of(d: Decision, step: str) -> str:
    """The code the given step (`reactive`, `behavior`, ...) emitted."""
    (found,) = [r.code for r in d.reasons if r.code.split(".")[0] == step]
    return found
