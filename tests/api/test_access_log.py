"""CIUIC_ACCESS_LOG: one line per request when on, none when off (the default), and what
`ciuic serve` hands uvicorn follows the setting."""

from __future__ import annotations

import logging
import threading
import time

import httpx
import pytest
import uvicorn

from app.cli import uvicorn_options
from app.logs import configure_logging
from app.main import create_app
from app.settings import Settings
from tests.conftest import free_port


def serve_once(settings: Settings) -> None:
    """Start the service as `ciuic serve` would, answer one request, stop."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, **uvicorn_options(settings)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("enabled", [True, False], ids=["on", "off"])
def test_the_access_log_follows_the_setting(
    database_url: str,
    enabled: bool,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CIUIC_ACCESS_LOG", "true" if enabled else "false")
    settings = Settings(database_url=database_url, run_workers=False)
    assert settings.access_log is enabled
    assert uvicorn_options(settings)["access_log"] is enabled
    caplog.set_level(logging.INFO)
    serve_once(settings)
    access = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    if enabled:
        assert any('"GET /healthz HTTP/1.1" 200' in line for line in access), access
    else:
        assert access == []


def test_the_access_log_is_off_by_default() -> None:
    assert Settings().access_log is False


def test_logging_lets_access_lines_through_only_when_asked() -> None:
    access, root = logging.getLogger("uvicorn.access"), logging.getLogger()
    before = (access.level, root.level, root.handlers[:])
    try:
        configure_logging("INFO", access_log=True)
        assert access.isEnabledFor(logging.INFO)
        configure_logging("INFO", access_log=False)
        assert not access.isEnabledFor(logging.INFO)
    finally:
        access.setLevel(before[0])
        root.setLevel(before[1])
        root.handlers[:] = before[2]
