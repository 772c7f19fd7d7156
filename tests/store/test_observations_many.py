"""The batched metric read of a reconcile pass gives each scaler exactly what the per-scaler
read gives: selectors (one label, two, none, none matching), windows (stale samples drop
out), aggregations, the capacity signal, and a metric nobody pushes."""

from __future__ import annotations

from typing import Any

import pytest

from app.policy import parse_spec
from app.store.db import Database
from app.store.observations import read_metrics, read_metrics_many
from app.store.series import SampleRow, SeriesKey, SeriesStore

NOW = 1_800_000_000.0


def spec(name: str, metrics: list[dict[str, Any]], **more: Any) -> Any:
    return parse_spec({"name": name, "target": name, "metrics": metrics, **more})


async def test_the_batch_reads_what_each_scaler_reads_alone(db: Database) -> None:
    series = SeriesStore(max_series_per_job=1000, lateness_us=10**12)
    rows = []
    for app in ("a", "b"):
        for pod in range(3):
            labels = {"app": app, "pod": f"p{pod}", "zone": "z1" if pod else "z2"}
            for age, value in ((90, 500.0), (20, 10.0 + pod), (4, 20.0 + pod)):
                ts = round((NOW - age) * 1e6)
                rows.append(SampleRow(SeriesKey.of("gpu_utilization", labels), ts, value))
                rows.append(SampleRow(SeriesKey.of("request_rate", labels), ts, value / 10))
            stale = round((NOW - 200) * 1e6)  # only outside every window
            rows.append(SampleRow(SeriesKey.of("request_queue", labels), stale, 7.0))
    rows.append(SampleRow(SeriesKey.of("gpu_utilization", {"app": "a"}), round(NOW * 1e6), 99))
    async with db.transaction() as conn:
        await series.write(conn, rows, now_us=round(NOW * 1e6))
    specs = [
        spec("one-label", [{"name": "gpu_utilization", "target": "85%", "selector": {"app": "a"}}]),
        spec(
            "two-labels",
            [
                {
                    "name": "gpu_utilization",
                    "target": "85%",
                    "selector": {"app": "b", "zone": "z1"},
                    "aggregation": "max",
                }
            ],
        ),
        spec("no-selector", [{"name": "gpu_utilization", "target": 50, "aggregation": "sum"}]),
        spec("no-match", [{"name": "gpu_utilization", "target": 50, "selector": {"app": "z"}}]),
        spec(
            "short-window",
            [{"name": "gpu_utilization", "target": 50, "window": "10s", "selector": {"app": "b"}}],
        ),
        spec(
            "long-window",
            [{"name": "request_queue", "target": "<5", "window": "5m", "selector": {"app": "a"}}],
        ),
        spec("stale", [{"name": "request_queue", "target": "<5", "selector": {"app": "a"}}]),
        spec("nobody", [{"name": "tokens_per_s", "target": 5}]),
        spec(
            "capacity",
            [{"name": "gpu_utilization", "target": "85%", "selector": {"app": "b"}}],
            capacity={"request_rate": "2/s"},
        ),
        spec(  # triggers reading the metric two other ways than its per-pod average
            "trigger-ways",
            [{"name": "gpu_utilization", "target": "85%", "selector": {"app": "b"}}],
            emergency={
                "enabled": True,
                "triggers": [
                    {"metric": "gpu_utilization", "threshold": 50, "aggregation": "sum"},
                    {"metric": "gpu_utilization", "threshold": 21.5, "aggregation": "max"},
                    {"metric": "gpu_utilization", "threshold": 90},
                ],
            },
        ),
    ]
    async with db.read() as conn:
        batch = await read_metrics_many(conn, specs, NOW)
        alone = [await read_metrics(conn, s, NOW) for s in specs]
    for s, got, want in zip(specs, batch, alone, strict=True):
        assert got.load_rate == pytest.approx(want.load_rate), s.scaler_name
        assert got.readings.keys() == want.readings.keys(), s.scaler_name
        assert got.by_aggregation.keys() == want.by_aggregation.keys(), s.scaler_name
        pairs = [(got.readings, want.readings), (got.by_aggregation, want.by_aggregation)]
        for reading, other in [(r, g[k]) for g, w in pairs for k, r in w.items()]:
            assert other.pods_reporting == reading.pods_reporting, s.scaler_name
            assert other.age_s == pytest.approx(reading.age_s), s.scaler_name
            if reading.value is None:
                assert other.value is None, s.scaler_name
            else:
                assert other.value == pytest.approx(reading.value), s.scaler_name
    # The cases differ from one another (the comparison above is not vacuous).
    values = {s.scaler_name: v.readings for s, v in zip(specs, batch, strict=True)}
    assert values["one-label"]["gpu_utilization"].pods_reporting == 4
    assert values["two-labels"]["gpu_utilization"].value == 22.0
    assert values["no-match"]["gpu_utilization"].value is None
    assert values["short-window"]["gpu_utilization"].value == pytest.approx(21.0)
    assert values["long-window"]["request_queue"].value == 7.0
    assert values["stale"]["request_queue"].value is None
    assert values["nobody"]["tokens_per_s"].pods_reporting == 0
    assert values["capacity"]["gpu_utilization"].value is not None
    assert batch[-2].load_rate == pytest.approx(6.3)
    ways = batch[-1]  # the newest samples of app b: 20, 21, 22
    assert ways.readings["gpu_utilization"].value == pytest.approx(21.0)
    assert ways.by_aggregation.keys() == {("gpu_utilization", "sum"), ("gpu_utilization", "max")}
    assert ways.by_aggregation[("gpu_utilization", "sum")].value == pytest.approx(63.0)
    assert ways.by_aggregation[("gpu_utilization", "max")].value == pytest.approx(22.0)
    assert ways.by_aggregation[("gpu_utilization", "sum")].pods_reporting == 3
    assert all(not v.by_aggregation for v in batch[:-1])  # no trigger, nothing more read
    async with db.read() as conn:
        assert await read_metrics_many(conn, [], NOW) == []


