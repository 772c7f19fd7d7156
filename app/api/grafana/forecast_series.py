"""`forecast:<scaler>:<band>`: the latest fitted forecast of a scaler on the window's steps,
including the future (a forecast lies ahead of now).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from app.api.context import AppContext
from app.api.grafana.frames import TimeSeries, Window
from app.errors import BadRequest
from app.policy import SpecError
from app.policy.capacity import capacity_in_use
from app.policy.predictive import planned_pods, quantile_path
from app.store import scalers as scaler_store

__all__ = ["FORECAST_BANDS", "forecast_metric_names", "forecast_series"]

FORECAST_BANDS = ("mean", "p50", "p90", "p99", "replicas")
_BAND_QUANTILE = {"p50": 0.5, "p90": 0.9, "p99": 0.99}


def forecast_metric_names(scalers: Sequence[str]) -> list[str]:
    """The forecast series that can be queried: `forecast:<scaler>:<band>`."""
    return [f"forecast:{s}:{band}" for s in scalers for band in FORECAST_BANDS]


def _along(path: Sequence[float], start_s: float, step_s: float, t_s: float) -> float | None:
    """The path's value at t: the mean of the bucket holding t, as the policy reads it (a
    point is its bucket's mean load); None outside the path."""
    if not path:
        return None
    k = math.floor((t_s - start_s) / step_s)
    if k < 0 or k >= len(path):
        return None
    return float(path[k])


async def forecast_series(
    ctx: AppContext, scaler: str, band: str, window: Window
) -> list[TimeSeries]:
    """The latest fitted forecast of `scaler` as one series, `<scaler> forecast <band>`, on the
    window's steps (including the future: a forecast lies ahead of now). Bands: mean, p50,
    p90, p99 (only those the model produced; a missing quantile is not invented), and
    replicas (pods for the spec's quantile at planned utilisation, within the bounds). No
    forecast yet, a failed fit, or an unknown scaler: no series."""
    if band not in FORECAST_BANDS:
        raise BadRequest(
            f"unknown forecast band {band!r}; known: " + ", ".join(FORECAST_BANDS),
            code="invalid_target",
        )
    async with ctx.db.read() as conn:
        stored_scaler = await scaler_store.get_scaler(conn, scaler)
    if stored_scaler is None:
        return []
    stored = await ctx.forecasts.get(ctx.db, scaler)
    if stored is None or stored.forecast.failed is not None or not stored.forecast.mean:
        return []
    fc = stored.forecast
    spec = None
    per_pod: float | None = None
    if band == "mean":
        path: Sequence[float] = fc.mean
    elif band == "replicas":
        try:
            spec = ctx.specs.spec_of(stored_scaler)
        except SpecError:
            return []
        per_pod = capacity_in_use(spec, stored_scaler.state.capacity).per_pod
        if per_pod is None:
            return []
        path, _ = quantile_path(fc, spec.forecast.quantile)
    else:
        found = fc.quantiles.get(_BAND_QUANTILE[band])
        if found is None:
            return []
        path = found
    first = window.start_ms - window.start_ms % window.step_ms
    times = list(range(first, window.end_ms + 1, window.step_ms))[-window.max_points :]
    points: list[tuple[float, int]] = []
    for t_ms in times:
        value = _along(path, fc.start, fc.step_s, t_ms / 1000)
        if value is None:
            continue
        if spec is not None:
            pods = planned_pods(spec, value, per_pod)
            if pods is None:
                continue
            value = float(min(spec.max_replicas, max(spec.min_replicas, math.ceil(pods - 1e-9))))
        points.append((value, t_ms))
    return [TimeSeries(f"{scaler} forecast {band}", points)]
