"""The warm-up helper against a real local HTTP server that fails its first requests."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ciuic_sdk.warmup import (
    ReadinessServer,
    WarmupConfig,
    default_requests,
    load_requests,
    main,
    warm_up,
)
from tests.conftest import free_port
from tests.sdk.servers import ModelServer, model_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("fail_first", "attempts", "requests", "min_successes", "ready", "succeeded", "posts"),
    [
        (0, 3, 3, 1, True, 3, 3),  # all fine at once
        (2, 3, 3, 1, True, 3, 5),  # the first request needs 3 attempts
        (3, 3, 3, 1, True, 2, 5),  # the first gives up after 3; the others succeed
        (3, 3, 3, 3, False, 2, 5),  # ... but all three were required: not ready
        (9, 3, 3, 1, False, 0, 9),  # nothing works: not ready
        (1, 1, 2, 1, True, 1, 2),  # no retries configured
    ],
    ids=["clean", "retried", "one-gives-up", "all-required", "never", "no-retry"],
)
def test_warm_up_retries_logs_and_marks_ready(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    fail_first: int,
    attempts: int,
    requests: int,
    min_successes: int,
    ready: bool,
    succeeded: int,
    posts: int,
) -> None:
    caplog.set_level(logging.INFO, logger="ciuic.warmup")
    sleeps: list[float] = []
    with model_server(ModelServer(fail_first=fail_first)) as server:
        config = WarmupConfig(
            url=f"{server.url}/v1/completions",
            requests=default_requests("deepseek-7b")[:requests],
            health_url=f"{server.url}/health",
            attempts=attempts,
            backoff_s=0.5,
            min_successes=min_successes,
            ready_file=tmp_path / "ready" / "warm",
        )
        result = warm_up(config, sleep=sleeps.append)
        assert len(server.posts) == posts
        assert server.posts[0]["model"] == "deepseek-7b"
    assert result.ready is ready
    assert result.succeeded == succeeded
    assert (tmp_path / "ready" / "warm").exists() is ready
    failures = [r for r in caplog.records if "failed (attempt" in r.getMessage()]
    assert len(failures) == min(fail_first, posts)  # every failure is logged, none swallowed
    assert all("HTTP 500" in r.getMessage() for r in failures)
    if fail_first >= 2 and attempts == 3:
        assert sleeps[:2] == [0.5, 1.0]  # backoff doubles


def test_waits_for_the_model_server_to_load_first(tmp_path: Path) -> None:
    sleeps: list[float] = []
    with model_server(ModelServer(unhealthy_first=3)) as server:
        config = WarmupConfig(
            url=f"{server.url}/v1/completions",
            requests=[{"prompt": "hi"}],
            health_url=f"{server.url}/health",
            ready_file=tmp_path / "warm",
        )
        result = warm_up(config, sleep=sleeps.append)
        assert server.health_calls == 4
    assert result.ready and sleeps == [0.5, 1.0, 2.0]


def test_a_server_that_never_loads_is_not_marked_ready(tmp_path: Path) -> None:
    with model_server(ModelServer(healthy=False)) as server:
        config = WarmupConfig(
            url=f"{server.url}/v1/completions",
            requests=[{"prompt": "hi"}],
            health_url=f"{server.url}/health",
            wait_s=0.2,
            ready_file=tmp_path / "warm",
        )
        result = warm_up(config, sleep=lambda s: None)
        assert server.posts == []
    assert not result.ready and not (tmp_path / "warm").exists()
    assert "never became healthy" in result.errors[0]


def test_readiness_endpoint_follows_warm_up_and_model_health() -> None:
    with model_server(ModelServer(fail_first=1)) as server:
        health = httpx.Client()
        readiness = ReadinessServer(
            0,
            host="127.0.0.1",
            check=lambda: health.get(f"{server.url}/health").status_code == 200,
        ).start()
        probe = f"http://127.0.0.1:{readiness.port}"
        try:
            assert httpx.get(f"{probe}/ready").status_code == 503
            assert httpx.get(f"{probe}/live").status_code == 200
            config = WarmupConfig(
                url=f"{server.url}/v1/completions",
                requests=[{"prompt": "hi"}],
                health_url=None,
                backoff_s=0,
            )
            assert warm_up(config, readiness=readiness, sleep=lambda s: None).ready
            assert httpx.get(f"{probe}/ready").status_code == 200
            server.healthy = False  # the model server dies later: the probe says so
            assert httpx.get(f"{probe}/ready").status_code == 503
        finally:
            readiness.stop()
            health.close()


@pytest.mark.parametrize(
    "content",
    [
        json.dumps([{"prompt": "a"}, {"prompt": "b"}]),
        '{"prompt": "a"}\n{"prompt": "b"}\n',
    ],
    ids=["json-array", "json-lines"],
)
def test_load_requests(tmp_path: Path, content: str) -> None:
    path = tmp_path / "warmup.json"
    path.write_text(content)
    assert load_requests(path) == [{"prompt": "a"}, {"prompt": "b"}]


def test_cli_marks_ready_and_exits(tmp_path: Path) -> None:
    with model_server(ModelServer(fail_first=1)) as server:
        code = main(
            [
                "--url",
                f"{server.url}/v1/completions",
                "--model",
                "deepseek-7b",
                "--health-url",
                f"{server.url}/health",
                "--backoff",
                "0",
                "--ready-file",
                str(tmp_path / "warm"),
                "--exit",
            ]
        )
    assert code == 0 and (tmp_path / "warm").exists()


def test_cli_fails_when_warm_up_fails(tmp_path: Path) -> None:
    with model_server(ModelServer(fail_first=100)) as server:
        code = main(
            [
                "--url",
                f"{server.url}/v1/completions",
                "--model",
                "m",
                "--health-url",
                "",
                "--attempts",
                "2",
                "--backoff",
                "0",
                "--ready-file",
                str(tmp_path / "warm"),
            ]
        )
    assert code == 1 and not (tmp_path / "warm").exists()


def test_sidecar_process_serves_the_readiness_probe_until_sigterm(tmp_path: Path) -> None:
    port = free_port()
    with model_server(ModelServer(fail_first=2, unhealthy_first=2)) as server:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ciuic_sdk.warmup",
                "--url",
                f"{server.url}/v1/completions",
                "--model",
                "deepseek-7b",
                "--health-url",
                f"{server.url}/health",
                "--backoff",
                "0.1",
                "--ready-port",
                str(port),
                "--ready-file",
                str(tmp_path / "warm"),
            ],
            env={**os.environ, "PYTHONPATH": str(ROOT / "sdk")},
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            statuses = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    statuses.append(httpx.get(f"http://127.0.0.1:{port}/ready").status_code)
                except httpx.TransportError:
                    statuses.append(0)  # not listening yet
                if statuses[-1] == 200:
                    break
                time.sleep(0.05)
            assert statuses[-1] == 200 and 503 in statuses  # unready first, then ready
            assert (tmp_path / "warm").exists()
            assert proc.poll() is None  # keeps serving the probe
        finally:
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert stderr.count("failed (attempt") == 2  # both failures logged
