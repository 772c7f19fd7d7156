"""Fault: PostgreSQL goes away in the middle of sustained pushes and comes back.

The service runs for real (HTTP on a port) against a private PostgreSQL server; two pushers
send unique values without pause, one as JSON samples, one with the Pushgateway protocol, and
record which pushes were acknowledged. The server is stopped (`fast`: a clean shutdown that
terminates every session; `immediate`: a crash, recovered from the WAL), kept down for a
while, and started again. What must hold:

- while it is down, every answer is 503 with Retry-After (never a 500) and comes back quickly;
- once it is up, pushes succeed again without restarting the service;
- every acknowledged sample is in the store afterwards, and nothing was stored that was not
  sent.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from app.settings import Settings
from app.store.db import is_unavailable
from tests.conftest import LiveServer, start_server
from tests.faults.conftest import PrivatePostgres

DOWN_S = 2.0  # how long the server stays down
ANSWER_WITHIN_S = 12.0  # a push during the outage is answered within this (connect timeout 5 s)


@dataclass
class Pusher:
    """Pushes value 0, 1, 2, ... until stopped; remembers what each push was answered."""

    url: str
    kind: str  # json | pushgateway
    acked: list[int] = field(default_factory=list)
    answers: list[tuple[int, float, str | None, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    sent: int = 0

    def push(self, client: httpx.Client, value: int) -> httpx.Response:
        if self.kind == "json":
            body = {"samples": [{"metric": "fault_json", "labels": {"p": "a"}, "value": value}]}
            return client.post(f"{self.url}/v1/samples", json=body)
        text = f"fault_pushgateway {value}\n"
        return client.put(f"{self.url}/metrics/job/fault/instance/a", content=text)

    def run(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self.stop.is_set():
                value = self.sent
                self.sent += 1
                started = time.monotonic()
                try:
                    response = self.push(client, value)
                except httpx.HTTPError as exc:  # counted as not acknowledged
                    self.answers.append((0, time.monotonic() - started, None, repr(exc)))
                    continue
                took = time.monotonic() - started
                retry = response.headers.get("retry-after")
                self.answers.append((response.status_code, took, retry, response.text[:200]))
                if 200 <= response.status_code < 300:
                    self.acked.append(value)
                else:
                    time.sleep(0.05)  # a client backing off a little, as Retry-After asks

    def acked_since(self, n: int) -> int:
        return sum(1 for status, *_ in self.answers[n:] if 200 <= status < 300)


@pytest.fixture
def service(private_pg: PrivatePostgres) -> Iterator[LiveServer]:
    live = start_server(
        Settings(database_url=private_pg.url, run_workers=False, db_retry_after_s=3)
    )
    yield live
    live.stop()


async def stored(url: str, metric: str) -> list[float]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.text(
                    "SELECT s.value FROM samples s JOIN series r ON r.id = s.series_id "
                    "WHERE r.name = :name ORDER BY s.ts"
                ),
                {"name": metric},
            )
            return [float(v) for (v,) in rows.all()]
    finally:
        await engine.dispose()


def wait_until(check: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.05)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_pushes_survive_a_postgres_restart(
    private_pg: PrivatePostgres, service: LiveServer, mode: str
) -> None:
    pushers = [Pusher(service.url, "json"), Pusher(service.url, "pushgateway")]
    threads = [threading.Thread(target=p.run, daemon=True) for p in pushers]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: all(len(p.acked) >= 20 for p in pushers), 20, "pushes flowing")
        before = [len(p.answers) for p in pushers]
        private_pg.stop(mode)
        # Down: answers keep coming, and they are 503s.
        wait_until(
            lambda: all(
                any(s == 503 for s, *_ in p.answers[b:])
                for p, b in zip(pushers, before, strict=True)
            ),
            15,
            "503s while the database is down",
        )
        time.sleep(DOWN_S)
        private_pg.start()
        # Up again: the same service process acknowledges pushes again.
        after = [len(p.answers) for p in pushers]
        wait_until(
            lambda: all(p.acked_since(a) >= 20 for p, a in zip(pushers, after, strict=True)),
            30,
            "pushes acknowledged after the restart",
        )
    finally:
        for p in pushers:
            p.stop.set()
        for t in threads:
            t.join(timeout=60)

    for p in pushers:
        statuses = {s for s, *_ in p.answers}
        failures = [a for a in p.answers if not 200 <= a[0] < 300]
        assert failures, f"{p.kind}: the outage was not observed"
        assert statuses <= {200, 202, 503}, (
            p.kind,
            [a for a in p.answers if a[0] not in (200, 202, 503)],
        )
        assert all(retry == "3" for s, _, retry, _ in failures), failures[:3]
        assert all('"database_unavailable"' in body for *_, body in failures), failures[:3]
        assert max(took for _, took, _, _ in p.answers) < ANSWER_WITHIN_S
        # Every acknowledged value is stored; nothing is stored that was never sent.
        values = asyncio.run(stored(private_pg.url, f"fault_{p.kind}"))
        kept = {int(v) for v in values}
        lost = sorted(set(p.acked) - kept)
        assert not lost, f"{p.kind}: acknowledged but lost: {lost[:10]} ({len(lost)})"
        assert kept <= set(range(p.sent))
        assert len(values) == len(kept)  # each value once


@pytest.mark.parametrize(
    ("driver_error", "unavailable"),
    [
        pytest.param("CannotConnectNowError", True, id="shutting-down-57P03"),
        pytest.param("AdminShutdownError", True, id="terminated-57P01"),
        pytest.param("UniqueViolationError", False, id="a-real-error-stays-a-500"),
    ],
)
def test_a_restart_wrapped_in_a_plain_dbapi_error_is_unavailable(
    driver_error: str, unavailable: bool
) -> None:
    """What the fast restart above met: 'the database system is shutting down' reaches the
    handler as a plain DBAPIError around the adapter's error around asyncpg's (was a 500)."""
    original = getattr(asyncpg.exceptions, driver_error)("the database system is shutting down")
    adapted = AsyncAdapt_asyncpg_dbapi.Error("the database system is shutting down", original)
    wrapped = DBAPIError("INSERT ...", {}, adapted)
    assert is_unavailable(wrapped) is unavailable
