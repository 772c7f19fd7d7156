"""The SDK against the real service over HTTP (no mock transport), on both databases."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import BaseModel

import ciuic_sdk
from app.policy.types import LoadForecast
from app.store import forecasts as forecast_store
from app.store.db import Database
from ciuic_sdk import (
    OPERATIONS,
    AsyncClient,
    CiuicError,
    Client,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    PreconditionFailed,
    Sample,
    Unauthorized,
    Unavailable,
)
from tests.conftest import ADMIN_TOKEN, LiveServer, free_port

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = json.loads((ROOT / "openapi" / "openapi.json").read_text())
BRIEF = (ROOT / "tests" / "policy" / "brief.yaml").read_text()


# Operations the SDK calls that are being built elsewhere: checked once the service has them.
def _openapi_ops() -> dict[str, tuple[str, str]]:
    return {
        op["operationId"]: (method.upper(), path)
        for path, ops in OPENAPI["paths"].items()
        for method, op in ops.items()
    }


@pytest.mark.parametrize("operation", sorted(OPERATIONS), ids=sorted(OPERATIONS))
def test_every_operation_the_sdk_calls_is_in_the_openapi(operation: str) -> None:
    published = _openapi_ops()
    method, path = OPERATIONS[operation]
    assert published.get(operation) == (method, path), (
        f"the SDK calls {operation} as {method} {path}; the service publishes "
        f"{published.get(operation)}"
    )


def test_the_sdk_depends_only_on_httpx_and_pydantic() -> None:
    pyproject = (ROOT / "sdk" / "pyproject.toml").read_text()
    deps = pyproject.split("dependencies = [", 1)[1].split("]", 1)[0]
    assert sorted(d.strip().strip('"').split(">")[0] for d in deps.split(",")) == [
        "httpx",
        "pydantic",
    ]
    probe = (
        "import sys, ciuic_sdk, ciuic_sdk.agent, ciuic_sdk.warmup; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'app', 'yaml', 'prometheus_client', 'pynvml', 'fastapi', 'sqlalchemy'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT / "sdk")},
    )
    assert out.stdout.strip() == "[]"


class MetricSpec(BaseModel):
    name: str
    target: str
    weight: float | None = None


class ScalerModel(BaseModel):
    """A user's own pydantic model of a spec: the SDK sends it as JSON."""

    name: str
    target: str
    metrics: list[MetricSpec]
    max_replicas: int = 10


SPECS: list[Any] = [
    BRIEF,  # the brief's YAML text, verbatim
    yaml.safe_load(BRIEF),  # the same as a dict
    ScalerModel(
        name="deepseek-service",
        target="deepseek-service",
        metrics=[MetricSpec(name="gpu_utilization", target="85%", weight=1.0)],
    ),
]


@pytest.mark.parametrize("spec", SPECS, ids=["yaml-text", "dict", "pydantic-model"])
def test_scaler_lifecycle(server: LiveServer, spec: Any) -> None:
    with Client(server.url) as ciuic:
        created = ciuic.create_scaler(spec)
        assert created.name == "deepseek-service"
        assert created.status.generation == 1
        with pytest.raises(Conflict) as exists:
            ciuic.create_scaler(spec)
        assert exists.value.status == 409 and exists.value.details == {"generation": 1}
        assert [s.name for s in ciuic.list_scalers()] == ["deepseek-service"]
        same = ciuic.put_scaler("deepseek-service", spec, if_match=1)
        assert same.status.generation == 1  # the spec as it is: nothing changed
        changed = {**ciuic.get_scaler("deepseek-service").spec, "max_replicas": 12}
        replaced = ciuic.put_scaler("deepseek-service", changed, if_match=1)
        assert replaced.status.generation == 2
        with pytest.raises(PreconditionFailed) as stale:
            ciuic.put_scaler("deepseek-service", changed, if_match=1)
        assert isinstance(stale.value, Conflict) and stale.value.status == 412
        assert ciuic.pause("deepseek-service").status.paused is True
        assert ciuic.get_scaler("deepseek-service").status.paused is True
        assert ciuic.resume("deepseek-service").status.paused is False
        decision = ciuic.decision("deepseek-service")
        assert decision.scaler == "deepseek-service" and len(decision.reasons) == 9
        checked = ciuic.validate_scaler(spec)
        assert checked.valid and "reactive" in checked.spec  # defaults filled in
        ciuic.delete_scaler("deepseek-service", if_match=2)
        with pytest.raises(NotFound):
            ciuic.get_scaler("deepseek-service")


