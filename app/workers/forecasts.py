"""Forecast refits, in the background: each scaler's load history from the store, a model
fitted off the event loop, the result cached in memory (app.services.forecasts) and persisted.

Fast models refit every minute, prophet every hour (docs/forecasting.md: a prophet fit on a week of
5-minute data costs ~0.1 s and ~300 MB; nothing fits on the request path). Accuracy per model
(MASE against the seasonal naive, P90 coverage) is re-measured on a slower cadence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import asdict
from typing import Any, TypeVar

from app.clock import Clock
from app.forecasting import (
    ConfigError,
    History,
    make_forecaster,
    metrics,
    rolling_origin,
    to_load_forecast,
)
from app.forecasting.base import Forecaster
from app.forecasting.from_spec import forecaster_for, history_span, lead_steps, model_name
from app.policy import ScalerSpec, SpecError
from app.policy.types import LoadForecast
from app.pools import stop_workers, worker_init
from app.services.backfill import Backfilled, Backfiller, history_selector
from app.services.forecasts import (
    GRID_STEP_S,
    ForecastCache,
    asleep_spans,
    load_history,
)
from app.services.specs import SpecCache
from app.settings import Settings
from app.store import forecasts as store
from app.store import scalers as scaler_store
from app.store.db import Database, is_unavailable

__all__ = ["fit_forecast", "forecast_loop", "refit_due"]

log = logging.getLogger("ciuic.workers.forecasts")

T = TypeVar("T")

QUANTILES = (0.5, 0.9, 0.99)
ACCURACY_MODELS = ("naive", "seasonal_naive", "robust_seasonal", "adaptive", "auto")


def fit_forecast(
    spec: ScalerSpec, history: History, now: float, cold_start_s: float | None = None
) -> tuple[LoadForecast, dict[str, Any]]:
    """Fit the spec's model and forecast an hour past the lead (pure, CPU-bound)."""
    lead = lead_steps(spec, history.step_s, cold_start_s)
    horizon = lead + math.ceil(3600.0 / history.step_s)
    details: dict[str, Any] = {"lead_steps": lead, "history_points": len(history)}
    try:
        model = forecaster_for(spec, lead=lead)
    except ConfigError as exc:
        failed = LoadForecast(
            model=model_name(spec) or "none",
            made_at=now,
            start=history.end + history.step_s,
            step_s=history.step_s,
            mean=(),
            failed=f"cannot build the model: {exc}",
        )
        return failed, details
    forecast = model.fit(history).predict(horizon, QUANTILES)
    chosen = getattr(model, "chosen", None)
    details["notes"] = list(forecast.notes)
    if forecast.wake is not None:  # a scaler allowed to sleep: how its wake did at rest
        verdict = "earned" if forecast.wake.score.earned else "not earned"
        details["notes"].append(
            f"wake from zero by {forecast.wake.model}: {forecast.wake.score.describe()} ({verdict})"
        )
    details["backtest"] = asdict(forecast.backtest) if forecast.backtest else None
    if chosen:
        details["chosen"] = chosen
    name = forecast.model or (model_name(spec) or "")
    return to_load_forecast(forecast, name, made_at=now), details


