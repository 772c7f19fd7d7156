"""From a `Forecast` to the policy's `LoadForecast` (tuples, no numpy in the contract)."""

from __future__ import annotations

from app.forecasting.types import Forecast
from app.forecasting.wake import Wake
from app.policy.types import LoadForecast, WakeForecast

__all__ = ["to_load_forecast"]


def to_load_forecast(
    forecast: Forecast, model: str | None, made_at: float, failed: str | None = None
) -> LoadForecast:
    """`model` defaults to the forecast's own name; `failed` (e.g. "stale: fitted 2 h ago")
    overrides the forecast's, and a failed forecast carries empty paths so the policy cannot
    use them by mistake."""
    reason = failed if failed is not None else forecast.failed
    if reason is not None:
        return LoadForecast(
            model=model or forecast.model,
            made_at=made_at,
            start=forecast.start,
            step_s=forecast.step_s,
            mean=(),
            quantiles={},
            failed=reason,
        )
    return LoadForecast(
        model=model or forecast.model,
        made_at=made_at,
        start=forecast.start,
        step_s=forecast.step_s,
        mean=tuple(float(v) for v in forecast.mean),
        quantiles={float(q): tuple(float(v) for v in p) for q, p in forecast.quantiles.items()},
        failed=None,
        skill=forecast.skill,
        wake=None if forecast.wake is None else _wake(forecast.wake),
    )


def _wake(wake: Wake) -> WakeForecast:
    score = wake.score
    return WakeForecast(
        model=wake.model,
        path=tuple(float(v) for v in wake.path),
        events=score.events,
        hits=score.hits,
        quiet=score.quiet,
        false_wakes=score.false_wakes,
        earned=score.earned,
    )