async def test_only_the_ready_pods_samples_are_load(db: Database) -> None:
    """A pod just deleted keeps its last samples in the store for the metric's window: once
    the cluster names the Ready pods, those samples are no load (both reads alike); a series
    that names no pod (a gateway's queue) always counts."""
    series = SeriesStore(max_series_per_job=1000, lateness_us=10**12)
    at = round((NOW - 3) * 1e6)
    rows = [
        SampleRow(SeriesKey.of("gpu_utilization", {"pod": pod}), at, value)
        for pod, value in (("llm-0", 40.0), ("llm-1", 60.0), ("llm-gone", 100.0))
    ]
    rows.append(SampleRow(SeriesKey.of("request_rate", {"pod": "llm-gone"}), at, 9.0))
    rows.append(SampleRow(SeriesKey.of("request_rate", {"pod": "llm-0"}), at, 1.0))
    rows.append(SampleRow(SeriesKey.of("request_rate", {"gateway": "edge"}), at, 2.0))
    async with db.transaction() as conn:
        await series.write(conn, rows, now_us=round(NOW * 1e6))
    s = spec("llm", [{"name": "gpu_utilization", "target": "85%"}])
    async with db.read() as conn:
        alone = await read_metrics(conn, s, NOW)
        [batch] = await read_metrics_many(conn, [s], NOW)
    for view in (alone, batch):
        assert view.readings["gpu_utilization"].pods_reporting == 3  # the store holds three
        ready = view.only(frozenset({"llm-0", "llm-1"}))
        reading = ready.readings["gpu_utilization"]
        assert (reading.value, reading.pods_reporting) == (50.0, 2)
        assert ready.load_rate == 1.0 + 2.0  # llm-0's and the gateway's
        assert view.only(None) is view  # pods not known: everything counts
        # Labels that are not the cluster's pod names (an exporter's own): nothing is dropped,
        # or the whole load would vanish and the scaler would scale to its floor.
        assert view.only(frozenset({"deepseek-7b-5d9c-x2k"})) is view
