"""The Grafana JSON datasource over real HTTP, with the bodies the simPod plugin sends."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.api.grafana import choose_step_ms, step_function
from app.kube.cluster import RecordingCluster
from app.policy.types import LoadForecast
from app.store import forecasts as forecast_store
from app.store import scalers as store
from app.store.db import Database
from app.workers.reconciler import reconcile_once
from tests.conftest import ADMIN_TOKEN, LiveServer

BRIEF = (Path(__file__).parents[2] / "policy" / "brief.yaml").read_text()
MINUTE_MS = 60_000


def iso(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def base_ms() -> int:
    """A whole hour two hours back: inside retention, aligned for every step we use."""
    now = int(time.time() * 1000)
    return now - now % 3_600_000 - 2 * 3_600_000


def push_minutes(server: LiveServer, start_ms: int, minutes: int = 60) -> None:
    """Two pods, one sample per minute (at +10 s): p0 = minute index, p1 = 100 + index."""
    samples = []
    for i in range(minutes):
        t = (start_ms + i * MINUTE_MS + 10_000) / 1000
        for pod, offset in (("p0", 0), ("p1", 100)):
            samples.append(
                {
                    "metric": "gpu_utilization",
                    "labels": {"pod": pod, "deployment": "deepseek"},
                    "value": offset + i,
                    "timestamp": t,
                }
            )
    samples.append({"metric": "request_queue", "labels": {"pod": "p0"}, "value": 3})
    r = httpx.post(f"{server.url}/v1/samples", json={"samples": samples})
    assert r.status_code == 200, r.text


def query_body(
    start_ms: int, end_ms: int, *targets: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """What the plugin posts to /query (trimmed of fields we ignore, but with their shapes)."""
    return {
        "app": "dashboard",
        "requestId": "Q100",
        "timezone": "browser",
        "panelId": 2,
        "range": {"from": iso(start_ms), "to": iso(end_ms), "raw": {"from": "now-6h", "to": "now"}},
        "rangeRaw": {"from": "now-6h", "to": "now"},
        "interval": "1m",
        "intervalMs": 60_000,
        "maxDataPoints": 1_000,
        "targets": list(targets),
        "scopedVars": {"__interval": {"text": "1m", "value": "1m"}},
        "startTime": start_ms,
        **extra,
    }


def post(server: LiveServer, path: str, body: Any, **kw: Any) -> httpx.Response:
    response = httpx.post(f"{server.url}/grafana{path}", json=body, **kw)
    if path == "/query" and response.status_code == 200:
        assert_grafana_accepts(response.json())
    return response


def assert_grafana_accepts(frames: Any) -> None:
    """What the plugin parses from /query (its OpenAPI): an array of time series
    `{"target": str, "datapoints": [[number, ms], ...]}` (times ascending) or tables
    `{"type": "table", "columns": [{"text", "type"?}], "rows": [[...same length...]]}`."""
    assert isinstance(frames, list)
    for frame in frames:
        if frame.get("type") == "table":
            assert set(frame) == {"type", "columns", "rows"}
            assert all(isinstance(c["text"], str) for c in frame["columns"])
            assert all(len(row) == len(frame["columns"]) for row in frame["rows"])
            times = [c["type"] == "time" for c in frame["columns"]]
            for row in frame["rows"]:
                for is_time, cell in zip(times, row, strict=True):
                    assert not is_time or isinstance(cell, int)
        else:
            assert set(frame) == {"target", "datapoints"}
            assert isinstance(frame["target"], str)
            stamps = []
            for point in frame["datapoints"]:
                assert len(point) == 2 and isinstance(point[0], float) and isinstance(point[1], int)
                stamps.append(point[1])
            assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    if code is not None:
        assert error["code"] == code


# --- health and auth ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/grafana", "/grafana/"], ids=["bare-url", "trailing-slash"])
def test_health_answers_200_without_redirect(server: LiveServer, path: str) -> None:
    r = httpx.get(server.url + path, follow_redirects=False)
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def _read_token(server: LiveServer, scope: str = "read") -> str:
    r = httpx.post(
        f"{server.url}/v1/tokens",
        json={"name": "grafana", "scope": scope},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert r.status_code == 201
    token: str = r.json()["token"]
    return token


@pytest.mark.parametrize(
    ("how", "status"),
    [
        ("none", 401),  # the datasource saved without credentials
        ("basic", 200),  # Grafana's basic auth: any user, the token as password
        ("bearer", 200),  # a custom Authorization header
        ("push-scope", 403),  # a pod's token cannot read
        ("wrong", 401),
    ],
    ids=["no-credentials", "basic-auth", "bearer", "push-token", "wrong-token"],
)
def test_health_and_query_need_a_read_token(
    secured_server: LiveServer, how: str, status: int
) -> None:
    token = _read_token(secured_server, "push" if how == "push-scope" else "read")
    kw: dict[str, Any] = {}
    if how == "basic":
        kw["auth"] = ("grafana", token)
    elif how in ("bearer", "push-scope"):
        kw["headers"] = {"Authorization": f"Bearer {token}"}
    elif how == "wrong":
        kw["auth"] = ("grafana", "nope")
    r = httpx.get(f"{secured_server.url}/grafana", **kw)
    assert r.status_code == status
    r = post(secured_server, "/metrics", {}, **kw)
    assert r.status_code == status
    if status != 200:
        assert_error(r, status)


# --- metrics and payload options ------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [{}, {"metric": "gpu_utilization", "payload": {"agg": "max"}}, None],
    ids=["empty-object", "current-metric", "no-body"],
)
def test_metrics_lists_stored_metrics_and_scaler_series(server: LiveServer, body: Any) -> None:
    push_minutes(server, base_ms(), minutes=2)
    assert (
        httpx.post(
            f"{server.url}/v1/scalers", content=BRIEF, headers={"Content-Type": "application/yaml"}
        ).status_code
        == 201
    )
    if body is None:
        r = httpx.post(f"{server.url}/grafana/metrics")
    else:
        r = post(server, "/metrics", body)
    assert r.status_code == 200, r.text
    items = r.json()
    # The plugin requires `value` and `payloads` on every item; payloads need a `name`.
    assert all(isinstance(i["value"], str) and isinstance(i["payloads"], list) for i in items)
    assert all("name" in p for i in items for p in i["payloads"])
    values = [i["value"] for i in items]
    assert values[:2] == ["gpu_utilization", "request_queue"]
    for field in ("desired_replicas", "need", "current_replicas", "ready", "decision"):
        assert f"scaler:deepseek-service:{field}" in values
    gpu = items[0]
    assert {p["name"] for p in gpu["payloads"]} == {"agg", "combine", "legend", "format"}
    for band in ("mean", "p50", "p90", "p99", "replicas"):
        assert f"forecast:deepseek-service:{band}" in values


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        (
            {"metric": "gpu_utilization", "payload": {}, "name": "agg"},
            200,
            ["avg", "sum", "min", "max", "count"],
        ),
        (
            {"metric": "gpu_utilization", "payload": {}, "name": "combine"},
            200,
            ["none", "sum", "avg", "max", "min"],
        ),
        ({"metric": "gpu_utilization", "payload": {}, "name": "legend"}, 200, []),
        ({"metric": "gpu_utilization", "payload": {}}, 422, None),
        ({}, 422, None),
    ],
    ids=["agg", "combine", "free-text", "missing-name", "empty"],
)
def test_metric_payload_options(server: LiveServer, body: Any, status: int, expected: Any) -> None:
    r = post(server, "/metric-payload-options", body)
    if status != 200:
        assert_error(r, status, "invalid")
        return
    assert r.status_code == 200
    assert [o["value"] for o in r.json()] == expected


# --- /query: time series ------------------------------------------------------------------------


def test_query_returns_minute_points_from_the_stored_samples(server: LiveServer) -> None:
    start = base_ms()
    push_minutes(server, start)
    r = post(
        server,
        "/query",
        # the last sample is at 59:10: the range must reach it
        query_body(
            start, start + 59 * MINUTE_MS + 30_000, {"refId": "A", "target": "gpu_utilization"}
        ),
    )
    assert r.status_code == 200, r.text
    series = {s["target"]: s["datapoints"] for s in r.json()}
    p0 = series['gpu_utilization{deployment="deepseek",pod="p0"}']
    assert p0 == [[float(i), start + i * MINUTE_MS] for i in range(60)]
    assert series['gpu_utilization{deployment="deepseek",pod="p1"}'][-1] == [
        159.0,
        start + 59 * MINUTE_MS,
    ]


@pytest.mark.parametrize(
    ("payload", "expected_names", "first_value"),
    [
        ({"agg": "max"}, 2, 0.0),
        ({"combine": "sum"}, 1, 100.0),  # 0 + 100 in the first minute
        ({"combine": "avg", "legend": "fleet"}, 1, 50.0),
        ({"combine": "max"}, 1, 100.0),
        ({"legend": "{{pod}}"}, 2, 0.0),
    ],
    ids=["agg-max", "combine-sum", "combine-avg-legend", "combine-max", "legend-template"],
)
def test_query_payload_aggregates_and_names(
    server: LiveServer, payload: dict[str, Any], expected_names: int, first_value: float
) -> None:
    start = base_ms()
    push_minutes(server, start, minutes=5)
    r = post(
        server,
        "/query",
        query_body(
            start,
            start + 4 * MINUTE_MS,
            {"refId": "A", "target": "gpu_utilization", "payload": payload},
        ),
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out) == expected_names
    assert out[0]["datapoints"][0] == [first_value, start]
    if "legend" in payload:
        names = {s["target"] for s in out}
        assert names == ({"p0", "p1"} if payload["legend"] == "{{pod}}" else {"fleet"})


@pytest.mark.parametrize(
    ("hours", "interval_ms", "max_points"),
    [
        (1, 60_000, 1_000),  # Grafana's own interval fits
        (1, 1_000, 10),  # a tiny panel: 10 points for an hour
        (2, 15_000, 7),
        (2, 0, 2),
        (2, 5_000, 1),
    ],
    ids=["interval-fits", "ten-points", "seven-points", "two-points", "one-point"],
)
def test_query_never_returns_more_than_max_data_points(
    server: LiveServer, hours: int, interval_ms: int, max_points: int
) -> None:
    start = base_ms()
    push_minutes(server, start, minutes=60 * hours)
    body = query_body(
        start,
        start + hours * 3_600_000,
        {"refId": "A", "target": "gpu_utilization"},
        intervalMs=interval_ms,
        maxDataPoints=max_points,
    )
    r = post(server, "/query", body)
    assert r.status_code == 200, r.text
    for s in r.json():
        points = s["datapoints"]
        assert 1 <= len(points) <= max_points
        times = [t for _, t in points]
        assert times == sorted(times)
        # every point stands for at least the requested interval
        if len(times) > 1:
            assert min(b - a for a, b in itertools.pairwise(times)) >= interval_ms


@pytest.mark.parametrize(
    "field", ["filters", "adhocFilters"], ids=["plugin>=0.6.4", "older-plugin"]
)
@pytest.mark.parametrize(
    ("flt", "pods"),
    [
        ({"key": "pod", "operator": "=", "value": "p1"}, {"p1"}),
        ({"key": "pod", "operator": "!=", "value": "p1"}, {"p0"}),
        ({"key": "pod", "operator": "=~", "value": "p[01]"}, {"p0", "p1"}),
        ({"key": "deployment", "operator": "!~", "value": "deep.*"}, set()),
    ],
    ids=["equal", "not-equal", "regex", "not-regex"],
)
def test_adhoc_filters_under_either_name_are_label_matchers(
    server: LiveServer, field: str, flt: dict[str, str], pods: set[str]
) -> None:
    start = base_ms()
    push_minutes(server, start, minutes=3)
    body = query_body(
        start,
        start + 2 * MINUTE_MS,
        {"refId": "A", "target": "gpu_utilization", "payload": {"legend": "{{pod}}"}},
        **{field: [flt]},
    )
    r = post(server, "/query", body)
    assert r.status_code == 200, r.text
    assert {s["target"] for s in r.json()} == pods


def test_table_format_answers_a_grafana_table(server: LiveServer) -> None:
    start = base_ms()
    push_minutes(server, start, minutes=2)
    r = post(
        server,
        "/query",
        query_body(
            start,
            start + MINUTE_MS + 30_000,
            {"refId": "A", "target": 'gpu_utilization{pod="p0"}', "payload": {"format": "table"}},
        ),
    )
    assert r.status_code == 200
    (table,) = r.json()
    assert table["type"] == "table"
    assert [c["text"] for c in table["columns"]] == ["Time", "Series", "Value"]
    assert table["rows"] == [
        [start, 'gpu_utilization{deployment="deepseek",pod="p0"}', 0.0],
        [start + MINUTE_MS, 'gpu_utilization{deployment="deepseek",pod="p0"}', 1.0],
    ]


def test_forecast_targets_answer_no_series_until_forecasts_exist(server: LiveServer) -> None:
    fresh_forecasts(server)
    assert httpx.post(f"{server.url}/v1/scalers", json=FORECAST_SPEC).status_code == 201
    start = base_ms()
    r = post(
        server,
        "/query",
        query_body(
            start, start + MINUTE_MS, {"refId": "B", "target": "forecast:deepseek-service:p90"}
        ),
    )
    assert r.status_code == 200
    assert r.json() == []


FORECAST_SPEC: dict[str, Any] = {
    "target": "deepseek-service",
    "metrics": [{"name": "request_queue", "target": "<5"}],
    "capacity": {"request_rate": "30/min"},  # 0.5 requests/s per pod
    "max_replicas": 40,
}


def save_forecast(server: LiveServer, quantiles: tuple[float, ...] = (0.5, 0.9, 0.99)) -> float:
    """A fitted forecast as the refit worker stores it: 5-minute steps from the last whole
    5 minutes, 4 -> 8 requests/s (mean and p50), p90 +25 %, p99 +50 %."""
    now = time.time()
    start = now - now % 300
    n = 24
    mean = tuple(4.0 + 4.0 * i / (n - 1) for i in range(n))
    bands = {0.5: mean, 0.9: tuple(v * 1.25 for v in mean), 0.99: tuple(v * 1.5 for v in mean)}
    forecast = LoadForecast(
        model="seasonal_naive",
        made_at=now,
        start=start,
        step_s=300,
        mean=mean,
        quantiles={q: bands[q] for q in quantiles},
    )

    async def save() -> None:
        db = Database(server.settings.database_url)
        try:
            async with db.transaction() as conn:
                await forecast_store.save_forecast(conn, "deepseek-service", forecast, {})
        finally:
            await db.dispose()

    asyncio.run(save())
    return start


def fresh_forecasts(server: LiveServer) -> None:
    """The live server keeps forecasts in memory across tests; each test starts clean."""
    server.app.state.ctx.forecasts.clear()


def test_forecast_bands_follow_the_fitted_forecast_ahead_of_now(server: LiveServer) -> None:
    fresh_forecasts(server)
    assert httpx.post(f"{server.url}/v1/scalers", json=FORECAST_SPEC).status_code == 201
    start_s = save_forecast(server)
    start = int(start_s * 1000)
    body = query_body(
        start - 3_600_000,
        start + 2 * 3_600_000,  # the forecast covers 23 steps of 5 minutes
        *(
            {"refId": band, "target": f"forecast:deepseek-service:{band}"}
            for band in ("mean", "p50", "p90", "p99", "replicas")
        ),
        intervalMs=300_000,
    )
    r = post(server, "/query", body)
    assert r.status_code == 200, r.text
    series = {s["target"].split()[-1]: dict((t, v) for v, t in s["datapoints"]) for s in r.json()}
    assert set(series) == {"mean", "p50", "p90", "p99", "replicas"}
    times = sorted(series["mean"])
    assert times[0] == start and times[-1] == start + 23 * 300_000  # not before the fit, and
    assert times[-1] > time.time() * 1000  # ... into the future
    assert series["mean"][start] == 4.0 and series["mean"][times[-1]] == 8.0
    for t in times:
        assert series["p50"][t] <= series["p90"][t] <= series["p99"][t]
        # pods for p50 (the spec's quantile: the calibrated median by default) at 0.5
        # requests/s each, within the bounds
        assert series["replicas"][t] == min(40, max(1, math.ceil(series["p50"][t] / 0.5 - 1e-9)))


def test_a_band_the_model_did_not_produce_is_not_invented(server: LiveServer) -> None:
    fresh_forecasts(server)
    assert httpx.post(f"{server.url}/v1/scalers", json=FORECAST_SPEC).status_code == 201
    start = int(save_forecast(server, quantiles=(0.5, 0.9)) * 1000)
    body = query_body(
        start,
        start + 3_600_000,
        {"refId": "A", "target": "forecast:deepseek-service:p99"},
        {"refId": "B", "target": "forecast:deepseek-service:p90", "payload": {"legend": "p90"}},
    )
    r = post(server, "/query", body)
    assert [s["target"] for s in r.json()] == ["p90"]
    bad = dict(body, targets=[{"refId": "A", "target": "forecast:deepseek-service:p42"}])
    assert_error(post(server, "/query", bad), 400, "invalid_target")


# --- scaler series and annotations from real reconciles ------------------------------------------


class FixedClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    def stamp_us(self) -> int:
        return round(self.t * 1e6)


async def _reconcile(url: str, times: list[float]) -> None:
    db = Database(url)
    cluster = RecordingCluster(initial_replicas=1)
    try:
        for t in times:
            await reconcile_once(db, cluster, FixedClock(t))
    finally:
        await db.dispose()


async def _add_event(url: str, ts_us: int, kind: str, message: str, **payload: Any) -> None:
    db = Database(url)
    try:
        async with db.transaction() as conn:
            await store.add_event(
                conn,
                "deepseek-service",
                ts_us=ts_us,
                kind=kind,
                message=message,
                replicas=payload.pop("replicas", None),
                payload=payload,
            )
    finally:
        await db.dispose()


def test_scaler_series_and_annotations_follow_the_reconcilers_events(server: LiveServer) -> None:
    start = base_ms()
    push_minutes(server, start, minutes=60)
    r = httpx.post(
        f"{server.url}/v1/scalers", content=BRIEF, headers={"Content-Type": "application/yaml"}
    )
    assert r.status_code == 201
    act_ms = start + 30 * MINUTE_MS + 5_000
    asyncio.run(_reconcile(server.settings.database_url, [act_ms / 1000]))
    events = httpx.get(f"{server.url}/v1/scalers/deepseek-service/events?kind=action").json()[
        "events"
    ]
    assert len(events) == 1, "the brief's cron floor and preheat move 1 replica up"
    desired = events[0]["replicas"]
    assert desired > 1

    window = query_body(
        start,
        start + 59 * MINUTE_MS,
        {"refId": "A", "target": "scaler:deepseek-service:desired_replicas"},
        {"refId": "B", "target": "scaler:deepseek-service:current_replicas"},
        {"refId": "C", "target": "scaler:deepseek-service:ready"},
        {"refId": "D", "target": "scaler:deepseek-service:need"},
    )
    r = post(server, "/query", window)
    assert r.status_code == 200, r.text
    by_name = {s["target"]: s["datapoints"] for s in r.json()}
    points = by_name["deepseek-service desired_replicas"]
    # a step function: nothing known before the first decision, then the decided count
    assert points[0] == [float(desired), start + 30 * MINUTE_MS]
    assert points[-1] == [float(desired), start + 59 * MINUTE_MS]
    assert len(points) == 30
    assert by_name["deepseek-service current_replicas"][0][0] == 1.0
    assert by_name["deepseek-service ready"][0][0] == 1.0
    assert by_name["deepseek-service need"][0][0] > 0

    # the annotation query Grafana sends for a datasource annotation
    anno = query_body(
        start,
        start + 59 * MINUTE_MS,
        {
            "refId": "Anno",
            "target": "deepseek-service",
            "datasource": {"type": "simpod-json-datasource"},
        },
        requestId="AQ1",
    )
    r = post(server, "/query", anno)
    assert r.status_code == 200
    tables = r.json()
    assert len(tables) == 1 and tables[0]["type"] == "table"
    cols = [c["text"] for c in tables[0]["columns"]]
    assert cols == ["time", "timeEnd", "title", "text", "tags"]
    rows = [dict(zip(cols, row, strict=True)) for row in tables[0]["rows"]]
    actions = [row for row in rows if "action" in row["tags"].split(",")]
    assert len(actions) == 1
    assert actions[0]["time"] == act_ms
    assert actions[0]["title"] == f"deepseek-service: action → {desired}"
    assert actions[0]["text"].startswith("scaled deepseek-service from 1 to")
    assert "deepseek-service" in actions[0]["tags"].split(",")
    # the spec event (created) is outside this window: it happened now, not two hours ago
    assert all(row["time"] <= start + 59 * MINUTE_MS for row in rows)


@pytest.mark.parametrize(
    ("query", "kinds"),
    [
        # by default the events an operator looks for on a graph: a drift (someone else
        # scaled the target) among them, a decision that changed nothing not
        ("", {"action", "dry_run", "drift", "error"}),
        ("*", {"action", "dry_run", "drift", "error"}),
        ("kind:error", {"error"}),
        ("kind:decision", {"decision"}),
        ("deepseek-service kind:action", {"action"}),
        ("other-scaler", set()),
    ],
    ids=["everything", "star", "kind-filter", "asked-kind", "scaler-and-kind", "other-scaler"],
)
def test_annotation_queries_filter_by_scaler_and_kind(
    server: LiveServer, query: str, kinds: set[str]
) -> None:
    start = base_ms()
    url = server.settings.database_url
    for i, kind in enumerate(("action", "dry_run", "error", "drift", "decision")):
        asyncio.run(
            _add_event(
                url,
                (start + i * MINUTE_MS) * 1000,
                kind,
                f"{kind} happened",
                replicas=3 if kind != "error" else None,
            )
        )
    asyncio.run(
        _add_event(url, (start + 90 * MINUTE_MS) * 1000, "action", "outside the range", replicas=4)
    )
    body = query_body(start, start + 10 * MINUTE_MS, {"refId": "Anno", "target": query})
    r = post(server, "/query", body)
    assert r.status_code == 200, r.text
    rows = r.json()[0]["rows"]
    assert {row[4].split(",")[1] for row in rows} == kinds
    # the older simple-json /annotations endpoint answers the same events
    old = post(
        server,
        "/annotations",
        {
            "range": body["range"],
            "rangeRaw": body["rangeRaw"],
            "annotation": {"name": "scaling", "query": query, "enable": True, "iconColor": "red"},
        },
    )
    assert old.status_code == 200
    got = old.json()
    assert {a["tags"][1] for a in got} == kinds
    assert all(a["annotation"]["name"] == "scaling" and a["annotation"]["enable"] for a in got)


def test_decision_table_lists_the_latest_reasons(server: LiveServer) -> None:
    start = base_ms()
    push_minutes(server, start, minutes=5)
    httpx.post(
        f"{server.url}/v1/scalers", content=BRIEF, headers={"Content-Type": "application/yaml"}
    )
    asyncio.run(_reconcile(server.settings.database_url, [(start + 4 * MINUTE_MS) / 1000]))
    r = post(
        server,
        "/query",
        query_body(
            start,
            start + 5 * MINUTE_MS,
            {"refId": "A", "target": "scaler:deepseek-service:decision"},
        ),
    )
    (table,) = r.json()
    assert [c["text"] for c in table["columns"]] == ["Time", "Step", "Code", "Reason", "Values"]
    assert [row[1] for row in table["rows"]] == list(range(1, 10))
    assert table["rows"][0][2].startswith("reactive.")


# --- variables, ad-hoc keys and values, simple-json search --------------------------------------


@pytest.mark.parametrize(
    ("body", "values"),
    [
        ({"payload": {"target": "metrics()"}, "range": None}, ["gpu_utilization", "request_queue"]),
        ({"payload": {"target": ""}}, ["gpu_utilization", "request_queue"]),
        ({"payload": {"target": "label_values(pod)"}}, ["p0", "p1"]),
        ({"payload": {"target": "label_values(request_queue, pod)"}}, ["p0"]),
        ({"payload": {"target": "scalers()"}}, ["deepseek-service"]),
        ({"payload": "label_values(deployment)"}, ["deepseek"]),
    ],
    ids=["metrics", "empty", "label-values", "label-values-of-metric", "scalers", "string-payload"],
)
def test_variable_answers_text_value_pairs(
    server: LiveServer, body: Any, values: list[str]
) -> None:
    push_minutes(server, base_ms(), minutes=1)
    httpx.post(
        f"{server.url}/v1/scalers", content=BRIEF, headers={"Content-Type": "application/yaml"}
    )
    r = post(server, "/variable", {k: v for k, v in body.items() if v is not None})
    assert r.status_code == 200, r.text
    assert r.json() == [{"__text": v, "__value": v} for v in values]


def test_tag_keys_and_values_for_adhoc_filters(server: LiveServer) -> None:
    push_minutes(server, base_ms(), minutes=1)
    httpx.post(
        f"{server.url}/v1/scalers", content=BRIEF, headers={"Content-Type": "application/yaml"}
    )
    keys = post(server, "/tag-keys", {})
    assert keys.json() == [{"type": "string", "text": k} for k in ("deployment", "pod", "scaler")]
    assert post(server, "/tag-values", {"key": "pod"}).json() == [{"text": "p0"}, {"text": "p1"}]
    assert post(server, "/tag-values", {"key": "scaler"}).json() == [{"text": "deepseek-service"}]
    assert_error(post(server, "/tag-values", {}), 422, "invalid")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("", ["gpu_utilization", "request_queue"]),
        ("queue", ["request_queue"]),
        ("label_values(pod)", ["p0", "p1"]),
    ],
    ids=["all", "substring", "function"],
)
def test_simple_json_search(server: LiveServer, target: str, expected: list[str]) -> None:
    push_minutes(server, base_ms(), minutes=1)
    r = post(server, "/search", {"target": target})
    assert r.status_code == 200
    assert r.json() == expected


# --- refusals ---------------------------------------------------------------------------------


def _valid_query() -> dict[str, Any]:
    start = base_ms()
    return query_body(start, start + MINUTE_MS, {"refId": "A", "target": "gpu_utilization"})


@pytest.mark.parametrize(
    ("path", "content", "status", "code"),
    [
        ("/query", b"{not json", 400, "invalid_json"),
        ("/query", b"[1, 2]", 400, "invalid_body"),
        ("/query", b"{}", 422, "invalid"),  # no range
        (
            "/query",
            {**_valid_query(), "range": {"from": "yesterday", "to": "now"}},
            400,
            "invalid_time",
        ),
        (
            "/query",
            {
                **_valid_query(),
                "range": {"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
            },
            400,
            "invalid_time",
        ),
        ("/query", {**_valid_query(), "maxDataPoints": 0}, 422, "invalid"),
        (
            "/query",
            {**_valid_query(), "targets": [{"refId": "A", "target": "gpu{pod=}"}]},
            400,
            "invalid_selector",
        ),
        (
            "/query",
            {
                **_valid_query(),
                "targets": [{"refId": "A", "target": "gpu", "payload": {"agg": "median"}}],
            },
            400,
            "invalid_payload",
        ),
        (
            "/query",  # a format the panel cannot have: not silently a time series
            {
                **_valid_query(),
                "targets": [{"refId": "A", "target": "gpu", "payload": {"format": "pie"}}],
            },
            400,
            "invalid_payload",
        ),
        (
            "/query",
            {**_valid_query(), "filters": [{"key": "pod", "operator": "<", "value": "3"}]},
            400,
            "invalid_filter",
        ),
        (
            "/query",
            {**_valid_query(), "targets": [{"refId": "A", "target": "scaler:x:colour"}]},
            400,
            "invalid_target",
        ),
        ("/variable", {"payload": {"target": "drop table"}}, 400, "invalid_variable"),
        ("/annotations", {"annotation": {"name": "x"}}, 422, "invalid"),
        (
            "/query",  # a typo in a kind: not an empty panel that looks like a quiet day
            {**_valid_query(), "targets": [{"refId": "Anno", "target": "kind:actions"}]},
            400,
            "invalid_annotation_query",
        ),
        (
            "/annotations",
            {
                "range": _valid_query()["range"],
                "annotation": {"name": "x", "query": "deepseek-service kind:scaled"},
            },
            400,
            "invalid_annotation_query",
        ),
        ("/metrics", b'"metrics"', 400, "invalid_body"),
    ],
    ids=[
        "not-json",
        "array",
        "no-range",
        "bad-time",
        "reversed-range",
        "zero-points",
        "bad-selector",
        "bad-agg",
        "bad-format",
        "bad-operator",
        "bad-scaler-field",
        "bad-variable",
        "annotations-no-range",
        "annotation-unknown-kind",
        "simple-json-annotation-unknown-kind",
        "metrics-string",
    ],
)
def test_bad_bodies_are_json_errors_never_500(
    server: LiveServer, path: str, content: Any, status: int, code: str
) -> None:
    url = f"{server.url}/grafana{path}"
    if isinstance(content, bytes):
        r = httpx.post(url, content=content, headers={"Content-Type": "application/json"})
    else:
        r = httpx.post(url, json=content)
    assert_error(r, status, code)


# --- pure helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("span_ms", "interval_ms", "max_points", "step_ms"),
    [
        (3_600_000, 60_000, 1_000, 60_000),  # Grafana's interval wins
        (3_600_000, 1_000, 10, 480_000),  # 3600 s / 8 = 450 s, up to whole minutes
        (86_400_000 * 7, 60_000, 100, 7_200_000),  # a week in 100 points: 2 h (from rollups)
        (10_000, 0, 1_000, 1_000),  # never under a second
        (3_600_000, 0, 1, 7_200_000),  # one point: a bucket larger than the range, whole hours
    ],
    ids=["interval", "minutes", "hours", "floor", "single"],
)
def test_choose_step(span_ms: int, interval_ms: int, max_points: int, step_ms: int) -> None:
    assert choose_step_ms(0, span_ms, interval_ms, max_points) == step_ms


@pytest.mark.parametrize("max_points", [1, 2, 3, 7, 100, 999])
@pytest.mark.parametrize("start_ms", [0, 1, 59_999, 3_600_000, 25 * 3_600_000, 1_764_300_123_456])
@pytest.mark.parametrize("span_ms", [0, 1, 61_000, 3_600_000, 7_200_000, 86_400_000 * 30])
def test_aligned_buckets_fit_max_points(start_ms: int, span_ms: int, max_points: int) -> None:
    """Whatever the range's alignment: a panel asking one point over two hours from 01:00 UTC
    once got two (3 h buckets from the epoch straddle 03:00)."""
    step = choose_step_ms(start_ms, start_ms + span_ms, None, max_points)
    first = start_ms - start_ms % step
    buckets = len(range(first, start_ms + span_ms + 1, step))
    assert buckets <= max_points


@settings(max_examples=300, deadline=None)
@given(
    start_ms=st.integers(0, 4_000_000_000_000),
    span_ms=st.integers(0, 90 * 86_400_000),
    interval_ms=st.integers(0, 3_600_000),
    max_points=st.integers(1, 2_000),
)
def test_any_range_fits_max_points_in_whole_units(
    start_ms: int, span_ms: int, interval_ms: int, max_points: int
) -> None:
    step = choose_step_ms(start_ms, start_ms + span_ms, interval_ms, max_points)
    end_ms = start_ms + span_ms
    assert end_ms // step - start_ms // step + 1 <= max_points
    assert step >= max(1_000, interval_ms)
    for unit in (3_600_000, 60_000):
        if step >= unit:
            assert step % unit == 0
            break


def test_step_function_carries_the_last_value() -> None:
    changes = [(1_000, 1.0), (5_500, 3.0), (5_600, 4.0)]
    assert step_function(changes, [0, 2_000, 4_000, 6_000], 2_000) == [
        (1.0, 0),
        (1.0, 2_000),
        (4.0, 4_000),  # the last value set before the bucket ends
        (4.0, 6_000),
    ]
