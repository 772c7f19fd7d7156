"""Every route × every kind of caller, over real HTTP: who gets in, and that nobody below the
route's scope reaches its handler.

`ACCESS` is the table of record: each route the app serves, with the scope it needs. A route
that is not in it fails `test_every_route_is_in_the_table`, so a new route cannot escape the
matrix; a row for a route that is gone fails too.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import create_async_engine

from app.main import create_app
from app.settings import Settings
from app.store.tables import metadata
from tests.api.test_remote_write import encode
from tests.conftest import ADMIN_TOKEN, LiveServer

OPEN, PUSH, READ, ADMIN = "open", "push", "read", "admin"

# (method, path template) -> the scope it needs. `open`: probes, our own metrics (scraped by
# Prometheus, no tenant data: counters per route template) and the API's description.
ACCESS: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): OPEN,
    ("GET", "/readyz"): OPEN,
    ("GET", "/-/healthy"): OPEN,
    ("GET", "/-/ready"): OPEN,
    ("GET", "/metrics"): OPEN,
    ("GET", "/openapi.json"): OPEN,
    ("GET", "/docs"): OPEN,
    ("GET", "/docs/oauth2-redirect"): OPEN,
    ("GET", "/redoc"): OPEN,
    ("GET", "/ui"): OPEN,  # a static page; its API calls carry the operator's token
    # ingestion
    ("PUT", "/metrics/{grouping:grouping}"): PUSH,
    ("POST", "/metrics/{grouping:grouping}"): PUSH,
    ("DELETE", "/metrics/{grouping:grouping}"): PUSH,
    ("POST", "/v1/samples"): PUSH,
    ("POST", "/api/v1/write"): PUSH,  # Prometheus remote write
    # reading
    ("GET", "/api/v1/metrics"): READ,
    ("GET", "/v1/series"): READ,
    ("GET", "/v1/query_range"): READ,
    ("GET", "/v1/scalers"): READ,
    ("GET", "/v1/scalers/{name}"): READ,
    ("POST", "/v1/scalers/validate"): READ,
    ("GET", "/v1/scalers/{name}/decision"): READ,
    ("GET", "/v1/scalers/{name}/events"): READ,
    ("GET", "/v1/scalers/{name}/rollouts"): READ,
    ("GET", "/v1/rollouts/{rollout_id}"): READ,
    ("GET", "/v1/scalers/{name}/prediction"): READ,
    ("GET", "/v1/scalers/{name}/forecast-accuracy"): READ,
    ("GET", "/v1/scalers/{name}/objective"): READ,
    ("POST", "/v1/forecasts"): READ,
    ("POST", "/v1/simulations"): READ,  # a what-if on a copy: changes nothing it replays
    ("GET", "/v1/simulations/{job_id}"): READ,
    ("GET", "/grafana"): READ,
    ("GET", "/grafana/"): READ,
    ("POST", "/grafana/metrics"): READ,
    ("POST", "/grafana/metric-payload-options"): READ,
    ("POST", "/grafana/query"): READ,
    ("POST", "/grafana/variable"): READ,
    ("POST", "/grafana/tag-keys"): READ,
    ("POST", "/grafana/tag-values"): READ,
    ("POST", "/grafana/search"): READ,
    ("POST", "/grafana/annotations"): READ,
    # changing things
    ("POST", "/v1/scalers"): ADMIN,
    ("PUT", "/v1/scalers/{name}"): ADMIN,
    ("DELETE", "/v1/scalers/{name}"): ADMIN,
    ("POST", "/v1/scalers/{name}/pause"): ADMIN,
    ("POST", "/v1/scalers/{name}/resume"): ADMIN,
    ("POST", "/v1/scalers/{name}/rollouts"): ADMIN,
    ("POST", "/v1/rollouts/{rollout_id}/cancel"): ADMIN,
    ("POST", "/v1/scalers/{name}/tune"): ADMIN,
    ("POST", "/v1/simulations/{job_id}/apply"): ADMIN,
    ("POST", "/v1/tokens"): ADMIN,
    ("GET", "/v1/tokens"): ADMIN,
    ("DELETE", "/v1/tokens/{token_id}"): ADMIN,
    ("GET", "/v1/audit"): ADMIN,
}

SCALER = "matrix"
SPEC: dict[str, Any] = {
    "name": SCALER,
    "target": SCALER,
    "metrics": [{"name": "gpu_utilization", "target": "85%"}],
    "max_replicas": 10,
}
NOW_MS = int(time.time() * 1e3)
# Bodies that would change something if a handler ran: a denied request must not.
BODIES: dict[tuple[str, str], bytes | dict[str, Any]] = {
    ("PUT", "/metrics/{grouping:grouping}"): b"matrix_probe 1\n",
    ("POST", "/metrics/{grouping:grouping}"): b"matrix_probe 1\n",
    ("POST", "/v1/samples"): {"samples": [{"metric": "matrix_probe", "value": 1}]},
    ("POST", "/api/v1/write"): encode([([("__name__", "matrix_probe")], [(1.0, NOW_MS)])]),
    ("POST", "/v1/scalers"): {**SPEC, "name": "another"},
    ("PUT", "/v1/scalers/{name}"): {**SPEC, "max_replicas": 99},
    ("POST", "/v1/scalers/validate"): SPEC,
    ("POST", "/v1/scalers/{name}/rollouts"): {"template_patch": {"metadata": {"labels": {}}}},
    ("POST", "/v1/tokens"): {"name": "escalated", "scope": "admin"},
}


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, HEAD aside (it follows GET)."""
    try:  # FastAPI ≥ 0.120 nests included routers; this walks them
        from fastapi.routing import iter_route_contexts

        found = [(c.path, c.methods) for c in iter_route_contexts(app.routes)]
    except ImportError:  # older FastAPI: a flat list
        found = [(getattr(r, "path", None), getattr(r, "methods", None)) for r in app.routes]
    return {
        (method, path)
        for path, methods in found
        if path is not None
        for method in methods or ()
        if method != "HEAD"
    }


