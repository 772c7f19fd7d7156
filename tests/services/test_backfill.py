"""Backfilling the forecast's history of a load read from Prometheus, on each real database:
`query_range` asked in chunks Prometheus accepts, the answer summed over pods onto the
forecast's grid where `load_history` reads it, nothing asked or written twice, a changed query
filled anew, a failure or a timeout writing nothing and saying why, and the operator told
through the scaler's events. The server is a stand-in answering `query_range` as Prometheus
does (a matrix, at most 11,000 points a series); tests/prometheus runs the real one.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from app.policy import parse_spec
from app.policy.spec import ScalerSpec
from app.prometheus import MAX_POINTS, PrometheusClient
from app.services.backfill import Backfiller, backfill_load, history_selector, load_query
from app.services.forecasts import GRID_STEP_S, HISTORY_S, load_history
from app.services.shell import Shell
from app.store import scalers as scaler_store
from app.store.series import SeriesStore

QUERY = "sum(rate(vllm:request_success_total[5m]))"
NOW = 1_800_000_123.0  # not on the grid: the newest complete bucket ends at 1_800_000_000
END = NOW - NOW % GRID_STEP_S


def spec_reading(query: str = QUERY, signal: str = "request_rate") -> ScalerSpec:
    return parse_spec(
        {
            "target": "llm",
            "capacity": {signal: "2/s"},
            "metrics": [
                {"name": "request_queue", "target": "<5", "source": {"prometheus": "sum(q)"}},
                {
                    "name": signal,
                    "target": 2,
                    "aggregation": "sum",
                    "source": {"prometheus": query},
                },
            ],
        }
    )


def load(t: float) -> float:
    return 10.0 + 5.0 * math.sin(2 * math.pi * t / 86400)


@dataclass
class StandIn:
    """Answers `/api/v1/query_range` with two pods sharing `load` (a third and two thirds),
    refusing what Prometheus refuses; records each range asked."""

    asked: list[tuple[float, float, float]] = field(default_factory=list)
    fail: str | None = None  # answer this body with a 503 instead
    delay_s: float = 0.0
    in_flight: int = 0
    most_in_flight: int = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
            return self._answer(request)
        finally:
            self.in_flight -= 1

    def _answer(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/query_range"
        if self.fail is not None:
            return httpx.Response(503, text=self.fail)
        form = dict(httpx.QueryParams(request.content.decode()))
        start, end, step = float(form["start"]), float(form["end"]), float(form["step"])
        self.asked.append((start, end, step))
        steps = math.floor((end - start) / step) + 1
        if steps > MAX_POINTS:
            return httpx.Response(
                400,
                json={
                    "status": "error",
                    "errorType": "bad_data",
                    "error": "exceeded maximum resolution of 11,000 points per timeseries",
                },
            )
        times = [start + i * step for i in range(steps)]
        result = [
            {"metric": {"pod": pod}, "values": [[t, f"{share * load(t):.9f}"] for t in times]}
            for pod, share in (("llm-0", 1 / 3), ("llm-1", 2 / 3))
        ]
        body = {"status": "success", "data": {"resultType": "matrix", "result": result}}
        return httpx.Response(200, json=body)


def client_for(server: StandIn, timeout_s: float = 2.0) -> PrometheusClient:
    return PrometheusClient(
        "http://prometheus:9090", timeout_s=timeout_s, transport=httpx.MockTransport(server)
    )


async def run(shell: Shell, client: PrometheusClient, spec: ScalerSpec, now: float = NOW,
              **grid: float) -> Any:  # fmt: skip
    return await backfill_load(
        shell.db, shell.series, client, "llm", spec, now, lateness_s=120.0, **grid
    )


async def history_of(shell: Shell, spec: ScalerSpec, now: float = NOW) -> Any:
    async with shell.db.read() as conn:
        return await load_history(conn, spec, now, series=history_selector("llm", spec))


def test_the_load_query_is_the_metric_named_as_the_capacitys_signal() -> None:
    assert load_query(spec_reading()) == QUERY
    assert load_query(spec_reading(signal="tokens")) == QUERY
    pushed = parse_spec({"target": "llm", "metrics": [{"name": "request_rate", "target": 2}]})
    assert load_query(pushed) is None
    assert history_selector("llm", pushed) is None


async def test_the_first_run_fills_the_forecasts_history_on_its_grid(shell: Shell) -> None:
    server = StandIn()
    spec = spec_reading()
    done = await run(shell, client_for(server), spec)
    assert done.error is None
    assert done.points == HISTORY_S / GRID_STEP_S  # 4,032: two weeks of 5-minute buckets
    assert server.asked == [(END - HISTORY_S + GRID_STEP_S, END, GRID_STEP_S)]
    history = await history_of(shell, spec)
    assert len(history) == HISTORY_S / GRID_STEP_S
    assert history.start == END - HISTORY_S and history.step_s == GRID_STEP_S
    # The pods' series summed; the value evaluated at a bucket's end is that bucket's.
    for k in (0, 1, 2000, len(history) - 1):
        bucket_end = history.start + (k + 1) * GRID_STEP_S
        assert history.values[k] == pytest.approx(load(bucket_end), abs=1e-6), k


async def test_a_second_run_asks_and_writes_only_what_is_new(shell: Shell) -> None:
    server = StandIn()
    spec = spec_reading()
    client = client_for(server)
    await run(shell, client, spec)
    again = await run(shell, client, spec)
    assert again.points == 0 and again.error is None
    assert len(server.asked) == 1  # up to date: nothing asked
    later = await run(shell, client, spec, now=NOW + 2 * GRID_STEP_S)
    assert later.points == 2
    # Evaluated at the two new buckets' ends only.
    assert server.asked[-1] == (END + GRID_STEP_S, END + 2 * GRID_STEP_S, GRID_STEP_S)
    history = await history_of(shell, spec, now=NOW + 2 * GRID_STEP_S)
    # Still one point per bucket, the window moved by two.
    assert len(history) == HISTORY_S / GRID_STEP_S
    assert history.start == END - HISTORY_S + 2 * GRID_STEP_S


async def test_a_long_range_is_asked_in_chunks_prometheus_accepts(shell: Shell) -> None:
    server = StandIn()
    spec = spec_reading()
    # A minute's grid over two weeks: 20,160 points, over the 11,000 Prometheus allows.
    done = await run(shell, client_for(server), spec, step_s=60.0)
    assert done.error is None and done.points == HISTORY_S / 60
    assert len(server.asked) == 2
    (a0, a1, _), (b0, b1, _) = server.asked
    assert (a1 - a0) / 60 + 1 == MAX_POINTS
    assert b0 == a1 + 60 and b1 == NOW - NOW % 60  # contiguous: no step twice, none missed


async def test_a_changed_query_is_a_new_history_filled_from_scratch(shell: Shell) -> None:
    server = StandIn()
    client = client_for(server)
    await run(shell, client, spec_reading())
    changed = spec_reading("sum(rate(vllm:request_success_total[1m]))")
    done = await run(shell, client, changed)
    assert done.points == HISTORY_S / GRID_STEP_S
    assert history_selector("llm", changed) != history_selector("llm", spec_reading())
    assert len(await history_of(shell, changed)) == HISTORY_S / GRID_STEP_S


FAILURES = [
    pytest.param(StandIn(fail="Service Unavailable"), "HTTP 503: Service Unavailable", id="503"),
    pytest.param(StandIn(delay_s=2.0), "no answer within 0.5s", id="a timeout"),
]


@pytest.mark.parametrize(("server", "why"), FAILURES)
async def test_a_failure_writes_nothing_and_says_why(
    shell: Shell, server: StandIn, why: str
) -> None:
    spec = spec_reading()
    done = await run(shell, client_for(server, timeout_s=0.5), spec)
    assert done.points == 0 and done.error == why
    assert await history_of(shell, spec) is None


async def test_no_prometheus_configured_is_said(shell: Shell) -> None:
    done = await backfill_load(
        shell.db, shell.series, None, "llm", spec_reading(), NOW, lateness_s=120.0
    )
    assert done is not None and done.error is not None and "CIUIC_PROMETHEUS_URL" in done.error


async def events(shell: Shell, name: str = "llm") -> list[str]:
    async with shell.db.read() as conn:
        found = await scaler_store.list_events(conn, name, kinds=["backfill"])
    return [e.message for e in reversed(found)]  # oldest first


async def test_the_operator_is_told_of_fills_and_failures_not_of_top_ups(shell: Shell) -> None:
    server = StandIn(fail="down for maintenance")
    filler = Backfiller(shell.db, shell.series, client_for(server), lateness_s=120.0)
    due = [("llm", spec_reading())]
    await filler.run(due, NOW)
    await filler.run(due, NOW + 60)  # the same error again: told once
    server.fail = None
    await filler.run(due, NOW + 120)
    await filler.run(due, NOW + GRID_STEP_S)  # one new step: a regular top-up
    told = await events(shell)
    assert told == [
        "backfill of request_rate from Prometheus at http://prometheus:9090 failed: HTTP 503: "
        "down for maintenance; the scaler scales on its readings meanwhile, and the backfill "
        "is retried at each refit",
        "backfilled 4032 points of request_rate from Prometheus at http://prometheus:9090, "
        "336 h of history",
    ]


async def test_many_scalers_on_a_slow_server_are_filled_a_few_at_a_time(shell: Shell) -> None:
    server = StandIn(delay_s=0.05)
    series = SeriesStore(max_series_per_job=1000, lateness_us=10**12)
    filler = Backfiller(shell.db, series, client_for(server), lateness_s=120.0, concurrency=4)
    due = [(f"llm-{i}", spec_reading()) for i in range(12)]
    done = await filler.run(due, NOW)
    assert sorted(done) == sorted(name for name, _ in due)
    assert all(d.points == HISTORY_S / GRID_STEP_S for d in done.values())
    assert server.most_in_flight == 4  # in parallel, and never past the bound
