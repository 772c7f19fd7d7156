"""CORS is off unless configured: no browser origin may read the API by default; with
CIUIC_CORS_ORIGINS only the origins listed get the header."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from app.settings import Settings
from app.store.migrate import upgrade
from tests.conftest import ADMIN_TOKEN, LiveServer, start_server

GRAFANA = "https://grafana.example.com"
EVIL = "https://evil.example.net"


def preflight(url: str, origin: str) -> httpx.Response:
    return httpx.options(
        f"{url}/v1/scalers",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )


def simple(url: str, origin: str, path: str = "/healthz") -> httpx.Response:
    return httpx.get(f"{url}{path}", headers={"Origin": origin})


def test_by_default_no_origin_gets_a_cors_header(secured_server: LiveServer) -> None:
    assert secured_server.settings.cors_origins == []
    for origin in (GRAFANA, EVIL, "null"):
        for response in (preflight(secured_server.url, origin), simple(secured_server.url, origin)):
            assert not any(h.startswith("access-control-") for h in response.headers), origin


@pytest.fixture(scope="module")
def cors_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('cors') / 'ciuic.db'}"
    asyncio.run(upgrade(url))
    settings = Settings(
        database_url=url,
        run_workers=False,
        admin_token=ADMIN_TOKEN,
        cors_origins=f"{GRAFANA}, https://ops.example.com",  # as the environment spells it
    )
    live = start_server(settings)
    yield live
    live.stop()


def test_configured_origins_and_only_those_get_the_header(cors_server: LiveServer) -> None:
    url = cors_server.url
    allowed = preflight(url, GRAFANA)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == GRAFANA
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert simple(url, GRAFANA).headers["access-control-allow-origin"] == GRAFANA
    # an error is readable by the allowed page too (it can show the 401 to its user)
    unauthorized = simple(url, GRAFANA, "/v1/scalers")
    assert unauthorized.status_code == 401
    assert unauthorized.headers["access-control-allow-origin"] == GRAFANA
    # ... while anyone else gets nothing to read
    refused = preflight(url, EVIL)
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    assert "access-control-allow-origin" not in simple(url, EVIL).headers
    assert "access-control-allow-credentials" not in allowed.headers  # tokens, not cookies
