"""Would the forecast have woken a deployment at zero in time? Its wake, judged on its past.

A deployment allowed to sleep (`min_replicas: 0`) is woken by the forecast when it expects at
least one request before a cold start is over. MAE against the last value is the wrong test of
that: a series at zero most of the night is forecast perfectly by the last value (0), so a
model that knows the morning ramp earns no MAE skill, and one that hedges with a little load
all night would. What matters are the moments at rest: did the forecast expect the demand that
came (a *hit*: the first requests found Ready pods) and did it expect demand that did not come
(a *false wake*: a pod up for nothing)?

Scored here on the history, as the policy would read it: at every origin where the series has
been at zero for the lead (the deployment would be asleep), the wake's path over the next
`lead` steps, integrated, is the requests it expects; one or more is a wake. Demand came when
the actual requests over those steps are one or more.

The forecast earns the wake (`WakeScore.earned`) when it caught at least two wake-ups, did
better than chance (hit rate above false-wake rate: Peirce's skill score above 0, where never
waking and always waking both score 0), by more than chance explains (waking at random at the
false-wake rate would catch as many with probability under `SIGNIFICANCE`: strays at random
otherwise earn it now and then, the more so as the best of several shapes is taken), and its
false wakes keep a pod up for at most `MAX_FALSE_WAKE` of the idle time: a deployment is let
sleep to save that pod, and a wake that spends more than a tenth of it is not worth having.

The wake is its own small model (`WakeModel`), chosen by that score, not by MAE: the value a
day or a week ago at the same time (or the mean of the last two), as it was or averaged over
+-15 minutes, with no level term, because at rest every level term (the last value, a ratio to
the recent level) says 0 and never sees a ramp coming. `WithWake` fits it beside the scaler's own
model and puts its path and score on the forecast (`Forecast.wake`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Self

import numpy as np
import numpy.typing as npt

from app.forecasting._kernels import SeasonalConfig, SeriesCache, causal_fill, lead_forecast, warmup
from app.forecasting.base import (
    DEFAULT_QUANTILES,
    DEFAULT_SEASONS_S,
    Forecaster,
    ModelBeside,
    season_steps,
)
from app.forecasting.types import FloatArray, Forecast, History

__all__ = [
    "MAX_FALSE_WAKE",
    "MIN_HITS",
    "SIGNIFICANCE",
    "Wake",
    "WakeModel",
    "WakeScore",
    "WithWake",
    "rest_origins",
    "score_wakes",
]

MAX_FALSE_WAKE = 0.1  # the share of idle steps a forecast may wake for nothing
MIN_HITS = 2  # one lucky wake is not evidence
SIGNIFICANCE = 0.01  # chance of the hits by waking at random (8 shapes tried: < 0.08 overall)
_REQUEST = 1.0  # requests (units of the load signal) a window must hold to count as demand


@dataclass(frozen=True, slots=True)
class WakeScore:
    """What the wake rule did on the history's moments at rest (counts of origins)."""

    events: int  # origins at rest after which demand came within the lead
    hits: int  # ... and the forecast expected it
    quiet: int  # origins at rest after which nothing came
    false_wakes: int  # ... and the forecast expected demand anyway

    @property
    def hit_rate(self) -> float:
        return self.hits / self.events if self.events else 0.0

    @property
    def false_rate(self) -> float:
        return self.false_wakes / self.quiet if self.quiet else 0.0

    @property
    def skill(self) -> float:
        """Peirce's skill score: hit rate minus false-wake rate (0 for never and always)."""
        return self.hit_rate - self.false_rate

    @property
    def chance(self) -> float:
        """The probability of at least `hits` hits from waking at random at the false-wake rate
        (the binomial tail: how well luck alone would have done)."""
        p = max(self.false_rate, 1.0 / (self.quiet + 1))
        below = sum(
            math.comb(self.events, k) * p**k * (1.0 - p) ** (self.events - k)
            for k in range(min(self.hits, self.events + 1))
        )
        return max(0.0, 1.0 - below)

    @property
    def earned(self) -> bool:
        return (
            self.hits >= MIN_HITS
            and self.skill > 0
            and self.false_rate <= MAX_FALSE_WAKE
            and self.chance < SIGNIFICANCE
        )

    def describe(self) -> str:
        return (
            f"woke ahead of {self.hits} of {self.events} past wake-ups, for nothing at "
            f"{self.false_rate:.1%} of idle steps"
        )


