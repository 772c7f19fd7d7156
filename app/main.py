"""The application factory: where every request enters (routers below) and where the
background workers start (lifespan)."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api import (
    audit,
    forecasts,
    grafana,
    ops,
    query,
    rollouts,
    samples,
    scalers,
    simulations,
    tokens,
    ui,
)
from app.api.context import AppContext
from app.api.docs import install_docs
from app.api.errors import install_error_handlers
from app.api.pushgateway import routes as pushgateway
from app.api.remotewrite import routes as remotewrite
from app.api.responses import install_openapi
from app.clock import Clock, SystemClock
from app.kube.cluster import Cluster
from app.kube.config import build_cluster, build_elector
from app.kube.lease import LeaderElector
from app.kube.simulated import SimulatedCluster
from app.prometheus import PrometheusClient
from app.services.backfill import Backfiller
from app.services.forecasts import ForecastCache
from app.services.jobs import SimulationJobs
from app.services.principals import TokenCache
from app.settings import Settings, get_settings
from app.store.db import Database
from app.store.series import SeriesStore
from app.telemetry import Telemetry
from app.workers.forecasts import forecast_loop
from app.workers.leader import Leadership, elector_for
from app.workers.reconciler import reconcile_loop
from app.workers.rollouts import RolloutExecutor, rollout_loop
from app.workers.rollups import rollup_loop
from app.workers.supervisor import Supervisor

__all__ = ["create_app", "create_worker_app"]

log = logging.getLogger("ciuic")


class LatencyMiddleware:
    """Request latency per route template, as plain ASGI (no per-request task overhead)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            route = scope.get("route")
            ctx: AppContext | None = getattr(scope["app"].state, "ctx", None)
            if ctx is not None:
                ctx.telemetry.latency.labels(
                    scope["method"], getattr(route, "path", "unmatched")
                ).observe(time.perf_counter() - started)


def create_worker_app() -> FastAPI:
    """The app of one `ciuic serve --workers N` process: uvicorn starts each worker in a fresh
    interpreter, so the logging `serve` set up in its own process (the INFO line of each scale
    action, the access-log switch) is set up again here, from the same settings."""
    from app.logs import configure_logging

    settings = get_settings()
    configure_logging(
        settings.log_level, json_lines=settings.log_json, access_log=settings.access_log
    )
    return create_app(settings)


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    cluster: Cluster | None = None,
) -> FastAPI:
    """`cluster` replaces the configured one (tests, benchmarks: a simulated cluster with
    short cold starts that outlives the app, as a real cluster outlives a restart)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(
            settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
        )
        clock_ = clock or SystemClock()
        kube = await build_cluster(settings) if cluster is None else None  # None: not configured
        cluster_: Cluster = cluster or (kube if kube is not None else SimulatedCluster(clock_))
        ctx = AppContext(
            settings=settings,
            db=db,
            series=SeriesStore(
                max_series_per_job=settings.max_series_per_job,
                lateness_us=int(settings.rollup_lateness_s * 1e6),
                monotonic=clock_.monotonic,
            ),
            clock=clock_,
            telemetry=Telemetry(),
            cluster=cluster_,
            forecasts=ForecastCache(),
            simulations=SimulationJobs(
                db,
                clock=clock_,
                max_pending=settings.max_pending_simulations,
                heartbeat_s=settings.simulation_heartbeat_s,
                lost_after_s=settings.simulation_lost_after_s,
            ),
            tokens=TokenCache(clock_.monotonic),
            prometheus=PrometheusClient.from_settings(settings),
        )
        app.state.ctx = ctx
        supervisor = Supervisor(clock=clock_)
        # Jobs left queued or running by a process that is gone are failed now (those whose
        # heartbeat is already old) and by the loop later (those it stops refreshing). In
        # every process, workers or not: each one runs the jobs it accepted.
        try:
            await ctx.simulations.reap()
        except Exception as exc:  # the database may be down at start-up: the loop retries
            log.warning("could not check for lost simulation jobs: %s", exc)
        supervisor.start("simulations", ctx.simulations.keep_alive)
        if settings.run_workers:

            def workers() -> dict[str, Callable[[asyncio.Event], Awaitable[None]]]:
                return {
                    "rollups": rollup_loop(db, settings, ctx.clock, ctx.telemetry),
                    "reconciler": reconcile_loop(
                        db,
                        ctx.cluster,
                        settings,
                        ctx.clock,
                        ctx.telemetry,
                        ctx.forecasts,
                        ctx.wakeup,
                        ctx.specs,
                        ctx.prometheus,
                    ),
                    "rollouts": rollout_loop(
                        RolloutExecutor(
                            db,
                            ctx.cluster,
                            ctx.clock,
                            ctx.forecasts,
                            ctx.wakeup,
                            ctx.specs,
                            ctx.prometheus,
                        ),
                        settings,
                        ctx.rollout_kick,
                    ),
                    "forecasts": forecast_loop(
                        db,
                        ctx.forecasts,
                        settings,
                        ctx.clock,
                        ctx.specs,
                        Backfiller(
                            db,
                            ctx.series,
                            ctx.prometheus,
                            lateness_s=settings.rollup_lateness_s,
                            concurrency=settings.prometheus_concurrency,
                        ),
                    ),
                }

            elector: LeaderElector = (
                build_elector(settings, kube, clock_) if kube is not None else elector_for(db)
            )
            interval = (
                settings.lease_retry_period_s if kube is not None else settings.leader_interval_s
            )
            leadership = Leadership(elector, workers, interval_s=interval, clock=clock_)
            ctx.leadership = leadership
            supervisor.start("leadership", leadership.run)
        if not settings.auth_enabled:
            log.warning(
                "no CIUIC_ADMIN_TOKEN set: the API is open to anyone who can reach %s",
                settings.host,
            )
        # Objects alive after start-up (modules, settings, caches) never become garbage: keep
        # the collector from rescanning them on every full collection (fewer latency spikes).
        gc.freeze()
        try:
            yield
        finally:
            await supervisor.stop()
            await ctx.simulations.close()
            if kube is not None:
                await kube.close()
            if ctx.prometheus is not None:
                await ctx.prometheus.aclose()
            await db.dispose()

    app = FastAPI(
        title="Ciuic",
        version="0.1.0",
        summary="Predictive autoscaler for GPU inference on Kubernetes",
        lifespan=lifespan,
        redirect_slashes=False,  # a redirected push fails in prometheus_client
        docs_url=None,  # served by install_docs from local assets, not from CDNs
        redoc_url=None,
    )
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )

    app.add_middleware(LatencyMiddleware)
    for module in (
        ops,
        pushgateway,
        samples,
        remotewrite,
        query,
        tokens,
        scalers,
        rollouts,
        forecasts,
        simulations,
        grafana,
        audit,
        ui,
    ):
        app.include_router(module.router)
    install_openapi(app)
    install_docs(app)
    return app
