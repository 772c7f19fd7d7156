"""The audit log: who changed what and when, written with the change, read through the API."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.ext.asyncio import create_async_engine

from app.store.audit import diff_documents
from tests.api.test_simulations import count_trace
from tests.conftest import ADMIN_TOKEN, LiveServer

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SPEC: dict[str, Any] = {
    "target": "deepseek-service",
    "metrics": [{"name": "gpu_utilization", "target": "85%"}],
    "max_replicas": 10,
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_token(server: LiveServer, scope: str, name: str = "") -> tuple[str, str]:
    r = httpx.post(
        f"{server.url}/v1/tokens", json={"name": name or scope, "scope": scope}, headers=ADMIN
    )
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["token"]


def audit(server: LiveServer, **params: Any) -> dict[str, Any]:
    r = httpx.get(f"{server.url}/v1/audit", params=params, headers=ADMIN)
    assert r.status_code == 200, r.text
    page: dict[str, Any] = r.json()
    return page


def actions(server: LiveServer, **params: Any) -> list[tuple[str, str, str]]:
    """(actor, action, target), oldest first."""
    entries = audit(server, **params)["entries"]
    return [(e["actor"], e["action"], e["target"]) for e in reversed(entries)]


def test_an_operators_changes_are_recorded_with_who_when_and_what(
    secured_server: LiveServer,
) -> None:
    url = secured_server.url
    ops_id, ops = make_token(secured_server, "admin", "ops")
    reader_id, _ = make_token(secured_server, "read", "grafana")

    assert httpx.post(f"{url}/v1/scalers", json=SPEC, headers=bearer(ops)).status_code == 201
    replaced = httpx.put(
        f"{url}/v1/scalers/deepseek-service",
        json={**SPEC, "max_replicas": 12, "min_replicas": 2},
        headers={**bearer(ops), "If-Match": '"1"'},
    )
    assert replaced.status_code == 200, replaced.text
    assert httpx.post(f"{url}/v1/scalers/deepseek-service/pause", headers=ADMIN).is_success
    assert httpx.post(f"{url}/v1/scalers/deepseek-service/resume", headers=ADMIN).is_success
    assert httpx.delete(f"{url}/v1/tokens/{reader_id}", headers=bearer(ops)).status_code == 204
    assert httpx.delete(f"{url}/v1/scalers/deepseek-service", headers=ADMIN).status_code == 204

    assert actions(secured_server) == [
        ("admin", "token.create", f"token/{ops_id}"),
        ("admin", "token.create", f"token/{reader_id}"),
        (ops_id, "scaler.create", "scaler/deepseek-service"),
        (ops_id, "scaler.replace", "scaler/deepseek-service"),
        ("admin", "scaler.pause", "scaler/deepseek-service"),
        ("admin", "scaler.resume", "scaler/deepseek-service"),
        (ops_id, "token.revoke", f"token/{reader_id}"),
        ("admin", "scaler.delete", "scaler/deepseek-service"),
    ]
    entries = {e["action"]: e for e in audit(secured_server)["entries"]}
    assert entries["token.create"]["details"] == {"name": "ops", "scope": "admin"}
    assert entries["scaler.create"]["scope"] == "admin"
    assert entries["scaler.create"]["details"]["generation"] == 1
    assert entries["scaler.create"]["details"]["spec"]["max_replicas"] == 10
    replace = entries["scaler.replace"]["details"]
    assert replace["generation"] == 2 and replace["previous_generation"] == 1
    assert {c["path"]: c for c in replace["changes"]} == {
        "max_replicas": {"path": "max_replicas", "before": 10, "after": 12},
        "min_replicas": {"path": "min_replicas", "after": 2},
    }  # not `name`: POST stores the name the scaler got, as PUT does
    assert entries["scaler.pause"]["details"] == {
        "before": {"paused": False},
        "after": {"paused": True},
    }
    assert entries["scaler.resume"]["details"] == {
        "before": {"paused": True},
        "after": {"paused": False},
    }
    assert entries["token.revoke"]["details"] == {
        "name": "grafana",
        "scope": "read",
        "already_revoked": False,
    }
    deleted = entries["scaler.delete"]["details"]
    assert deleted["generation"] == 2 and deleted["spec"]["max_replicas"] == 12
    times = [e["time"] for e in audit(secured_server)["entries"]]
    assert times == sorted(times, reverse=True)


def test_a_put_that_changes_nothing_is_not_recorded(secured_server: LiveServer) -> None:
    """Issue: PUTting the spec as it is made a generation and a `scaler.replace` with
    `changes: []`; the first PUT of the file POSTed recorded a change to `name`."""
    url = f"{secured_server.url}/v1/scalers/deepseek-service"
    assert httpx.post(f"{secured_server.url}/v1/scalers", json=SPEC, headers=ADMIN).is_success
    yaml_type = {"Content-Type": "application/yaml"}
    for body, headers in (
        (json.dumps(SPEC), {}),  # without `name`, as POSTed
        (json.dumps({**SPEC, "name": "deepseek-service"}), {}),
        (yaml.safe_dump(SPEC), yaml_type),  # the same spec as YAML
    ):
        again = httpx.put(url, content=body, headers={**ADMIN, **headers, "If-Match": '"1"'})
        assert again.status_code == 200, again.text
        assert again.headers["etag"] == '"1"' and again.json()["status"]["generation"] == 1
    changed = httpx.put(url, json={**SPEC, "max_replicas": 12}, headers=ADMIN)
    assert changed.json()["status"]["generation"] == 2
    assert actions(secured_server) == [
        ("admin", "scaler.create", "scaler/deepseek-service"),
        ("admin", "scaler.replace", "scaler/deepseek-service"),
    ]
    replace = audit(secured_server, action="scaler.replace")["entries"][0]["details"]
    assert replace["changes"] == [{"path": "max_replicas", "before": 10, "after": 12}]


def test_rollouts_and_simulation_runs_are_recorded(secured_server: LiveServer) -> None:
    url = secured_server.url
    reader_id, reader = make_token(secured_server, "read")
    assert httpx.post(f"{url}/v1/scalers", json=SPEC, headers=ADMIN).status_code == 201
    patch = {"metadata": {"annotations": {"release": "v3"}}}
    started = httpx.post(
        f"{url}/v1/scalers/deepseek-service/rollouts",
        json={"template_patch": patch},
        headers=ADMIN,
    )
    assert started.status_code == 201, started.text
    rollout = started.json()["id"]
    assert httpx.post(f"{url}/v1/rollouts/{rollout}/cancel", headers=ADMIN).status_code == 202
    trace = count_trace(days=1)
    simulated = httpx.post(
        f"{url}/v1/simulations",
        content=trace,
        params={"policy": "hpa"},
        headers={**bearer(reader), "Content-Type": "text/csv"},
    )
    assert simulated.status_code == 202, simulated.text
    job = simulated.json()["id"]

    assert actions(secured_server, action="rollout.start") == [
        ("admin", "rollout.start", "scaler/deepseek-service")
    ]
    entries = {e["action"]: e for e in audit(secured_server)["entries"]}
    assert entries["rollout.start"]["details"]["rollout"] == rollout
    assert entries["rollout.start"]["details"]["request"]["template_patch"] == patch
    assert entries["rollout.cancel"]["details"]["rollout"] == rollout
    assert entries["rollout.cancel"]["details"]["after"]["cancel_requested"] is True
    run = entries["simulation.run"]
    assert (run["actor"], run["scope"], run["target"]) == (reader_id, "read", f"simulation/{job}")
    assert run["details"]["request"]["policies"] == ["hpa"]


def test_a_refused_change_leaves_no_entry(secured_server: LiveServer) -> None:
    url = secured_server.url
    assert httpx.post(f"{url}/v1/scalers", json=SPEC, headers=ADMIN).status_code == 201
    refused = [
        httpx.post(f"{url}/v1/scalers", json=SPEC, headers=ADMIN),  # 409 exists
        httpx.put(
            f"{url}/v1/scalers/deepseek-service",
            json=SPEC,
            headers={**ADMIN, "If-Match": '"7"'},
        ),  # 412 stale
        httpx.post(f"{url}/v1/scalers", json={**SPEC, "max_replicas": -1}, headers=ADMIN),
        httpx.delete(f"{url}/v1/scalers/nope", headers=ADMIN),
        httpx.post(f"{url}/v1/scalers/nope/pause", headers=ADMIN),
        httpx.delete(f"{url}/v1/tokens/nope", headers=ADMIN),
        httpx.post(f"{url}/v1/rollouts/999/cancel", headers=ADMIN),
    ]
    assert [r.status_code for r in refused] == [409, 412, 422, 404, 404, 404, 404]
    assert actions(secured_server) == [("admin", "scaler.create", "scaler/deepseek-service")]


def test_no_change_commits_without_its_entry(
    secured_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The entry is written in the change's own transaction: when writing it fails, the
    change is rolled back with it."""
    import app.api.scalers

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("the audit insert failed")

    monkeypatch.setattr(app.services.scalers, "audit", broken)
    r = httpx.post(f"{secured_server.url}/v1/scalers", json=SPEC, headers=ADMIN)
    assert r.status_code == 500
    monkeypatch.undo()
    got = httpx.get(f"{secured_server.url}/v1/scalers/deepseek-service", headers=ADMIN)
    assert got.status_code == 404
    assert audit(secured_server)["entries"] == []


