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
import subprocess
import sys
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


# A parent that starts one of the pools, prints its worker's pid, and waits to be killed.
_PARENT = """
import sys, time
from tests import test_pools
with getattr(test_pools, sys.argv[1])() as executor:
    print(executor.submit(test_pools.os.getpid).result(timeout=120), flush=True)
    time.sleep(600)
"""


@pytest.mark.parametrize("pool", ["cli_pool", "simulation_jobs_pool", "forecast_pool"])
def test_a_worker_ends_when_its_parent_is_killed(pool: str) -> None:
    """`kill -9` (or the OOM killer) on `ciuic serve` left its idle forecast and simulation
    workers running for good, and the resource tracker beside them."""
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, pool], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        children = _children(parent.pid)  # the worker, and the resource tracker if any
        assert worker in children
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    deadline = time.monotonic() + 15
    while (left := [pid for pid in children if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"still running 15 s after their parent was killed: {left}"


def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry))
    return found
