"""The fast models: `naive`, `seasonal_naive` and `robust_seasonal`.

All three are members of one family (`SeasonalConfig`) evaluated by the same vectorised kernel,
so each fit backtests itself at the configured lead over the last `eval_points` origins in a few
milliseconds; that backtest gives the score `auto` compares and the residuals the bands come
from. `robust_seasonal` picks its own configurations (season, how many past seasons to take the
median of, smoothing, level window, ratio or difference, trend) by that same backtest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Self

import numpy as np
import numpy.typing as npt

from app.forecasting._kernels import (
    SeasonalConfig,
    SeriesCache,
    causal_fill,
    lead_forecast,
    mean_forecast,
    warmup,
)
from app.forecasting.base import (
    DEFAULT_QUANTILES,
    DEFAULT_SEASONS_S,
    check_horizon,
    check_quantiles,
    failed_forecast,
    season_steps,
)
from app.forecasting.calibration import (
    MIN_RESIDUALS,
    Calibration,
    calibration_leads,
    relative_errors,
    scale_floor,
)
from app.forecasting.types import (
    BacktestScore,
    ConfigError,
    FloatArray,
    Forecast,
    History,
    NotFittedError,
)

__all__ = [
    "AdaptiveForecaster",
    "NaiveForecaster",
    "RobustSeasonalForecaster",
    "SeasonalNaiveForecaster",
    "eval_window",
    "trimmed_mean",
]

DEFAULT_EVAL_POINTS = 1000
LEVEL_WINDOWS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
# The damped members' usual-level windows and decay factors per step (see `_damped`).
DAMPED_WINDOWS: tuple[int, ...] = (32, 64)
DAMP_FACTORS: tuple[float, ...] = (0.8, 0.9)
# The windows of the levels that restart at a jump (`SeasonalConfig.reset`).
RESET_WINDOWS: tuple[int, ...] = (16, 64)
# Median levels are offered from this window up (the median of 1 or 2 points is the mean).
ROBUST_MIN_WINDOW = 4
# A more complex candidate must beat the simplest near-best one by this much to lead the
# ensemble: tiny wins on one window are mostly noise.
SIMPLICITY_MARGIN = 0.005
MIN_SPLIT = 40  # eval windows shorter than this are not cross-validated (noted)
# Candidates are compared on the mean of their smallest 95 % absolute errors (trimmed MAE): on
# bursty series (tweets, LLM traffic) plain MAE lets one burst in the window pick a model that
# loses on the quiet days after. Measured on the week *before* twitter's scored one, `auto` vs
# naive at 5 / 60 min: plain MAE -22 % / -25 %, trimmed -12 % / +20 %; errors capped at the 95th
# percentile instead (winsorized) -14 % / +23 %, a tie, so the trimmed mean stayed.
TRIM = 0.05
ENSEMBLE_POOL = 24  # members are picked among this many best single candidates
ENSEMBLE_MIN_GAIN = 0.002  # a member joins the average only if it cuts the MAE by 0.2 %


def _damped(season: int = 0, seasons: int = 1) -> list[SeasonalConfig]:
    """The usual level over a long window (a mean, a median that a crowd inside it does not
    move, or a ratio to the profile) plus the last point's departure from it, decaying by a
    factor per step ahead: an excursion (a flash crowd, a noisy swing) relaxes back to the
    usual level instead of being carried whole over the horizon."""
    forms = ((False, False), (False, True)) + (((True, False),) if season else ())
    return [
        SeasonalConfig(
            season=season, seasons=seasons, window=w, ratio=ratio, robust=robust, damp=damp
        )
        for w in DAMPED_WINDOWS
        if not season or w < season
        for ratio, robust in forms
        for damp in DAMP_FACTORS
    ]


def eval_window(n: int, lead: int, eval_points: int) -> int:
    """How many of the latest origins a fit is scored on (the same rule for every model, so
    their scores are comparable): a quarter of the history, at least 20, at most `eval_points`.
    """
    avail = n - lead
    if avail <= 0:
        return 0
    return min(eval_points, max(avail // 4, min(avail, 20)))


Fold = tuple[tuple[SeasonalConfig, ...], int, int]  # configs, first and end target index


def _last(cfgs: tuple[SeasonalConfig, ...], y: FloatArray, n_eval: int) -> list[Fold]:
    """One fold: the last `n_eval` targets (no choice was made, nothing to cross-validate)."""
    n = int(y.shape[0])
    return [(cfgs, n - n_eval, n)]


def trimmed_mean(err: FloatArray, axis: int = -1) -> FloatArray:
    """Mean of the smallest 95 % along `axis`: one burst does not decide, the rest all count."""
    k = max(1, int(np.ceil(err.shape[axis] * (1.0 - TRIM))))
    part = np.partition(err, k - 1, axis=axis)
    smallest = [slice(None)] * part.ndim
    smallest[axis] = slice(0, k)  # a view: the model choice calls this a few hundred times a fit
    out: FloatArray = np.mean(part[tuple(smallest)], axis=axis)
    return out


def _score(actual: FloatArray, forecast: FloatArray, lead: int) -> BacktestScore | None:
    ok = np.isfinite(actual) & np.isfinite(forecast)
    if not ok.any():
        return None
    a = actual[ok]
    err = np.abs(a - forecast[ok])
    return BacktestScore(
        lead=lead,
        mae=float(np.mean(err)),
        n=int(ok.sum()),
        scale=float(np.mean(np.abs(a))),
        mdae=float(np.median(err)),
        trimmed=float(trimmed_mean(err)),
    )


class _FastModel:
    """Shared fit/predict for models of the `SeasonalConfig` family."""

    name: str = ""

    def __init__(
        self,
        *,
        lead: int = 1,
        eval_points: int = DEFAULT_EVAL_POINTS,
        seasons_s: Sequence[float] = DEFAULT_SEASONS_S,
    ) -> None:
        self.lead = check_horizon(lead)
        if eval_points < 1:
            raise ConfigError(f"eval_points must be >= 1, got {eval_points!r}")
        self.eval_points = int(eval_points)
        self.seasons_s = tuple(float(s) for s in seasons_s)
        if any(not s > 0 for s in self.seasons_s):
            raise ConfigError(f"seasons must be positive seconds, got {seasons_s!r}")
        self._reset()

    def _reset(self) -> None:
        self._fitted = False
        self._failed: str | None = None
        self._notes: tuple[str, ...] = ()
        self._backtest: BacktestScore | None = None
        self._cache: SeriesCache | None = None
        self._cfgs: tuple[SeasonalConfig, ...] = ()
        self._calib: Calibration | None = None
        self._next_start = 0.0
        self._step_s = 1.0
        self._nonnegative = True
        self._fill_season = 0

    # -- what the fit found -------------------------------------------------------------

    @property
    def failed(self) -> str | None:
        return self._failed

    @property
    def notes(self) -> tuple[str, ...]:
        return self._notes

    @property
    def backtest(self) -> BacktestScore | None:
        return self._backtest

    @property
    def config(self) -> tuple[SeasonalConfig, ...]:
        """The configurations the fit settled on, averaged (empty before a successful fit)."""
        return self._cfgs

    # -- fit ------------------------------------------------------------------------------

    def _forecast(
        self,
        cache: SeriesCache,
        origins: npt.NDArray[np.int64],
        leads: npt.NDArray[np.int64] | int,
        cfgs: tuple[SeasonalConfig, ...],
    ) -> FloatArray:
        """The forecast of `y[o + lead]` from `y[: o + 1]`: the configurations' average. One
        function for the backtest, the bands and the live forecast."""
        return mean_forecast(cache, origins, leads, cfgs)

    def _choose(
        self, cache: SeriesCache, y: FloatArray, n_eval: int, seasons: list[int]
    ) -> tuple[tuple[SeasonalConfig, ...], list[Fold], list[str]]:
        """The configurations to serve, the folds that score them out of sample, notes."""
        raise NotImplementedError

    def fit(self, history: History) -> Self:
        self._reset()
        self._fitted = True
        self._step_s = history.step_s
        self._next_start = history.end + history.step_s if len(history) else history.start
        values = history.values
        finite = np.isfinite(values)
        if not finite.any():
            self._failed = "no finite values in the history"
            return self
        first = int(np.argmax(finite))
        y = values[first:]
        n = int(y.shape[0])
        notes: list[str] = []
        if first:
            notes.append(f"ignored {first} empty points at the start of the history")
        seasons = sorted({m for s in self.seasons_s if (m := season_steps(s, history.step_s)) > 0})
        self._fill_season = next((m for m in seasons if n >= 2 * m), 0)
        yf = causal_fill(y, self._fill_season)
        self._nonnegative = bool(np.nanmin(y) >= 0.0)
        cache = SeriesCache(yf, extra=self.lead)
        n_eval = eval_window(n, self.lead, self.eval_points)
        cfgs, folds, why = self._choose(cache, y, n_eval, seasons)
        notes.extend(why)
        self._cache, self._cfgs = cache, cfgs
        self._score_and_calibrate(cache, y, folds, notes)
        self._notes = tuple(notes)
        return self

    def refresh(self, history: History) -> Self:
        """Condition on newer data without re-choosing: keeps the configuration and bands.

        About a millisecond, so a cached model follows the latest observation every control
        tick while full `fit`s (which re-run the backtest) happen on the refit cadence. Falls
        back to a full fit when there is no usable fit or the history no longer covers the
        configuration's warm-up (e.g. a different step).
        """
        if (
            not self._fitted
            or self._failed is not None
            or not self._cfgs
            or not math.isclose(history.step_s, self._step_s)
        ):
            return self.fit(history)
        finite = np.isfinite(history.values)
        if not finite.any():
            return self.fit(history)
        first = int(np.argmax(finite))
        y = history.values[first:]
        n = int(y.shape[0])
        if n <= max(warmup(c, self.lead) for c in self._cfgs):
            return self.fit(history)
        self._cache = SeriesCache(causal_fill(y, self._fill_season), extra=self.lead)
        self._next_start = history.end + history.step_s
        self._nonnegative = bool(np.nanmin(y) >= 0.0)
        return self

    def _score_and_calibrate(
        self, cache: SeriesCache, y: FloatArray, folds: list[Fold], notes: list[str]
    ) -> None:
        """Backtest score at the lead and residuals at a few leads, over every fold's targets
        (each fold forecast by the configuration chosen without it)."""
        floor = scale_floor(y)
        leads, errors = [], []
        for lead in calibration_leads(self.lead):
            actual_parts, fc_parts = [], []
            for cfgs, t_lo, t_hi in folds:
                lo = max(t_lo - lead, *(warmup(c, lead) for c in cfgs))
                o = np.arange(lo, max(t_hi - lead, lo), dtype=np.int64)
                if o.size:
                    fc_parts.append(self._forecast(cache, o, lead, cfgs))
                    actual_parts.append(y[o + lead])
            if sum(p.shape[0] for p in fc_parts) < MIN_RESIDUALS and lead < self.lead:
                # A history too short to backtest the lead itself can still measure a shorter
                # one: every origin the served configuration can forecast from (its choice saw
                # these points; its forecasts of them did not).
                lo = max(warmup(c, lead) for c in self._cfgs)
                o = np.arange(lo, max(int(y.shape[0]) - lead, lo), dtype=np.int64)
                fc_parts = [self._forecast(cache, o, lead, self._cfgs)] if o.size else []
                actual_parts = [y[o + lead]] if o.size else []
            if not fc_parts:
                continue
            f, actual = np.concatenate(fc_parts), np.concatenate(actual_parts)
            if lead == self.lead:
                self._backtest = _score(actual, f, lead)
            errors.append(np.sort(relative_errors(actual, f, floor)))
            leads.append(lead)
        self._calib, dropped = Calibration(tuple(leads), tuple(errors), floor).measured()
        if dropped:
            notes.append(
                f"too few backtest residuals at lead(s) {', '.join(map(str, dropped))}: bands "
                f"past lead {self._calib.leads[-1]} widen like sqrt(lead) from it"
            )
        if not self._calib.usable():
            notes.append(
                f"only {self._calib.n} backtest residuals: bands are uncalibrated (equal the mean)"
            )
        if self._backtest is None:
            notes.append("history too short to backtest at the lead time")

    # -- predict --------------------------------------------------------------------------

    def predict(self, horizon: int, quantiles: Sequence[float] = DEFAULT_QUANTILES) -> Forecast:
        horizon = check_horizon(horizon)
        qs = check_quantiles(quantiles)
        if not self._fitted:
            raise NotFittedError(f"{self.name}: predict() called before fit()")
        if self._failed is not None or self._cache is None or not self._cfgs:
            return failed_forecast(
                self.name,
                self._next_start,
                self._step_s,
                self._failed or "not fitted",
                self._notes,
            )
        cache, cfgs = self._cache, self._cfgs
        cache.ensure_extra(horizon)
        h = np.arange(1, horizon + 1, dtype=np.int64)
        mean = self._forecast(cache, np.full(horizon, cache.n - 1, dtype=np.int64), h, cfgs)
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


class NaiveForecaster(_FastModel):
    """The last value, repeated (gaps carried forward). The baseline every model must beat."""

    name = "naive"

    def _choose(
        self, cache: SeriesCache, y: FloatArray, n_eval: int, seasons: list[int]
    ) -> tuple[tuple[SeasonalConfig, ...], list[Fold], list[str]]:
        cfgs = (SeasonalConfig(window=1),)
        return cfgs, _last(cfgs, y, n_eval), []


class SeasonalNaiveForecaster(_FastModel):
    """The value one season earlier (`season_s`, daily by default).

    With less than a season (plus the lead and the backtest window) of history it is the naive
    forecast, and says so in `notes`.
    """

    name = "seasonal_naive"

    def __init__(
        self,
        *,
        lead: int = 1,
        eval_points: int = DEFAULT_EVAL_POINTS,
        season_s: float = 86_400.0,
        seasons_s: Sequence[float] = DEFAULT_SEASONS_S,
    ) -> None:
        super().__init__(lead=lead, eval_points=eval_points, seasons_s=seasons_s)
        if not season_s > 0:
            raise ConfigError(f"season_s must be positive, got {season_s!r}")
        self.season_s = float(season_s)

    def _choose(
        self, cache: SeriesCache, y: FloatArray, n_eval: int, seasons: list[int]
    ) -> tuple[tuple[SeasonalConfig, ...], list[Fold], list[str]]:
        naive = (SeasonalConfig(window=1),)
        m = season_steps(self.season_s, self._step_s)
        if m == 0:
            return (
                naive,
                _last(naive, y, n_eval),
                [
                    f"season {self.season_s:g} s is not a whole number of {self._step_s:g} s "
                    "steps: naive"
                ],
            )
        cfg = SeasonalConfig(season=m, seasons=1, window=0)
        n = int(y.shape[0])
        if warmup(cfg, self.lead) > n - self.lead - max(n_eval, 1):
            return (
                naive,
                _last(naive, y, n_eval),
                [
                    f"history of {n} points is too short for a season of {m} points plus the "
                    f"lead and the backtest: naive"
                ],
            )
        return (cfg,), _last((cfg,), y, n_eval), []


class RobustSeasonalForecaster(_FastModel):
    """Median seasonal profile x current level (+ optional trend), configured by backtest.

    The profile is the median of the last 1–3 daily or weekly seasons (a spike in one of them
    does not move it); the level ratio over the last few points follows restarts and level
    shifts; a lightly smoothed profile suits noisy counts. Every candidate is scored at the
    lead on the same origins; the served forecast is the average of a few of them picked by
    greedy forward selection (an average is steadier than one in-sample winner on noisy
    series). The pick is two-fold cross-validated so its score and residuals are out of
    sample. Without enough history for a season the candidates are level/trend only (noted).
    """

    name = "robust_seasonal"
    max_members = 5

    def candidates(self, n: int, n_eval: int, seasons: list[int]) -> list[SeasonalConfig]:
        """Every configuration that can be backtested on `n_eval` origins of `n` points."""
        limit = n - self.lead - max(n_eval, 1)
        out: list[SeasonalConfig] = []
        for w in LEVEL_WINDOWS:
            for trend in (False, True):
                for robust in (False, True) if w >= ROBUST_MIN_WINDOW else (False,):
                    out.append(SeasonalConfig(window=w, trend=trend, robust=robust))
        for m in seasons:
            # 1 (the season itself) or the median of 3; never 2, whose "median" is a mean that
            # carries half of any burst into the profile.
            ks = [
                k for k in (1, 3) if warmup(SeasonalConfig(season=m, seasons=k), self.lead) <= limit
            ]
            # A single past season copies any burst it held: offer it clipped as well (the
            # median of three already ignores a burst in one of them).
            variants = [(k, clip) for k in ks for clip in ((False, True) if k == 1 else (False,))]
            for k, clip in variants:
                for smooth in (0, 2):
                    for w in LEVEL_WINDOWS:
                        if w >= m:
                            break
                        robust_too = w >= ROBUST_MIN_WINDOW
                        for ratio, robust in ((False, False), (True, False), (False, True)):
                            if robust and not robust_too:
                                continue
                            for trend in (False, True):
                                out.append(
                                    SeasonalConfig(
                                        season=m,
                                        seasons=k,
                                        smooth=smooth,
                                        window=w,
                                        ratio=ratio,
                                        trend=trend,
                                        clip=clip,
                                        robust=robust,
                                    )
                                )
            for k in ks:
                out.extend(_damped(season=m, seasons=k))
        out.extend(_damped())
        out.extend(SeasonalConfig(window=w, reset=True) for w in RESET_WINDOWS)
        return [c for c in out if warmup(c, self.lead) <= limit]

    def _choose(
        self, cache: SeriesCache, y: FloatArray, n_eval: int, seasons: list[int]
    ) -> tuple[tuple[SeasonalConfig, ...], list[Fold], list[str]]:
        n = int(y.shape[0])
        notes: list[str] = []
        lead = self.lead
        cands = self.candidates(n, n_eval, seasons)
        if not any(c.season for c in cands):
            notes.append(
                f"history of {n} points is too short for a daily or weekly profile: "
                "level and trend only"
            )
        naive = (SeasonalConfig(window=1),)
        if n_eval == 0 or not cands:
            return naive, _last(naive, y, n_eval), [*notes, "nothing to backtest on: naive"]
        if not self._nonnegative:
            cands = [c for c in cands if not c.ratio]
        t = np.arange(n - n_eval, n, dtype=np.int64)  # targets
        actual = y[t]
        ok = np.isfinite(actual)
        if not ok.any():
            notes.append("no actuals in the backtest window: naive")
            return naive, _last(naive, y, n_eval), notes
        fc = np.stack([lead_forecast(cache, t - lead, lead, c) for c in cands])

        def pick(cols: npt.NDArray[np.bool_]) -> tuple[SeasonalConfig, ...]:
            return tuple(cands[i] for i in self._select(fc[:, cols], actual[cols]))

        final = pick(ok)
        if n_eval < MIN_SPLIT:
            notes.append(f"only {n_eval} backtest origins: chosen and scored on the same ones")
            return final, [(final, n - n_eval, n)], notes
        # Two-fold cross-validation of the choice itself: each half is scored (and gives
        # residuals) with what the other half chose, so the score `auto` compares and the
        # bands are out of sample. The served choice uses both halves.
        half = n_eval // 2
        older = ok & (np.arange(n_eval) < half)
        newer = ok & (np.arange(n_eval) >= half)
        folds: list[Fold] = []
        if older.any() and newer.any():
            folds = [
                (pick(newer), n - n_eval, n - n_eval + half),
                (pick(older), n - n_eval + half, n),
            ]
        else:
            folds = [(final, n - n_eval, n)]
        return final, folds, notes

    def _select(self, fc: FloatArray, actual: FloatArray) -> list[int]:
        """Greedy forward selection with replacement (Caruana et al. 2004): start from the
        best (simplest within 0.5 %), add whichever candidate most lowers the average's
        trimmed MAE (see TRIM)."""
        maes = trimmed_mean(np.abs(fc - actual), axis=1)
        best = float(np.nanmin(maes))
        first = int(np.flatnonzero(maes <= best * (1.0 + SIMPLICITY_MARGIN))[0])
        members = [first]
        total = fc[first].copy()
        current = float(maes[first])
        pool = np.argsort(maes, kind="stable")[:ENSEMBLE_POOL]  # the rest would rarely help
        pool_fc = fc[pool]
        while len(members) < self.max_members:
            k = len(members)
            trial = trimmed_mean(np.abs((total + pool_fc) / (k + 1) - actual), axis=1)
            j = int(np.argmin(trial))
            if not float(trial[j]) < current * (1.0 - ENSEMBLE_MIN_GAIN):
                break
            members.append(int(pool[j]))
            total += pool_fc[j]
            current = float(trial[j])
        return sorted(members)


SWITCH_WINDOW = 48  # steps of recent errors `adaptive` compares its two arms on


class AdaptiveForecaster(RobustSeasonalForecaster):
    """`robust_seasonal`, or the last value at origins where the last value's forecasts at the
    lead were better over the last SWITCH_WINDOW steps.

    A smoothed seasonal level wins on calm stretches of a bursty series and lags through a
    burst, where the last value tracks it; which of the two has lately been right is known at
    every origin (their errors at the lead on targets already seen), so the switch is causal
    and the backtest scores it like any other forecast.
    """

    name = "adaptive"

    def _forecast(
        self,
        cache: SeriesCache,
        origins: npt.NDArray[np.int64],
        leads: npt.NDArray[np.int64] | int,
        cfgs: tuple[SeasonalConfig, ...],
    ) -> FloatArray:
        smooth = mean_forecast(cache, origins, leads, cfgs)
        naive = SeasonalConfig(window=1)
        if cfgs == (naive,) or origins.size == 0:
            return smooth
        lead, k = self.lead, SWITCH_WINDOW
        first = max(warmup(c, lead) for c in cfgs) + lead  # first target both arms forecast
        t0 = max(int(origins.min()) - k + 1, first)
        t1 = int(origins.max()) + 1
        if t1 <= t0:
            return smooth
        t = np.arange(t0, t1, dtype=np.int64)
        y = cache.yf
        # naive error minus smoothed error per target; its sum over the window ending at each
        # origin says which arm has lately been better.
        d = np.abs(y[t] - y[t - lead]) - np.abs(y[t] - mean_forecast(cache, t - lead, lead, cfgs))
        cd = np.concatenate(([0.0], np.cumsum(d)))
        hi = np.clip(origins + 1 - t0, 0, t.size)
        lo = np.clip(origins + 1 - k - t0, 0, t.size)
        use_naive = (hi > lo) & (cd[hi] - cd[lo] < 0.0)
        if not use_naive.any():
            return smooth
        last = lead_forecast(cache, origins, leads, naive)
        out: FloatArray = np.where(use_naive, last, smooth)
        return out
