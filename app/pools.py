"""Worker processes that leave Ctrl-C to the process that started them.

Ctrl-C in a terminal sends SIGINT to the whole foreground process group, a pool's workers
included: each then died on its own KeyboardInterrupt and printed a traceback (two from
`ciuic serve`, whose simulation and forecast workers sat idle), while the parent was already
stopping. A worker started here ignores SIGINT; the parent stops it (terminates it, or shuts
its pool down).

A worker also ends when the process that started it is gone: a `ciuic serve` killed with
SIGKILL (or OOM-killed) cannot stop its pool, and its spawned forecast and simulation workers
sat idle for good, with the resource tracker beside them.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

__all__ = ["Terminated", "exit_with_parent", "stop_workers", "worker_init", "worker_pool"]

PARENT_CHECK_S = 1.0  # how often a worker looks for the process that started it


class Terminated(BaseException):
    """SIGTERM, raised in the main thread by `worker_pool`, so its workers are stopped, not
    orphaned."""


def worker_init() -> None:
    """A pool's initializer (top-level: a spawned worker imports it): ignore Ctrl-C, and end
    with the parent (`exit_with_parent`). SIGTERM is the default's again: a forked worker
    inherits `worker_pool`'s handler, and terminated mid-task it raised `Terminated` into the
    task and lingered until the pool shut down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    exit_with_parent()


def exit_with_parent() -> None:
    """Called in a worker (a pool's initializer, or from one): a daemon thread ends the
    process once the process that started it has died (the worker is then re-parented, to
    init or a subreaper). Polled, not `PR_SET_PDEATHSIG`: that fires when the *thread* that
    started the worker ends, and a pool starts workers from whichever thread submits."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)  # no cleanup to run: the task's result has nowhere to go

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's workers, a task running in one included, and drop its queue.
    Workers ignore SIGINT: without this, a stopping parent waits for their tasks to end."""
    for process in list((pool._processes or {}).values()):  # no public way to stop a task
        process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


@contextmanager
def worker_pool(jobs: int) -> Iterator[ProcessPoolExecutor]:
    """Worker processes that end with the command (the main thread's). Killed by SIGTERM (a
    CI timeout, `kill`), a command used to die at once while its workers ran their tasks to
    the end, and exited later with the pool's semaphores unreleased ("leaked semaphore"
    warnings); now SIGTERM raises `Terminated`, and that or Ctrl-C (KeyboardInterrupt in the
    parent alone) terminates the workers and propagates."""

    parent = os.getpid()

    def on_term(_signum: int, _frame: object) -> None:
        raise Terminated

    def on_int(_signum: int, _frame: object) -> None:
        # A worker forked with this handler, before its initializer ran, ignores Ctrl-C too.
        if os.getpid() == parent:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    previous_int = signal.signal(signal.SIGINT, on_int)
    pool = ProcessPoolExecutor(max_workers=jobs, initializer=worker_init)
    try:
        yield pool
    except BaseException:
        stop_workers(pool)
        raise
    else:
        pool.shutdown(wait=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