def test_invalid_spec_carries_the_apis_details(server: LiveServer) -> None:
    with Client(server.url) as ciuic:
        with pytest.raises(Invalid) as caught:
            ciuic.create_scaler("target: x\nmetrics:\n  - name: gpu\n    target: 185%\n")
        error = caught.value
        assert error.status == 422 and error.code == "invalid_spec"
        assert error.details[0]["field"] == "metrics.0.target"
        with pytest.raises(Invalid) as bad_yaml:
            ciuic.validate_scaler("target: [unclosed")
        assert bad_yaml.value.status == 400 and bad_yaml.value.code == "invalid_body"


def test_samples_pushed_are_read_back(server: LiveServer) -> None:
    now = time.time()
    t0 = now - now % 60 - 600
    with Client(server.url) as ciuic:
        accepted = ciuic.push_samples(
            [
                Sample(metric="request_queue", labels={"pod": "p0"}, value=i, timestamp=t0 + i * 60)
                for i in range(5)
            ]
            + [{"metric": "request_queue", "labels": {"pod": "p1"}, "value": 9, "timestamp": t0}]
        )
        assert accepted == 6
        assert sorted(s.labels["pod"] for s in ciuic.series("request_queue")) == ["p0", "p1"]
        result = ciuic.query_range('request_queue{pod="p0"}', t0, t0 + 300, step="1m")
        assert [p[1] for p in result.series[0].points] == [0.0, 1.0, 2.0, 3.0, 4.0]
        total = ciuic.query_range("request_queue", t0, t0 + 60, step=60, agg="sum")
        assert {s.labels["pod"]: s.points[0][1] for s in total.series} == {"p0": 0.0, "p1": 9.0}
        with pytest.raises(Invalid) as bad:
            ciuic.query_range("request_queue{", t0, t0 + 60)
        assert bad.value.code == "invalid_selector"
        with pytest.raises(Invalid):
            ciuic.push_samples([{"metric": "bad name", "value": 1}])


@pytest.mark.parametrize(
    ("grouping", "path_label"),
    [
        ({"pod": "deepseek-7b-0"}, "deepseek-7b-0"),
        ({"pod": "a/b c"}, "a/b c"),  # base64 in the path
        ({"pod": ""}, ""),  # the empty value: `pod@base64/=`
    ],
    ids=["plain", "slash-and-space", "empty"],
)
def test_pushgateway_style_push_of_gauges(
    server: LiveServer, grouping: dict[str, str], path_label: str
) -> None:
    with Client(server.url) as ciuic:
        ciuic.push("deepseek-monitor", {"gpu_utilization": 87, "request_queue": 3}, grouping)
        ciuic.push("deepseek-monitor", {"gpu_memory": 14.2e9}, grouping, replace=False)
        groups = httpx.get(f"{server.url}/api/v1/metrics").json()["data"]
        assert len(groups) == 1
        assert groups[0]["labels"]["pod"] == path_label
        assert {"gpu_utilization", "request_queue", "gpu_memory"} <= set(groups[0])
        ciuic.push("deepseek-monitor", {"request_queue": 1}, grouping)  # PUT replaces the group
        groups = httpx.get(f"{server.url}/api/v1/metrics").json()["data"]
        assert "gpu_utilization" not in groups[0]
        ciuic.delete_group("deepseek-monitor", grouping)
        assert httpx.get(f"{server.url}/api/v1/metrics").json()["data"] == []