def accuracy(history: History, lead: int) -> dict[str, dict[str, float | int]]:
    """Out-of-sample MASE (vs seasonal naive) and P90 coverage of each model on the last two
    days of the history, refitting at each origin (pure, CPU-bound)."""
    n = len(history)
    if n < lead + 10:
        return {}
    span = min(n - lead - 1, round(2 * 86400 / history.step_s))
    every = max(1, span // 24)
    origins = list(range(n - lead - span, n - lead, every))

    def maker(name: str) -> Callable[[], Forecaster]:
        return lambda: make_forecaster(name, lead=lead)

    results = {
        name: rolling_origin(
            history,
            maker(name),
            lead=lead,
            origins=origins,
            max_history=round(7 * 86400 / history.step_s),
        )
        for name in ACCURACY_MODELS
    }
    base = results["seasonal_naive"]
    out: dict[str, dict[str, float | int]] = {}
    for name, result in results.items():
        m = metrics(result, base)
        out[name] = {
            "n": m.n,
            "mae": m.mae,
            "mase": m.mase,
            "under": m.under,
            "p90_coverage": m.coverage,
        }
    return out


class _Abandoned(Exception):
    """The loop is stopping while a fit runs: its result is not waited for."""


async def _off_loop(
    executor: Executor | None, stop: asyncio.Event | None, fn: Callable[..., T], *args: object
) -> T:
    """`fn(*args)` in `executor`, given up on (`_Abandoned`) the moment `stop` is set: a
    Prophet fit takes seconds, and a service told to stop must not wait for it. The worker
    running it is stopped by its pool's owner (`forecast_loop`)."""
    future = asyncio.get_running_loop().run_in_executor(executor, fn, *args)
    if stop is None:
        return await future
    stopping = asyncio.ensure_future(stop.wait())
    either: list[asyncio.Future[Any]] = [future, stopping]
    try:
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not future.done():
        future.cancel()  # a queued call never starts; a running one is the pool owner's
        raise _Abandoned
    return future.result()


async def refit_due(
    db: Database,
    cache: ForecastCache,
    clock: Clock,
    settings: Settings,
    executor: Executor | None = None,
    specs: SpecCache | None = None,
    backfiller: Backfiller | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Refit every scaler whose forecast is due; returns how many were fitted. Fits run in
    `executor` (the service passes a process: see `forecast_loop`), else in a thread. A
    scaler whose load is read from Prometheus has its history backfilled first
    (app.services.backfill), all of the pass's at once.

    Once `stop` is set the pass ends without waiting for a fit in progress: the scalers
    not fitted (that one included) write nothing, since each result is written here, after
    its fit, in one transaction, and they are due again at once for the next loop (a new
    leader's, in this process or another)."""
    specs = specs or SpecCache()
    async with db.read() as conn:
        scalers = await scaler_store.list_scalers(conn)
    fitted = 0
    live = {s.name for s in scalers}
    for name in list(cache.latest):
        if name not in live:
            cache.forget(name)
    due: list[tuple[str, ScalerSpec, str]] = []
    for scaler in scalers:
        try:
            spec = specs.spec_of(scaler)
        except SpecError:
            continue
        wanted = model_name(spec)
        now = clock.now()
        if wanted is None or now < cache.next_fit.get(scaler.name, 0.0):
            continue
        cadence = (
            settings.forecast_refit_prophet_s if wanted == "prophet" else settings.forecast_refit_s
        )
        cache.next_fit[scaler.name] = now + cadence
        due.append((scaler.name, spec, wanted))
    backfilled: dict[str, Backfilled] = {}
    if backfiller is not None and due:
        backfilled = await backfiller.run([(n, s) for n, s, _ in due], clock.now())
    for i, (name, spec, wanted) in enumerate(due):
        if stop is not None and stop.is_set():
            _due_again(cache, due[i:])
            break
        now = clock.now()
        async with db.read() as conn:
            # at zero no pod pushes: the spans it slept are no load, not gaps
            span = history_span(spec)  # four weeks for a scaler that may sleep: its wake
            asleep = (
                await asleep_spans(conn, name, now - span, now) if spec.min_replicas == 0 else []
            )
            history = await load_history(
                conn, spec, now, span_s=span, series=history_selector(name, spec), asleep=asleep
            )
        filled = backfilled.get(name)
        if history is None:
            if filled is not None and filled.error is not None:
                await _no_history(db, cache, name, wanted, now, filled, backfiller)
            continue
        try:
            forecast, details = await _off_loop(executor, stop, fit_forecast, spec, history, now)
        except _Abandoned:
            _due_again(cache, due[i:])
            break
        except Exception as exc:  # a model crashing must not stop the others
            log.exception("forecast fit failed for %s", name)
            forecast = LoadForecast(
                model=wanted,
                made_at=now,
                start=history.end + history.step_s,
                step_s=history.step_s,
                mean=(),
                failed=f"fit failed: {type(exc).__name__}: {exc}",
            )
            details = {}
        if filled is not None:
            details["backfill"] = _backfill_details(filled)
        previous = cache.latest.get(name)
        if now >= cache.next_accuracy.get(name, 0.0):
            cache.next_accuracy[name] = now + settings.forecast_accuracy_s
            try:
                details["accuracy"] = await _off_loop(
                    executor, stop, accuracy, history, int(details.get("lead_steps", 1))
                )
            except _Abandoned:
                cache.next_accuracy.pop(name, None)
                _due_again(cache, due[i:])
                break
            details["accuracy_at"] = now
        elif previous is not None and "accuracy" in previous.details:
            details["accuracy"] = previous.details["accuracy"]
            details["accuracy_at"] = previous.details.get("accuracy_at")
        async with db.transaction() as conn:
            await store.save_forecast(conn, name, forecast, details)
        cache.latest[name] = store.StoredForecast(name, forecast, details)
        fitted += 1
    return fitted


def _due_again(cache: ForecastCache, left: list[tuple[str, ScalerSpec, str]]) -> None:
    """Scalers a stopping pass did not fit: due at once for the next loop."""
    for name, _, _ in left:
        cache.next_fit.pop(name, None)


def _backfill_details(filled: Backfilled) -> dict[str, Any]:
    return {"query": filled.query, "points": filled.points, "error": filled.error}


async def _no_history(
    db: Database,
    cache: ForecastCache,
    name: str,
    wanted: str,
    now: float,
    filled: Backfilled,
    backfiller: Backfiller | None,
) -> None:
    """No history because the backfill failed: a failed forecast that says so, which the
    decision's `predictive.failed` reason shows (the scaler scales on its readings alone)."""
    where = backfiller.where() if backfiller is not None else "Prometheus"
    forecast = LoadForecast(
        model=wanted,
        made_at=now,
        start=now,
        step_s=GRID_STEP_S,
        mean=(),
        failed=f"no history yet: the backfill from {where} failed ({filled.error}); "
        "retried at the next refit",
    )
    details = {"backfill": _backfill_details(filled)}
    async with db.transaction() as conn:
        await store.save_forecast(conn, name, forecast, details)
    cache.latest[name] = store.StoredForecast(name, forecast, details)


def _background_priority() -> None:
    """The fitting process yields the CPU to ingestion and reconciles: a refit may finish a
    little later, a push must not wait (bench/soak.py: p99 153 ms at normal priority). It
    leaves Ctrl-C to the service, which shuts the pool down."""
    worker_init()
    with contextlib.suppress(OSError, AttributeError):  # not on every platform
        os.nice(10)


def forecast_loop(
    db: Database,
    cache: ForecastCache,
    settings: Settings,
    clock: Clock,
    specs: SpecCache | None = None,
    backfiller: Backfiller | None = None,
) -> Callable[[asyncio.Event], Awaitable[None]]:
    async def loop(stop: asyncio.Event) -> None:
        # Fits run in their own process: in a thread they hold the GIL for tens of ms at a
        # time and stall the event loop (bench/soak.py: push p99 336 ms with fits in a thread,
        # 111 ms without fits). Spawned, not forked: the event loop's state stays here.
        pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_background_priority,
        )
        try:
            # Started now, not at the first fit (minutes later, once a scaler has history): the
            # service's footprint is known from start-up, and a process that cannot start
            # fails here, visibly.
            try:
                await _off_loop(pool, stop, os.getpid)
            except _Abandoned:  # stopped while the process was starting
                return
            while not stop.is_set():
                cache.kick.clear()
                try:
                    await refit_due(db, cache, clock, settings, pool, specs, backfiller, stop)
                except Exception as exc:
                    if not is_unavailable(exc):
                        raise
                    log.warning("forecast refit skipped: database unavailable (%s)", exc)
                # A scaler created or replaced kicks the loop: its forecast comes at once.
                pause = min(10.0, settings.forecast_refit_s)
                if await clock.wait_for(stop, cache.kick, timeout_s=pause) and stop.is_set():
                    return
        finally:
            # The worker is terminated, a fit in progress included (refit_due gave up on it:
            # its result, written by this process, is not needed), rather than waited for: a
            # Prophet fit takes seconds, and Kubernetes' SIGTERM must stop the service
            # promptly. Then the pool is shut down, off the loop, so the process and its
            # semaphores are gone before the service exits (no resource-tracker warnings).
            await asyncio.to_thread(stop_workers, pool)

    return loop
