"""How long requests waited: quantiles of the wait histogram, time to first token against an
objective, and scale to zero's first requests (those that found no pod Ready)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.sim.engine import SimResult

__all__ = [
    "ZeroWaits",
    "mean_zero",
    "ttft_attainment",
    "wait_quantile",
    "zero_markdown",
    "zero_waits",
]


@dataclass(frozen=True, slots=True)
class ZeroWaits:
    """Scale to zero: the hours with no pod at all, and the requests that arrived with no pod
    Ready (at zero, or while waking from it): how many, how long they waited to start (p50 and
    the longest), how many were dropped."""

    hours_at_zero: float
    first_requests: float
    first_wait_p50_s: float
    first_wait_max_s: float
    first_dropped: float


def zero_waits(result: SimResult) -> ZeroWaits | None:
    """The `ZeroWaits` of a run whose scenario allows zero (None otherwise)."""
    if result.scenario.min_replicas > 0:
        return None
    hist = result.first_wait_hist
    started = sum(hist)
    longest = max((w for w, c in enumerate(hist) if c), default=0)
    return ZeroWaits(
        hours_at_zero=float((result.billed == 0).sum()) / 3600,
        first_requests=float(started + result.first_dropped),
        first_wait_p50_s=wait_quantile(hist, 0.5),
        first_wait_max_s=float(longest),
        first_dropped=float(result.first_dropped),
    )


def zero_markdown(rows: Sequence[tuple[str, str, float, ZeroWaits]]) -> str:
    """(trace, policy, cost, waits) rows as the scale-to-zero table."""
    lines = [
        "| trace | policy | cost USD | hours at zero | first requests | first wait p50 s "
        "| first wait max s | first dropped |",
        "|" + "---|" * 8,
    ]
    for trace, policy, cost, z in rows:
        lines.append(
            f"| {trace} | {policy} | {cost:.2f} | {z.hours_at_zero:.1f} | {z.first_requests:.0f} "
            f"| {z.first_wait_p50_s:.0f} | {z.first_wait_max_s:.0f} | {z.first_dropped:.0f} |"
        )
    return "\n".join(lines)


def wait_quantile(hist: Sequence[int], q: float) -> float:
    """The q-quantile of queue waits (whole seconds) from a histogram of started requests."""
    total = sum(hist)
    if total == 0:
        return 0.0
    rank = q * total
    acc = 0
    for w, c in enumerate(hist):
        acc += c
        if acc >= rank:
            return float(w)
    return float(len(hist) - 1)


def ttft_attainment(result: SimResult, objective_s: float) -> tuple[float, float]:
    """(p95 TTFT, share of requests within `objective_s`) of a run. TTFT is the queue wait plus
    the prefill for a request log (`SimResult.ttft_s`), the queue wait alone for a count trace;
    the p95 is over the requests that started, the share over those and the dropped ones (a
    dropped request never sees a first token)."""
    ttft = result.ttft_s
    if len(ttft):
        p95 = float(np.quantile(ttft, 0.95, method="inverted_cdf"))
        within = int(np.count_nonzero(ttft <= objective_s + 1e-9))
        started = len(ttft)
    else:
        hist = result.wait_hist
        p95 = wait_quantile(hist, 0.95)
        within = sum(hist[: math.floor(objective_s + 1e-9) + 1])
        started = sum(hist)
    total = started + result.dropped
    return p95, (within / total if total else 1.0)


def mean_zero(runs: Sequence[ZeroWaits]) -> ZeroWaits | None:
    if not runs:
        return None
    keys = ZeroWaits.__dataclass_fields__
    return ZeroWaits(**{k: float(np.mean([getattr(z, k) for z in runs])) for k in keys})
