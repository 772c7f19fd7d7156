"""Trace parsing and the benchmark's load scaling (docs/benchmark.md, "Traces" and "Scenario").

Two shapes are accepted, told apart by their header, never by the file name, so that traces we
have never seen work unchanged:

- count series: ``timestamp,value`` — requests (or any events) per regular interval;
  timestamps ISO 8601 or Unix time (seconds, or milliseconds); a row whose value is empty,
  ``NaN`` or ``null`` (a missed scrape in a monitoring export) is a gap, like a missing row;
- request logs: ``TIMESTAMP,ContextTokens,GeneratedTokens`` — one request per line; token
  counts are whole numbers, written ``7`` or ``7.0`` (as a data frame with gaps writes them).

Rows are CSV: any field may be quoted.

The caller reads the file; this module only parses text (the pure core does no I/O).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from app.timetext import TimeTextError, parse_rfc3339

__all__ = [
    "CountTrace",
    "RequestLog",
    "Trace",
    "TraceError",
    "TraceKind",
    "Workload",
    "build_workload",
    "default_window_s",
    "detect_kind",
    "parse_trace",
    "workload_from_arrivals",
    "workload_from_requests",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class TraceError(ValueError):
    """The text is not a trace of a known shape (bad header, bad row, too short)."""


class TraceKind(StrEnum):
    COUNTS = "counts"
    REQUESTS = "requests"


_COUNT_HEADER = ("timestamp", "value")
_REQUEST_HEADER = ("timestamp", "contexttokens", "generatedtokens")


def _split_header(line: str) -> tuple[str, ...]:
    return tuple(c.strip().strip('"').lower() for c in line.lstrip("\ufeff").split(","))


def detect_kind(header: str) -> TraceKind:
    """Classify a trace by its header line (case-insensitive, BOM and quotes tolerated)."""
    cols = _split_header(header)
    if cols == _COUNT_HEADER:
        return TraceKind.COUNTS
    if cols == _REQUEST_HEADER:
        return TraceKind.REQUESTS
    raise TraceError(
        f"unknown trace header {header.strip()!r}: expected 'timestamp,value' or "
        "'TIMESTAMP,ContextTokens,GeneratedTokens'"
    )


# What a count series writes for a reading it does not have (compared lower-cased).
_MISSING = frozenset({"", "nan", "null", "none", "na", "n/a"})

# A bare number is Unix time: seconds, or milliseconds when it is this large (year 5138 in s).
_UNIX_MS_FROM = 1e11


def _parse_time(text: str, lineno: int) -> float:
    s = text.strip().strip('"')
    try:
        unix = float(s)
    except ValueError:
        pass
    else:
        if not math.isfinite(unix):
            raise TraceError(f"line {lineno}: bad timestamp {text.strip()!r}")
        return unix / 1000.0 if abs(unix) >= _UNIX_MS_FROM else unix
    try:  # traces (Azure's among them) write local-less times that mean UTC
        return parse_rfc3339(s, naive_is_utc=True)
    except TimeTextError as exc:
        raise TraceError(f"line {lineno}: bad timestamp {text.strip()!r}") from exc


@dataclass(frozen=True, slots=True)
class CountTrace:
    """A regular count series: `values[i]` events in `[times[i], times[i] + interval_s)`."""

    times: FloatArray
    values: FloatArray
    interval_s: float
    kind: TraceKind = field(default=TraceKind.COUNTS, init=False)

    @property
    def end(self) -> float:
        return float(self.times[-1]) + self.interval_s


@dataclass(frozen=True, slots=True)
class RequestLog:
    """One row per request: arrival time, prompt and output token counts."""

    times: FloatArray
    context_tokens: IntArray
    generated_tokens: IntArray
    kind: TraceKind = field(default=TraceKind.REQUESTS, init=False)


Trace = CountTrace | RequestLog


def parse_trace(lines: Iterable[str]) -> Trace:
    """Parse a trace from its lines (header first). Blank lines are skipped."""
    it = iter(lines)
    header = next((ln for ln in it if ln.strip()), None)
    if header is None:
        raise TraceError("empty trace")
    kind = detect_kind(header)
    rows = [row for row in csv.reader(ln for ln in it if ln.strip())]
    if kind is TraceKind.COUNTS:
        return _parse_counts(rows)
    return _parse_requests(rows)


def _parse_counts(rows: Sequence[Sequence[str]]) -> CountTrace:
    times = np.empty(len(rows))
    values = np.empty(len(rows))
    for i, row in enumerate(rows):
        if len(row) != 2:
            raise TraceError(f"line {i + 2}: expected 2 columns, got {len(row)}")
        times[i] = _parse_time(row[0], i + 2)
        text = row[1].strip()
        if text.lower() in _MISSING:
            values[i] = math.nan
            continue
        try:
            values[i] = float(text)
        except ValueError as exc:
            raise TraceError(f"line {i + 2}: bad value {text!r}") from exc
        if not math.isfinite(values[i]) or values[i] < 0:
            raise TraceError(f"line {i + 2}: count values must be finite and non-negative")
    present = ~np.isnan(values)
    times, values = times[present], values[present]  # a missing reading is a gap
    if len(times) < 2:  # checked after the rows, so a bad row is named as such
        raise TraceError("a count trace needs at least two rows with a value to know its interval")
    order = np.argsort(times, kind="stable")
    times, values = times[order], values[order]
    steps = np.diff(times)
    interval = float(np.median(steps))
    if interval <= 0:
        raise TraceError("count trace timestamps must increase")
    return CountTrace(times=times, values=values, interval_s=interval)


def _tokens(text: str, lineno: int) -> int:
    """A token count: a whole number, also written as a float (`7.0`)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value.is_integer():  # NaN and infinities are not integers either
        raise TraceError(f"line {lineno}: token counts must be whole numbers, got {text.strip()!r}")
    return int(value)


