"""Irregular samples onto the regular grid every model expects.

Buckets are aligned to multiples of `step_s` since the epoch (unless `start` is given) so that
rollups of the same series at different times line up with each other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from app.forecasting.types import ConfigError, FloatArray, History

__all__ = ["resample_to_grid"]


def resample_to_grid(
    timestamps: Sequence[float] | FloatArray,
    values: Sequence[float] | FloatArray | None,
    step_s: float,
    *,
    how: Literal["mean", "sum", "count"] = "mean",
    start: float | None = None,
    end: float | None = None,
) -> History:
    """Bucket `(timestamp, value)` points into `[start + i*step_s, start + (i+1)*step_s)`.

    `how="mean"` suits gauges (load rate, utilisation): a bucket with no sample is a gap (NaN).
    `how="sum"` adds values (NaN when empty); `how="count"` counts points (a request log: empty
    bucket = 0 requests, `values` may be None). Non-finite values and points outside
    `[start, end]` are ignored. `end` is inclusive: the grid covers the bucket holding it.
    """
    if not (math.isfinite(step_s) and step_s > 0):
        raise ConfigError(f"step_s must be a positive number, got {step_s!r}")
    ts = np.asarray(timestamps, dtype=np.float64).ravel()
    if values is None:
        if how != "count":
            raise ConfigError("values are required unless how='count'")
        vs = np.ones_like(ts)
    else:
        vs = np.asarray(values, dtype=np.float64).ravel()
        if vs.shape != ts.shape:
            raise ConfigError(f"{ts.shape[0]} timestamps but {vs.shape[0]} values")
    keep = np.isfinite(ts) & np.isfinite(vs)
    ts, vs = ts[keep], vs[keep]
    if start is None:
        if ts.size == 0:
            return History(0.0 if end is None else end, step_s, np.empty(0))
        start = math.floor(float(ts.min()) / step_s) * step_s
    if end is None:
        end = float(ts.max()) if ts.size else start
    n = max(math.floor((end - start) / step_s) + 1, 0)
    idx = np.floor((ts - start) / step_s).astype(np.int64)
    inside = (idx >= 0) & (idx < n)
    idx, vs = idx[inside], vs[inside]
    counts = np.bincount(idx, minlength=n).astype(np.float64)
    if how == "count":
        return History(start, step_s, counts)
    sums = np.bincount(idx, weights=vs, minlength=n)
    if how == "sum":
        out = np.where(counts > 0, sums, np.nan)
    elif how == "mean":
        out = np.full(n, np.nan)
        np.divide(sums, counts, out=out, where=counts > 0)
    else:
        raise ConfigError(f"unknown aggregation {how!r}")
    return History(start, step_s, out)
