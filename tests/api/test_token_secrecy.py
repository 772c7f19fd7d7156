"""Secrets stay secret: never in a log line (ours, uvicorn's access log, SQL echo), never in a
listing or the audit log, and the bootstrap token is compared in constant time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging

import httpx
import pytest

from app.logs import JsonFormatter
from tests.conftest import ADMIN_TOKEN, LiveServer

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _create(server: LiveServer, scope: str) -> tuple[str, str]:
    r = httpx.post(f"{server.url}/v1/tokens", json={"name": scope, "scope": scope}, headers=ADMIN)
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["token"]


def test_no_secret_is_ever_logged(
    secured_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Everything at DEBUG: our loggers, uvicorn's access log, SQLAlchemy's SQL echo.
    caplog.set_level(logging.DEBUG)
    for name in ("uvicorn.access", "uvicorn.error", "sqlalchemy.engine", "ciuic"):
        caplog.set_level(logging.DEBUG, logger=name)
    url = secured_server.url
    _, push = _create(secured_server, "push")
    _, read = _create(secured_server, "read")
    revoked_id, revoked = _create(secured_server, "read")
    assert httpx.delete(f"{url}/v1/tokens/{revoked_id}", headers=ADMIN).status_code == 204
    unknown = "ciuic_0123456789ab_this-one-was-never-issued"
    calls = [
        ("PUT", "/metrics/job/a", b"x 1\n", {"Authorization": f"Bearer {push}"}, 200),
        ("PUT", "/metrics/job/a", b"x 1\n", _basic("pod", push), 200),
        ("PUT", "/metrics/job/a", b"x 1\n", _basic(push, ""), 200),
        ("PUT", "/metrics/job/a", b"not a metric{", _basic("pod", push), 400),
        ("POST", "/v1/samples", b"{", {"Authorization": f"Bearer {push}"}, 400),
        ("GET", "/v1/scalers", b"", {"Authorization": f"Bearer {read}"}, 200),
        ("GET", "/v1/tokens", b"", {"Authorization": f"Bearer {read}"}, 403),
        ("GET", "/v1/scalers", b"", {"Authorization": f"Bearer {revoked}"}, 401),
        ("GET", "/v1/scalers", b"", {"Authorization": f"Bearer {unknown}"}, 401),
        ("GET", "/v1/scalers", b"", _basic("pod", unknown), 401),
        ("GET", "/v1/audit", b"", ADMIN, 200),
    ]
    with httpx.Client(base_url=url) as client:
        for method, path, body, headers, status in calls:
            r = client.request(method, path, content=body, headers=headers)
            assert r.status_code == status, (method, path, r.text)
    secrets = {
        "admin": ADMIN_TOKEN,
        "push": push,
        "read": read,
        "revoked": revoked,
        "unknown": unknown,
    }
    server_records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any(r.name == "uvicorn.access" for r in server_records)  # the capture works
    assert any(r.name.startswith("sqlalchemy.engine") for r in server_records)
    json_lines = JsonFormatter()
    text = "\n".join(
        [caplog.text]
        + [json_lines.format(r) for r in caplog.records]
        + [str(r.args) for r in caplog.records]
    )
    basic = {
        f"basic {u}:{p}": _basic(u, p)["Authorization"].split()[1]
        for u, p in [("pod", push), (push, ""), ("pod", unknown)]
    }
    for what, encoded in basic.items():
        assert encoded not in text, f"{what} credentials are in the logs (base64)"
    for what, secret in secrets.items():
        assert secret not in text, f"the {what} token is in the logs"
        # The part after the public id prefix is the secret proper. Split at most twice: the
        # random part may itself hold "_", and a short fragment would match a log by chance.
        part = secret.split("_", 2)[-1]
        assert part not in text, f"the {what} token's secret part is logged"


def test_listings_and_the_audit_log_show_neither_secrets_nor_hashes(
    secured_server: LiveServer,
) -> None:
    url = secured_server.url
    created = httpx.post(f"{url}/v1/tokens", json={"name": "p", "scope": "push"}, headers=ADMIN)
    secret = created.json()["token"]
    digest = hashlib.sha256(secret.encode()).hexdigest()
    assert digest not in created.text  # the secret is shown once; its hash never
    assert httpx.delete(f"{url}/v1/tokens/{created.json()['id']}", headers=ADMIN).is_success
    for path in ("/v1/tokens", "/v1/audit"):
        body = httpx.get(f"{url}{path}", headers=ADMIN).text
        assert secret not in body and digest not in body, path
        assert "secret" not in body and "hash" not in body, path


def test_the_bootstrap_token_is_compared_in_constant_time(
    secured_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stored tokens are looked up by the SHA-256 of what was presented: timing can only tell
    about the hash, which does not authenticate. The bootstrap token is held in memory and
    compared with hmac.compare_digest."""
    import app.api.auth

    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(app.api.auth.hmac, "compare_digest", spy)
    wrong = "x" * len(ADMIN_TOKEN)
    assert httpx.get(f"{secured_server.url}/v1/tokens", headers=ADMIN).status_code == 200
    assert (
        httpx.get(
            f"{secured_server.url}/v1/tokens", headers={"Authorization": f"Bearer {wrong}"}
        ).status_code
        == 401
    )
    assert (ADMIN_TOKEN.encode(), ADMIN_TOKEN.encode()) in seen
    assert (wrong.encode(), ADMIN_TOKEN.encode()) in seen