def _parse_requests(rows: Sequence[Sequence[str]]) -> RequestLog:
    if not rows:
        raise TraceError("a request log needs at least one request")
    times = np.empty(len(rows))
    ctx = np.empty(len(rows), dtype=np.int64)
    gen = np.empty(len(rows), dtype=np.int64)
    for i, row in enumerate(rows):
        if len(row) != 3:
            raise TraceError(f"line {i + 2}: expected 3 columns, got {len(row)}")
        times[i] = _parse_time(row[0], i + 2)
        ctx[i] = _tokens(row[1], i + 2)
        gen[i] = _tokens(row[2], i + 2)
    if np.any(ctx < 0) or np.any(gen < 0):
        raise TraceError("token counts must be non-negative")
    order = np.argsort(times, kind="stable")
    return RequestLog(times=times[order], context_tokens=ctx[order], generated_tokens=gen[order])


@dataclass(frozen=True, slots=True)
class Workload:
    """What the simulator replays: arrivals per second of the scored window.

    `arrivals[t]` requests arrive in second t (t = 0 is `start`). Count traces have one service
    time for every request (`service_s`); request logs carry `services[t]`, the service times (in
    whole seconds) of the requests arriving in second t, in arrival order. `history_rate` is the
    scaled load rate (req/s) before the window on a `history_step_s` grid: what a forecaster may
    have seen. `demand[t]` is the offered concurrency (slots needed if every request started on
    arrival), the curve every policy is measured against.
    """

    kind: TraceKind
    start: float
    arrivals: IntArray
    service_s: int
    services: dict[int, tuple[int, ...]]
    demand: IntArray
    history_rate: FloatArray
    history_step_s: float
    scale: float
    description: str
    # The true rate the arrivals were drawn from (req/s), piecewise constant: `rate_value[i]`
    # from second `rate_at[i]` on. Known for a count trace (its scaled per-interval rate); empty
    # for a request log, which has no rate behind it. Only the `fluid` reference reads it.
    rate_at: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    rate_value: FloatArray = field(default_factory=lambda: np.zeros(0))
    # A request log's prefill times (s), parallel to `services`: ContextTokens at the scenario's
    # prefill rate, the part of TTFT after the queue (empty: none known, TTFT = queue wait).
    prefills: dict[int, tuple[float, ...]] = field(default_factory=dict)

    @property
    def duration_s(self) -> int:
        return len(self.arrivals)

    @property
    def has_rate(self) -> bool:
        return len(self.rate_at) > 0

    def rate_per_second(self) -> FloatArray:
        """The true rate for every second of the window (empty when unknown)."""
        if not self.has_rate:
            return np.zeros(0)
        reps = np.diff(np.append(self.rate_at, self.duration_s))
        out: FloatArray = np.repeat(self.rate_value, reps)
        return out

    @property
    def max_service_s(self) -> int:
        if self.services:
            return max(max(v) for v in self.services.values())
        return self.service_s


