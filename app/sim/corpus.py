"""The generated half of the benchmark corpus: seeded, pure generators of the trace families
docs/benchmark.md lists, written as the CSV text of either shape.

- `flash_crowds`: 5-minute counts on a daily cycle with sudden crowds (several times the day's
  peak within one interval, decaying over 15-45 minutes), one or two a day.
- `noisy_monitoring`: 5-minute counts of a monitoring series: a weak daily cycle (+-10 %) under
  strong autocorrelated noise, with lone outliers and dropouts.
- `level_steps`: 15-minute counts that hold a level for hours and then step to another
  (holding times of 2-20 h), with a little noise.
- `weekly_holidays`: hourly counts with a business-day profile, quiet weekends, and holidays
  (a weekday at a Sunday's level), one in the history and one in the scored week.
- `llm_bursty`: a request log at a low base rate where demand arrives in bursts of 20-45 pods'
  worth lasting about a minute, every 8-25 minutes.
- `llm_diurnal`: a two-day request log following a daily cycle.
- `scale_from_zero`: 5-minute counts of a dev/internal deployment: nothing at night and at
  weekends but a few stray sessions (someone trying the model), a morning ramp on business
  days (starting 07:30-08:00, full by 09:30), a lunch dip, quiet by 19:00-20:00. Scored on a
  Monday after three weeks of history, with `min_replicas: 0` and requests held up to 300 s
  while no pod is Ready (`ZERO_SCENARIO`: the SDK's hold proxy, Knative's activator).

Count series carry history before their scored window (`GeneratedTrace.window_s`), like the real
traces; request logs are scored whole, with no history. The same (family, seed) gives the same
text. Amplitudes are arbitrary for count series (the scenario scales every count trace so that
its p99 needs 40 pods); request logs are sized in pods of the `deepseek-7b` scenario (8 slots,
the 4x replay, service 0.5 s + 0.03 s x generated + 0.0002 s x context tokens).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = ["FAMILIES", "GENERATED", "ZERO_SCENARIO", "GeneratedTrace", "generate"]

FloatArray = npt.NDArray[np.float64]
DAY = 86400
# every generated trace starts at 2024-01-01 00:00 UTC, a Monday

# The deployment a request log is sized for (the benchmark scenario's numbers).
_SLOTS = 8
_COPIES = 4


@dataclass(frozen=True, slots=True)
class GeneratedTrace:
    """One generated trace of the corpus: which family, which seed, which window it is scored
    on (seconds at the end; None: the whole trace, no history)."""

    family: str
    seed: int
    window_s: float | None
    scenario: tuple[tuple[str, int], ...] = ()  # the scenario's fields this trace sets

    @property
    def name(self) -> str:
        return f"gen_{self.family}_{self.seed}.csv"


def _rng(family: str, seed: int) -> np.random.Generator:
    key = sum((i + 1) * ord(ch) for i, ch in enumerate(family))  # stable across runs
    return np.random.default_rng(np.random.SeedSequence([seed, key]))


def _stamps(offsets_us: npt.NDArray[np.int64], unit: Literal["s", "us"]) -> list[str]:
    """ISO timestamps (space-separated, UTC, no zone) of offsets from 2024-01-01, vectorised."""
    at = np.datetime64("2024-01-01T00:00:00", "us") + offsets_us.astype("timedelta64[us]")
    return [x.replace("T", " ") for x in np.datetime_as_string(at, unit=unit).tolist()]


def _counts_text(step_s: int, values: FloatArray) -> str:
    stamps = _stamps(np.arange(len(values), dtype=np.int64) * step_s * 1_000_000, "s")
    rows = [
        f"{t},{v}" for t, v in zip(stamps, np.rint(values).astype(np.int64).tolist(), strict=True)
    ]
    return "timestamp,value\n" + "\n".join(rows) + "\n"


def _hours(n: int, step_s: int) -> FloatArray:
    """Hour of day (0..24) at the start of each of n intervals."""
    return (np.arange(n) * step_s % DAY) / 3600.0


def _flash_crowds(rng: np.random.Generator) -> str:
    step, days = 300, 9
    n = days * DAY // step
    h = _hours(n, step)
    daily = 1.0 + 0.55 * np.cos(2 * np.pi * (h - 15.0) / 24.0)  # peak 15:00, trough 03:00
    level = 1000.0 * daily * np.exp(rng.normal(0.0, 0.05, n))
    peak = 1000.0 * 1.55
    t = np.arange(n)
    for day in range(days):
        for _ in range(1 + int(rng.integers(0, 2))):
            at = day * (DAY // step) + int(rng.integers(0, DAY // step))
            height = peak * rng.uniform(1.5, 3.0)
            tau = rng.uniform(15, 45) * 60 / step  # decay, in intervals
            after = t >= at
            level[after] += height * np.exp(-(t[after] - at) / tau)
    return _counts_text(step, level)


def _noisy_monitoring(rng: np.random.Generator) -> str:
    step, days = 300, 6
    n = days * DAY // step
    h = _hours(n, step)
    x = np.zeros(n)
    eps = rng.normal(0.0, 0.09, n)
    for i in range(1, n):
        x[i] = 0.85 * x[i - 1] + eps[i]
    level = 600.0 * (1.0 + 0.10 * np.sin(2 * np.pi * (h - 9.0) / 24.0)) * np.exp(x)
    outliers = rng.random(n) < 0.006
    level[outliers] *= rng.uniform(1.6, 2.6, int(outliers.sum()))
    dropouts = rng.random(n) < 0.003
    level[dropouts] *= 0.3
    return _counts_text(step, level)


def _level_steps(rng: np.random.Generator) -> str:
    step, days = 900, 8
    n = days * DAY // step
    level = np.empty(n)
    i = 0
    current = rng.uniform(0.2, 1.0)
    while i < n:
        hold = int(np.clip(rng.exponential(9.0), 2.0, 20.0) * 3600 // step)
        level[i : i + hold] = current
        i += hold
        nxt = rng.uniform(0.15, 1.0)
        while abs(math.log(nxt / current)) < 0.4:  # a step worth the name
            nxt = rng.uniform(0.15, 1.0)
        current = nxt
    return _counts_text(step, 1000.0 * level * np.exp(rng.normal(0.0, 0.04, n)))


def _weekly_holidays(rng: np.random.Generator) -> str:
    step, weeks = 3600, 4
    n = weeks * 7 * 24
    h = _hours(n, step)
    weekday = (np.arange(n) * step // DAY) % 7  # 2024-01-01 is a Monday
    business = 0.25 + 0.75 * np.exp(-(((h - 13.0) / 4.0) ** 2))
    weekend = 0.10 + 0.20 * np.exp(-(((h - 15.0) / 5.0) ** 2))
    profile = np.where(weekday >= 5, weekend, business)
    # one holiday in the history (weeks 2-3) and one in the scored (last) week, on weekdays
    day_of = np.arange(n) * step // DAY
    holidays = [7 + int(rng.integers(0, 14)), 21 + int(rng.integers(0, 5))]
    holidays = [d if d % 7 < 5 else d - (d % 7 - 4) for d in holidays]
    profile = np.where(np.isin(day_of, holidays), weekend, profile)  # a Sunday's level
    trend = 1.0 + 0.04 * np.arange(n) / n
    return _counts_text(step, 2000.0 * profile * trend * np.exp(rng.normal(0.0, 0.06, n)))


def _tokens(rng: np.random.Generator, k: int) -> tuple[npt.NDArray[np.int64], ...]:
    ctx = np.clip(np.round(rng.lognormal(math.log(800), 0.8, k)), 16, 8000).astype(np.int64)
    gen = np.clip(np.round(rng.lognormal(math.log(150), 0.7, k)), 1, 1500).astype(np.int64)
    return ctx, gen


# the mean service time of `_tokens` requests (lognormal means), for sizing in pods
_MEAN_SERVICE_S = 0.5 + 0.03 * 150 * math.exp(0.7**2 / 2) + 0.0002 * 800 * math.exp(0.8**2 / 2)


# the log's request rate whose 4x replay keeps one pod's slots busy
_RATE_PER_POD = _SLOTS / (_COPIES * _MEAN_SERVICE_S)


def _requests_text(times: FloatArray, rng: np.random.Generator) -> str:
    times = np.sort(times)
    ctx, gen = _tokens(rng, len(times))
    stamps = _stamps(np.rint(times * 1e6).astype(np.int64), "us")
    rows = [f"{t},{c},{g}" for t, c, g in zip(stamps, ctx.tolist(), gen.tolist(), strict=True)]
    return "TIMESTAMP,ContextTokens,GeneratedTokens\n" + "\n".join(rows) + "\n"


def _poisson_times(rng: np.random.Generator, rate: FloatArray, step_s: float) -> FloatArray:
    """Arrival times of a Poisson process whose rate is `rate[i]` over step i."""
    counts = rng.poisson(rate * step_s)
    starts = np.repeat(np.arange(len(rate)) * step_s, counts)
    out: FloatArray = starts + rng.random(len(starts)) * step_s
    return out


def _llm_bursty(rng: np.random.Generator) -> str:
    duration = 3 * 3600
    rate = np.full(duration, _RATE_PER_POD)  # one pod's worth at base
    t = float(rng.uniform(300, 900))
    while t < duration - 120:
        pods = rng.uniform(20, 45)
        length = int(rng.uniform(45, 90))
        a = int(t)
        rate[a : a + length] += pods * _RATE_PER_POD
        t += rng.uniform(8, 25) * 60
    return _requests_text(_poisson_times(rng, rate, 1.0), rng)


def _llm_diurnal(rng: np.random.Generator) -> str:
    step = 60
    n = 2 * DAY // step
    h = _hours(n, step)
    shape = (0.5 + 0.5 * np.cos(2 * np.pi * (h - 14.0) / 24.0)) ** 1.5  # peak 14:00
    jitter = np.repeat(rng.gamma(25.0, 1 / 25.0, n // 5 + 1), 5)[:n]  # +-20 % per 5 min
    pods = (1.0 + 9.0 * shape) * jitter
    return _requests_text(_poisson_times(rng, pods * _RATE_PER_POD, step), rng)


def _scale_from_zero(rng: np.random.Generator) -> str:
    # Three weeks of history, then a Monday scored: a week's pattern (business days, quiet
    # weekends) is only learnable from more than one week of it, as it would be in production
    # after the deployment has run a while; with one week there is no past Monday to go by.
    step, days = 300, 22
    n = days * DAY // step
    h = _hours(n, step)
    day_of = np.arange(n) * step // DAY
    level = np.zeros(n)
    for day in range(days):
        if day % 7 >= 5:  # 2024-01-01 is a Monday: days 5 and 6 of each week are the weekend
            continue
        start = rng.uniform(7.5, 8.0)  # the first people in
        end = rng.uniform(19.0, 20.0)  # quiet by then
        peak = rng.uniform(0.8, 1.2)
        hours = h[day_of == day]
        up = np.clip((hours - start) / 1.5, 0.0, 1.0)
        down = np.clip(end - hours, 0.0, 1.0)
        lunch = 1.0 - 0.3 * np.exp(-(((hours - 12.5) / 0.7) ** 2))
        level[day_of == day] = 1000.0 * peak * np.minimum(up, down) * lunch
    level *= np.exp(rng.normal(0.0, 0.08, n))
    idle = level < 1.0
    stray = idle & (rng.random(n) < 0.01)  # about one session a night, six a weekend
    level[stray] = rng.uniform(3.0, 10.0, int(stray.sum()))
    return _counts_text(step, level)


_GENERATORS: dict[str, Callable[[np.random.Generator], str]] = {
    "flash_crowds": _flash_crowds,
    "noisy_monitoring": _noisy_monitoring,
    "level_steps": _level_steps,
    "weekly_holidays": _weekly_holidays,
    "llm_bursty": _llm_bursty,
    "llm_diurnal": _llm_diurnal,
    "scale_from_zero": _scale_from_zero,
}
FAMILIES = tuple(_GENERATORS)


def generate(family: str, seed: int) -> str:
    """The CSV text of `family` for `seed` (header first); the same for the same seed."""
    try:
        make = _GENERATORS[family]
    except KeyError:
        raise ValueError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}") from None
    return make(_rng(family, seed))


# A deployment allowed to scale to zero, whose requests wait while no pod is Ready: held by the
# SDK's hold proxy (or Knative's activator) for up to 300 s, not dropped after the usual 30 s.
ZERO_SCENARIO: tuple[tuple[str, int], ...] = (("min_replicas", 0), ("queue_timeout_s", 300))

# The generated traces of the benchmark corpus: one per family; windows sized so that the
# corpus (every policy x 3 seeds) runs in minutes on two cores, history as docs/benchmark.md asks.
GENERATED: tuple[GeneratedTrace, ...] = (
    GeneratedTrace("flash_crowds", 1, 2 * DAY),  # 7 days of history
    GeneratedTrace("noisy_monitoring", 1, 2 * DAY),  # 4 days of history
    GeneratedTrace("level_steps", 1, 3 * DAY),  # 5 days of history
    GeneratedTrace("weekly_holidays", 1, 7 * DAY),  # 3 weeks of history
    GeneratedTrace("llm_bursty", 1, None),
    GeneratedTrace("llm_diurnal", 1, None),
    # a Monday: the night at zero, the morning ramp, the evening back to zero; three weeks before
    GeneratedTrace("scale_from_zero", 1, DAY, ZERO_SCENARIO),
)
