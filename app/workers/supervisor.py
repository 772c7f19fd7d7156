"""Guarded long-running tasks: a crash is logged and the loop restarts after a backoff."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from app.clock import Clock, SystemClock

__all__ = ["Supervisor"]

log = logging.getLogger("ciuic.workers")


class Supervisor:
    def __init__(
        self,
        *,
        min_backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        clock: Clock | None = None,
    ) -> None:
        self.clock = clock or SystemClock()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self.failures: dict[str, int] = {}

    @property
    def stopping(self) -> asyncio.Event:
        return self._stopping

    def start(self, name: str, body: Callable[[asyncio.Event], Awaitable[None]]) -> None:
        """Run `body(stop_event)` until it returns after `stop_event` is set."""
        self._tasks[name] = asyncio.create_task(self._guard(name, body), name=name)

    async def _guard(self, name: str, body: Callable[[asyncio.Event], Awaitable[None]]) -> None:
        backoff = self.min_backoff_s
        while not self._stopping.is_set():
            try:
                await body(self._stopping)
                backoff = self.min_backoff_s
            except asyncio.CancelledError:
                raise
            except Exception:
                self.failures[name] = self.failures.get(name, 0) + 1
                log.exception("worker %s crashed; restarting in %.1f s", name, backoff)
                await self.clock.wait_for(self._stopping, timeout_s=backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    async def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks.values(), timeout=timeout_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._tasks.clear()