@dataclass(frozen=True, slots=True, eq=False)
class Wake:
    """The path of the wake model `model` (from the forecast's start, the whole horizon) and
    how its wake did at rest on the history."""

    model: str
    score: WakeScore
    path: FloatArray


def rest_origins(y: FloatArray, lead: int) -> npt.NDArray[np.int64]:
    """Origins `o` (with `lead` steps after them in `y`) whose last `lead` values are all 0."""
    n = int(y.shape[0])
    if n <= 2 * lead:
        return np.zeros(0, dtype=np.int64)
    zero = (y == 0.0).astype(np.int64)
    run = np.convolve(zero, np.ones(lead, dtype=np.int64), mode="full")[:n]  # zeros ending at o
    o = np.arange(lead - 1, n - lead, dtype=np.int64)
    out: npt.NDArray[np.int64] = o[run[o] == lead]
    return out


def score_wakes(
    y: FloatArray,
    step_s: float,
    lead: int,
    origins: npt.NDArray[np.int64],
    paths: Callable[[npt.NDArray[np.int64]], FloatArray],
) -> WakeScore | None:
    """The wake rule on `origins` (see `rest_origins`): `paths(origins)` gives, per origin, the
    forecast of the next `lead` steps (rows). None when there is no moment at rest to judge or
    demand never followed one (nothing to say either way)."""
    if origins.size == 0 or not (math.isfinite(step_s) and step_s > 0):
        return None
    ahead = origins[:, None] + np.arange(1, lead + 1, dtype=np.int64)[None, :]
    actual = y[ahead]
    ok = np.all(np.isfinite(actual), axis=1)
    if not ok.any():
        return None
    came = np.sum(actual, axis=1) * step_s >= _REQUEST
    forecast = paths(origins)
    expected = np.sum(np.maximum(np.nan_to_num(forecast, nan=0.0), 0.0), axis=1) * step_s
    woke = expected >= _REQUEST
    came, woke = came[ok], woke[ok]
    events = int(came.sum())
    if events == 0:
        return None
    return WakeScore(
        events=events,
        hits=int((came & woke).sum()),
        quiet=int((~came).sum()),
        false_wakes=int((woke & ~came).sum()),
    )


_SEASONS_BACK = (1, 2)  # the value one season ago, or the mean of the last two
# The profile as it was, or averaged over +-15 minutes: a morning ramp starts a little earlier
# or later each week, and one stray request is spread thin (a wake for a whole window of it).
_SMOOTH_S = (0.0, 900.0)


