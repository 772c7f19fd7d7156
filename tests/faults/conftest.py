"""Fixtures for the fault tests: a private PostgreSQL server that a test may restart.

The shared server on 127.0.0.1:5432 serves every other test and is never touched here: the
`private_pg` fixture runs `initdb` in a temporary directory and starts its own postmaster on a
free port (as the `postgres` user when the tests run as root: `initdb` refuses root). Without
the PostgreSQL binaries the test is skipped on a developer machine and FAILS under CI=true.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.store.migrate import upgrade
from testkit.kube_emulator import KubeEmulator
from tests.conftest import IN_CI, free_port


@pytest.fixture
def kube() -> Iterator[KubeEmulator]:
    """The Kubernetes API emulator (testkit/kube_emulator.py), with its fault injection."""
    with KubeEmulator(cold_start_s=30) as emulator:
        yield emulator


def _pg_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True):
        return Path(candidate).parent
    return None


@dataclass
class PrivatePostgres:
    """One postmaster of our own: `restart`, `stop`, `start` are the faults a test injects."""

    bin: Path
    data: Path
    port: int
    log: Path
    as_user: list[str]

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/ciuic"

    def _run(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            [*self.as_user, str(self.bin / args[0]), *args[1:]],
            check=True,
            capture_output=True,
            timeout=timeout,
        )

    def _ctl(self, action: str, *extra: str) -> None:
        options = (
            f"-p {self.port} -k {self.data.parent} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off"
        )
        self._run("pg_ctl", action, "-D", str(self.data), "-l", str(self.log), "-o", options,
                  "-w", "-t", "60", *extra)  # fmt: skip

    def start(self) -> None:
        self._ctl("start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("stop", "-m", mode)

    def restart(self, mode: str = "fast") -> None:
        self._ctl("restart", "-m", mode)


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    bin_dir = _pg_bin()
    if bin_dir is None:
        if IN_CI:
            pytest.fail(
                "the PostgreSQL server binaries (pg_ctl, initdb) are required under CI=true"
            )
        pytest.skip("no PostgreSQL server binaries (pg_ctl) on this machine")
    root = Path(tempfile.mkdtemp(prefix="ciuic-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the server as `postgres`
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    pg = PrivatePostgres(bin_dir, root / "data", free_port(), root / "postgres.log", as_user)
    try:
        pg._run("initdb", "-D", str(pg.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        pg.start()
        pg._run("createdb", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "ciuic")
        asyncio.run(upgrade(pg.url))
        yield pg
    finally:
        if (pg.data / "postmaster.pid").exists():
            subprocess.run(
                [*as_user, str(bin_dir / "pg_ctl"), "stop", "-D", str(pg.data), "-m", "immediate"],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(root, ignore_errors=True)
