"""What the services work with, built once at start-up (app.main) and shared by the routes
(through app.api.context) and the workers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from app.clock import Clock
from app.kube.cluster import Cluster
from app.prometheus import PrometheusClient
from app.services.forecasts import ForecastCache
from app.services.jobs import SimulationJobs
from app.services.principals import TokenCache
from app.services.specs import SpecCache
from app.services.wakeup import Wakeup
from app.settings import Settings
from app.store.db import Database
from app.store.series import SeriesStore
from app.telemetry import Telemetry

__all__ = ["Shell"]


@dataclass
class Shell:
    settings: Settings
    db: Database
    series: SeriesStore
    clock: Clock
    telemetry: Telemetry
    cluster: Cluster
    forecasts: ForecastCache
    simulations: SimulationJobs
    specs: SpecCache = field(default_factory=SpecCache)
    tokens: TokenCache = field(default_factory=TokenCache)
    # Ingestion wakes the reconciler for a burst; a rollout started or cancelled kicks the
    # rollout executor (both loops run on the leader, in this process or not at all).
    wakeup: Wakeup = field(default_factory=Wakeup)
    rollout_kick: asyncio.Event = field(default_factory=asyncio.Event)
    prometheus: PrometheusClient | None = None  # None: CIUIC_PROMETHEUS_URL not set
