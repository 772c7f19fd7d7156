"""A shell on a real database (each backend), a fake clock and a recording cluster: what the
services run on, without HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.kube.cluster import RecordingCluster
from app.services.forecasts import ForecastCache
from app.services.jobs import SimulationJobs
from app.services.shell import Shell
from app.settings import Settings
from app.store import scalers as scaler_store
from app.store.db import Database
from app.store.series import SeriesStore
from app.telemetry import Telemetry
from testkit.clock import FakeClock
from tests.conftest import truncate_all

SPEC: dict[str, Any] = {
    "name": "llm",
    "target": "llm",
    "metrics": [
        {"name": "gpu_utilization", "target": "80%"},
        {"name": "request_queue", "target": "<5"},
    ],
    "emergency": {
        "enabled": True,
        "triggers": [{"metric": "request_queue", "threshold": 50, "duration": "0s"}],
    },
}


@pytest.fixture
async def shell(database_url: str) -> AsyncIterator[Shell]:
    await truncate_all(database_url)
    clock = FakeClock()
    db = Database(database_url)
    built = Shell(
        settings=Settings(database_url=database_url, run_workers=False),
        db=db,
        series=SeriesStore(max_series_per_job=3, lateness_us=10**12),
        clock=clock,
        telemetry=Telemetry(),
        cluster=RecordingCluster(initial_replicas=2),
        forecasts=ForecastCache(),
        simulations=SimulationJobs(db, clock=clock),
    )
    yield built
    await built.simulations.close()
    await db.dispose()


async def store_scaler(shell: Shell, doc: dict[str, Any]) -> scaler_store.StoredScaler:
    async with shell.db.transaction() as conn:
        return await scaler_store.upsert_scaler(
            conn, str(doc["name"]), doc, now_us=shell.clock.stamp_us()
        )
