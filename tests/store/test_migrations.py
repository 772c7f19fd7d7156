"""The Alembic history: one history for both backends, round-trips, and matches the code."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

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
