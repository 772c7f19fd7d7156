"""From the spec to a model: the brief's prophet parameters, aliases, and refusals."""

from __future__ import annotations

from typing import Any

import pytest

from app.forecasting import ConfigError
from app.forecasting.from_spec import forecaster_for, lead_steps, model_name
from app.policy import parse_spec
from app.policy.spec import KNOWN_ALGORITHMS

BASE: dict[str, Any] = {
    "target": "deepseek-service",
    "metrics": [{"name": "gpu_utilization", "target": "85%"}],
    "capacity": {"request_rate": "30/min"},
    "max_replicas": 8,
}


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        pytest.param({"name": "auto"}, "auto", id="auto"),
        pytest.param({"name": "seasonal"}, "robust_seasonal", id="alias"),
        pytest.param({"name": "naive"}, "naive", id="naive"),
        pytest.param({"name": "none"}, None, id="none"),
    ],
)
def test_model_names(algorithm: dict[str, Any], expected: str | None) -> None:
    assert model_name(parse_spec({**BASE, "algorithm": algorithm})) == expected


def test_reactive_scalers_forecast_nothing() -> None:
    assert model_name(parse_spec({**BASE, "scaler": "reactive"})) is None


def test_the_briefs_prophet_params_become_prophets_own() -> None:
    params = {"seasonality": "daily", "growth": "logistic"}
    spec = parse_spec({**BASE, "algorithm": {"name": "prophet", "params": params}})
    wrapped: Any = forecaster_for(spec, lead=2)
    model = wrapped.model  # measured beside the last value (WithSkill)
    assert model.growth == "logistic"
    assert model.cap == pytest.approx(8 * 0.5)  # max_replicas x per-pod capacity (req/s)


def test_logistic_growth_without_a_stated_capacity_grows_linearly() -> None:
    """A learned capacity is unknown when the model is built: there is no cap to set."""
    doc = {k: v for k, v in BASE.items() if k != "capacity"}
    params = {"seasonality": "daily", "growth": "logistic"}
    spec = parse_spec({**doc, "algorithm": {"name": "prophet", "params": params}})
    wrapped: Any = forecaster_for(spec, lead=2)
    assert wrapped.model.growth == "linear"


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"seasonality": "hourly"}, id="unknown-seasonality"),
        pytest.param({"growth": "exponential"}, id="unknown-growth"),
        pytest.param({"wiggle": 3}, id="unknown-parameter"),
    ],
)
def test_bad_prophet_params_are_config_errors(params: dict[str, Any]) -> None:
    spec = parse_spec({**BASE, "algorithm": {"name": "prophet", "params": params}})
    with pytest.raises(ConfigError):
        forecaster_for(spec, lead=1)


@pytest.mark.parametrize(
    ("cold_start", "learned", "step", "expected"),
    [
        pytest.param("30s", None, 60.0, 2, id="fixed-30s-plus-60s-buffer"),
        pytest.param("learn", None, 60.0, 2, id="learn-without-measure-uses-60s"),
        pytest.param("learn", 240.0, 60.0, 5, id="learned-4min"),
        pytest.param("45s", 240.0, 300.0, 1, id="a-step-longer-than-the-lead"),
    ],
)
def test_lead_steps(cold_start: str, learned: float | None, step: float, expected: int) -> None:
    spec = parse_spec({**BASE, "cold_start": cold_start})
    assert lead_steps(spec, step, learned) == expected


@pytest.mark.parametrize("name", sorted(KNOWN_ALGORITHMS - {"none"}))
def test_every_algorithm_a_spec_may_name_builds(name: str) -> None:
    spec = parse_spec({**BASE, "algorithm": {"name": name}})
    assert forecaster_for(spec, lead=2) is not None
