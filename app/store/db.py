"""The database handle: one async engine per process, transactions as context managers.

SQLite (the embedded default) allows one writer at a time, so its pool holds a single
connection and requests queue for it instead of failing with "database is locked".
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

__all__ = ["Database", "is_unavailable"]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


class Database:
    def __init__(
        self, url: str, *, echo: bool = False, pool_size: int = 20, max_overflow: int = 0
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any]
        if self.is_sqlite:
            kwargs = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 30}
        else:
            kwargs = {
                # A fixed pool: connections opened past it would be closed again on return,
                # and under load that churn (connect, TLS attempt, statements prepared
                # afresh) costs more than waiting for a pooled one.
                "pool_size": pool_size,
                "max_overflow": max_overflow,
                "pool_timeout": 10,
                "connect_args": {"timeout": 5, "command_timeout": 30},
            }
        self.engine: AsyncEngine = create_async_engine(url, echo=echo, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed when the block ends, rolled back on any error."""
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


# asyncpg raises these outside SQLAlchemy's wrapping when a connection dies mid-flight, and
# SQLAlchemy wraps them in a plain DBAPIError when they happen on connect or in a statement.
_DRIVER_UNAVAILABLE = frozenset(
    {
        "ConnectionDoesNotExistError",
        "InterfaceError",
        "CannotConnectNowError",
        "ConnectionFailureError",
        "AdminShutdownError",
        "CrashShutdownError",
    }
)


def _unavailable_sqlstate(code: object) -> bool:
    """SQLSTATE class 08 (connection exception) or 57P01-57P03: the server is shutting down,
    crashed, or not accepting connections yet (a restart)."""
    return isinstance(code, str) and (code.startswith("08") or code in _SHUTDOWN_STATES)


_SHUTDOWN_STATES = frozenset({"57P01", "57P02", "57P03"})


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc` means the database cannot be reached (answer 503), not a bad query."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout | ConnectionError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OSError | TimeoutError):
        return True
    # Through the wrappers (SQLAlchemy's DBAPIError -> the adapter's error -> asyncpg's):
    # "the database system is shutting down" arrives as a plain DBAPIError during a restart.
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            break
        if type(seen).__name__ in _DRIVER_UNAVAILABLE:
            return True
        if _unavailable_sqlstate(getattr(seen, "sqlstate", None)):
            return True
        nxt = getattr(seen, "orig", None)
        seen = nxt if isinstance(nxt, BaseException) else seen.__cause__
    return False
