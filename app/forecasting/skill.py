"""A model's skill over the last value, measured on its own history at its lead.

`auto` compares its candidates anyway (the last value is one of them); a model named on its own
gets the last value fitted beside it, on the same history and lead, so every forecast says how
much it has earned (`Forecast.skill`): the policy lets a forecast raise the need only where it
beats what the metrics already show.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Self

from app.forecasting.base import DEFAULT_QUANTILES, Forecaster, ModelBeside
from app.forecasting.models import NaiveForecaster
from app.forecasting.types import Forecast, History

__all__ = ["WithSkill"]


class WithSkill(ModelBeside):
    """`model`, plus the last value fitted beside it to measure `Forecast.skill`."""

    def __init__(self, model: Forecaster, *, lead: int, eval_points: int) -> None:
        super().__init__(model)
        self._naive = NaiveForecaster(lead=lead, eval_points=eval_points)

    def fit(self, history: History) -> Self:
        self.model = self.model.fit(history)
        self._naive = self._naive.fit(history)
        return self

    def refresh(self, history: History) -> Self:
        self.model = self.model.refresh(history)
        self._naive = self._naive.refresh(history)
        return self

    def predict(self, horizon: int, quantiles: Sequence[float] = DEFAULT_QUANTILES) -> Forecast:
        forecast = self.model.predict(horizon, quantiles)
        score = forecast.backtest
        skill = None if score is None else score.skill_over(self._naive.backtest)
        return dataclasses.replace(forecast, skill=skill)
