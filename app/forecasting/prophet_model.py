"""Prophet, as the product promises it: daily/weekly seasonality, linear or logistic growth.

Prophet follows calendar shape, not the current level, so it is slow to notice a level shift and
measured worse than the naive forecast at autoscaling leads (NOTES); it stays for long horizons
and for operators who ask for it, on a slow refit cadence. `uncertainty_samples=0` (its sampled
intervals cost ~10x the predict and are not calibrated); bands come from a holdout backtest: fit
on all but the last `holdout` points, score those, then fit on everything.

Prophet is imported lazily (0.8 s, ~180 MB) and its fit runs cmdstan's bundled binary as a child
process; any exception from it becomes `failed`, never an exception to the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal, Self

import numpy as np

from app.forecasting.base import (
    DEFAULT_QUANTILES,
    check_horizon,
    check_quantiles,
    failed_forecast,
)
from app.forecasting.calibration import Calibration, relative_errors, scale_floor
from app.forecasting.models import DEFAULT_EVAL_POINTS, eval_window, trimmed_mean
from app.forecasting.types import (
    BacktestScore,
    ConfigError,
    FloatArray,
    Forecast,
    History,
    NotFittedError,
)

__all__ = ["ProphetForecaster"]

Growth = Literal["linear", "logistic", "flat"]
MIN_POINTS = 10


def _quiet_prophet_logs() -> None:
    """cmdstanpy logs two INFO lines per fit; prophet logs a plotly ERROR on import."""
    for name in ("cmdstanpy", "prophet", "prophet.plot"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)


class ProphetForecaster:
    """Prophet with the product's parameters; bands from a holdout backtest."""

    name = "prophet"

    def __init__(
        self,
        *,
        lead: int = 1,
        eval_points: int = DEFAULT_EVAL_POINTS,
        growth: Growth = "linear",
        cap: float | None = None,
        floor: float = 0.0,
        daily_seasonality: bool = True,
        weekly_seasonality: bool = True,
        seasonality_mode: Literal["additive", "multiplicative"] = "additive",
        changepoint_prior_scale: float = 0.05,
    ) -> None:
        self.lead = check_horizon(lead)
        if eval_points < 1:
            raise ConfigError(f"eval_points must be >= 1, got {eval_points!r}")
        if growth not in ("linear", "logistic", "flat"):
            raise ConfigError(f"growth must be linear, logistic or flat, got {growth!r}")
        if growth == "logistic" and (cap is None or not cap > floor):
            raise ConfigError("logistic growth needs a cap above the floor (the max capacity)")
        if seasonality_mode not in ("additive", "multiplicative"):
            raise ConfigError(f"unknown seasonality_mode {seasonality_mode!r}")
        self.eval_points = int(eval_points)
        self.growth: Growth = growth
        self.cap = None if cap is None else float(cap)
        self.floor = float(floor)
        self.daily_seasonality = bool(daily_seasonality)
        self.weekly_seasonality = bool(weekly_seasonality)
        self.seasonality_mode = seasonality_mode
        self.changepoint_prior_scale = float(changepoint_prior_scale)
        self._fitted = False
        self._failed: str | None = None
        self._notes: tuple[str, ...] = ()
        self._backtest: BacktestScore | None = None
        self._model: Any = None
        self._calib: Calibration | None = None
        self._next_start = 0.0
        self._step_s = 1.0
        self._nonnegative = True

    @property
    def failed(self) -> str | None:
        return self._failed

    @property
    def notes(self) -> tuple[str, ...]:
        return self._notes

    @property
    def backtest(self) -> BacktestScore | None:
        return self._backtest

    def _frame(self, ts: FloatArray, y: FloatArray | None = None) -> Any:
        import pandas as pd

        data: dict[str, Any] = {"ds": pd.to_datetime(ts, unit="s")}
        if y is not None:
            data["y"] = y
        if self.growth == "logistic":
            data["cap"] = np.full(ts.shape, self.cap)
            data["floor"] = np.full(ts.shape, self.floor)
        return pd.DataFrame(data)

    def _fit_one(self, ts: FloatArray, y: FloatArray) -> Any:
        _quiet_prophet_logs()
        from prophet import Prophet

        model = Prophet(
            growth=self.growth,
            daily_seasonality=self.daily_seasonality,
            weekly_seasonality=self.weekly_seasonality,
            yearly_seasonality=False,
            seasonality_mode=self.seasonality_mode,
            changepoint_prior_scale=self.changepoint_prior_scale,
            uncertainty_samples=0,
        )
        ok = np.isfinite(y)
        model.fit(self._frame(ts[ok], y[ok]))
        return model

    def _predict_at(self, model: Any, ts: FloatArray) -> FloatArray:
        out = model.predict(self._frame(ts))
        yhat: FloatArray = np.asarray(out["yhat"], dtype=np.float64)
        return yhat

    def fit(self, history: History) -> Self:
        self._fitted = True
        self._failed, self._model, self._calib, self._backtest = None, None, None, None
        self._step_s = history.step_s
        self._next_start = history.end + history.step_s if len(history) else history.start
        y = np.asarray(history.values, dtype=np.float64)
        ts = history.timestamps()
        finite = np.isfinite(y)
        notes: list[str] = []
        if int(finite.sum()) < MIN_POINTS:
            self._failed = f"prophet needs at least {MIN_POINTS} finite points"
            self._notes = ()
            return self
        self._nonnegative = bool(np.nanmin(y) >= 0.0)
        n = int(y.shape[0])
        n_eval = eval_window(n, self.lead, self.eval_points)
        floor = scale_floor(y)
        try:
            if n_eval and int(finite[: n - n_eval].sum()) >= MIN_POINTS:
                hold = self._fit_one(ts[: n - n_eval], y[: n - n_eval])
                f = self._predict_at(hold, ts[n - n_eval :])
                actual = y[n - n_eval :]
                ok = np.isfinite(actual)
                if ok.any():
                    self._backtest = BacktestScore(
                        lead=self.lead,
                        mae=float(np.mean(np.abs(actual[ok] - f[ok]))),
                        n=int(ok.sum()),
                        scale=float(np.mean(np.abs(actual[ok]))),
                        mdae=float(np.median(np.abs(actual[ok] - f[ok]))),
                        trimmed=float(trimmed_mean(np.abs(actual[ok] - f[ok]))),
                    )
                errs = np.sort(relative_errors(actual, f, floor))
                self._calib = Calibration((self.lead,), (errs,), floor)
            self._model = self._fit_one(ts, y)
        except Exception as exc:  # cmdstan failures, pandas quirks: a value, not a crash
            self._failed = f"prophet fit failed: {type(exc).__name__}: {exc}"
            self._model = None
        if self._calib is None or not self._calib.usable():
            notes.append("too little history for a holdout backtest: bands are uncalibrated")
            if self._calib is None:
                self._calib = Calibration((), (), floor)
        self._notes = tuple(notes)
        return self

    def refresh(self, history: History) -> Self:
        """Prophet's forecast ignores the latest values; only the start moves (a full fit
        when there is no usable model)."""
        if self._model is None or not np.isclose(history.step_s, self._step_s):
            return self.fit(history)
        self._next_start = history.end + history.step_s if len(history) else history.start
        return self

    def predict(self, horizon: int, quantiles: Sequence[float] = DEFAULT_QUANTILES) -> Forecast:
        horizon = check_horizon(horizon)
        qs = check_quantiles(quantiles)
        if not self._fitted:
            raise NotFittedError("prophet: predict() called before fit()")
        if self._failed is not None or self._model is None:
            return failed_forecast(
                self.name, self._next_start, self._step_s, self._failed or "not fitted"
            )
        ts = self._next_start + self._step_s * np.arange(horizon, dtype=np.float64)
        try:
            mean = self._predict_at(self._model, ts)
        except Exception as exc:
            return failed_forecast(
                self.name,
                self._next_start,
                self._step_s,
                f"prophet predict failed: {type(exc).__name__}: {exc}",
            )
        assert self._calib is not None
        bands = self._calib.bands(mean, qs)
        if self._nonnegative:
            mean = np.maximum(mean, 0.0)
            bands = {q: np.maximum(p, 0.0) for q, p in bands.items()}
        return Forecast(
            start=self._next_start,
            step_s=self._step_s,
            mean=mean,
            quantiles=bands,
            model=self.name,
            notes=self._notes,
            backtest=self._backtest,
        )
