"""`auto`: per series, the candidate whose backtest at the caller's lead time is best.

Every candidate backtests itself on the same latest origins during its own fit (see
`eval_window`), so choosing is a comparison of numbers already computed. Refitting the same
`AutoForecaster` as data arrives re-checks the choice.

The general model (`prefer`; by default `robust_seasonal`, and `adaptive` one step ahead: see
`general_model`) is served unless another candidate
beats it by `switch_margin` on both the typical step (trimmed MAE) and overall (MAE, bursts
included). Its pool holds the last value and the seasonal shapes, and its score is
cross-validated (it already pays for its own choice), so a simpler model that wins one backtest
window on one measure is more likely lucky than better: the trimmed MAE alone hands a bursty
series to the last value, which then carries a burst an hour forward. Measured on four weeks of
twitter_volume_aapl, two leads and four refit phases (docs/forecasting.md), this rule matched or
beat "best trimmed score, with hysteresis on the last choice" in 28 of 32 cases. Without the
preferred model, the last choice is kept within the margin, so the served model does not flap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Self

from app.forecasting.base import (
    DEFAULT_QUANTILES,
    Forecaster,
    check_horizon,
    check_quantiles,
    failed_forecast,
)
from app.forecasting.models import (
    DEFAULT_EVAL_POINTS,
    AdaptiveForecaster,
    NaiveForecaster,
    RobustSeasonalForecaster,
    SeasonalNaiveForecaster,
)
from app.forecasting.types import (
    BacktestScore,
    ConfigError,
    Forecast,
    History,
    NotFittedError,
)

__all__ = ["NO_WORSE", "AutoForecaster", "default_candidates", "general_model"]

NO_WORSE = 0.02  # a model this much worse than the last value (backtest MAE) is not served

_GENERAL = "general"  # `prefer`'s default: the general model of the default candidates


def general_model(lead: int) -> str:
    """`adaptive` one step ahead, `robust_seasonal` further.

    `adaptive` is `robust_seasonal` that serves the last value where the last value has lately
    been better; one step ahead that tracks a burst with one step's lag, and on four weeks of
    twitter it gained 9-12 % over naive every week where robust_seasonal ranged -12 to +16 %.
    Further ahead the last value carries a burst for the whole lead: at 1 hour `adaptive` fell
    to -1 % on a week robust_seasonal gained 24 % (docs/forecasting.md)."""
    return "adaptive" if lead == 1 else "robust_seasonal"


def default_candidates(lead: int) -> tuple[str, ...]:
    return ("naive", "seasonal_naive", general_model(lead))


def _key(score: BacktestScore) -> float:
    """Trimmed MAE (smallest 95 % of errors; see models.TRIM), MAE where a model has none."""
    return score.trimmed if math.isfinite(score.trimmed) else score.mae


class AutoForecaster:
    """Fits every candidate and serves the best by backtest (trimmed) MAE at `lead`, unless
    it fails to beat `prefer` by `switch_margin` on trimmed MAE and MAE (without `prefer`:
    unless it beats the last choice by less than the margin).

    `candidates` names models known to `make_forecaster` (prophet may be added; it costs a
    second or so per fit). `prefer=None` anchors on the last choice only. A failed candidate
    is skipped with a note; when all fail, the forecast is failed with every reason.
    """

    name = "auto"

    def __init__(
        self,
        *,
        lead: int = 1,
        eval_points: int = DEFAULT_EVAL_POINTS,
        candidates: Sequence[str] | None = None,
        switch_margin: float = 0.05,
        prefer: str | None = _GENERAL,
        factory: Callable[[str], Forecaster] | None = None,
    ) -> None:
        self.lead = check_horizon(lead)
        if candidates is None:
            candidates = default_candidates(self.lead)
        if not candidates:
            raise ConfigError("auto needs at least one candidate")
        if "auto" in candidates:
            raise ConfigError("auto cannot be its own candidate")
        if not 0.0 <= switch_margin < 1.0:
            raise ConfigError(f"switch_margin must be in [0, 1), got {switch_margin!r}")
        self.eval_points = eval_points
        self.candidates = tuple(candidates)
        self.switch_margin = float(switch_margin)
        if prefer == _GENERAL:
            prefer = general_model(self.lead)
            if prefer not in self.candidates:  # candidates given without it: none preferred
                prefer = None
        if prefer is not None and prefer not in self.candidates:
            raise ConfigError(f"prefer {prefer!r} is not one of the candidates")
        self.prefer = prefer
        self._factory = factory or self._default_factory
        for c in self.candidates:  # fail on a bad name now, not at the first refit
            self._factory(c)
        self._chosen: Forecaster | None = None
        self._chosen_name: str | None = None
        self._scores: dict[str, BacktestScore | None] = {}
        self._fitted = False
        self._failed: str | None = None
        self._notes: tuple[str, ...] = ()
        self._next_start = 0.0
        self._step_s = 1.0

    def _default_factory(self, name: str) -> Forecaster:
        if name == "naive":
            return NaiveForecaster(lead=self.lead, eval_points=self.eval_points)
        if name == "seasonal_naive":
            return SeasonalNaiveForecaster(lead=self.lead, eval_points=self.eval_points)
        if name == "robust_seasonal":
            return RobustSeasonalForecaster(lead=self.lead, eval_points=self.eval_points)
        if name == "adaptive":
            return AdaptiveForecaster(lead=self.lead, eval_points=self.eval_points)
        if name == "prophet":
            from app.forecasting.prophet_model import ProphetForecaster

            return ProphetForecaster(lead=self.lead, eval_points=self.eval_points)
        raise ConfigError(f"unknown candidate model {name!r}")

    @property
    def chosen(self) -> str | None:
        """The model now served (None before a successful fit)."""
        return self._chosen_name

    @property
    def scores(self) -> dict[str, BacktestScore | None]:
        """Every candidate's backtest at the lead from the last fit (None: not scorable)."""
        return dict(self._scores)

    @property
    def failed(self) -> str | None:
        return self._failed

    @property
    def notes(self) -> tuple[str, ...]:
        return self._notes

    @property
    def backtest(self) -> BacktestScore | None:
        return self._scores.get(self._chosen_name or "")

    def fit(self, history: History) -> Self:
        self._fitted = True
        self._step_s = history.step_s
        self._next_start = history.end + history.step_s if len(history) else history.start
        fitted: dict[str, Forecaster] = {}
        failures: list[str] = []
        self._scores = {}
        for name in self.candidates:
            model = self._factory(name).fit(history)
            if model.failed is not None:
                failures.append(f"{name}: {model.failed}")
                continue
            fitted[name] = model
            self._scores[name] = model.backtest
        notes = [f"candidate {f}" for f in failures]
        if not fitted:
            self._failed = "; ".join(failures) or "no candidate could be fitted"
            self._chosen, self._chosen_name = None, None
            self._notes = tuple(notes)
            return self
        self._failed = None
        scored = {n: _key(s) for n, s in self._scores.items() if s is not None}
        previous = self._chosen_name
        if not scored:
            # Nothing could be backtested: prefer the simplest model that fitted.
            name = next(iter(fitted))
            notes.append(f"no candidate could be backtested: using {name}")
        else:
            name = min(scored, key=lambda k: scored[k])
            if self.prefer in scored:
                name = self._against_preferred(name, self.prefer, notes)
            elif (
                previous in scored
                and previous != name
                and scored[name] >= scored[previous] * (1.0 - self.switch_margin)
            ):
                notes.append(
                    f"kept {previous}: {name} is better by less than "
                    f"{self.switch_margin:.0%} at lead {self.lead}"
                )
                name = previous
            if previous is not None and previous != name:
                notes.append(f"switched from {previous} to {name}")
        name = self._no_worse_than_naive(name, notes)
        self._chosen, self._chosen_name = fitted[name], name
        notes.extend(fitted[name].notes)
        skill = self.skill
        if skill is not None and skill <= 0:
            notes.append(
                f"no skill at lead {self.lead}: not better than the last value on the backtest"
            )
        self._notes = tuple(notes)
        return self

    def _no_worse_than_naive(self, name: str, notes: list[str]) -> str:
        """`name`, unless the last value beat it by more than `NO_WORSE` on MAE: a model that
        loses to "the next value is the last one" serves that instead (and says so)."""
        naive = self._scores.get("naive")
        chosen = self._scores.get(name)
        if name == "naive" or naive is None or chosen is None:
            return name
        if chosen.mae > naive.mae * (1.0 + NO_WORSE):
            notes.append(
                f"served naive: {name} was {chosen.mae / naive.mae - 1:.0%} worse than the "
                f"last value at lead {self.lead}"
            )
            return "naive"
        return name

    @property
    def skill(self) -> float | None:
        """The served model's skill over the last value at the lead (0 for naive itself)."""
        chosen = self._scores.get(self._chosen_name or "")
        if chosen is None:
            return None
        return chosen.skill_over(self._scores.get("naive"))

    def _against_preferred(self, best: str, prefer: str, notes: list[str]) -> str:
        """`best` if it beats `prefer` by the margin on trimmed MAE and on MAE, else `prefer`."""
        if best == prefer:
            return best
        b, p = self._scores[best], self._scores[prefer]
        assert b is not None and p is not None
        keep = 1.0 - self.switch_margin
        if _key(b) < _key(p) * keep and b.mae < p.mae * keep:
            return best
        notes.append(
            f"kept {prefer}: {best} is not better by {self.switch_margin:.0%} on both trimmed "
            f"MAE and MAE at lead {self.lead}"
        )
        return prefer

    def refresh(self, history: History) -> Self:
        """Pass newer data to the chosen model without re-running the choice."""
        if self._chosen is None:
            return self.fit(history)
        self._chosen = self._chosen.refresh(history)
        self._step_s = history.step_s
        self._next_start = history.end + history.step_s if len(history) else history.start
        return self

    def predict(self, horizon: int, quantiles: Sequence[float] = DEFAULT_QUANTILES) -> Forecast:
        horizon = check_horizon(horizon)
        quantiles = check_quantiles(quantiles)
        if not self._fitted:
            raise NotFittedError("auto: predict() called before fit()")
        if self._chosen is None:
            return failed_forecast(
                self.name,
                self._next_start,
                self._step_s,
                self._failed or "not fitted",
                self._notes,
            )
        f = self._chosen.predict(horizon, quantiles)
        return Forecast(
            start=f.start,
            step_s=f.step_s,
            mean=f.mean,
            quantiles=f.quantiles,
            model=f"auto:{f.model}",
            failed=f.failed,
            notes=self._notes,
            backtest=f.backtest,
            skill=self.skill,
        )
