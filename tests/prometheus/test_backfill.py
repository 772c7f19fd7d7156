"""A new scaler whose load is read from a real Prometheus forecasts at once: Prometheus holds
two weeks of the load (blocks written by Debian's `promtool tsdb create-blocks-from
openmetrics` from a daily cycle this test writes), the live service backfills them from
`query_range` when the scaler is created, fits its forecast on them and scales on the live
reading. With Prometheus down at creation the scaler is created all the same, scales on
nothing it cannot read, says why, and is backfilled once Prometheus is up.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.services.forecasts import GRID_STEP_S, HISTORY_S
from app.settings import Settings
from app.store.db import Database
from app.store.forecasts import StoredForecast, get_forecast
from testkit.programs import eventually
from tests.conftest import IN_CI, LiveServer, free_port, start_server, truncate_all
from tests.prometheus.conftest import Exporter, start_prometheus

DEADLINE_S = 60  # the refit process starts, the backfill, a fit on two weeks, a loaded machine
DAY = 86400.0
QUERY = "sum(llm_request_rate)"
SPEC = {
    "target": "llm",
    "min_replicas": 1,
    "max_replicas": 10,
    "algorithm": {"name": "seasonal_naive"},
    "capacity": {"request_rate": "1/s"},
    "metrics": [
        {
            "name": "request_rate",
            "target": 1,
            "aggregation": "sum",  # the query's total: 1 request/s per pod
            "source": {"prometheus": QUERY},
        }
    ],
}


def daily(t: float) -> float:
    """The load the history holds at `t`: 2 to 6 requests/s over a day, over two pods."""
    return 4.0 + 2.0 * math.sin(2 * math.pi * t / DAY)


@pytest.fixture(scope="session")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        why = "no promtool (Debian's prometheus package ships it: apt-get install prometheus)"
        if IN_CI:
            pytest.fail(f"{why} (required under CI=true)")
        pytest.skip(why)
    return found


def write_history(promtool: str, folder: Path, now: float) -> None:
    """Two weeks of `llm_request_rate` for two pods (2/3 and 1/3 of `daily`), a sample a
    minute, as TSDB blocks in `folder/data` (Prometheus' history). It ends six minutes ago:
    past Prometheus' 5-minute lookback, so the live reading is the scrape's alone."""
    end = int(now - now % 60) - 360
    lines = ["# TYPE llm_request_rate gauge"]
    for t in range(end - int(HISTORY_S) - 3600, end, 60):
        for pod, share in (("llm-0", 2 / 3), ("llm-1", 1 / 3)):
            lines.append(f'llm_request_rate{{pod="{pod}"}} {share * daily(t):.6f} {t}')
    lines.append("# EOF")
    source = folder / "history.om"
    source.write_text("\n".join(lines) + "\n")
    subprocess.run(
        [
            promtool,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--quiet",
            "--max-block-duration=336h",  # a few blocks, not one per two hours
            str(source),
            str(folder / "data"),
        ],
        check=True,
        capture_output=True,
    )


@contextmanager
def _service(database_url: str, prometheus_url: str) -> Iterator[LiveServer]:
    asyncio.run(truncate_all(database_url))
    live = start_server(
        Settings(
            database_url=database_url,
            prometheus_url=prometheus_url,
            prometheus_timeout_s=2.0,
            reconcile_interval_s=0.5,
            leader_interval_s=0.5,
            forecast_refit_s=2.0,  # the backfill's retry after a failure, too
        )
    )
    try:
        yield live
    finally:
        live.stop()


def _eventually(check: Callable[[], Any], what: str, log: Callable[[], str]) -> Any:
    return eventually(check, what, log, DEADLINE_S)


def _stored_forecast(live: LiveServer) -> StoredForecast | None:
    async def read() -> StoredForecast | None:
        db = Database(live.settings.database_url)
        try:
            async with db.read() as conn:
                return await get_forecast(conn, "llm")
        finally:
            await db.dispose()

    return asyncio.run(read())


def _events(live: LiveServer) -> list[dict[str, Any]]:
    r = httpx.get(f"{live.url}/v1/scalers/llm/events", params={"kind": "backfill"}, timeout=10)
    assert r.status_code == 200, r.text
    events: list[dict[str, Any]] = r.json()["events"]
    return events


def _decision(live: LiveServer) -> dict[str, Any]:
    r = httpx.get(f"{live.url}/v1/scalers/llm/decision", timeout=10)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _fitted(live: LiveServer) -> StoredForecast | None:
    stored = _stored_forecast(live)
    return stored if stored is not None and stored.forecast.mean else None


def test_a_new_scaler_forecasts_at_once_from_the_history_prometheus_holds(
    prometheus_binary: str, promtool: str, exporter: Exporter, tmp_path: Path, sqlite_url: str
) -> None:
    created_at = time.time()
    write_history(promtool, tmp_path, created_at)
    with (
        start_prometheus(prometheus_binary, tmp_path, exporter.url) as prometheus,
        _service(sqlite_url, prometheus.url) as live,
    ):
        # The history is there before the scaler is: Prometheus answers for a week ago.
        week_ago = created_at - 7 * DAY
        r = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": QUERY, "time": week_ago})
        (answer,) = r.json()["data"]["result"]
        assert float(answer["value"][1]) == pytest.approx(daily(week_ago), abs=0.1)

        r = httpx.post(f"{live.url}/v1/scalers", json=SPEC)
        assert r.status_code == 201, r.text

        def why() -> str:
            return (
                f"forecast: {_stored_forecast(live)}\nevents: {_events(live)}\n"
                f"{prometheus.log_tail()}"
            )

        stored = _eventually(lambda: _fitted(live), "a forecast fitted on the backfill", why)
        took = time.time() - created_at
        # Two weeks on the forecast's 5-minute grid, from a scaler nothing was ever pushed for.
        assert stored.details["history_points"] >= HISTORY_S / GRID_STEP_S - 2, stored.details
        backfill = stored.details["backfill"]
        assert backfill["query"] == QUERY and backfill["error"] is None, backfill
        assert backfill["points"] >= HISTORY_S / GRID_STEP_S - 2, backfill
        # The seasonal naive forecast repeats yesterday: the daily cycle Prometheus held.
        fc = stored.forecast
        for i in range(0, len(fc.mean), 6):
            middle = fc.start + (i + 0.5) * fc.step_s
            assert fc.mean[i] == pytest.approx(daily(middle), abs=0.2), (i, took)
        (event,) = _events(live)
        assert event["message"].startswith(
            f"backfilled {backfill['points']} points of request_rate"
        )
        assert f"Prometheus at {prometheus.url}" in event["message"]

        # The live reading from the same Prometheus: 7 requests/s at 1 per pod is 7 pods.
        _set_rate(exporter, 7.0)

        def scaled() -> dict[str, Any] | None:
            body = _decision(live)
            return body if body["cluster"]["replicas"] == 7 else None

        body = _eventually(scaled, "a scale-up to 7 on the live reading", why)
        codes = [reason["code"] for reason in body["reasons"]]
        assert "predictive.missing" not in codes and "predictive.failed" not in codes, codes
        assert any(code.startswith("predictive.") for code in codes), codes

        # A second run (the next refit) adds no point twice: one backfilled series, one point
        # per 5-minute bucket.
        time.sleep(2 * live.settings.forecast_refit_s)
        again = _fitted(live)
        assert again is not None
        assert again.details["history_points"] <= HISTORY_S / GRID_STEP_S
        assert len(_events(live)) == 1


def _set_rate(exporter: Exporter, total: float) -> None:
    exporter.rate.labels(pod="llm-0").set(total / 2)
    exporter.rate.labels(pod="llm-1").set(total / 2)


def test_prometheus_down_at_creation_then_up_backfills(
    prometheus_binary: str, promtool: str, exporter: Exporter, tmp_path: Path, sqlite_url: str
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    write_history(promtool, tmp_path, time.time())
    with _service(sqlite_url, url) as live:
        r = httpx.post(f"{live.url}/v1/scalers", json=SPEC)
        assert r.status_code == 201, r.text  # created, whatever Prometheus' state

        def failed() -> StoredForecast | None:
            stored = _stored_forecast(live)
            return stored if stored is not None and stored.forecast.failed else None

        def why() -> str:
            return f"forecast: {_stored_forecast(live)}\nevents: {_events(live)}"

        stored = _eventually(failed, "a forecast saying the backfill failed", why)
        assert f"the backfill from Prometheus at {url} failed (unreachable" in str(
            stored.forecast.failed
        )
        # The decision says it too, and the scaler still decides (on nothing it can read:
        # it holds).
        body = _decision(live)
        (reason,) = [r for r in body["reasons"] if r["code"] == "predictive.failed"]
        assert "backfill" in reason["message"], reason
        assert body["reasons"][0]["code"] == "source.prometheus_failed", body["reasons"]
        (event,) = _events(live)
        assert event["message"].startswith(f"backfill of request_rate from Prometheus at {url}")
        assert event["payload"]["error"].startswith("unreachable"), event

        _set_rate(exporter, 3.0)
        with start_prometheus(prometheus_binary, tmp_path, exporter.url, port=port) as prometheus:
            stored = _eventually(
                lambda: _fitted(live),
                "the backfill done and a forecast fitted once Prometheus is up",
                lambda: f"{why()}\n{prometheus.log_tail()}",
            )
            assert stored.details["backfill"]["error"] is None
            assert stored.details["history_points"] >= HISTORY_S / GRID_STEP_S - 2
            newest, failure = _events(live)  # newest first
            assert newest["message"].startswith("backfilled "), newest
            assert failure["payload"]["error"] is not None
