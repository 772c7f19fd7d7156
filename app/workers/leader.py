"""Leader election without a cluster: only the leader runs the background workers.

Several replicas of the service may run against one database; the others serve the API. On
PostgreSQL the leader holds a session advisory lock on a connection of its own (the lock dies
with the connection, so a crashed leader is replaced at the next attempt); on SQLite, which
only one host can share, an exclusive file lock next to the database file.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.clock import Clock, SystemClock
from app.kube.lease import LeaderElector
from app.store.db import Database
from app.workers.supervisor import Supervisor

__all__ = ["AdvisoryLockElector", "FileLockElector", "LeaderElector", "Leadership", "elector_for"]

log = logging.getLogger("ciuic.workers.leader")

LOCK_KEY = 0x6369756963  # "ciuic"


class AdvisoryLockElector:
    def __init__(self, db: Database, key: int = LOCK_KEY) -> None:
        self.db = db
        self.key = key
        self._conn: AsyncConnection | None = None

    async def try_acquire(self) -> bool:
        conn = await self.db.engine.connect()
        try:
            got = await conn.scalar(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})
            await conn.commit()
        except Exception:
            await conn.close()
            raise
        if not got:
            await conn.close()
            return False
        self._conn = conn
        return True

    async def still_leader(self) -> bool:
        if self._conn is None:
            return False
        try:
            await self._conn.execute(sa.text("SELECT 1"))
            await self._conn.commit()
        except Exception as exc:
            log.warning("lost the leader lock's connection: %s", exc)
            await self._drop()
            return False
        return True

    async def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.invalidate()
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None

    async def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                await self._conn.commit()
            await self._drop()


class FileLockElector:
    def __init__(self, path: str | None) -> None:
        self.path = path
        self._fd: int | None = None

    async def try_acquire(self) -> bool:
        if self.path is None:  # an in-memory database belongs to this process alone
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def still_leader(self) -> bool:
        return self.path is None or self._fd is not None

    async def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def elector_for(db: Database) -> LeaderElector:
    if not db.is_sqlite:
        return AdvisoryLockElector(db)
    database = db.engine.url.database
    if not database or database == ":memory:":
        return FileLockElector(None)
    return FileLockElector(os.path.abspath(database) + ".leader")


WorkerFactory = Callable[[], dict[str, Callable[[asyncio.Event], Awaitable[None]]]]


class Leadership:
    """Runs the workers while this process leads; stops them the moment it does not."""

    def __init__(
        self,
        elector: LeaderElector,
        workers: WorkerFactory,
        *,
        interval_s: float,
        clock: Clock | None = None,
    ) -> None:
        self.clock = clock or SystemClock()
        self.elector = elector
        self.workers = workers
        self.interval_s = interval_s
        self.is_leader = False
        self._crew: Supervisor | None = None
        self._error: str | None = None

    @property
    def error(self) -> str | None:
        """Why the last attempt to lead (or to stay leader) failed; None when it did not.
        A follower whose leader is alive has no error."""
        found: str | None = getattr(self.elector, "error", None)  # the Lease keeps its own
        return self._error or found

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                await self._step()
                if await self.clock.wait_for(stop, timeout_s=self.interval_s):
                    break
        finally:
            try:
                await self._step_down()
            finally:
                # Even when stopping the workers overran the caller's deadline and this task
                # was cancelled: a lock kept by a leadership that is gone would keep every
                # other Leadership of this process (a restarted app) from ever leading.
                await self.elector.release()

    async def _step(self) -> None:
        self._error = None
        try:
            if self.is_leader:
                if not await self.elector.still_leader():
                    log.warning("no longer the leader; stopping the workers")
                    await self._step_down()
            elif await self.elector.try_acquire():
                log.info("became the leader; starting the workers")
                self.is_leader = True
                self._crew = Supervisor(clock=self.clock)
                for name, body in self.workers().items():
                    self._crew.start(name, body)
        except Exception as exc:  # a database outage: try again next interval
            log.warning("leader election attempt failed: %s", exc)
            self._error = f"leader election attempt failed: {exc}"
            if self.is_leader and not await self._safe_still_leader():
                await self._step_down()

    async def _safe_still_leader(self) -> bool:
        try:
            return await self.elector.still_leader()
        except Exception:
            return False

    async def _step_down(self) -> None:
        self.is_leader = False
        if self._crew is not None:
            await self._crew.stop()
            self._crew = None
