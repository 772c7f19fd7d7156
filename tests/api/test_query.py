"""Reading series back over HTTP: selectors, step alignment, aggregations, refusals."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import LiveServer


@pytest.fixture
def loaded(server: LiveServer) -> LiveServer:
    import time

    base = time.time() - 3 * 3600
    base -= base % 3600
    samples = []
    for pod in ("deepseek-7b-0", "deepseek-7b-1", "other-0"):
        for i in range(120):  # one sample every 30 s for an hour
            samples.append(
                {
                    "metric": "gpu_utilization",
                    "labels": {"deployment": pod.rsplit("-", 1)[0], "pod": pod},
                    "value": float(i % 10 + (50 if pod.endswith("1") else 0)),
                    "timestamp": base + i * 30,
                }
            )
    response = httpx.post(f"{server.url}/v1/samples", json={"samples": samples})
    assert response.status_code == 200, response.text
    server.app.state.base = base
    return server


def query(server: LiveServer, **params: object) -> httpx.Response:
    return httpx.get(f"{server.url}/v1/query_range", params=params)  # type: ignore[arg-type]


def test_series_listing_by_regex(loaded: LiveServer) -> None:
    response = httpx.get(
        f"{loaded.url}/v1/series", params={"match": 'gpu_utilization{pod=~"deepseek-.*"}'}
    )
    assert response.status_code == 200
    pods = sorted(s["labels"]["pod"] for s in response.json()["series"])
    assert pods == ["deepseek-7b-0", "deepseek-7b-1"]


@pytest.mark.parametrize(
    ("agg", "step", "expected_first"),
    [
        pytest.param("avg", "5m", 4.5, id="avg-5m"),
        pytest.param("max", "5m", 9.0, id="max-5m"),
        pytest.param("min", "5m", 0.0, id="min-5m"),
        pytest.param("sum", "5m", 45.0, id="sum-5m"),
        pytest.param("count", "5m", 10.0, id="count-5m"),
        pytest.param("count", "1h", 120.0, id="count-1h"),
        pytest.param("avg", "300", 4.5, id="seconds-step"),
    ],
)
def test_aggregations_align_to_step(
    loaded: LiveServer, agg: str, step: str, expected_first: float
) -> None:
    base = loaded.app.state.base
    response = query(
        loaded,
        query='gpu_utilization{pod="deepseek-7b-0"}',
        start=base,
        end=base + 3600 - 1,
        step=step,
        agg=agg,
    )
    assert response.status_code == 200, response.text
    [series] = response.json()["series"]
    first_t, first_v = series["points"][0]
    assert first_t == base
    assert first_v == expected_first


@pytest.mark.parametrize(
    ("params", "code"),
    [
        pytest.param({"query": "x{", "start": 0, "end": 10}, "invalid_selector", id="selector"),
        # the code Grafana's range gets for the same input
        pytest.param({"query": "x", "start": "soon", "end": 10}, "invalid_time", id="start"),
        pytest.param(
            {"query": "x", "start": 0, "end": 10, "step": "-1"}, "invalid_parameter", id="neg-step"
        ),
        pytest.param(
            {"query": "x", "start": 0, "end": 10, "step": "5y"}, "invalid_parameter", id="unit"
        ),
        pytest.param({"query": "x", "start": 10, "end": 0}, "invalid_time", id="reversed"),
        pytest.param(
            {"query": "x", "start": 0, "end": 86400 * 30, "step": "1"},
            "too_many_points",
            id="points",
        ),
    ],
)
def test_bad_queries_are_400(server: LiveServer, params: dict[str, object], code: str) -> None:
    response = query(server, **params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_bad_aggregation_is_422(server: LiveServer) -> None:
    response = query(server, query="x", start=0, end=10, agg="median")
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "query.agg"
