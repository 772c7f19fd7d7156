"""A database that cannot be reached: 503 with Retry-After, a clear body, and no 500."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from app.settings import Settings
from tests.api.test_remote_write import HEADERS, encode
from tests.conftest import LiveServer, free_port, start_server

UNREACHABLE = {
    "postgresql": lambda tmp: f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none",
    "sqlite": lambda tmp: f"sqlite+aiosqlite:///{tmp}/missing-dir/ciuic.db",
}


@pytest.fixture(params=sorted(UNREACHABLE))
def down_server(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[LiveServer]:
    url = UNREACHABLE[request.param](tmp_path)
    live = start_server(Settings(database_url=url, run_workers=False, db_retry_after_s=7))
    yield live
    live.stop()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param("PUT", "/metrics/job/a", b"x 1\n", id="push"),
        pytest.param("POST", "/metrics/job/a", b"x 1\n", id="pushadd"),
        pytest.param("DELETE", "/metrics/job/a", b"", id="delete"),
        pytest.param(
            "POST", "/v1/samples", b'{"samples": [{"metric": "x", "value": 1}]}', id="json"
        ),
        pytest.param("GET", "/api/v1/metrics", b"", id="groups"),
        pytest.param("GET", "/v1/series?match=x", b"", id="series"),
        pytest.param("GET", "/readyz", b"", id="readyz"),
    ],
)
def test_database_down_is_503_with_retry_after(
    down_server: LiveServer, method: str, path: str, body: bytes
) -> None:
    response = httpx.request(method, f"{down_server.url}{path}", content=body, timeout=30)
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "7"
    assert response.json()["error"]["code"] in ("database_unavailable",)


def test_remote_write_with_the_database_down_is_a_503_that_prometheus_retries(
    down_server: LiveServer,
) -> None:
    body = encode([([("__name__", "x")], [(1.0, int(time.time() * 1e3))])])
    response = httpx.post(f"{down_server.url}/api/v1/write", content=body, headers=HEADERS)
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "7"


def test_liveness_does_not_depend_on_the_database(down_server: LiveServer) -> None:
    assert httpx.get(f"{down_server.url}/healthz").status_code == 200


def test_bad_input_is_still_400_while_the_database_is_down(down_server: LiveServer) -> None:
    response = httpx.put(f"{down_server.url}/metrics/job/a", content=b"x 1 123\n")
    assert response.status_code == 400
