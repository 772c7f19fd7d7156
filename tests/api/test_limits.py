"""Limits: body size (after decompression too), samples per push, series per job."""

from __future__ import annotations

import gzip

import httpx

from tests.conftest import LiveServer


def groups(server: LiveServer) -> list[object]:
    data: list[object] = httpx.get(f"{server.url}/api/v1/metrics").json()["data"]
    return data


def test_body_over_the_limit_is_413(limited_server: LiveServer) -> None:
    body = b"".join(f'x{{i="{i}"}} 1\n'.encode() for i in range(400))
    assert len(body) > 4096
    response = httpx.put(f"{limited_server.url}/metrics/job/a", content=body)
    assert response.status_code == 413
    assert response.json()["error"]["details"] == {"limit_bytes": 4096}
    assert groups(limited_server) == []


def test_a_gzip_bomb_is_413_without_inflating_it(limited_server: LiveServer) -> None:
    bomb = gzip.compress(b"#" * 4_000_000)  # 4 MB of text in under 4 kB
    assert len(bomb) < 4096
    response = httpx.put(
        f"{limited_server.url}/metrics/job/a", content=bomb, headers={"Content-Encoding": "gzip"}
    )
    assert response.status_code == 413
    assert "decompressed" in response.json()["error"]["message"]


def test_too_many_samples_in_one_push_is_413(limited_server: LiveServer) -> None:
    body = "".join(f'x{{i="{i}"}} 1\n' for i in range(51)).encode()
    response = httpx.put(
        f"{limited_server.url}/metrics/job/a",
        content=gzip.compress(body),
        headers={"Content-Encoding": "gzip"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_many_samples"
    samples = {"samples": [{"metric": "x", "labels": {"i": str(i)}, "value": 1} for i in range(51)]}
    response = httpx.post(f"{limited_server.url}/v1/samples", json=samples)
    assert response.status_code == 413


def test_series_per_job_limit_is_429_and_names_the_limit(limited_server: LiveServer) -> None:
    first = "".join(f'x{{i="{i}"}} 1\n' for i in range(15)).encode()
    assert httpx.put(f"{limited_server.url}/metrics/job/a", content=first).status_code == 200
    more = "".join(f'y{{i="{i}"}} 1\n' for i in range(10)).encode()
    response = httpx.put(f"{limited_server.url}/metrics/job/a/pod/p2", content=more)
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "series_limit"
    assert "CIUIC_MAX_SERIES_PER_JOB" in error["message"]
    assert error["details"]["limit"] == 20
    assert len(groups(limited_server)) == 1  # the refused push left nothing behind
    # Another job has its own budget; pushing known series again is always fine.
    assert httpx.put(f"{limited_server.url}/metrics/job/b", content=more).status_code == 200
    assert httpx.put(f"{limited_server.url}/metrics/job/a", content=first).status_code == 200
