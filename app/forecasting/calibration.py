"""Quantile bands from backtest residuals.

Models fit point forecasts; their uncertainty is whatever their own past forecasts got wrong.
Residuals are kept relative to the forecast (`(actual - forecast) / max(|forecast|, floor)`)
because load errors grow with the load (a night trough and a morning peak should not share one
absolute band); `floor` keeps near-zero forecasts from producing huge ratios. Bands at leads
between the measured ones are interpolated; beyond the longest they widen like sqrt(lead).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.forecasting.types import FloatArray

__all__ = [
    "MIN_RESIDUALS",
    "Calibration",
    "calibration_leads",
    "conformal_level",
    "relative_errors",
]

MIN_RESIDUALS = 10  # fewer residuals than this and a band would be a guess: report it


def calibration_leads(lead: int) -> list[int]:
    """A few leads up to `lead` whose residuals are measured (the rest are interpolated)."""
    return sorted({1, max(1, round(lead / 4)), max(1, round(lead / 2)), max(1, lead)})


def conformal_level(q: float, n: int) -> float:
    """The empirical level that gives at least `q` coverage out of sample with `n` residuals
    (split-conformal's ceil((n + 1) q) / n): 0.95 for 20 residuals, ~0.9 for 1,000. A plain
    empirical quantile of few residuals is too narrow."""
    if n <= 0:
        return q
    if q >= 0.5:
        return min(1.0, math.ceil((n + 1) * q) / n)
    return max(0.0, 1.0 - math.ceil((n + 1) * (1.0 - q)) / n)


def relative_errors(actual: FloatArray, forecast: FloatArray, floor: float) -> FloatArray:
    ok = np.isfinite(actual) & np.isfinite(forecast)
    a, f = actual[ok], forecast[ok]
    out: FloatArray = (a - f) / np.maximum(np.abs(f), floor)
    return out


@dataclass(frozen=True, slots=True, eq=False)
class Calibration:
    """Relative residuals measured at `leads` (ascending) with the floor used to compute them."""

    leads: tuple[int, ...]
    errors: tuple[FloatArray, ...]
    floor: float

    @property
    def n(self) -> int:
        """The smallest residual count over the leads (how much the bands rest on)."""
        return min((int(e.shape[0]) for e in self.errors), default=0)

    def usable(self) -> bool:
        return bool(self.leads) and self.n >= MIN_RESIDUALS

    def measured(self) -> tuple[Calibration, tuple[int, ...]]:
        """Only the leads with enough residuals, and the leads dropped. A long lead has fewer
        backtest origins than a short one (a short history may have none): its band is then
        the longest measured lead's widened like sqrt(lead), not the mean (no band at all)."""
        keep = [i for i, e in enumerate(self.errors) if e.shape[0] >= MIN_RESIDUALS]
        if not keep or len(keep) == len(self.leads):
            return self, ()
        dropped = tuple(lead for i, lead in enumerate(self.leads) if i not in keep)
        kept = Calibration(
            tuple(self.leads[i] for i in keep), tuple(self.errors[i] for i in keep), self.floor
        )
        return kept, dropped

    def band(self, mean: FloatArray, q: float) -> FloatArray:
        """The `q` quantile path for a mean path starting at lead 1 (the mean if unusable)."""
        if not self.usable():
            return mean.copy()
        qv = np.array([float(np.quantile(e, conformal_level(q, e.shape[0]))) for e in self.errors])
        lead_arr = np.asarray(self.leads, dtype=np.float64)
        h = np.arange(1, mean.shape[0] + 1, dtype=np.float64)
        per_h = np.interp(h, lead_arr, qv)
        last = float(lead_arr[-1])
        beyond = h > last
        per_h[beyond] = qv[-1] * np.sqrt(h[beyond] / last)
        out: FloatArray = mean + np.maximum(np.abs(mean), self.floor) * per_h
        return out

    def bands(self, mean: FloatArray, quantiles: Sequence[float]) -> dict[float, FloatArray]:
        """Paths for every requested quantile, kept ordered (a higher q is never lower)."""
        out: dict[float, FloatArray] = {}
        prev: FloatArray | None = None
        for q in sorted(quantiles):
            path = self.band(mean, q)
            if prev is not None:
                path = np.maximum(path, prev)
            out[q] = path
            prev = path
        return out


def scale_floor(values: FloatArray) -> float:
    """10 % of the mean absolute level (a tiny positive number for an all-zero series)."""
    finite = values[np.isfinite(values)]
    level = float(np.mean(np.abs(finite))) if finite.size else 0.0
    return max(0.1 * level, 1e-9) if math.isfinite(level) else 1e-9
