"""The Alembic history: one history for both backends, round-trips, and matches the code."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from app.store.migrate import downgrade, upgrade
from app.store.tables import metadata
from tests.conftest import PG_ADMIN_DSN


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/fresh.db"
        return
    request.getfixturevalue("pg_url")  # skips locally / fails in CI when PostgreSQL is down
    name = f"ciuic_mig_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        await conn.execute(sql)
        await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    yield f"{base}/{name}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
    await engine.dispose()
    return names - {"alembic_version"}


async def drift(url: str) -> list[object]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c), metadata)
        )
    await engine.dispose()
    return list(diff)


async def test_upgrade_downgrade_upgrade_round_trip(empty_db: str) -> None:
    await upgrade(empty_db)
    assert await tables(empty_db) == set(metadata.tables)
    assert await drift(empty_db) == []
    await downgrade(empty_db, "base")
    assert await tables(empty_db) == set()
    await upgrade(empty_db)
    assert await tables(empty_db) == set(metadata.tables)


def test_an_installed_package_migrates_from_the_images_working_directory(
    tmp_path: Path,
) -> None:
    """The Dockerfile installs the package (`pip install .`: app/ lands in site-packages,
    away from migrations/) and runs `ciuic serve` in its WORKDIR, where it copied
    alembic.ini and migrations/. The migrations must be found there, or the image (docker
    compose, the Kubernetes manifests) cannot start."""
    repo = Path(__file__).resolve().parents[2]
    site, work = tmp_path / "site-packages", tmp_path / "srv"
    shutil.copytree(repo / "app", site / "app", ignore=shutil.ignore_patterns("__pycache__"))
    work.mkdir()
    shutil.copy(repo / "alembic.ini", work / "alembic.ini")
    shutil.copytree(
        repo / "migrations", work / "migrations", ignore=shutil.ignore_patterns("__pycache__")
    )
    url = f"sqlite+aiosqlite:///{tmp_path}/image.db"
    script = (
        "import asyncio, app.store.migrate as m; "
        f"assert m.__file__.startswith({str(site)!r}), m.__file__; "
        f"asyncio.run(m.upgrade({url!r}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=work,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "scalers" in asyncio.run(tables(url))
