"""The command line's migrate, the workers' supervisor, and the structured logs."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from app.logs import JsonFormatter
from app.store.tables import metadata
from app.workers.supervisor import Supervisor


def test_ciuic_migrate_creates_the_schema(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/fresh.db"
    env = {**os.environ, "CIUIC_DATABASE_URL": url}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "migrate"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "database at head" in result.stderr

    async def tables() -> set[str]:
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        await engine.dispose()
        return names

    assert set(metadata.tables) <= asyncio.run(tables())


async def test_a_crashing_worker_is_logged_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    runs: list[int] = []
    restarted = asyncio.Event()

    async def flaky(stop: asyncio.Event) -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise RuntimeError("boom")
        restarted.set()
        await stop.wait()

    supervisor = Supervisor(min_backoff_s=0.01)
    with caplog.at_level(logging.ERROR, logger="ciuic.workers"):
        supervisor.start("flaky", flaky)
        await asyncio.wait_for(restarted.wait(), timeout=5)
        await supervisor.stop()
    assert runs == [0, 1]
    assert supervisor.failures == {"flaky": 1}
    assert "worker flaky crashed" in caplog.text


def test_logs_are_one_json_object_per_line_with_extras() -> None:
    record = logging.makeLogRecord(
        {"name": "ciuic", "levelname": "WARNING", "msg": "pushed %d", "args": (3,), "job": "x"}
    )
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["level"] == "warning" and entry["message"] == "pushed 3"
    assert entry["logger"] == "ciuic" and entry["job"] == "x" and "time" in entry


async def test_an_open_api_warns_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from app.main import create_app
    from app.settings import Settings

    app = create_app(
        Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db", run_workers=False)
    )
    with caplog.at_level(logging.WARNING, logger="ciuic"):
        async with app.router.lifespan_context(app):
            pass
    assert "no CIUIC_ADMIN_TOKEN set: the API is open" in caplog.text
