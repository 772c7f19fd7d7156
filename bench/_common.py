"""What the benchmarks that run the real service share: a fresh, migrated database on either
backend, `ciuic serve` started in its own process on a free loopback port, and percentiles.

PostgreSQL is reached as an admin at CIUIC_BENCH_PG_DSN (default: trust auth on
127.0.0.1:5432); each run creates its own database and drops it afterwards.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

import asyncpg
import httpx

from app.store.migrate import upgrade

__all__ = [
    "PG_ADMIN",
    "ROOT",
    "drop_database",
    "free_port",
    "fresh_database",
    "pct",
    "start_service",
]

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("CIUIC_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    """The q-quantile of `values` (seconds), in milliseconds to 0.1."""
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


async def fresh_database(backend: str, tmp: Path, tag: str = "bench") -> tuple[str, str | None]:
    """A migrated, empty database: its URL, and its name on PostgreSQL (to drop it later)."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp}/{tag}.db"
        await upgrade(url)
        return url, None
    name = f"ciuic_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(PG_ADMIN)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + "/" + name
    await upgrade(url)
    return url, name


async def drop_database(name: str | None) -> None:
    if name:
        conn = await asyncpg.connect(PG_ADMIN)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


def start_service(
    url: str,
    *,
    workers: int = 1,
    env: Mapping[str, str] | None = None,
    admin_token: str | None = None,
    ready_s: float = 30.0,
) -> tuple[subprocess.Popen[bytes], str]:
    """`ciuic serve` on a free loopback port, once /readyz answers: the process and its URL.

    `env` adds CIUIC_* settings; with no `admin_token` the service runs open (loopback)."""
    port = free_port()
    full = {**os.environ, "CIUIC_DATABASE_URL": url, "CIUIC_LOG_LEVEL": "WARNING", **(env or {})}
    full.pop("CIUIC_ADMIN_TOKEN", None)
    if admin_token is not None:
        full["CIUIC_ADMIN_TOKEN"] = admin_token
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", str(workers)],
        cwd=ROOT,
        env=full,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the service exited with {server.returncode} before ready")
        try:
            if httpx.get(f"{base}/readyz").status_code == 200:
                return server, base
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.terminate()
    raise RuntimeError("the service did not become ready")