class WakeModel:
    """The seasonal shape whose wake from zero did best at rest on the history (see the module
    docstring); `predict` gives its path from the end of the history, with its score."""

    def __init__(self, *, lead: int, seasons_s: Sequence[float] = DEFAULT_SEASONS_S) -> None:
        self.lead = max(1, int(lead))
        self.seasons_s = tuple(seasons_s)
        self._cfg: SeasonalConfig | None = None
        self._score: WakeScore | None = None
        self._cache: SeriesCache | None = None
        self._fitted = False

    @property
    def score(self) -> WakeScore | None:
        return self._score

    @property
    def config(self) -> SeasonalConfig | None:
        return self._cfg

    def fit(self, history: History) -> Self:
        self._cfg, self._score, self._fitted = None, None, True
        self._cache = self._series(history)
        if self._cache is None:
            return self
        y = self._cache.yf
        origins = rest_origins(y, self.lead)
        if origins.size == 0:
            return self
        best: tuple[float, SeasonalConfig, WakeScore] | None = None
        for cfg in self._candidates(history.step_s, int(y.shape[0])):
            usable = origins[origins >= warmup(cfg, self.lead)]
            score = score_wakes(y, history.step_s, self.lead, usable, self._paths(cfg))
            if score is None:
                continue
            # the clearest wake first: earned, then least explained by chance; ties go to the
            # simpler (earlier) candidate
            rank = (0.0 if score.earned else 1.0) + score.chance
            if best is None or rank < best[0]:
                best = (rank, cfg, score)
        if best is not None:
            _, self._cfg, self._score = best
        return self

    def refresh(self, history: History) -> Self:
        """Newer data, the same choice (a full fit before the first)."""
        if not self._fitted:
            return self.fit(history)
        self._cache = self._series(history)
        return self

    def predict(self, horizon: int) -> Wake | None:
        """The chosen shape's path over `horizon` steps from the end of the history."""
        cache, cfg, score = self._cache, self._cfg, self._score
        if cache is None or cfg is None or score is None or cache.n - 1 < warmup(cfg, horizon):
            return None
        cache.ensure_extra(horizon)
        h = np.arange(1, horizon + 1, dtype=np.int64)
        path = lead_forecast(cache, np.full(horizon, cache.n - 1, dtype=np.int64), h, cfg)
        return Wake(f"wake:{cfg.describe()}", score, np.maximum(np.nan_to_num(path), 0.0))

    def _series(self, history: History) -> SeriesCache | None:
        values = history.values
        if len(history) == 0 or not np.isfinite(values).any():
            return None
        # gaps filled from the past only (a day earlier, else the last value): leak-free
        daily = season_steps(DEFAULT_SEASONS_S[0], history.step_s)
        return SeriesCache(causal_fill(values, daily), extra=self.lead)

    def _candidates(self, step_s: float, n: int) -> list[SeasonalConfig]:
        out = []
        for season_s in sorted(self.seasons_s):
            m = season_steps(season_s, step_s)
            for k in _SEASONS_BACK:
                for smooth_s in _SMOOTH_S:
                    radius = round(smooth_s / step_s)
                    cfg = SeasonalConfig(season=m, seasons=k, smooth=radius, window=0)
                    if m > 0 and radius < m // 4 and warmup(cfg, self.lead) < n - self.lead:
                        out.append(cfg)
        return list(dict.fromkeys(out))  # a radius of 0 steps twice on a coarse grid

    def _paths(self, cfg: SeasonalConfig) -> Callable[[npt.NDArray[np.int64]], FloatArray]:
        assert self._cache is not None
        cache, lead = self._cache, self.lead

        def paths(origins: npt.NDArray[np.int64]) -> FloatArray:
            h = np.tile(np.arange(1, lead + 1, dtype=np.int64), origins.shape[0])
            flat = lead_forecast(cache, np.repeat(origins, lead), h, cfg)
            out: FloatArray = flat.reshape(origins.shape[0], lead)
            return out

        return paths


class WithWake(ModelBeside):
    """`model`, plus the `WakeModel` fitted beside it: its forecasts carry `wake` (a scaler
    allowed to sleep reads it at zero; see app.policy.zero). The wake is judged on all the
    history it is given; `model` on its last `model_span_s` (the span a scaler that never
    sleeps reads), so the longer history costs the model's fit nothing."""

    def __init__(self, model: Forecaster, *, lead: int, model_span_s: float | None = None) -> None:
        super().__init__(model)
        self._wake = WakeModel(lead=lead)
        self._span_s = model_span_s  # the model sees only this much of the latest history

    def _recent(self, history: History) -> History:
        if self._span_s is None or history.step_s <= 0:
            return history
        return history.tail(max(2, round(self._span_s / history.step_s)))

    @property
    def chosen(self) -> str | None:
        """The model `auto` serves (None for a model named on its own)."""
        chosen = getattr(self.model, "chosen", None)
        return chosen if isinstance(chosen, str) else None

    def fit(self, history: History) -> Self:
        self.model = self.model.fit(self._recent(history))
        self._wake = self._wake.fit(history)
        return self

    def refresh(self, history: History) -> Self:
        self.model = self.model.refresh(self._recent(history))
        self._wake = self._wake.refresh(history)
        return self

    def predict(self, horizon: int, quantiles: Sequence[float] = DEFAULT_QUANTILES) -> Forecast:
        forecast = self.model.predict(horizon, quantiles)
        if forecast.failed is not None:
            return forecast
        return dataclasses.replace(forecast, wake=self._wake.predict(horizon))
