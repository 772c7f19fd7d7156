"""The wall clock, for the shell only (the pure core takes `now` as an argument)."""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> float: ...

    def stamp_us(self) -> int:
        """A receipt stamp in microseconds, strictly increasing within the process, so two
        pushes of the same series in the same microsecond never overwrite each other."""
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
