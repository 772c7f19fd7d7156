"""The Pushgateway protocol at the HTTP level: what is accepted, what is refused and why."""

from __future__ import annotations

import base64
import gzip

import httpx
import pytest

from tests.conftest import LiveServer

TEXT = {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}


def b64(value: str, *, pad: bool) -> str:
    raw = base64.urlsafe_b64encode(value.encode()).decode()
    return raw if pad else raw.rstrip("=")


def state(server: LiveServer) -> list[dict[str, object]]:
    data: list[dict[str, object]] = httpx.get(f"{server.url}/api/v1/metrics").json()["data"]
    return data


# Refusals the Pushgateway makes after parsing (its consistency check): they stamp the group.
STAMPS_FAILURE = ("timestamp_not_allowed", "duplicate_series")


def without_failure(group: dict[str, object]) -> dict[str, object]:
    return {
        k: v
        for k, v in group.items()
        if k not in ("push_failure_time_seconds", "last_push_successful")
    }


def sample_count(server: LiveServer) -> int:
    response = httpx.get(f"{server.url}/v1/series", params={"match": '{job=~".+"}'})
    assert response.status_code == 200, response.text
    return len(response.json()["series"])


@pytest.mark.parametrize(
    ("path", "labels"),
    [
        pytest.param("job/a", {"job": "a"}, id="plain"),
        pytest.param(f"job@base64/{b64('a/b', pad=True)}", {"job": "a/b"}, id="job-base64-padded"),
        pytest.param(
            f"job/a/pod@base64/{b64('x/y?', pad=False)}",
            {"job": "a", "pod": "x/y?"},
            id="label-base64-unpadded",
        ),
        pytest.param("job/a/shard@base64/=", {"job": "a", "shard": ""}, id="empty-value"),
        pytest.param("job/a/zone/eu+west", {"job": "a", "zone": "eu west"}, id="quote-plus"),
        pytest.param("job/a/zone/eu%20west", {"job": "a", "zone": "eu west"}, id="percent"),
    ],
)
def test_grouping_keys_accepted(server: LiveServer, path: str, labels: dict[str, str]) -> None:
    response = httpx.put(f"{server.url}/metrics/{path}", content=b"up 1\n", headers=TEXT)
    assert response.status_code == 200, response.text
    [group] = state(server)
    assert group["labels"] == labels  # as pushed: no `instance` added to the grouping key


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        pytest.param("job/a/pod", "up 1\n", "invalid_grouping_key", id="odd-segments"),
        pytest.param("job/", "up 1\n", "invalid_grouping_key", id="empty-job"),
        pytest.param("job/a/__meta/x", "up 1\n", "invalid_grouping_key", id="reserved-label"),
        pytest.param("job/a/1abc/x", "up 1\n", "invalid_grouping_key", id="bad-label-name"),
        pytest.param("job/a/pod@base64/%%%", "up 1\n", "invalid_grouping_key", id="bad-base64"),
        pytest.param("job/a/pod/x/pod/y", "up 1\n", "invalid_grouping_key", id="repeated-label"),
        pytest.param("instance/a", "up 1\n", "invalid_grouping_key", id="no-job"),
        pytest.param("job/a", "up 1 1700000000000\n", "timestamp_not_allowed", id="timestamp"),
        pytest.param("job/a", "up 1\nup 2\n", "duplicate_series", id="duplicate-series"),
        pytest.param(
            "job/a", 'up{job="x"} 1\nup 2\n', "duplicate_series", id="duplicate-after-grouping"
        ),
        pytest.param("job/a", "up{ 1\n", "parse_error", id="syntax"),
        pytest.param("job/a", "up one\n", "parse_error", id="not-a-number"),
        pytest.param("job/a", 'up{__x="1"} 1\n', "parse_error", id="reserved-body-label"),
        pytest.param("job/a", 'up{"a b"="1"} 1\n', "invalid_label", id="quoted-label-name"),
        pytest.param(
            "job/a",
            "# TYPE up gauge\nup 1\n# TYPE up counter\nup 2\n",
            "type_clash",
            id="two-types-one-push",
        ),
    ],
)
def test_bad_pushes_are_refused_with_a_reason_and_change_nothing(
    server: LiveServer, path: str, body: str, code: str
) -> None:
    assert httpx.put(f"{server.url}/metrics/job/a", content=b"kept 1\n").status_code == 200
    before = state(server)
    for method in ("PUT", "POST"):
        response = httpx.request(method, f"{server.url}/metrics/{path}", content=body, headers=TEXT)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == code
        assert error["message"]
    after = state(server)
    # A body that parses but is inconsistent stamps its group's failure time, as the
    # Pushgateway does; a parse error or a bad URL leaves no trace at all.
    assert [g["last_push_successful"] for g in after] == [code not in STAMPS_FAILURE]
    assert [without_failure(g) for g in after] == [without_failure(g) for g in before]
    assert sample_count(server) == 1


