"""Values that go in and out of the forecasters.

A series is a regular grid (`History`): the store and the simulator resample whatever they hold
onto it first (see `resample_to_grid`), so every model sees the same shape and the backtests can
index by position. Data problems (no finite values, too short to calibrate) come back as values on
the result (`failed`, `notes`); only programmer errors (bad configuration, predict before fit)
raise, and always as a `ForecastingError` subclass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from app.forecasting.wake import Wake

__all__ = [
    "BacktestScore",
    "ConfigError",
    "FloatArray",
    "Forecast",
    "ForecastingError",
    "History",
    "NotFittedError",
]

FloatArray = npt.NDArray[np.float64]


class ForecastingError(Exception):
    """Base of every exception this package raises on purpose (misuse, never bad data)."""


class ConfigError(ForecastingError, ValueError):
    """A model was configured or called with invalid arguments (unknown name, horizon < 1, …)."""


class NotFittedError(ForecastingError, RuntimeError):
    """`predict` was called before `fit`."""


@dataclass(frozen=True, slots=True, eq=False)
class History:
    """Values on a regular grid: `values[i]` is the load at `start + i * step_s` (unix seconds).

    NaN marks a gap (no sample in that bucket). The array is copied to float64 and made
    read-only so a cached forecaster can keep it without defensive copies.
    """

    start: float
    step_s: float
    values: FloatArray

    def __post_init__(self) -> None:
        if not (math.isfinite(self.step_s) and self.step_s > 0):
            raise ConfigError(f"step_s must be a positive number, got {self.step_s!r}")
        if not math.isfinite(self.start):
            raise ConfigError(f"start must be finite, got {self.start!r}")
        arr = np.array(self.values, dtype=np.float64, copy=True)
        if arr.ndim != 1:
            raise ConfigError(f"values must be one-dimensional, got shape {arr.shape}")
        arr[~np.isfinite(arr)] = np.nan  # inf is as unusable as a gap
        arr.flags.writeable = False
        object.__setattr__(self, "values", arr)

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def end(self) -> float:
        """Time of the last grid point (start when empty)."""
        return self.start + max(len(self) - 1, 0) * self.step_s

    def timestamps(self) -> FloatArray:
        return self.start + self.step_s * np.arange(len(self), dtype=np.float64)

    def tail(self, n: int) -> History:
        """The last `n` points (all when shorter): bounds fit cost on long histories."""
        if n >= len(self):
            return self
        cut = len(self) - n
        return History(self.start + cut * self.step_s, self.step_s, self.values[cut:])

    def head(self, n: int) -> History:
        """The first `n` points: the history as it was at an earlier origin (backtests)."""
        return History(self.start, self.step_s, self.values[: max(n, 0)])


@dataclass(frozen=True, slots=True)
class BacktestScore:
    """Rolling-origin accuracy of a fitted model on its own history at one lead (in steps).

    `mae` is the mean absolute error over the last `n` origins; `scale` is the mean absolute
    value of the actuals there, so `mae / scale` is comparable between series; `mdae` is the
    median absolute error, which one burst in the window does not dominate.
    """

    lead: int
    mae: float
    n: int
    scale: float
    mdae: float = float("nan")  # median absolute error: what a typical (burst-free) step costs
    trimmed: float = float("nan")  # mean of the smallest 95 % of absolute errors

    def skill_over(self, baseline: BacktestScore | None) -> float | None:
        """1 - MAE / the baseline's MAE at the same lead (None when either is unusable)."""
        if baseline is None or baseline.lead != self.lead:
            return None
        if not (math.isfinite(self.mae) and math.isfinite(baseline.mae)) or baseline.mae <= 0:
            return None
        return 1.0 - self.mae / baseline.mae


@dataclass(frozen=True, slots=True, eq=False)
class Forecast:
    """A forecast on the grid continuing the history: point `i` is at `start + i * step_s`.

    `quantiles` maps a probability to a path as long as `mean` (calibrated from backtest
    residuals, so the 0.9 path lies above about 90 % of outcomes). When `failed` is set the
    paths are empty and the caller should fall back (the policy goes reactive); `notes` says
    which fallbacks were taken (short history, no season, uncalibrated bands, …).
    """

    start: float
    step_s: float
    mean: FloatArray
    quantiles: Mapping[float, FloatArray] = field(default_factory=dict)
    model: str = ""
    failed: str | None = None
    notes: tuple[str, ...] = ()
    backtest: BacktestScore | None = None
    # 1 - MAE / MAE of the last value, both backtested at the lead on the same origins: how
    # much the model has earned over "tomorrow is like now" (None: not measurable yet).
    skill: float | None = None
    # The path a deployment at zero is woken by, and how that wake did at rest on the history
    # (see app.forecasting.wake); None when the series never rests at zero.
    wake: Wake | None = None

    def __len__(self) -> int:
        return int(self.mean.shape[0])

    def timestamps(self) -> FloatArray:
        return self.start + self.step_s * np.arange(len(self), dtype=np.float64)