def test_events_iterate_over_every_page(server: LiveServer) -> None:
    with Client(server.url) as ciuic:
        ciuic.create_scaler(BRIEF)
        for _ in range(5):
            ciuic.pause("deepseek-service")
            ciuic.resume("deepseek-service")
        events = list(ciuic.events("deepseek-service", page_size=3))
        assert len(events) == 11  # created + 10 pause/resume
        ids = [e.id for e in events]
        assert ids == sorted(ids, reverse=True) and len(set(ids)) == 11
        assert events[-1].message == "created"
        assert list(ciuic.events("deepseek-service", kinds=["action"])) == []
        page = ciuic.events_page("deepseek-service", limit=4)
        assert len(page.events) == 4 and page.next_cursor == page.events[-1].id


@pytest.mark.parametrize(
    ("token", "call", "error", "status"),
    [
        (None, "list_scalers", Unauthorized, 401),
        ("wrong", "list_scalers", Unauthorized, 401),
        ("read", "create_scaler", Forbidden, 403),
        ("push", "list_scalers", Forbidden, 403),
        ("read", "list_scalers", None, 200),
        ("admin", "create_scaler", None, 201),
    ],
    ids=["no-token", "unknown-token", "read-cannot-write", "push-cannot-read", "read", "admin"],
)
def test_tokens_and_typed_auth_errors(
    secured_server: LiveServer,
    token: str | None,
    call: str,
    error: type[CiuicError] | None,
    status: int,
) -> None:
    with Client(secured_server.url, ADMIN_TOKEN) as admin:
        secrets = {s: admin.create_token(f"t-{s}", s).token for s in ("read", "push")}
        assert {t.scope for t in admin.list_tokens()} == {"read", "push"}
    secret = {"read": secrets["read"], "push": secrets["push"], "admin": ADMIN_TOKEN}.get(
        token or "", token
    )
    with Client(secured_server.url, secret) as ciuic:
        run = (
            (lambda: ciuic.create_scaler(BRIEF)) if call == "create_scaler" else ciuic.list_scalers
        )
        if error is None:
            run()
            return
        with pytest.raises(error) as caught:
            run()
        assert caught.value.status == status
        assert caught.value.message


def test_revoked_token_stops_working(secured_server: LiveServer) -> None:
    with Client(secured_server.url, ADMIN_TOKEN) as admin:
        created = admin.create_token("grafana", "read")
        with Client(secured_server.url, created.token) as reader:
            assert reader.list_scalers() == []
            admin.revoke_token(created.id)
            with pytest.raises(Unauthorized):
                reader.list_scalers()
        with pytest.raises(NotFound):
            admin.revoke_token("no-such-token")


def test_the_audit_log_through_the_sdk(secured_server: LiveServer) -> None:
    with Client(secured_server.url, ADMIN_TOKEN) as admin:
        fleet = admin.create_token("fleet", "push", push_rate_per_s=1000, push_burst=5000)
        assert (fleet.push_rate_per_s, fleet.push_burst) == (1000, 5000)
        admin.revoke_token(fleet.id)
        entries = list(admin.audit(page_size=1))
        assert [(e.actor, e.action, e.target) for e in entries] == [
            ("admin", "token.revoke", f"token/{fleet.id}"),
            ("admin", "token.create", f"token/{fleet.id}"),
        ]
        assert admin.audit_page(action="token.create").entries[0].details["push_burst"] == 5000
        assert admin.audit_page(actor="nobody").entries == []


def test_unreachable_service_is_unavailable_with_status_zero() -> None:
    with (
        Client(f"http://127.0.0.1:{free_port()}", timeout=2) as ciuic,
        pytest.raises(Unavailable) as caught,
    ):
        ciuic.healthz()
    assert caught.value.status == 0 and caught.value.code == "unreachable"


