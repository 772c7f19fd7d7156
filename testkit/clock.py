"""A clock that stands still until the test moves it, for loops that take an `app.clock.Clock`.

Time moves only in `advance`: a loop waiting on the clock wakes when its deadline is reached,
never before, however loaded the machine. A test learns that a loop has finished what it was
doing by `waiting_again(task, since=mark)`: the loop's task (by name) came back to wait on the
clock after the mark. Nothing here measures real time except the guard that turns a loop that
never comes back into a failure instead of a hang.

All in one event loop: the loops under test and the test itself.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from app.clock import wait_any

__all__ = ["FakeClock"]


@dataclass(eq=False)
class _Waiter:
    deadline: float
    task: str
    seq: int
    due: asyncio.Future[None] = field(repr=False)


class FakeClock:
    """`t` is the wall clock (a test may set it, as a clock step would); `advance` moves the
    wall and the monotonic clock together and wakes the waiters whose deadline has come."""

    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t
        self._mono = 1_000.0
        self._seq = 0  # counts the waits begun, so a test can ask "since when"
        self._waiters: list[_Waiter] = []
        self._begun: asyncio.Condition | None = None

    # ---- the Clock protocol -------------------------------------------------------------

    def now(self) -> float:
        return self.t

    def stamp_us(self) -> int:
        return round(self.t * 1e6)

    def monotonic(self) -> float:
        return self._mono

    async def wait_for(self, *events: asyncio.Event, timeout_s: float) -> bool:
        task = asyncio.current_task()
        self._seq += 1
        waiter = _Waiter(
            deadline=self._mono + max(0.0, timeout_s),
            task=task.get_name() if task is not None else "",
            seq=self._seq,
            due=asyncio.get_running_loop().create_future(),
        )
        if waiter.deadline <= self._mono:
            waiter.due.set_result(None)
        self._waiters.append(waiter)
        await self._announce()
        try:
            return await wait_any(events, waiter.due)
        finally:
            self._waiters.remove(waiter)

    # ---- for the test ---------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Move both clocks on by `seconds` and wake every waiter whose deadline has come."""
        if seconds < 0:
            raise ValueError("time does not go back (set `t` to step the wall clock)")
        self.t += seconds
        self._mono += seconds
        for waiter in self._waiters:
            if waiter.deadline <= self._mono and not waiter.due.done():
                waiter.due.set_result(None)

    async def step(self, seconds: float, *tasks: str) -> None:
        """`advance(seconds)`, then until each of `tasks` that it woke waits again."""
        deadlines = {task: self.waiting(task) for task in tasks}
        mark = self.mark()
        self.advance(seconds)
        for task, deadline in deadlines.items():
            if deadline is not None and deadline <= self._mono:
                await self.waiting_again(task, since=mark)

    async def jump(self, *tasks: str) -> float:
        """Step to the earliest deadline among `tasks`' waits (the next moment one of them
        acts); returns the seconds jumped."""
        due = [d for d in (self.waiting(task) for task in tasks) if d is not None]
        if not due:
            raise AssertionError(f"none of {tasks} is waiting on the clock")
        seconds = min(due) - self._mono
        await self.step(seconds, *tasks)
        return seconds

    def mark(self) -> int:
        """A point in the sequence of waits, for `waiting_again`."""
        return self._seq

    def waiting(self, task: str) -> float | None:
        """The deadline of `task`'s current wait (None when it is not waiting on the clock)."""
        found = [w.deadline for w in self._waiters if w.task == task and not w.due.done()]
        return found[0] if found else None

    async def waiting_again(self, task: str, *, since: int, guard_s: float = 30.0) -> float:
        """Until the task named `task` begins a wait after `since` (it finished what it was
        woken for); returns that wait's deadline. `guard_s` of real time only bounds a
        failure: a loop that never comes back fails the test instead of hanging it."""

        def begun() -> _Waiter | None:
            return next((w for w in self._waiters if w.task == task and w.seq > since), None)

        condition = self._condition()
        async with condition:
            try:
                await asyncio.wait_for(condition.wait_for(begun), guard_s)
            except TimeoutError:
                raise AssertionError(
                    f"{task!r} did not wait on the clock again within {guard_s} s; waiting: "
                    f"{sorted({w.task for w in self._waiters})}"
                ) from None
        found = begun()
        assert found is not None
        return found.deadline

    def _condition(self) -> asyncio.Condition:
        if self._begun is None:
            self._begun = asyncio.Condition()
        return self._begun

    async def _announce(self) -> None:
        condition = self._condition()
        async with condition:
            condition.notify_all()
