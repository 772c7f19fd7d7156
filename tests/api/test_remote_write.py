"""POST /api/v1/write: what a Prometheus remote-write sender sees, over real HTTP, on both
backends. Bad data is a 4xx (Prometheus drops it instead of retrying it forever), nothing of a
refused batch is written, success is a 204."""

from __future__ import annotations

import math
import random
import struct
import time
from typing import Any

import cramjam
import httpx
import pytest

from app.api.remotewrite.wire import WriteRequest
from tests.conftest import LiveServer

HEADERS = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    "User-Agent": "Prometheus/2.42.0",
}
# Prometheus' staleness marker: a NaN with this exact bit pattern, sent when a series ends.
STALE_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]

Series = tuple[list[tuple[str, str]], list[tuple[float, int]]]


def encode(series: list[Series]) -> bytes:
    request: Any = WriteRequest()
    for labels, samples in series:
        ts = request.timeseries.add()
        for name, value in labels:
            ts.labels.add(name=name, value=value)
        for value, ms in samples:
            ts.samples.add(value=value, timestamp=ms)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def write(server: LiveServer, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/v1/write", content=body, headers={**HEADERS, **headers}, timeout=30
    )


def points(server: LiveServer, selector: str, start: float, end: float) -> list[list[float]]:
    r = httpx.get(
        f"{server.url}/v1/query_range",
        params={"query": selector, "start": start, "end": end, "step": "1", "agg": "max"},
    )
    assert r.status_code == 200, r.text
    return [p for s in r.json()["series"] for p in s["points"]]


