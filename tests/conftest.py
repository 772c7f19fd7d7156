"""Shared fixtures: both database backends, and the service running for real on a port.

PostgreSQL tests use a fresh database per run on the local server (127.0.0.1:5432). When the
server is unreachable they are skipped on a developer machine and FAIL under CI=true.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import create_async_engine

from app.clock import Clock
from app.kube.cluster import Cluster
from app.main import create_app
from app.settings import Settings
from app.store.db import Database
from app.store.migrate import upgrade
from app.store.tables import metadata

PG_ADMIN_DSN = os.environ.get("CIUIC_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BACKENDS = ("sqlite", "postgresql")


def _pg_reachable() -> str | None:
    async def probe() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception as exc:  # any failure means "not reachable" here
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    problem = _pg_reachable()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI=true and is unreachable: {problem}")
        pytest.skip(f"PostgreSQL unreachable: {problem}")
    name = f"ciuic_test_{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()

    asyncio.run(create())
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    url = f"{base}/{name}"
    asyncio.run(upgrade(url))
    yield url
    asyncio.run(drop())


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("sqlite") / "ciuic.db"
    url = f"sqlite+aiosqlite:///{path}"
    asyncio.run(upgrade(url))
    return url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str:
    name = "pg_url" if request.param == "postgresql" else "sqlite_url"
    url: str = request.getfixturevalue(name)
    return url


async def truncate_all(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        names = [t.name for t in reversed(metadata.sorted_tables)]
        if conn.dialect.name == "postgresql":
            await conn.execute(sa.text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))
        else:
            for name in names:
                await conn.execute(sa.text(f"DELETE FROM {name}"))
    await engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class LiveServer:
    """The real service on a real port, in a thread with its own event loop."""

    app: FastAPI
    url: str
    settings: Settings
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def hostport(self) -> str:
        return self.url.removeprefix("http://")

    def reset_caches(self) -> None:
        ctx: Any = self.app.state.ctx
        ctx.series.forget()
        ctx.forecasts.clear()
        ctx.specs.clear()
        ctx.tokens.clear()
        ctx.push_limiter.forget()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def decided_once(live: LiveServer, name: str, after_s: float = 0.0) -> None:
    """Wake the reconcile loop for scaler `name` and wait for its first recorded decision,
    then `after_s` more (a scaler gives nothing back before a window of its own data)."""
    live.app.state.ctx.wakeup.wake(name)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = httpx.get(f"{live.url}/v1/scalers/{name}").json()["status"]
        if status["last_decision_at"] is not None:
            time.sleep(after_s)
            return
        time.sleep(0.05)
    raise AssertionError(f"scaler {name} never decided")


def start_server(settings: Settings, app: FastAPI | None = None) -> LiveServer:
    app = app or create_app(settings)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    return LiveServer(app, f"http://127.0.0.1:{port}", settings, server, thread)


_servers: dict[tuple[str, str], LiveServer] = {}


def _server_for(url: str, flavour: str, **overrides: Any) -> LiveServer:
    key = (url, flavour)
    if key not in _servers:
        settings = Settings(database_url=url, run_workers=False, **overrides)
        _servers[key] = start_server(settings)
    return _servers[key]


@pytest.fixture(scope="session", autouse=True)
def _stop_servers() -> Iterator[None]:
    yield
    for server in _servers.values():
        server.stop()
    _servers.clear()


@pytest.fixture
def server(database_url: str) -> Iterator[LiveServer]:
    """An open (no token) service on a clean database of each backend."""
    asyncio.run(truncate_all(database_url))
    live = _server_for(database_url, "open")
    live.reset_caches()
    yield live


ADMIN_TOKEN = "test-admin-token-0123456789"


@pytest.fixture
def secured_server(database_url: str) -> Iterator[LiveServer]:
    """A service that requires tokens; the bootstrap admin token is ADMIN_TOKEN."""
    asyncio.run(truncate_all(database_url))
    live = _server_for(database_url, "secured", admin_token=ADMIN_TOKEN)
    live.reset_caches()
    yield live


@pytest.fixture
def limited_server(database_url: str) -> Iterator[LiveServer]:
    """A service with small limits, to reach them cheaply."""
    asyncio.run(truncate_all(database_url))
    live = _server_for(
        database_url,
        "limited",
        max_body_bytes=4096,
        max_samples_per_push=50,
        max_series_per_job=20,
    )
    live.reset_caches()
    yield live


@pytest.fixture
async def engine_for(database_url: str) -> AsyncIterator[Any]:
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """The store's own `Database` on a clean database of each backend."""
    await truncate_all(database_url)
    database = Database(database_url)
    yield database
    await database.dispose()


TRACES = Path(__file__).resolve().parents[1].parent / "shared" / "traces"


@asynccontextmanager
async def app_in_process(
    settings: Settings, *, clock: Clock, cluster: Cluster
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The service in the test's own event loop (its workers included, when the settings run
    them), called over ASGI: what a test on a fake clock needs, since the loops and the test
    must share the loop the clock wakes."""
    app = create_app(settings, clock=clock, cluster=cluster)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ciuic.test") as client:
            yield app, client
