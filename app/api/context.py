"""What every request can reach: settings, the database, stores, the clock, our own metrics.

Built once in the app's lifespan (app.main) and handed to routes through `Ctx`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from app.clock import Clock
from app.kube.cluster import Cluster
from app.settings import Settings
from app.store.db import Database
from app.store.series import SeriesStore
from app.telemetry import Telemetry
from app.workers.forecasts import ForecastCache
from app.workers.simulations import SimulationJobs
from app.workers.wakeup import Wakeup

__all__ = ["AppContext", "Ctx", "get_context"]


@dataclass
class AppContext:
    settings: Settings
    db: Database
    series: SeriesStore
    clock: Clock
    telemetry: Telemetry
    cluster: Cluster
    forecasts: ForecastCache
    simulations: SimulationJobs
    # Shared by routes and workers: ingestion wakes the reconciler for a burst; the rollout
    # API kicks the rollout executor when it creates or cancels one.
    wakeup: Wakeup = field(default_factory=Wakeup)
    rollout_kick: asyncio.Event = field(default_factory=asyncio.Event)
    extras: dict[str, object] = field(default_factory=dict)


def get_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


Ctx = Annotated[AppContext, Depends(get_context)]