def test_every_route_is_in_the_table() -> None:
    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:", run_workers=False))
    served = app_routes(app)
    assert sorted(served - set(ACCESS)) == [], "routes without a row in ACCESS"
    assert sorted(set(ACCESS) - served) == [], "rows in ACCESS for routes that are gone"
    published = {
        (method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops
    }
    # The OpenAPI spells {grouping:grouping} as {grouping}; every published operation is served.
    assert {(m, p.replace("{grouping}", "{grouping:grouping}")) for m, p in published} <= served


def _concrete(path: str, ids: dict[str, str]) -> str:
    return (
        path.replace("{grouping:grouping}", "job/matrix")
        .replace("{name}", SCALER)
        .replace("{token_id}", ids["victim"])
        .replace("{rollout_id}", "999999")
        .replace("{job_id}", "no-such-job")
    )


def _request(
    client: httpx.Client, method: str, path: str, ids: dict[str, str], auth: str | None
) -> httpx.Response:
    body = BODIES.get((method, path), {} if method in ("POST", "PUT") else None)
    headers = {} if auth is None else {"Authorization": f"Bearer {auth}"}
    content: bytes | None = None
    if path == "/api/v1/write":
        assert isinstance(body, bytes)
        content = body
        headers.update({"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"})
    elif isinstance(body, bytes):
        content, headers["Content-Type"] = body, "text/plain"
    elif body is not None:
        content, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    return client.request(method, _concrete(path, ids), content=content, headers=headers)


def _snapshot(url: str) -> dict[str, list[str]]:
    """Every row of every table: what a handler that ran would have changed."""

    async def read() -> dict[str, list[str]]:
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            out = {
                t.name: sorted(repr(tuple(r)) for r in (await conn.execute(sa.select(t))).all())
                for t in metadata.sorted_tables
            }
        await engine.dispose()
        return out

    return asyncio.run(read())


def _token(server: LiveServer, scope: str, name: str) -> tuple[str, str]:
    r = httpx.post(
        f"{server.url}/v1/tokens",
        json={"name": name, "scope": scope},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["token"]


@pytest.fixture
def client(secured_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=secured_server.url, timeout=30) as client:
        yield client


def test_every_route_for_every_caller(secured_server: LiveServer, client: httpx.Client) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    tokens = {scope: _token(secured_server, scope, scope)[1] for scope in (PUSH, READ, ADMIN)}
    revoked_id, revoked = _token(secured_server, ADMIN, "revoked")
    victim_id, _ = _token(secured_server, READ, "victim")
    assert httpx.delete(f"{secured_server.url}/v1/tokens/{revoked_id}", headers=admin).is_success
    assert httpx.post(f"{secured_server.url}/v1/scalers", json=SPEC, headers=admin).is_success
    ids = {"victim": victim_id}
    callers: dict[str, str | None] = {
        "none": None,
        "unknown": "ciuic_000000000000_not-a-real-secret",
        "revoked-admin": revoked,
        PUSH: tokens[PUSH],
        READ: tokens[READ],
    }
    wrong: list[str] = []

    # 1. Below the route's scope: 401 (who are you?) or 403 (not you), and nothing changes.
    before = _snapshot(secured_server.settings.database_url)
    denied = 0
    for (method, path), needs in sorted(ACCESS.items()):
        for caller, secret in callers.items():
            if needs == OPEN or caller == needs:
                continue
            r = _request(client, method, path, ids, secret)
            expected = 403 if caller in (PUSH, READ) else 401
            code = {401: "unauthorized", 403: "forbidden"}[expected]
            if r.status_code != expected or r.json()["error"]["code"] != code:
                wrong.append(f"{caller:>13} {method} {path}: {r.status_code}, want {expected}")
            elif expected == 401 and "Bearer" not in r.headers.get("www-authenticate", ""):
                wrong.append(f"{caller:>13} {method} {path}: 401 without a challenge")
            denied += 1
    assert _snapshot(secured_server.settings.database_url) == before, "a denied call wrote"
    assert denied > 100

    # 2. At or above the route's scope: let in (whatever the dummy request then earns, never
    # 401/403 and never a 500). Open routes let everyone in, whatever token they bring.
    deletes_last = sorted(ACCESS.items(), key=lambda item: item[0][0] == "DELETE")
    for (method, path), needs in deletes_last:
        allowed = dict(callers) if needs == OPEN else {}
        allowed.update({ADMIN: tokens[ADMIN], "bootstrap": ADMIN_TOKEN})
        if needs in (PUSH, READ):
            allowed[needs] = tokens[needs]
        for caller, secret in allowed.items():
            r = _request(client, method, path, ids, secret)
            if r.status_code in (401, 403) or r.status_code >= 500:
                wrong.append(f"{caller:>13} {method} {path}: {r.status_code} {r.text[:120]}")

    assert wrong == [], "\n" + "\n".join(wrong)
