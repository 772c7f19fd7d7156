"""Ctrl-C is the parent's to handle: the worker processes of every pool ignore it.

Ctrl-C in a terminal sends SIGINT to the whole foreground process group. `ciuic serve` stopped
cleanly but its simulation and forecast workers each died printing a KeyboardInterrupt
traceback; `ciuic simulate` and bench/simulate.py printed one per worker. The parent stops its
workers itself (app.pools).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import AbstractContextManager, contextmanager

import pytest

from app.clock import SystemClock
from app.pools import worker_pool
from app.services.jobs import SimulationJobs
from app.store.db import Database
from app.workers.forecasts import _background_priority


def interrupt_myself() -> str:
    """In a worker: what a Ctrl-C reaching it does."""
    try:
        os.kill(os.getpid(), signal.SIGINT)  # delivered before kill returns
        return "ignored"
    except KeyboardInterrupt:
        return "interrupted"


def _jobs() -> SimulationJobs:
    # the database is never opened: these tests only start and stop the jobs' pool
    return SimulationJobs(Database("sqlite+aiosqlite:///unused.db"), clock=SystemClock())


@contextmanager
def cli_pool() -> Iterator[Executor]:
    with worker_pool(1) as pool:  # `ciuic simulate --jobs N`, bench/simulate.py
        yield pool


@contextmanager
def simulation_jobs_pool() -> Iterator[Executor]:
    jobs = _jobs()
    try:
        yield jobs._executor()  # `ciuic serve`'s simulation and tune jobs
    finally:
        asyncio.run(jobs.close())


@contextmanager
def forecast_pool() -> Iterator[Executor]:
    # `ciuic serve`'s forecast fits (the pool is made inside the refit loop, with this)
    pool = ProcessPoolExecutor(
        1, mp_context=multiprocessing.get_context("spawn"), initializer=_background_priority
    )
    with pool:
        yield pool


@pytest.mark.parametrize(
    "pool",
    [
        pytest.param(cli_pool, id="ciuic-simulate-and-bench"),
        pytest.param(simulation_jobs_pool, id="serve-simulation-jobs"),
        pytest.param(forecast_pool, id="serve-forecast-fits"),
    ],
)
def test_a_worker_ignores_ctrl_c(pool: Callable[[], AbstractContextManager[Executor]]) -> None:
    with pool() as executor:
        assert executor.submit(interrupt_myself).result(timeout=120) == "ignored"


def test_stopping_the_service_ends_a_job_still_running() -> None:
    """The job is failed already ("the service stopped"); its worker, ignoring Ctrl-C, used to
    run it to the end after the service exited, an orphan."""
    jobs = _jobs()
    pool = jobs._executor()
    worker = pool.submit(os.getpid).result(timeout=120)
    pool.submit(time.sleep, 600)
    asyncio.run(jobs.close())
    try:
        assert not _alive(worker)
    finally:
        if _alive(worker):
            os.kill(worker, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"  # a zombie is gone