async def test_async_client_does_the_same(server: LiveServer) -> None:
    async with AsyncClient(server.url) as ciuic:
        assert await ciuic.healthz()
        created = await ciuic.create_scaler(yaml.safe_load(BRIEF))
        assert created.status.generation == 1
        await ciuic.pause("deepseek-service")
        await ciuic.resume("deepseek-service")
        kinds = [e.kind async for e in ciuic.events("deepseek-service", page_size=1)]
        assert kinds == ["spec", "spec", "spec"]
        assert (await ciuic.decision("deepseek-service")).valid in (True, False)
        assert await ciuic.push_samples([Sample(metric="gpu_utilization", value=50)]) == 1
        await ciuic.push("deepseek-monitor", {"request_queue": 2}, {"pod": "p0"})
        assert [s.metric for s in await ciuic.series('{job="deepseek-monitor"}')] == [
            "request_queue"
        ]
        with pytest.raises(NotFound):
            await ciuic.get_scaler("missing")
        await ciuic.delete_scaler("deepseek-service")
        assert await ciuic.list_scalers() == []


FORECAST_SPEC: dict[str, Any] = {
    "target": "deepseek-service",
    "metrics": [{"name": "request_queue", "target": "<5"}],
    "capacity": {"request_rate": "30/min"},
    "max_replicas": 40,
}


def test_get_ciuic_prediction_is_pending_before_the_first_fit(server: LiveServer) -> None:
    server.app.state.ctx.forecasts.clear()
    with Client(server.url) as ciuic:
        ciuic.create_scaler(FORECAST_SPEC)
        prediction = ciuic_sdk.get_ciuic_prediction(
            "deepseek-service", horizon="1h", base_url=server.url
        )
        assert prediction.status == "pending" and prediction.points == [] and prediction.reason
        assert prediction.scaler == "deepseek-service" and prediction.quantile == 0.5
        with pytest.raises(NotFound):
            ciuic.get_ciuic_prediction("no-such-scaler")
        with pytest.raises(Invalid) as bad:
            ciuic.get_prediction("deepseek-service", horizon="1d", step="1s")
        assert bad.value.code == "too_many_points"


async def test_prediction_points_from_a_fitted_forecast(server: LiveServer) -> None:
    server.app.state.ctx.forecasts.clear()
    async with AsyncClient(server.url) as ciuic:
        await ciuic.create_scaler(FORECAST_SPEC)
        now = time.time()
        start = now - now % 300
        mean = tuple(4.0 + i / 6 for i in range(24))
        forecast = LoadForecast(
            model="seasonal_naive",
            made_at=now,
            start=start,
            step_s=300,
            mean=mean,
            quantiles={
                0.5: mean,
                0.9: tuple(v + 1 for v in mean),
                0.99: tuple(v + 2 for v in mean),
            },
        )
        db = Database(server.settings.database_url)
        try:
            async with db.transaction() as conn:
                await forecast_store.save_forecast(conn, "deepseek-service", forecast, {})
        finally:
            await db.dispose()
        prediction = await ciuic.get_ciuic_prediction("deepseek-service", horizon=3600, step="10m")
    assert prediction.status == "ok" and prediction.model == "seasonal_naive"
    assert prediction.fitted_at is not None and prediction.step == 600
    assert 6 <= len(prediction.points) <= 7
    for point in prediction.points:
        assert point.p50 <= point.p90 <= point.p99
        assert point.replicas == math.ceil(point.p50 / 0.5 - 1e-9)  # the spec's median band


def test_what_if_forecast_and_accuracy(server: LiveServer) -> None:
    server.app.state.ctx.forecasts.clear()
    points = [(1_800_000_000.0 + 300 * i, 5.0 + (i % 12)) for i in range(288)]
    with Client(server.url) as ciuic:
        forecast = ciuic.forecast(points, horizon=3600, step=300, model="seasonal_naive")
        assert forecast.failed is None and len(forecast.points) == 12
        assert all(p.p50 <= p.p90 <= p.p99 for p in forecast.points)
        with pytest.raises(Invalid) as bad:
            ciuic.forecast(points, model="crystal_ball")
        assert bad.value.status == 422
        ciuic.create_scaler(FORECAST_SPEC)
        accuracy = ciuic.forecast_accuracy("deepseek-service")
        assert accuracy.scaler == "deepseek-service" and accuracy.models == {}
