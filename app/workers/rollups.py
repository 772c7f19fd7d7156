"""The rollup and retention loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from app.clock import Clock
from app.settings import Settings
from app.store.db import Database, is_unavailable
from app.store.rollups import RetentionPolicy, apply_retention, roll_up
from app.telemetry import Telemetry

__all__ = ["rollup_loop"]

log = logging.getLogger("ciuic.workers.rollups")
DAY_US = 86_400_000_000


def retention_policy(settings: Settings) -> RetentionPolicy:
    return RetentionPolicy(
        raw_us=int(settings.raw_retention_days * DAY_US),
        rollup_1m_us=int(settings.rollup_1m_retention_days * DAY_US),
        rollup_1h_us=int(settings.rollup_1h_retention_days * DAY_US),
        events_us=int(settings.event_retention_days * DAY_US),
        simulations_us=int(settings.simulation_retention_days * DAY_US),
    )


async def run_once(db: Database, settings: Settings, clock: Clock) -> None:
    now_us = int(clock.now() * 1e6)
    report = await roll_up(db, now_us=now_us, lateness_us=int(settings.rollup_lateness_s * 1e6))
    deleted = await apply_retention(db, now_us=now_us, policy=retention_policy(settings))
    log.debug(
        "rollup pass",
        extra={
            "minute_buckets": report.minute_buckets,
            "hour_buckets": report.hour_buckets,
            "dirty_ranges": report.dirty_ranges,
            "deleted_samples": deleted,
        },
    )


def rollup_loop(
    db: Database, settings: Settings, clock: Clock, telemetry: Telemetry
) -> Callable[[asyncio.Event], Awaitable[None]]:
    async def loop(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await run_once(db, settings, clock)
                telemetry.rollup_runs.labels("ok").inc()
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                telemetry.rollup_runs.labels("database_down").inc()
                log.warning("rollup pass skipped: database unavailable (%s)", exc)
            if await clock.wait_for(stop, timeout_s=settings.rollup_interval_s):
                return

    return loop
