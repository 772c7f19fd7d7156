"""Scoped tokens: who may do what, how tokens travel, and open mode on loopback only."""

from __future__ import annotations

import base64
import subprocess
import sys

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, LiveServer

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def make_token(server: LiveServer, scope: str) -> str:
    response = httpx.post(
        f"{server.url}/v1/tokens", json={"name": f"{scope}-token", "scope": scope}, headers=ADMIN
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["scope"] == scope and body["token"].startswith("ciuic_")
    token: str = body["token"]
    return token


# (method, path, body, scope needed)
ROUTES = [
    ("PUT", "/metrics/job/a", b"x 1\n", "push"),
    ("POST", "/metrics/job/a", b"x 1\n", "push"),
    ("DELETE", "/metrics/job/a", b"", "push"),
    ("POST", "/v1/samples", b'{"samples": []}', "push"),
    ("GET", "/api/v1/metrics", b"", "read"),
    ("GET", "/v1/series?match=x", b"", "read"),
    ("GET", "/v1/query_range?query=x&start=0&end=1", b"", "read"),
    ("GET", "/v1/tokens", b"", "admin"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "needs"), ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES]
)
def test_scope_matrix(
    secured_server: LiveServer, method: str, path: str, body: bytes, needs: str
) -> None:
    tokens = {scope: make_token(secured_server, scope) for scope in ("push", "read", "admin")}
    url = f"{secured_server.url}{path}"
    anonymous = httpx.request(method, url, content=body)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthorized"
    assert "Bearer" in anonymous.headers["www-authenticate"]
    for scope, token in tokens.items():
        response = httpx.request(
            method, url, content=body, headers={"Authorization": f"Bearer {token}"}
        )
        allowed = scope == "admin" or scope == needs
        if allowed:
            assert response.status_code < 400, (scope, response.text)
        else:
            assert response.status_code == 403, (scope, response.text)
            assert response.json()["error"]["details"] == {"scope": scope, "required": needs}


def test_open_endpoints_need_no_token(secured_server: LiveServer) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/-/healthy", "/openapi.json"):
        assert httpx.get(f"{secured_server.url}{path}").status_code == 200, path


def test_basic_auth_carries_the_token_as_password_or_user(secured_server: LiveServer) -> None:
    token = make_token(secured_server, "push")
    for user, password in (("pod", token), (token, "")):
        creds = base64.b64encode(f"{user}:{password}".encode()).decode()
        response = httpx.put(
            f"{secured_server.url}/metrics/job/a",
            content=b"x 1\n",
            headers={"Authorization": f"Basic {creds}"},
        )
        assert response.status_code == 200


def test_tokens_are_listed_without_secrets_and_revoked(secured_server: LiveServer) -> None:
    token = make_token(secured_server, "read")
    listing = httpx.get(f"{secured_server.url}/v1/tokens", headers=ADMIN).json()
    assert len(listing) == 1 and "token" not in listing[0] and listing[0]["revoked_at"] is None
    token_id = listing[0]["id"]
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{secured_server.url}/api/v1/metrics", headers=auth).status_code == 200
    revoked = httpx.delete(f"{secured_server.url}/v1/tokens/{token_id}", headers=ADMIN)
    assert revoked.status_code == 204
    assert httpx.get(f"{secured_server.url}/api/v1/metrics", headers=auth).status_code == 401
    assert httpx.delete(f"{secured_server.url}/v1/tokens/nope", headers=ADMIN).status_code == 404
    listing = httpx.get(f"{secured_server.url}/v1/tokens", headers=ADMIN).json()
    assert listing[0]["revoked_at"] is not None


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"name": "x", "scope": "root"}, id="unknown-scope"),
        pytest.param({"name": "", "scope": "read"}, id="empty-name"),
        pytest.param({"scope": "read"}, id="no-name"),
        pytest.param({"name": "x", "scope": "read", "ttl": 5}, id="unknown-field"),
    ],
)
def test_bad_token_requests(secured_server: LiveServer, body: dict[str, object]) -> None:
    response = httpx.post(f"{secured_server.url}/v1/tokens", json=body, headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid"


def test_secrets_are_stored_hashed(secured_server: LiveServer) -> None:
    import asyncio

    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    token = make_token(secured_server, "push")

    async def stored() -> list[str]:
        engine = create_async_engine(secured_server.settings.database_url)
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT secret_hash FROM tokens"))).scalars().all()
        await engine.dispose()
        return [str(r) for r in rows]

    hashes = asyncio.run(stored())
    assert token not in hashes and len(hashes[0]) == 64


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::"])
def test_serve_refuses_an_open_api_off_loopback(host: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--host", host, "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"CIUIC_DATABASE_URL": "sqlite+aiosqlite:///:memory:", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert "CIUIC_ADMIN_TOKEN" in result.stderr