def _pieces(rate: FloatArray) -> tuple[IntArray, FloatArray]:
    """A per-second rate as (start second, value) of each constant piece."""
    if len(rate) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    at = np.concatenate(([0], np.flatnonzero(np.diff(rate)) + 1)).astype(np.int64)
    return at, rate[at].astype(np.float64)


def _offered_concurrency(
    arrivals: IntArray, starts: dict[int, tuple[int, ...]], fixed: int
) -> IntArray:
    n = len(arrivals)
    delta = np.zeros(n + 1, dtype=np.int64)
    if starts:
        for t, svc in starts.items():
            for s in svc:
                delta[t] += 1
                delta[min(n, t + s)] -= 1
    else:
        delta[:n] += arrivals
        ends = np.minimum(np.arange(n) + fixed, n)
        np.add.at(delta, ends, -arrivals)
    return np.cumsum(delta[:n])


def build_workload(
    trace: Trace,
    *,
    seed: int,
    window_s: float | None = None,
    slots_per_pod: int = 8,
    count_service_s: float = 16.0,
    target_pods_at_p99: float = 40.0,
    replay_copies: int = 4,
    service_base_s: float = 0.5,
    service_per_generated_s: float = 0.03,
    service_per_context_s: float = 0.0002,
    prefill_tokens_per_s: float = 5000.0,
) -> Workload:
    """Scale a trace into per-second arrivals exactly as docs/benchmark.md's scenario says.

    Count traces: the window's per-interval rate is scaled so that its 99th percentile needs
    `target_pods_at_p99` pods at 100 % (40 pods × 8 slots / 16 s = 20 req/s; its peak where the
    99th percentile is 0; a window with no load is a `TraceError`), held constant within each
    interval, and drawn as per-second Poisson counts from `seed`. Request logs are
    replayed `replay_copies` times, copy k shifted by k/copies of a second (interleaved), with
    service = base + per_generated × GeneratedTokens + per_context × ContextTokens, rounded to
    whole seconds (at least 1) because the simulator ticks once a second; each request's prefill
    (its TTFT after the queue) is ContextTokens / `prefill_tokens_per_s`.
    """
    if isinstance(trace, CountTrace):
        return _count_workload(
            trace, seed, window_s, slots_per_pod, count_service_s, target_pods_at_p99
        )
    return _request_workload(
        trace,
        window_s,
        replay_copies,
        service_base_s,
        service_per_generated_s,
        service_per_context_s,
        prefill_tokens_per_s,
    )


def default_window_s(trace: Trace) -> float | None:
    """The scored window when none is given: the last 14 days of a count series at 15 min or
    coarser, the last 7 days of a finer one (docs/benchmark.md's nyc_taxi / twitter choices as a
    rule), a whole request log (None)."""
    if isinstance(trace, CountTrace):
        return 14 * 86400.0 if trace.interval_s >= 900 else 7 * 86400.0
    return None


def _rate_at(trace: CountTrace, rates: FloatArray, t: npt.NDArray[np.floating[Any]]) -> FloatArray:
    """The rate of the interval covering each time in `t` (NaN where no row covers it)."""
    idx = np.searchsorted(trace.times, t, side="right") - 1
    ok = (idx >= 0) & (t < trace.times[np.maximum(idx, 0)] + trace.interval_s)
    out = np.full(len(t), np.nan)
    out[ok] = rates[idx[ok]]
    return out


