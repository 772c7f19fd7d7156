"""Vectorised causal forecasts: one formula for the backtest and for the live forecast.

Every fast model is a `SeasonalConfig` evaluated by `lead_forecast(cache, origins, leads, cfg)`:
the forecast of `y[o + h]` made with `y[: o + 1]` only. Evaluating it at every past origin is the
rolling-origin backtest (no refit loop, no leakage); evaluating it at the last origin is the
forecast. Because both go through the same function, the backtest scores exactly the code that
forecasts.

The forecast is `profile(t) (x or +) level(o) (+ trend)`:
- `profile(t)`: median of the (lightly smoothed) values one, two, … seasons before `t`, a robust
  seasonal naive that ignores a spike in any single past season;
- `level(o)`: how the last `window` points compare with what the profile said for them (a ratio
  of sums, or a mean difference), so a level shift or a restart is followed within `window`
  steps; with `trend`, the change of that level between the last two windows is extrapolated.
  A `robust` level is the median difference instead of the mean: a burst inside the window
  does not carry into the forecast (bursty series: tweets, LLM traffic). A `reset` level is the
  mean since the last jump only (a step far outside the usual step-to-step change): a level
  that holds for hours and then steps is averaged while it holds, and followed at once when it
  steps, where a plain mean would lag a whole window behind the step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import bottleneck as bn
import numpy as np
import numpy.typing as npt

from app.forecasting.types import FloatArray

IntArray = npt.NDArray[np.int64]
# A value above this multiple of its trailing season's mean is a burst, not the season's shape:
# with a single past season in the profile, it would otherwise come back a season later.
CLIP_FACTOR = 4.0
# A step-to-step change above this multiple of the usual one (the median absolute change over
# the JUMP_SCALE points before it) is a jump: a `reset` level starts again there. Measured on
# the level-steps family (4 % noise, steps of 50 % and more): 6 and 8 gain 11 % over the last
# value one step ahead, 4 fires on noise (docs/forecasting.md).
JUMP_FACTOR = 8.0
JUMP_SCALE = 64


@dataclass(frozen=True, slots=True)
class SeasonalConfig:
    """One candidate of the fast model family (all lengths in grid steps).

    season 0 = no seasonal profile (then the forecast is the level: naive for window 1);
    window 0 = no level correction (seasonal naive / median profile).
    """

    season: int = 0
    seasons: int = 1
    smooth: int = 0
    window: int = 1
    ratio: bool = False
    trend: bool = False
    clip: bool = False  # cap the profile's source at CLIP_FACTOR x its trailing season mean
    robust: bool = False  # level = median (not mean) of the window's differences; not ratio
    # With damp > 0 the level is the window's (the series' usual level) plus the last point's
    # departure from it, shrunk by damp per step ahead: a crowd or a noise excursion decays
    # back instead of being carried whole over the horizon. No trend.
    damp: float = 0.0
    # With reset (no season, a mean level) the level is the mean since the last jump within
    # the window (see JUMP_FACTOR): averaged while a level holds, restarted when it steps.
    reset: bool = False

    def describe(self) -> str:
        parts = []
        if self.season:
            parts.append(f"season={self.season}x{self.seasons}")
            if self.smooth:
                parts.append(f"smooth={2 * self.smooth + 1}")
            if self.clip:
                parts.append("clipped")
        if self.window:
            kind = "ratio" if self.ratio and self.season else "level"
            parts.append(f"{'median ' if self.robust else ''}{kind}={self.window}")
            if self.reset:
                parts.append("since the last jump")
        if self.trend:
            parts.append("trend")
        if self.damp:
            parts.append(f"last point damped {self.damp:g}/step")
        return " ".join(parts) or "constant"


def first_lag(cfg: SeasonalConfig, lead: int) -> int:
    """The first season multiple whose smoothed value is already known `lead` steps ahead."""
    if not cfg.season:
        return 0
    return max(1, math.ceil((lead + cfg.smooth) / cfg.season))


def lookback(cfg: SeasonalConfig) -> int:
    """Points the level term reads before (and including) the origin."""
    return cfg.window * (2 if cfg.trend else 1)


def warmup(cfg: SeasonalConfig, lead: int) -> int:
    """The first origin index at which `cfg` can forecast `lead` steps ahead."""
    back = max(lookback(cfg), 1) - 1
    if cfg.season:
        back += (first_lag(cfg, lead) + cfg.seasons - 1) * cfg.season
    return back


def ffill(a: FloatArray) -> FloatArray:
    """Carry the last finite value forward (leading NaNs stay)."""
    idx = np.where(np.isfinite(a), np.arange(a.shape[0]), 0)
    np.maximum.accumulate(idx, out=idx)
    out: FloatArray = a[idx]
    return out


def causal_fill(y: FloatArray, season: int) -> FloatArray:
    """Fill gaps from the same phase one season earlier, else with the last value.

    Only past values are used, so a filled series still gives leak-free backtests.
    """
    out = np.array(y, dtype=np.float64, copy=True)
    miss = ~np.isfinite(out)
    if not miss.any():
        return out
    if season > 0:
        for _ in range(out.shape[0] // season + 1):
            idx = np.flatnonzero(miss)
            idx = idx[idx >= season]
            if idx.size == 0:
                break
            src = out[idx - season]
            ok = np.isfinite(src)
            if not ok.any():
                break
            out[idx[ok]] = src[ok]
            miss[idx[ok]] = False
    return ffill(out)


def centered_mean(a: FloatArray, radius: int) -> FloatArray:
    """Moving average over `2*radius + 1` points, shrinking at the edges."""
    if radius <= 0:
        return a
    n = a.shape[0]
    cs = np.concatenate(([0.0], np.cumsum(a)))
    i = np.arange(n)
    lo = np.clip(i - radius, 0, n)
    hi = np.clip(i + radius + 1, 0, n)
    out: FloatArray = (cs[hi] - cs[lo]) / (hi - lo)
    return out


class SeriesCache:
    """Per-fit arrays shared by every candidate: the filled series, its cumulative sums, and the
    seasonal profiles (computed once per season/smoothing/lag, over the grid plus `extra`
    future points so the same arrays serve the backtest and the forecast)."""

    def __init__(self, yf: FloatArray, extra: int) -> None:
        self.yf = yf
        self.n = int(yf.shape[0])
        self.extra = max(int(extra), 0)
        self.cy: FloatArray = np.concatenate(([0.0], np.cumsum(yf)))
        self._ys: dict[tuple[int, int], FloatArray] = {}
        self._prof: dict[tuple[int, int, int, int, bool], tuple[FloatArray, FloatArray]] = {}
        # key -> (first index computed, medians; NaN before it)
        self._medians: dict[tuple[int, int, int, int, bool, int], tuple[int, FloatArray]] = {}
        self._jumps: IntArray | None = None

    def last_jump(self) -> IntArray:
        """For each index, the latest index at or before it where the series jumped (0 when
        it never did): a change from the point before above JUMP_FACTOR times the median
        change over the JUMP_SCALE points before (causal: only earlier changes set the
        scale, and never fewer than 8 of them)."""
        if self._jumps is None and self.n < 8:
            self._jumps = np.zeros(self.n, dtype=np.int64)
        if self._jumps is None:
            d = np.abs(np.diff(self.yf, prepend=self.yf[:1]))
            # a shorter window over a shorter series reads the same points (all of them)
            usual = bn.move_median(d, min(JUMP_SCALE, self.n), min_count=8)
            scale = np.concatenate(([np.nan], usual[:-1]))
            with np.errstate(invalid="ignore"):
                jump = d > JUMP_FACTOR * scale  # NaN scale (too few changes yet): no jump
            at = np.where(jump, np.arange(self.n), 0)
            self._jumps = np.maximum.accumulate(at) if self.n else at
        return self._jumps

    def ensure_extra(self, extra: int) -> None:
        """Make room for forecasts `extra` steps past the end (drops cached profiles)."""
        if extra > self.extra:
            self.extra = int(extra)
            self._prof.clear()

    def smoothed(self, radius: int, clip_window: int = 0) -> FloatArray:
        """The profile's source: smoothed, and with `clip_window`, capped at CLIP_FACTOR times
        the trailing mean over that many points (causal: it only reads the past)."""
        key = (radius, clip_window)
        if key not in self._ys:
            ys = centered_mean(self.yf, radius)
            if clip_window > 0:
                i = np.arange(self.n)
                lo = np.maximum(i + 1 - clip_window, 0)
                trailing = (self.cy[i + 1] - self.cy[lo]) / (i + 1 - lo)
                ys = np.minimum(ys, CLIP_FACTOR * np.maximum(trailing, 0.0))
            self._ys[key] = ys
        return self._ys[key]

    def profile(self, cfg: SeasonalConfig, k0: int) -> tuple[FloatArray, FloatArray]:
        """(profile over n + extra points, cumulative sum of its first n with NaN as 0)."""
        key = (cfg.season, cfg.seasons, cfg.smooth, k0, cfg.clip)
        got = self._prof.get(key)
        if got is None:
            ys = self.smoothed(cfg.smooth, cfg.season if cfg.clip else 0)
            t = np.arange(self.n + self.extra, dtype=np.int64)
            rows = []
            for i in range(cfg.seasons):
                idx = t - (k0 + i) * cfg.season
                row = np.full(t.shape, np.nan)
                ok = (idx >= 0) & (idx < self.n)
                row[ok] = ys[idx[ok]]
                rows.append(row)
            prof = _median_rows(np.stack(rows))
            head = np.nan_to_num(prof[: self.n], nan=0.0)
            got = (prof, np.concatenate(([0.0], np.cumsum(head))))
            self._prof[key] = got
        return got

    def rolling_median(self, cfg: SeasonalConfig, k0: int, at: IntArray) -> FloatArray:
        """The median of `y - profile` over the `cfg.window` points ending at each index in
        `at` (`y` alone without a season); NaN before the first full window.

        Computed once per configuration, but only from the earliest index asked for: fits read
        the latest origins only, and the median is most of a fit's cost.
        """
        key = (cfg.season, cfg.seasons, cfg.smooth, k0 if cfg.season else 0, cfg.clip, cfg.window)
        w = cfg.window
        # One window earlier as well: a trend reads the level a window before the origin.
        lo = max(int(at.min()) - w if at.size else self.n, w - 1)
        got = self._medians.get(key)
        if got is None or lo < got[0]:
            start, out = (self.n, np.full(self.n, np.nan)) if got is None else got
            if lo < start:
                # the differences over the windows asked for only, then a moving median
                # (exactly np.median of each window, NaN where one is missing) in O(log w) a
                # step: a fit's backtest reads it at every origin
                first = lo + 1 - w
                span = self.yf[first:start]
                if cfg.season:
                    span = span - self.profile(cfg, k0)[0][first:start]
                out[lo:start] = bn.move_median(span, w, min_count=w)[w - 1 :]
                start = lo
            got = (start, out)
            self._medians[key] = got
        res: FloatArray = got[1][at]
        return res


def _median_rows(stack: FloatArray) -> FloatArray:
    """Median over axis 0 (a handful of rows); NaN only before the warm-up, never read."""
    k = stack.shape[0]
    if k == 1:
        out1: FloatArray = stack[0]
        return out1
    if k == 2:
        out2: FloatArray = 0.5 * (stack[0] + stack[1])
        return out2
    out: FloatArray = np.median(stack, axis=0)
    return out


def lead_forecast(
    cache: SeriesCache,
    origins: IntArray,
    leads: IntArray | int,
    cfg: SeasonalConfig,
) -> FloatArray:
    """Forecast `y[origins + leads]` from `yf[: origin + 1]` for each pair.

    Origins must be at least `warmup(cfg, lead)` and `origins + leads < n + extra`.
    """
    if isinstance(leads, int):  # one lead (the backtests): one lag group, no bookkeeping
        k = max(1, -(-(leads + cfg.smooth) // cfg.season)) if cfg.season else 0
        return _forecast_group(cache, np.asarray(origins, dtype=np.int64), leads, cfg, k)
    o, h = np.broadcast_arrays(
        np.asarray(origins, dtype=np.int64), np.asarray(leads, dtype=np.int64)
    )
    out = np.empty(o.shape, dtype=np.float64)
    if not cfg.season:
        out[...] = _forecast_group(cache, o, h, cfg, 0)
        return out
    k0s = np.maximum(1, -((-(h + cfg.smooth)) // cfg.season))
    for k0 in np.unique(k0s):
        sel = k0s == k0
        out[sel] = _forecast_group(cache, o[sel], h[sel], cfg, int(k0))
    return out


def mean_forecast(
    cache: SeriesCache,
    origins: IntArray,
    leads: IntArray | int,
    cfgs: tuple[SeasonalConfig, ...],
) -> FloatArray:
    """The average of several configurations' forecasts (a combination is steadier than the
    single in-sample winner on noisy series)."""
    out = lead_forecast(cache, origins, leads, cfgs[0])
    for cfg in cfgs[1:]:
        out = out + lead_forecast(cache, origins, leads, cfg)
    res: FloatArray = out / len(cfgs)
    return res


def describe(cfgs: tuple[SeasonalConfig, ...]) -> str:
    if len(cfgs) == 1:
        return cfgs[0].describe()
    return "mean of [" + "; ".join(c.describe() for c in cfgs) + "]"


def _forecast_group(
    cache: SeriesCache, o: IntArray, h: IntArray | int, cfg: SeasonalConfig, k0: int
) -> FloatArray:
    w = cfg.window
    if cfg.season:
        prof, cprof = cache.profile(cfg, k0)
        target: FloatArray = prof[o + h]
    else:
        target = np.zeros(o.shape)
    if w == 0:
        return target
    cy = cache.cy
    ratio = cfg.ratio and cfg.season > 0

    def level(stop: IntArray, w: int = w) -> FloatArray:
        if cfg.robust and not ratio and w > 1:
            med: FloatArray = cache.rolling_median(cfg, k0, stop - 1)
            return med
        if cfg.reset and not cfg.season and w > 1:
            since = np.maximum(stop - w, cache.last_jump()[stop - 1])
            mean: FloatArray = (cy[stop] - cy[since]) / (stop - since)
            return mean
        # A one-point window is read directly: exact, where a cumsum difference would round.
        sy = cache.yf[stop - 1] if w == 1 else cy[stop] - cy[stop - w]
        if not cfg.season:
            d0: FloatArray = sy / w
            return d0
        ss = prof[stop - 1] if w == 1 else cprof[stop] - cprof[stop - w]
        if ratio:
            pos = ss > 1e-12 * np.maximum(np.abs(sy), 1.0)
            r: FloatArray = np.where(pos, sy / np.where(pos, ss, 1.0), 1.0)
            return r
        d: FloatArray = (sy - ss) / w
        return d

    stop = o + 1
    lev0 = level(stop)
    if cfg.damp:
        lev = lev0 + np.power(cfg.damp, h) * (level(stop, 1) - lev0)
    else:
        slope = (lev0 - level(stop - w)) / w if cfg.trend else np.zeros(o.shape)
        lev = lev0 + slope * ((w - 1) / 2.0 + h)
    res: FloatArray = target * np.maximum(lev, 0.0) if ratio else target + lev
    return res
