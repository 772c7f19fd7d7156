"""`ciuic demo` against a running service with its workers: the scaler acts on the simulated
cluster, as on a fresh machine."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.cli import main
from app.cli.demo import pod_metrics
from app.settings import Settings
from tests.conftest import LiveServer, start_server


@pytest.mark.parametrize(
    ("load", "ready", "backlog", "expected"),
    [
        pytest.param(1.0, 4, 0.0, (50.0, 0.0, 0.0), id="half-busy"),
        pytest.param(4.0, 4, 0.0, (100.0, 2.5, 10.0), id="overloaded-queues"),
        pytest.param(1.0, 4, 10.0, (100.0, 1.25, 5.0), id="backlog-drains"),
        pytest.param(2.0, 0, 3.0, (0.0, 0.0, 13.0), id="no-pod-ready"),
    ],
)
def test_pod_metrics(load: float, ready: int, backlog: float, expected: tuple[float, ...]) -> None:
    assert pod_metrics(load, ready, backlog) == pytest.approx(expected)


@pytest.fixture
def working_server(tmp_path: Path) -> Iterator[LiveServer]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/demo.db",
        reconcile_interval_s=0.2,
        leader_interval_s=0.1,
    )
    import asyncio

    from app.store.migrate import upgrade

    asyncio.run(upgrade(settings.database_url))
    live = start_server(settings)
    yield live
    live.stop()


def test_the_demo_scaler_acts_on_the_built_in_cluster(working_server: LiveServer) -> None:
    url = working_server.url
    assert main(["demo", "--url", url, "--ticks", "1", "--peak", "40"]) == 0
    deadline = time.monotonic() + 20
    actions: list[dict[str, object]] = []
    while time.monotonic() < deadline and not actions:
        events = httpx.get(f"{url}/v1/scalers/demo/events", params={"kind": "action"}).json()
        actions = events["events"]
        time.sleep(0.2)
    assert actions, "the reconciler did not act on the demo load"
    assert actions[0]["message"].startswith("scaled demo-llm from 1 to ")
    ready = httpx.get(f"{url}/readyz").json()
    assert ready["leader"] is True
    cluster = httpx.get(f"{url}/v1/scalers/demo/decision").json()["cluster"]
    assert cluster["source"] == "simulated" and cluster["replicas"] > 1


@pytest.fixture
def forecasting_server(tmp_path: Path) -> Iterator[LiveServer]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/demo.db",
        reconcile_interval_s=0.5,
        leader_interval_s=0.1,
        forecast_refit_s=0.5,
    )
    import asyncio

    from app.store.migrate import upgrade

    asyncio.run(upgrade(settings.database_url))
    live = start_server(settings)
    yield live
    live.stop()


def test_the_demo_forecasts_its_next_peak_at_once(forecasting_server: LiveServer) -> None:
    """Issue 14: the demo's prediction stayed "pending" for its first hour; the backfilled
    history gives the forecaster its periods at start."""
    url = forecasting_server.url
    assert main(["demo", "--url", url, "--ticks", "1"]) == 0
    deadline = time.monotonic() + 90
    prediction: dict[str, object] = {}
    while time.monotonic() < deadline:
        prediction = httpx.get(f"{url}/v1/scalers/demo/prediction").json()
        if prediction["points"]:
            break
        time.sleep(0.5)
    assert prediction["points"], prediction
    assert prediction["status"] != "pending"


def test_a_prediction_without_capacity_says_a_capacity_is_needed(
    forecasting_server: LiveServer,
) -> None:
    """The quick start's scaler has no `capacity`: its prediction must say what is missing,
    not only that history is."""
    url = forecasting_server.url
    spec = {"target": "x", "metrics": [{"name": "request_queue", "target": 5}]}
    assert httpx.put(f"{url}/v1/scalers/x", json=spec).is_success
    prediction = httpx.get(f"{url}/v1/scalers/x/prediction").json()
    assert prediction["status"] == "pending"
    reason = prediction["reason"]
    assert "'request_rate'" in reason
    assert "no capacity per pod" in reason and "capacity not learned yet" in reason
    assert "capacity: {request_rate: 0.5/s}" in reason


def test_the_example_scaler_reads_only_its_own_pods() -> None:
    """Issue 14: after `ciuic demo`, the example scaler (no selector) read the demo's pods too
    and scaled to its max. Every example spec names its pods."""
    import yaml

    from app.policy import parse_spec

    for path in sorted((Path(__file__).parents[2] / "examples").glob("*.yaml")):
        spec = parse_spec(yaml.safe_load(path.read_text()))
        assert all(m.selector for m in spec.metrics), path.name