def test_filters_and_pages(secured_server: LiveServer) -> None:
    url = secured_server.url
    ops_id, ops = make_token(secured_server, "admin", "ops")
    for name in ("a", "b", "c"):
        doc = {**SPEC, "name": name}
        assert httpx.post(f"{url}/v1/scalers", json=doc, headers=bearer(ops)).status_code == 201
    for _ in range(2):
        assert httpx.post(f"{url}/v1/scalers/b/pause", headers=ADMIN).is_success

    assert [a for _, a, _ in actions(secured_server, actor=ops_id)] == ["scaler.create"] * 3
    assert actions(secured_server, target="scaler/b") == [
        (ops_id, "scaler.create", "scaler/b"),
        ("admin", "scaler.pause", "scaler/b"),
        ("admin", "scaler.pause", "scaler/b"),  # a repeated action is recorded, as it was asked
    ]
    assert len(audit(secured_server, action="scaler.pause")["entries"]) == 2

    everything = audit(secured_server)["entries"]
    assert len(everything) == 6
    seen: list[int] = []
    cursor = None
    while True:
        page = audit(secured_server, limit=4, **({"cursor": cursor} if cursor else {}))
        seen += [e["id"] for e in page["entries"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [e["id"] for e in everything]

    middle = everything[2]["time"]
    older = audit(secured_server, until=middle)["entries"]
    newer = audit(secured_server, since=middle)["entries"]
    assert all(e["time"] <= middle for e in older) and all(e["time"] >= middle for e in newer)
    assert {e["id"] for e in older} | {e["id"] for e in newer} == set(seen)
    assert audit(secured_server, since="2999-01-01T00:00:00Z")["entries"] == []


@pytest.mark.parametrize(
    ("params", "status"),
    [
        pytest.param({"since": "yesterday"}, 400, id="bad-time"),
        pytest.param({"until": "2026-01-01T00:00:00"}, 400, id="no-offset"),
        pytest.param({"limit": "0"}, 422, id="limit-0"),
        pytest.param({"limit": "1001"}, 422, id="limit-too-big"),
        pytest.param({"cursor": "0"}, 422, id="cursor-0"),
    ],
)
def test_bad_queries(secured_server: LiveServer, params: dict[str, str], status: int) -> None:
    r = httpx.get(f"{secured_server.url}/v1/audit", params=params, headers=ADMIN)
    assert r.status_code == status, r.text


def test_entries_outlive_what_they_describe(secured_server: LiveServer) -> None:
    """Deleting a scaler deletes its events, not its audit trail."""
    url = secured_server.url
    assert httpx.post(f"{url}/v1/scalers", json=SPEC, headers=ADMIN).status_code == 201
    assert httpx.delete(f"{url}/v1/scalers/deepseek-service", headers=ADMIN).status_code == 204

    async def rows() -> int:
        engine = create_async_engine(secured_server.settings.database_url)
        async with engine.connect() as conn:
            n = (await conn.execute(sa.text("SELECT count(*) FROM audit_log"))).scalar_one()
        await engine.dispose()
        return int(n)

    assert asyncio.run(rows()) == 2


@pytest.mark.parametrize(
    ("before", "after", "changes"),
    [
        pytest.param({"a": 1}, {"a": 1}, [], id="same"),
        pytest.param({"a": 1}, {"a": 2}, [{"path": "a", "before": 1, "after": 2}], id="value"),
        pytest.param({}, {"a": 1}, [{"path": "a", "after": 1}], id="added"),
        pytest.param({"a": 1}, {}, [{"path": "a", "before": 1}], id="removed"),
        pytest.param(
            {"m": {"t": "85%", "w": 1}},
            {"m": {"t": "80%", "w": 1}},
            [{"path": "m.t", "before": "85%", "after": "80%"}],
            id="nested",
        ),
        pytest.param(
            {"l": [1, 2]},
            {"l": [1, 3]},
            [{"path": "l", "before": [1, 2], "after": [1, 3]}],
            id="lists-whole",
        ),
        pytest.param(
            {"a": {"x": 1}},
            {"a": 5},
            [{"path": "a", "before": {"x": 1}, "after": 5}],
            id="type-change",
        ),
    ],
)
def test_spec_diffs(before: Any, after: Any, changes: list[dict[str, Any]]) -> None:
    assert diff_documents(before, after) == changes
