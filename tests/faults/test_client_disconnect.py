"""A pusher that gives up mid-body (its timeout under load): nothing is stored, and the service
logs one quiet line instead of two tracebacks — under overload, formatting a traceback for
every abandoned push took a fifth of the CPU (bench/soak.py, profiled)."""

from __future__ import annotations

import logging
import socket
import time

import httpx
import pytest

from tests.conftest import LiveServer


def _push_half_a_body_and_hang_up(base_url: str, path: str) -> None:
    host, port = base_url.removeprefix("http://").split(":")
    body = b"gpu_utilization 42\n"
    head = (
        f"PUT {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body) + 1000}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(head + body)  # 1,000 bytes short
        time.sleep(0.2)  # the server is now waiting for the rest


def test_a_client_hanging_up_mid_body_stores_nothing_and_logs_no_traceback(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    path = "/metrics/job/agent/instance/pod-gone"
    for _ in range(3):
        _push_half_a_body_and_hang_up(server.url, path)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if sum("client disconnected" in r.getMessage() for r in caplog.records) >= 3:
            break
        time.sleep(0.05)

    gone = [r for r in caplog.records if "client disconnected" in r.getMessage()]
    assert len(gone) == 3
    assert all(r.levelno == logging.INFO and r.exc_info is None for r in gone)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    with httpx.Client(base_url=server.url) as client:
        groups = client.get("/api/v1/metrics").json()["data"]
        assert not [g for g in groups if g["labels"].get("instance") == "pod-gone"]
        # and the service still serves the next push
        assert client.put(path, content=b"gpu_utilization 42\n").status_code == 200