def _count_workload(
    trace: CountTrace,
    seed: int,
    window_s: float | None,
    slots: int,
    service_s: float,
    pods_at_p99: float,
) -> Workload:
    if window_s is None:
        window_s = default_window_s(trace)
    assert window_s is not None
    end = trace.end
    start = max(float(trace.times[0]), end - window_s)
    in_window = trace.times + trace.interval_s > start
    rates = trace.values / trace.interval_s
    p99 = float(np.percentile(rates[in_window], 99))
    # A series idle more than 99 % of the time (a batch job's bursts) has a p99 of zero: its
    # peak is what is scaled then, never zero (which would score every policy on no load).
    peak = float(np.max(rates[in_window], initial=0.0))
    basis, what = (p99, "p99") if p99 > 0 else (peak, "peak (p99 is 0)")
    if basis <= 0:
        raise TraceError("the scored window has no load (every count in it is 0): nothing to score")
    target_rate = pods_at_p99 * slots / service_s
    scale = target_rate / basis
    scaled = rates * scale
    n = round(end - start)
    sec = start + np.arange(n)
    lam = _rate_at(trace, scaled, sec)
    lam[np.isnan(lam)] = 0.0  # a second no row covers (a gap in the trace) has no arrivals
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    arrivals = rng.poisson(lam).astype(np.int64)
    rate_at, rate_value = _pieces(lam)
    svc = max(1, round(service_s))
    # the history on a regular grid ending at the window start; gaps stay NaN (the forecasting
    # package treats NaN as a missing bucket)
    n_hist = int((start - float(trace.times[0])) // trace.interval_s)
    grid = start - trace.interval_s * np.arange(n_hist, 0, -1)
    history = _rate_at(trace, scaled, grid)
    return Workload(
        kind=TraceKind.COUNTS,
        start=start,
        arrivals=arrivals,
        service_s=svc,
        services={},
        demand=_offered_concurrency(arrivals, {}, svc),
        history_rate=history.astype(np.float64),
        history_step_s=trace.interval_s,
        scale=scale,
        description=(
            f"count trace, {trace.interval_s:g} s intervals, window {n} s, "
            f"{what} rate scaled to {target_rate:g} req/s (x{scale:.4g}), Poisson seed {seed}"
        ),
        rate_at=rate_at,
        rate_value=rate_value,
    )


def _request_workload(
    trace: RequestLog,
    window_s: float | None,
    copies: int,
    base: float,
    per_gen: float,
    per_ctx: float,
    prefill_tokens_per_s: float = 5000.0,
) -> Workload:
    t0 = float(trace.times[0])
    end = float(trace.times[-1]) + 1.0
    start = t0 if window_s is None else max(t0, end - window_s)
    keep = trace.times >= start
    times = trace.times[keep] - start
    svc = np.maximum(
        1,
        np.round(
            base + per_gen * trace.generated_tokens[keep] + per_ctx * trace.context_tokens[keep]
        ),
    ).astype(np.int64)
    prefill = (trace.context_tokens[keep] / prefill_tokens_per_s).tolist()
    n = math.ceil(end - start)
    per_second: dict[int, list[int]] = {}
    prefill_second: dict[int, list[float]] = {}
    arrivals = np.zeros(n, dtype=np.int64)
    shifted = [(float(tt) + k / copies, k, i) for i, tt in enumerate(times) for k in range(copies)]
    shifted.sort()
    for tt, _k, i in shifted:
        sec = min(n - 1, int(tt))
        per_second.setdefault(sec, []).append(int(svc[i]))
        prefill_second.setdefault(sec, []).append(prefill[i])
        arrivals[sec] += 1
    services = {t: tuple(v) for t, v in per_second.items()}
    return Workload(
        kind=TraceKind.REQUESTS,
        start=start,
        arrivals=arrivals,
        service_s=0,
        services=services,
        demand=_offered_concurrency(arrivals, services, 0),
        history_rate=np.zeros(0),
        history_step_s=60.0,
        scale=float(copies),
        description=(
            f"request log, {int(keep.sum())} requests x{copies} interleaved copies over {n} s, "
            f"service {base:g} + {per_gen:g}*gen + {per_ctx:g}*ctx s, "
            f"prefill ctx / {prefill_tokens_per_s:g} tokens/s"
        ),
        prefills={t: tuple(v) for t, v in prefill_second.items()},
    )


def workload_from_arrivals(
    arrivals: npt.ArrayLike,
    *,
    service_s: int = 16,
    history_rate: npt.ArrayLike = (),
    history_step_s: float = 300.0,
    start: float = 0.0,
    description: str = "synthetic arrivals",
    rate: npt.ArrayLike | None = None,
) -> Workload:
    """A workload from per-second arrival counts with one service time (tests, what-ifs).
    `rate`, if known, is the per-second rate the arrivals were drawn from (for `fluid`)."""
    arr = np.asarray(arrivals, dtype=np.int64)
    if arr.ndim != 1 or len(arr) == 0 or np.any(arr < 0):
        raise ValueError("arrivals must be a non-empty 1-d array of counts >= 0")
    if service_s < 1:
        raise ValueError("service_s must be >= 1")
    lam = np.zeros(0) if rate is None else np.asarray(rate, dtype=np.float64)
    if rate is not None and (lam.shape != arr.shape or not np.all(np.isfinite(lam))):
        raise ValueError("rate must be finite, one value per second of arrivals")
    rate_at, rate_value = _pieces(lam)
    return Workload(
        kind=TraceKind.COUNTS,
        start=start,
        arrivals=arr,
        service_s=service_s,
        services={},
        demand=_offered_concurrency(arr, {}, service_s),
        history_rate=np.asarray(history_rate, dtype=np.float64),
        history_step_s=history_step_s,
        scale=1.0,
        description=description,
        rate_at=rate_at,
        rate_value=rate_value,
    )


def workload_from_requests(
    services: Mapping[int, Sequence[int]],
    duration_s: int,
    *,
    start: float = 0.0,
    description: str = "synthetic requests",
    prefills: Mapping[int, Sequence[float]] | None = None,
) -> Workload:
    """A request-log workload from the service times (whole seconds >= 1) of the requests
    arriving in each second, in arrival order (tests, what-ifs), and optionally their prefill
    times (s, one per request of the second)."""
    if duration_s < 1:
        raise ValueError("duration_s must be >= 1")
    arrivals = np.zeros(duration_s, dtype=np.int64)
    per_second: dict[int, tuple[int, ...]] = {}
    for t, svc in services.items():
        if not 0 <= t < duration_s:
            raise ValueError(f"second {t} is outside the workload")
        if any(s < 1 for s in svc):
            raise ValueError("service times must be >= 1 s")
        if svc:
            per_second[t] = tuple(int(s) for s in svc)
            arrivals[t] = len(svc)
    return Workload(
        kind=TraceKind.REQUESTS,
        start=start,
        arrivals=arrivals,
        service_s=0,
        services=per_second,
        demand=_offered_concurrency(arrivals, per_second, 0),
        history_rate=np.zeros(0),
        history_step_s=60.0,
        scale=1.0,
        description=description,
        prefills=_prefills_like(per_second, prefills or {}),
    )


def _prefills_like(
    services: Mapping[int, tuple[int, ...]], prefills: Mapping[int, Sequence[float]]
) -> dict[int, tuple[float, ...]]:
    """`prefills` checked against `services`: one finite time >= 0 per request."""
    out: dict[int, tuple[float, ...]] = {}
    for t, pre in prefills.items():
        if len(pre) != len(services.get(t, ())):
            raise ValueError(f"second {t}: one prefill time per request")
        if not all(math.isfinite(p) and p >= 0 for p in pre):
            raise ValueError("prefill times must be finite and >= 0")
        out[t] = tuple(float(p) for p in pre)
    return out
