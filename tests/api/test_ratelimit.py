"""Per-token ingestion limits: the token bucket on a fake clock, then 429s over real HTTP."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from app.main import create_app
from app.ratelimit import Limit, RateLimiter
from app.settings import Settings
from testkit.clock import FakeClock
from tests.conftest import ADMIN_TOKEN, LiveServer, start_server, truncate_all

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

# --- the bucket, on a fake clock ---------------------------------------------------------


def test_a_burst_passes_then_one_request_per_refill() -> None:
    clock, limiter, limit = FakeClock(), RateLimiter(), Limit(rate_per_s=2.0, burst=3)
    assert [limiter.take("pods", limit, clock.now()) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("pods", limit, clock.now()) == pytest.approx(0.5)  # 1 request / 2 per s
    clock.t += 0.25
    assert limiter.take("pods", limit, clock.now()) == pytest.approx(0.25)  # half refilled
    clock.t += 0.25
    assert limiter.take("pods", limit, clock.now()) == 0.0
    assert limiter.take("pods", limit, clock.now()) > 0


def test_a_refused_request_takes_nothing() -> None:
    clock, limiter, limit = FakeClock(), RateLimiter(), Limit(rate_per_s=1.0, burst=1)
    assert limiter.take("pods", limit, clock.now()) == 0.0
    for _ in range(100):  # a client hammering while limited does not dig itself deeper
        assert limiter.take("pods", limit, clock.now()) == pytest.approx(1.0)
    clock.t += 1.0
    assert limiter.take("pods", limit, clock.now()) == 0.0


def test_a_quiet_spell_refills_only_up_to_the_burst() -> None:
    clock, limiter, limit = FakeClock(), RateLimiter(), Limit(rate_per_s=10.0, burst=5)
    limiter.take("pods", limit, clock.now())
    clock.t += 3600
    allowed = sum(limiter.take("pods", limit, clock.now()) == 0.0 for _ in range(20))
    assert allowed == 5


def test_each_key_has_its_own_bucket_and_limit() -> None:
    clock, limiter = FakeClock(), RateLimiter()
    small, big = Limit(rate_per_s=1.0, burst=1), Limit(rate_per_s=100.0, burst=50)
    assert limiter.take("a", small, clock.now()) == 0.0
    assert limiter.take("a", small, clock.now()) > 0
    assert all(limiter.take("b", big, clock.now()) == 0.0 for _ in range(50))


def test_rate_zero_is_unlimited() -> None:
    clock, limiter = FakeClock(), RateLimiter()
    assert all(limiter.take("a", Limit(0.0, 1), clock.now()) == 0.0 for _ in range(10_000))


def test_a_clock_stepping_back_refills_nothing() -> None:
    clock, limiter, limit = FakeClock(), RateLimiter(), Limit(rate_per_s=1.0, burst=1)
    assert limiter.take("a", limit, clock.now()) == 0.0
    clock.t -= 3600  # NTP step
    assert limiter.take("a", limit, clock.now()) > 0
    clock.t += 3600 + 1.0  # back where it was, plus one refill
    assert limiter.take("a", limit, clock.now()) == 0.0


def test_the_default_admits_1000_pods_pushing_every_5_s_from_one_token() -> None:
    """The sizing the defaults were chosen for: pods share a push token."""
    settings = Settings(database_url="sqlite+aiosqlite:///:memory:")
    clock, limiter = FakeClock(), RateLimiter()
    limit = Limit(settings.push_rate_per_s, settings.push_burst)
    refused = 0
    for _ in range(12):  # a minute; all 1,000 pods push at the same instant every 5 s
        refused += sum(limiter.take("pods", limit, clock.now()) > 0 for _ in range(1000))
        clock.t += 5.0
    assert refused == 0


# --- over real HTTP ----------------------------------------------------------------------

PUSHES = [
    pytest.param("PUT", "/metrics/job/rl", b"rl_metric 1\n", id="pushgateway-put"),
    pytest.param("POST", "/metrics/job/rl", b"rl_metric 1\n", id="pushgateway-post"),
    pytest.param(
        "POST", "/v1/samples", b'{"samples": [{"metric": "rl_metric", "value": 1}]}', id="json"
    ),
]


@pytest.fixture
def limited(database_url: str) -> Iterator[tuple[LiveServer, FakeClock]]:
    """A secured service whose clock stands still: a token may push 3 times, then 1 per 2 s."""
    asyncio.run(truncate_all(database_url))
    clock = FakeClock()
    settings = Settings(
        database_url=database_url,
        run_workers=False,
        admin_token=ADMIN_TOKEN,
        push_rate_per_s=0.5,
        push_burst=3,
    )
    live = start_server(settings, create_app(settings, clock=clock))
    yield live, clock
    live.stop()


def _token(server: LiveServer, **extra: object) -> tuple[str, str]:
    body = {"name": "pods", "scope": "push", **extra}
    created = httpx.post(f"{server.url}/v1/tokens", json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    return created.json()["id"], created.json()["token"]


def _stored_samples(url: str) -> int:
    async def count() -> int:
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            n = (await conn.execute(sa.text("SELECT count(*) FROM samples"))).scalar_one()
        await engine.dispose()
        return int(n)

    return asyncio.run(count())


@pytest.mark.parametrize(("method", "path", "body"), PUSHES)
def test_over_the_rate_a_push_is_429_with_retry_after_and_nothing_stored(
    limited: tuple[LiveServer, FakeClock], method: str, path: str, body: bytes
) -> None:
    server, clock = limited
    token_id, secret = _token(server)
    auth = {"Authorization": f"Bearer {secret}"}
    for _ in range(3):
        clock.t += 0.001  # distinct receipt stamps, no refill to speak of
        assert httpx.request(method, server.url + path, content=body, headers=auth).is_success
    stored = _stored_samples(server.settings.database_url)
    refused = httpx.request(method, server.url + path, content=body, headers=auth)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "2"  # 1 request at 0.5/s, rounded up
    error = refused.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["details"] == {
        "token": token_id,
        "rate_per_s": 0.5,
        "burst": 3,
        "retry_after_s": 2,
    }
    assert _stored_samples(server.settings.database_url) == stored
    clock.t += 2.0
    assert httpx.request(method, server.url + path, content=body, headers=auth).is_success


def test_the_limit_is_per_token_and_a_token_may_carry_its_own(
    limited: tuple[LiveServer, FakeClock],
) -> None:
    server, _ = limited
    tokens = {
        "a": _token(server)[1],
        "b": _token(server)[1],
        "fleet": _token(server, push_rate_per_s=100, push_burst=20)[1],
        "unlimited": _token(server, push_rate_per_s=0)[1],
    }
    listed = httpx.get(f"{server.url}/v1/tokens", headers=ADMIN).json()
    assert sorted((str(t["push_rate_per_s"]), str(t["push_burst"])) for t in listed) == [
        ("0.0", "None"),
        ("100.0", "20"),
        ("None", "None"),
        ("None", "None"),
    ]

    def statuses(name: str, n: int) -> list[int]:
        auth = {"Authorization": f"Bearer {tokens[name]}"}
        return [
            httpx.put(
                f"{server.url}/metrics/job/{name}", content=b"m 1\n", headers=auth
            ).status_code
            for _ in range(n)
        ]

    assert statuses("a", 4) == [200, 200, 200, 429]
    assert statuses("b", 4) == [200, 200, 200, 429]  # a's pushes did not use b's bucket
    assert statuses("fleet", 21) == [200] * 20 + [429]
    assert statuses("unlimited", 30) == [200] * 30


def test_basic_auth_pushes_count_against_the_same_token(
    limited: tuple[LiveServer, FakeClock],
) -> None:
    server, _ = limited
    _, secret = _token(server)
    bearer = {"Authorization": f"Bearer {secret}"}
    basic = {"Authorization": "Basic " + base64.b64encode(f"pod:{secret}".encode()).decode()}
    codes = [
        httpx.put(f"{server.url}/metrics/job/x", content=b"m 1\n", headers=h).status_code
        for h in (bearer, basic, bearer, basic)
    ]
    assert codes == [200, 200, 200, 429]


def test_reads_and_admin_calls_are_not_rate_limited(
    limited: tuple[LiveServer, FakeClock],
) -> None:
    server, _ = limited
    for _ in range(10):
        assert httpx.get(f"{server.url}/api/v1/metrics", headers=ADMIN).status_code == 200
