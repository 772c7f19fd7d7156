"""Rolling-origin evaluation with refits, and the accuracy numbers the API and bench report.

Unlike a model's own in-fit backtest, this refits at every origin, so it measures the whole
fit-then-forecast procedure out of sample. Timing is the caller's business: pass a `timer`
(e.g. `time.perf_counter`) to get fit/predict durations; the pure core reads no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from app.forecasting.base import Forecaster
from app.forecasting.types import ConfigError, FloatArray, History

__all__ = ["EvalResult", "Metrics", "metrics", "rolling_origin"]

UNDER_MARGIN = 0.10  # "under-forecast": the actual exceeds the forecast by more than 10 %


@dataclass(frozen=True, slots=True, eq=False)
class EvalResult:
    """Per origin: the actual `lead` steps ahead, the mean and the `quantile` forecast of it."""

    lead: int
    quantile: float
    origins: FloatArray
    actual: FloatArray
    mean: FloatArray
    upper: FloatArray
    failures: int = 0
    fit_s: tuple[float, ...] = field(default_factory=tuple)
    predict_s: tuple[float, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Metrics:
    """MAE; MASE = MAE / the baseline's MAE on the same origins (NaN without a baseline);
    under = share of actuals above the mean by > 10 %; coverage = share at or below the
    quantile path."""

    n: int
    mae: float
    mase: float
    under: float
    coverage: float


def rolling_origin(
    history: History,
    make: Callable[[], Forecaster],
    *,
    lead: int,
    origins: Sequence[int],
    max_history: int | None = None,
    quantile: float = 0.9,
    refit_every: int = 1,
    timer: Callable[[], float] | None = None,
) -> EvalResult:
    """For each origin index `o`, give a model `values[: o + 1]` (at most the last
    `max_history` points) and forecast `values[o + lead]`: a fresh model and a full `fit` at
    every `refit_every`-th origin, `refresh` in between (as the live loop does). A failed
    forecast counts in `failures` and leaves NaN (excluded from metrics). `fit_s` holds the
    full fits' durations only."""
    if refit_every < 1:
        raise ConfigError(f"refit_every must be >= 1, got {refit_every!r}")
    if lead < 1:
        raise ConfigError(f"lead must be >= 1, got {lead!r}")
    n = len(history)
    os_ = [int(o) for o in origins if int(o) >= 0 and int(o) + lead < n]
    actual = np.array([history.values[o + lead] for o in os_], dtype=np.float64)
    mean = np.full(len(os_), np.nan)
    upper = np.full(len(os_), np.nan)
    fit_s: list[float] = []
    predict_s: list[float] = []
    failures = 0
    model: Forecaster | None = None
    for i, o in enumerate(os_):
        past = history.head(o + 1)
        if max_history is not None:
            past = past.tail(max_history)
        full = model is None or i % refit_every == 0
        t0 = timer() if timer else 0.0
        model = make().fit(past) if full or model is None else model.refresh(past)
        t1 = timer() if timer else 0.0
        fc = model.predict(lead, (quantile,))
        t2 = timer() if timer else 0.0
        if timer:
            if full:
                fit_s.append(t1 - t0)
            predict_s.append(t2 - t1)
        if fc.failed is not None or len(fc) < lead:
            failures += 1
            continue
        mean[i] = fc.mean[lead - 1]
        upper[i] = fc.quantiles[quantile][lead - 1]
    return EvalResult(
        lead=lead,
        quantile=quantile,
        origins=np.asarray(os_, dtype=np.float64),
        actual=actual,
        mean=mean,
        upper=upper,
        failures=failures,
        fit_s=tuple(fit_s),
        predict_s=tuple(predict_s),
    )


def metrics(result: EvalResult, baseline: EvalResult | None = None) -> Metrics:
    """Scores on origins where the actual and the forecast (and the baseline's) are finite."""
    ok = np.isfinite(result.actual) & np.isfinite(result.mean) & np.isfinite(result.upper)
    base_mae = float("nan")
    if baseline is not None:
        b = dict(zip(baseline.origins.tolist(), baseline.mean.tolist(), strict=True))
        bmean = np.array([b.get(o, np.nan) for o in result.origins.tolist()], dtype=np.float64)
        ok &= np.isfinite(bmean)
        if ok.any():
            base_mae = float(np.mean(np.abs(result.actual[ok] - bmean[ok])))
    if not ok.any():
        nan = float("nan")
        return Metrics(n=0, mae=nan, mase=nan, under=nan, coverage=nan)
    a, m, u = result.actual[ok], result.mean[ok], result.upper[ok]
    mae = float(np.mean(np.abs(a - m)))
    return Metrics(
        n=int(ok.sum()),
        mae=mae,
        mase=mae / base_mae if base_mae > 0 else float("nan"),
        under=float(np.mean(a > m * (1.0 + UNDER_MARGIN))),
        coverage=float(np.mean(a <= u)),
    )
