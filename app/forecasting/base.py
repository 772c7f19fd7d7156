"""The `Forecaster` protocol (statsforecast's shape) and helpers every model shares.

Configured in `__init__` (lead time, seasons, model parameters), `fit(history) -> self`, then
`predict(horizon, quantiles) -> Forecast`. Horizons and leads count grid steps, like
statsforecast's `h`; seasons are calendar periods in seconds because they do not depend on the
grid. A fit never raises on bad data: the failure is kept and `predict` returns it as a value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, Self, runtime_checkable

import numpy as np

from app.forecasting.types import (
    BacktestScore,
    ConfigError,
    Forecast,
    History,
)

__all__ = [
    "DEFAULT_QUANTILES",
    "DEFAULT_SEASONS_S",
    "Forecaster",
    "ModelBeside",
    "check_horizon",
    "check_quantiles",
    "failed_forecast",
    "season_steps",
]

DEFAULT_QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.99)
DEFAULT_SEASONS_S: tuple[float, ...] = (86_400.0, 604_800.0)  # daily, weekly


@runtime_checkable
class Forecaster(Protocol):
    """A model configured in `__init__`, fitted on a `History`, asked for `horizon` steps."""

    name: str

    def fit(self, history: History) -> Self: ...

    def refresh(self, history: History) -> Self:
        """Follow newer data cheaply, keeping what `fit` chose (a full fit when it cannot)."""
        ...

    def predict(self, horizon: int, quantiles: Sequence[float] = DEFAULT_QUANTILES) -> Forecast: ...

    @property
    def failed(self) -> str | None: ...

    @property
    def backtest(self) -> BacktestScore | None: ...

    @property
    def notes(self) -> tuple[str, ...]: ...


class ModelBeside:
    """A model with something fitted beside it (`WithSkill`, `WithWake`): what the fit found
    is the model's own."""

    def __init__(self, model: Forecaster) -> None:
        self.model = model
        self.name = model.name

    @property
    def failed(self) -> str | None:
        return self.model.failed

    @property
    def backtest(self) -> BacktestScore | None:
        return self.model.backtest

    @property
    def notes(self) -> tuple[str, ...]:
        return self.model.notes


def check_horizon(horizon: int) -> int:
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ConfigError(f"horizon must be a positive number of steps, got {horizon!r}")
    return int(horizon)


def check_quantiles(quantiles: Sequence[float]) -> tuple[float, ...]:
    qs = tuple(float(q) for q in quantiles)
    for q in qs:
        if not (0.0 < q < 1.0):
            raise ConfigError(f"quantiles must lie strictly between 0 and 1, got {q!r}")
    return qs


def season_steps(season_s: float, step_s: float) -> int:
    """Grid steps in a season, or 0 when the season is not a whole number (>= 2) of steps."""
    m = season_s / step_s
    r = round(m)
    if r < 2 or not math.isclose(m, r, rel_tol=1e-6):
        return 0
    return int(r)


def failed_forecast(
    model: str, start: float, step_s: float, reason: str, notes: tuple[str, ...] = ()
) -> Forecast:
    return Forecast(
        start=start,
        step_s=step_s,
        mean=np.empty(0),
        quantiles={},
        model=model,
        failed=reason,
        notes=notes,
    )
