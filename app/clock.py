"""Time for the shell: the wall clock, a monotonic clock, and waiting (the pure core takes `now`
as an argument instead).

Every loop takes a `Clock` rather than calling `time` or `asyncio.sleep` itself, so a test can
hand it a fake one (testkit.clock.FakeClock) and assert exactly when the loop acts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Coroutine
from typing import Protocol

__all__ = ["Clock", "SystemClock", "wait_any"]


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock seconds since the epoch (what samples, decisions and events carry)."""
        ...

    def stamp_us(self) -> int:
        """A receipt stamp in microseconds, strictly increasing within the process, so two
        pushes of the same series in the same microsecond never overwrite each other."""
        ...

    def monotonic(self) -> float:
        """Seconds that never go back (intervals, deadlines, expiry): not comparable to now()."""
        ...

    async def wait_for(self, *events: asyncio.Event, timeout_s: float) -> bool:
        """Until one of `events` is set (True) or `timeout_s` seconds passed (False). With no
        events this is a sleep."""
        ...


class SystemClock:
    def __init__(self) -> None:
        self._last_us = 0

    def now(self) -> float:
        return time.time()

    def stamp_us(self) -> int:
        now_us = time.time_ns() // 1000
        self._last_us = now_us if now_us > self._last_us else self._last_us + 1
        return self._last_us

    def monotonic(self) -> float:
        return time.monotonic()

    async def wait_for(self, *events: asyncio.Event, timeout_s: float) -> bool:
        return await wait_any(events, asyncio.sleep(max(0.0, timeout_s)))


async def wait_any(events: tuple[asyncio.Event, ...], timer: Awaitable[object]) -> bool:
    """Until one of `events` is set (True) or `timer` finishes (False): the waiting both
    clocks share, the timer being theirs."""
    if any(event.is_set() for event in events):
        if isinstance(timer, Coroutine):
            timer.close()  # never awaited: closed, so it does not warn
        return True
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    timeout = asyncio.ensure_future(timer)
    try:
        await asyncio.wait([timeout, *waiters], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (timeout, *waiters):
            task.cancel()
        await asyncio.gather(timeout, *waiters, return_exceptions=True)
    return any(event.is_set() for event in events)