def series(server: LiveServer, match: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{server.url}/v1/series", params={"match": match})
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["series"]
    return found


def now_ms() -> int:
    return int(time.time() * 1000)


def test_a_prometheus_batch_is_stored_with_its_names_labels_and_times(
    server: LiveServer,
) -> None:
    t = (now_ms() // 1000 - 10) * 1000  # a whole second: query_range buckets by the second
    waiting = [("__name__", "vllm:num_requests_waiting"), ("job", "vllm"), ("pod", "ds-0")]
    body = encode(
        [
            (waiting, [(3.0, t), (5.0, t + 1000)]),
            # Labels arrive sorted by Prometheus, but nothing here depends on it.
            (
                [("pod", "ds-1"), ("job", "vllm"), ("__name__", "vllm:num_requests_waiting")],
                [(7.0, t)],
            ),
            (
                [("__name__", "vllm:gpu_cache_usage_perc"), ("job", "vllm"), ("pod", "ds-0")],
                [(0.25, t)],
            ),
        ]
    )
    r = write(server, body)
    assert r.status_code == 204, r.text
    assert r.content == b""
    found = series(server, "vllm:num_requests_waiting")
    assert sorted(s["labels"]["pod"] for s in found) == ["ds-0", "ds-1"]
    assert all(s["labels"] == {"job": "vllm", "pod": s["labels"]["pod"]} for s in found)
    got = points(server, 'vllm:num_requests_waiting{pod="ds-0"}', t / 1000 - 1, t / 1000 + 5)
    assert got == [[t / 1000, 3.0], [t / 1000 + 1, 5.0]]
    assert [
        v for _, v in points(server, "vllm:gpu_cache_usage_perc", t / 1000 - 1, t / 1000 + 5)
    ] == [0.25]


def test_stale_markers_and_infinities_are_dropped_and_the_rest_is_stored(
    server: LiveServer,
) -> None:
    # A target that went away: Prometheus sends a stale marker for each of its series. Refusing
    # the batch would drop the live series beside it; storing it would poison every average.
    t = now_ms() - 5_000
    body = encode(
        [
            ([("__name__", "queue"), ("pod", "a")], [(2.0, t), (STALE_NAN, t + 1000)]),
            ([("__name__", "queue"), ("pod", "b")], [(math.inf, t), (math.nan, t + 1000)]),
        ]
    )
    assert write(server, body).status_code == 204
    assert [v for _, v in points(server, 'queue{pod="a"}', t / 1000 - 1, t / 1000 + 5)] == [2.0]
    assert points(server, 'queue{pod="b"}', t / 1000 - 1, t / 1000 + 5) == []


def test_an_empty_label_is_no_label_as_in_prometheus(server: LiveServer) -> None:
    body = encode([([("__name__", "up"), ("pod", ""), ("job", "x")], [(1.0, now_ms())])])
    assert write(server, body).status_code == 204
    assert [s["labels"] for s in series(server, "up")] == [{"job": "x"}]


def test_an_empty_request_is_a_204(server: LiveServer) -> None:
    assert write(server, encode([])).status_code == 204


def test_a_sample_slightly_ahead_is_moved_back_to_the_time_of_receipt(
    server: LiveServer,
) -> None:
    # A sender whose clock runs 60 s fast (within CIUIC_MAX_FUTURE_SKEW_S): kept, as JSON is.
    ahead = now_ms() + 60_000
    body = encode([([("__name__", "fast")], [(1.0, ahead - 1000), (2.0, ahead)])])
    before = time.time()
    assert write(server, body).status_code == 204
    got = points(server, "fast", before - 5, time.time() + 1)
    assert [v for _, v in got] == [1.0, 2.0]
    assert got[1][0] <= time.time() and got[1][0] - got[0][0] == pytest.approx(1.0)


def _raw(protobuf: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(protobuf))


NOW = now_ms()
GOOD = [("__name__", "ok")]
REFUSED = [
    # (body, extra headers, status, code): one row per way a sender gets it wrong.
    pytest.param(
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", {}, 400, "invalid_snappy", id="not-snappy"
    ),
    pytest.param(encode([(GOOD, [(1.0, NOW)])])[:-4], {}, 400, "invalid_snappy", id="truncated"),
    pytest.param(_raw(b"not a protobuf!"), {}, 400, "invalid_protobuf", id="not-protobuf"),
    # timeseries { labels { name: "\xff" } }: a string that is not UTF-8
    pytest.param(
        _raw(b"\x0a\x05\x0a\x03\x0a\x01\xff"), {}, 400, "invalid_protobuf", id="label-not-utf8"
    ),
    pytest.param(
        encode([([("job", "x")], [(1.0, NOW)])]), {}, 400, "invalid_metric_name", id="no-name"
    ),
    pytest.param(
        encode([([("__name__", "a-b")], [(1.0, NOW)])]),
        {},
        400,
        "invalid_metric_name",
        id="bad-name",
    ),
    pytest.param(
        encode([([*GOOD, ("pod-name", "x")], [(1.0, NOW)])]),
        {},
        400,
        "invalid_label",
        id="bad-label-name",
    ),
    pytest.param(
        encode([([*GOOD, ("__address__", "x")], [(1.0, NOW)])]),
        {},
        400,
        "invalid_label",
        id="reserved-label",
    ),
    pytest.param(
        encode([([*GOOD, ("pod", "x"), ("pod", "y")], [(1.0, NOW)])]),
        {},
        400,
        "invalid_label",
        id="label-twice",
    ),
    pytest.param(
        encode([(GOOD, [(1.0, NOW + 3_600_000)])]), {}, 422, "invalid", id="an-hour-ahead"
    ),
    pytest.param(
        encode([(GOOD, [(1.0, NOW - 30 * 86_400_000)])]),
        {},
        422,
        "invalid",
        id="older-than-retention",
    ),
    pytest.param(
        encode([(GOOD, [(1.0, NOW)])]),
        {"Content-Type": "application/json"},
        415,
        "unsupported_media_type",
        id="not-protobuf-type",
    ),
    pytest.param(
        encode([(GOOD, [(1.0, NOW)])]),
        {"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"},
        415,
        "unsupported_media_type",
        id="remote-write-2.0",
    ),
    pytest.param(
        encode([(GOOD, [(1.0, NOW)])]),
        {"Content-Encoding": "gzip"},
        415,
        "unsupported_encoding",
        id="gzip",
    ),
]


@pytest.mark.parametrize(("body", "headers", "status", "code"), REFUSED)
def test_bad_data_is_a_4xx_and_nothing_of_the_batch_is_written(
    server: LiveServer, body: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    # Each refused body rides with a good series: all or nothing.
    r = write(server, body, **headers)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert series(server, '{__name__=~".+"}') == []


def test_the_good_series_beside_a_bad_one_is_not_written(server: LiveServer) -> None:
    body = encode([(GOOD, [(1.0, now_ms())]), ([("__name__", "")], [(1.0, now_ms())])])
    r = write(server, body)
    assert r.status_code == 400
    assert "timeseries[1]" in r.json()["error"]["message"]
    assert series(server, "ok") == []


def test_the_body_limits_apply_before_and_after_snappy(limited_server: LiveServer) -> None:
    # limited_server: CIUIC_MAX_BODY_BYTES=4096, CIUIC_MAX_SAMPLES_PER_PUSH=50.
    noise = random.Random(0).randbytes(5000)  # does not compress
    big = bytes(cramjam.snappy.compress_raw(noise))
    assert len(big) > 4096
    assert write(limited_server, big).status_code == 413
    # Under the limit as sent, 20 times over it once inflated: refused on its preamble.
    bomb = bytes(cramjam.snappy.compress_raw(b"\0" * 80_000))
    assert len(bomb) < 4096
    r = write(limited_server, bomb)
    assert r.status_code == 413 and "decompressed" in r.json()["error"]["message"]
    many = encode([(GOOD, [(1.0, now_ms() - i) for i in range(51)])])
    r = write(limited_server, many)
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_many_samples"


def test_a_push_token_may_write_and_a_read_token_may_not(secured_server: LiveServer) -> None:
    admin = {"Authorization": "Bearer test-admin-token-0123456789"}
    tokens = {
        scope: httpx.post(
            f"{secured_server.url}/v1/tokens", json={"name": scope, "scope": scope}, headers=admin
        ).json()["token"]
        for scope in ("push", "read")
    }
    body = encode([(GOOD, [(1.0, now_ms())])])
    assert write(secured_server, body).status_code == 401
    assert write(secured_server, body, Authorization=f"Bearer {tokens['read']}").status_code == 403
    # Prometheus' basic_auth: the token as the password, as for the Pushgateway routes.
    pushed = httpx.post(
        f"{secured_server.url}/api/v1/write",
        content=body,
        headers=HEADERS,
        auth=("prometheus", tokens["push"]),
    )
    assert pushed.status_code == 204, pushed.text