def test_type_clash_across_groups_is_refused(server: LiveServer) -> None:
    ok = httpx.put(f"{server.url}/metrics/job/a", content=b"# TYPE load gauge\nload 1\n")
    assert ok.status_code == 200
    clash = httpx.put(f"{server.url}/metrics/job/b", content=b"# TYPE load counter\nload 1\n")
    assert clash.status_code == 400
    assert clash.json()["error"]["code"] == "type_clash"
    assert "gauge" in clash.json()["error"]["message"]
    # b did not exist: it now does, empty, stamped with the failure (as the Pushgateway does)
    b = next(g for g in state(server) if g["labels"] == {"job": "b"})
    assert b["last_push_successful"] is False
    assert set(b) == {
        "labels",
        "last_push_successful",
        "push_time_seconds",
        "push_failure_time_seconds",
    }
    httpx.delete(f"{server.url}/metrics/job/b")
    # The same type elsewhere is fine; a group may change its own family's type on PUT.
    assert (
        httpx.put(f"{server.url}/metrics/job/c", content=b"# TYPE load gauge\nload 2\n").status_code
        == 200
    )
    httpx.delete(f"{server.url}/metrics/job/c")
    httpx.delete(f"{server.url}/metrics/job/a")
    retyped = httpx.put(f"{server.url}/metrics/job/b", content=b"# TYPE load counter\nload 1\n")
    assert retyped.status_code == 200


def test_a_group_retyping_a_family_another_group_holds_is_refused(server: LiveServer) -> None:
    """Re-pushing a family with the type the group already holds skips the clash query; a
    change of type must still be checked against the other groups, on PUT and on POST."""
    put = httpx.put
    assert put(f"{server.url}/metrics/job/a", content=b"# TYPE load gauge\nload 1\n").is_success
    assert put(f"{server.url}/metrics/job/b", content=b"# TYPE load gauge\nload 1\n").is_success
    assert put(f"{server.url}/metrics/job/b", content=b"# TYPE load gauge\nload 2\n").is_success
    for send in (httpx.put, httpx.post):
        retyped = send(f"{server.url}/metrics/job/b", content=b"# TYPE load counter\nload 3\n")
        assert retyped.status_code == 400
        assert retyped.json()["error"]["code"] == "type_clash"
    # the refused pushes changed nothing: b still holds its gauge at 2
    b = next(g for g in state(server) if g["labels"]["job"] == "b")
    assert b["load"]["type"] == "GAUGE"  # the Pushgateway API spells types upper-case
    assert b["load"]["metrics"][0]["value"] == "2"


def test_url_labels_override_body_labels(server: LiveServer) -> None:
    response = httpx.put(f"{server.url}/metrics/job/bar", content=b'x{job="foo",pod="p"} 1\n')
    assert response.status_code == 200
    [group] = state(server)
    family = group["x"]
    assert isinstance(family, dict)
    assert family["metrics"][0]["labels"] == {"job": "bar", "pod": "p", "instance": ""}


def test_empty_put_empties_the_group_and_post_keeps_others(server: LiveServer) -> None:
    httpx.put(f"{server.url}/metrics/job/a", content=b"x 1\ny 2\n")
    httpx.post(f"{server.url}/metrics/job/a", content=b"y 3\n")
    [group] = state(server)
    assert {"x", "y"} <= set(group)
    httpx.put(f"{server.url}/metrics/job/a", content=b"")
    [group] = state(server)
    assert "x" not in group and "y" not in group


def test_gzip_bodies_are_accepted(server: LiveServer) -> None:
    body = gzip.compress(b"# TYPE request_queue gauge\nrequest_queue 12\n")
    response = httpx.put(
        f"{server.url}/metrics/job/gz",
        content=body,
        headers={**TEXT, "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200, response.text
    [group] = state(server)
    family = group["request_queue"]
    assert isinstance(family, dict) and family["metrics"][0]["value"] == "12"


@pytest.mark.parametrize(
    ("headers", "body", "code"),
    [
        pytest.param({"Content-Encoding": "gzip"}, b"not gzip", "invalid_gzip", id="not-gzip"),
        pytest.param({"Content-Encoding": "br"}, b"x 1\n", "unsupported_encoding", id="brotli"),
        pytest.param({}, b"\xff\xfe x 1\n", "parse_error", id="not-utf8"),
    ],
)
def test_bodies_we_cannot_read(
    server: LiveServer, headers: dict[str, str], body: bytes, code: str
) -> None:
    response = httpx.put(f"{server.url}/metrics/job/a", content=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert state(server) == []


@pytest.mark.parametrize("path", ["/metrics/job/a/", "/metrics/job/a//", "/metrics/job/a/x/y/"])
def test_pushes_are_never_redirected(server: LiveServer, path: str) -> None:
    response = httpx.put(f"{server.url}{path}", content=b"x 1\n", follow_redirects=False)
    assert response.status_code in (200, 400)
    assert not response.is_redirect


def test_histograms_and_summaries_render_like_the_pushgateway(server: LiveServer) -> None:
    body = (
        b"# TYPE lat histogram\n"
        b'lat_bucket{le="0.5"} 1\nlat_bucket{le="+Inf"} 2\nlat_count 2\nlat_sum 1.5\n'
        b'# TYPE s summary\ns{quantile="0.9"} 3\ns_count 4\ns_sum 5\n'
    )
    assert httpx.put(f"{server.url}/metrics/job/h", content=body).status_code == 200
    [group] = state(server)
    lat = group["lat"]
    assert isinstance(lat, dict) and lat["type"] == "HISTOGRAM"
    assert lat["metrics"][0]["buckets"] == {"0.5": "1", "+Inf": "2"}
    assert lat["metrics"][0]["count"] == "2" and lat["metrics"][0]["sum"] == "1.5"
    summary = group["s"]
    assert isinstance(summary, dict) and summary["metrics"][0]["quantiles"] == {"0.9": "3"}


def test_health_endpoints(server: LiveServer) -> None:
    assert httpx.get(f"{server.url}/-/healthy").text == "OK"
    assert httpx.get(f"{server.url}/-/ready").text == "OK"
