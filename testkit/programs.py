"""Real programs the tests run beside the service (Debian's `prometheus`, `promtool`,
`prometheus-pushgateway`): found, or the test skipped naming the package (failed instead under
CI=true, so CI never passes without having run them); started on a port with their output in a
log, waited for until their `/-/ready` answers, and stopped; and `eventually`, which waits for
what they do.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import httpx

__all__ = ["eventually", "log_tail", "required_program", "serving", "stop"]

T = TypeVar("T")


def eventually(check: Callable[[], T], what: str, log: Callable[[], str], deadline_s: float) -> T:
    """`check()`'s first truthy answer, asked every 0.25 s; after `deadline_s` an
    AssertionError saying `what` did not happen in time, with `log()` (the program's log)."""
    deadline = time.monotonic() + deadline_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {deadline_s} s\n{log()}")
        time.sleep(0.25)


def required_program(program: str, package: str, *, in_ci: bool) -> str:
    """The path of `program` (a path, or a name on PATH); the test is skipped without it,
    or fails when `in_ci`."""
    found = program if os.access(program, os.X_OK) else shutil.which(program)
    if found:
        return found
    import pytest  # only a test asks: the benchmarks import this module too

    why = f"{program} not found (apt-get install {package})"
    if in_ci:
        pytest.fail(f"{why}; required under CI=true")
    pytest.skip(why)


def log_tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminated (killed after 10 s): its port refuses connections from now on."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def serving(
    argv: Sequence[str], url: str, log: Path, *, timeout_s: float = 30.0
) -> Iterator[subprocess.Popen[bytes]]:
    """`argv` running, its output in `log`, once `url`/-/ready answers 200; stopped after."""
    with log.open("wb") as out:
        process = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{argv[0]} did not start:\n{log_tail(log)}")
            time.sleep(0.05)
        yield process
    finally:
        stop(process)
