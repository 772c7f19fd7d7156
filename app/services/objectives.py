"""A scaler's latency objective, attained or not, over time: from the p95s the pods push.

`ciuic-agent` pushes, per pod and per push interval, the p95 of vLLM's latency histograms as
clients see them: `ttft_p95` (vLLM's `time_to_first_token_seconds`, queue wait included),
`queue_wait_p95`, `itl_p95` (sdk/ciuic_sdk/agent.py). Each objective the spec states is
read from the series of that name whose labels match the scaler's pushed metrics' selector
(the first metric not read from Prometheus; no selector: every such series).

Per step (a minute by default) the objective is **met** when the worst pod's worst p95 in it is
within the objective: a client could have landed on that pod. Attainment over a window is the
share of steps with data that met it; steps in which no pod pushed (no traffic, or no agent)
count neither way. Read from the rollups' per-bucket maximum, so a week reads as cheaply as an
hour.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.policy import ScalerSpec
from app.store.db import Database
from app.store.query import find_series, read_range
from app.store.selector import Matcher, Selector

__all__ = [
    "OBJECTIVE_SERIES",
    "Attainment",
    "Latency",
    "attainment",
    "measured_latency",
    "objective_targets",
]

OBJECTIVE_SERIES = ("ttft_p95", "queue_wait_p95", "itl_p95")  # spec key == pushed metric name
MAX_SERIES = 5_000
LATENCY_WINDOW_S = 60.0  # what the policy reads of the pushed prefill / ITL p95s


@dataclass(frozen=True, slots=True)
class Latency:
    """The worst pod's newest p95s (s) within a minute, for `Observation.prefill_s` and
    `Observation.itl_p95_s` (None: no pod pushed one)."""

    prefill_s: float | None = None
    itl_p95_s: float | None = None


@dataclass(frozen=True, slots=True)
class Attainment:
    """One objective over a window: `points` are (step start s, worst p95 s, met)."""

    objective: str  # ttft_p95, queue_wait_p95 or itl_p95
    target_s: float
    points: tuple[tuple[float, float, bool], ...]

    @property
    def steps(self) -> int:
        return len(self.points)

    @property
    def met_share(self) -> float | None:
        """The share of steps with data that met the objective (None: no data)."""
        if not self.points:
            return None
        return sum(1 for _, _, met in self.points if met) / len(self.points)

    @property
    def worst_p95_s(self) -> float | None:
        return max((p for _, p, _ in self.points), default=None)


def objective_targets(spec: ScalerSpec) -> list[tuple[str, float]]:
    """(pushed metric, objective seconds) for each objective the spec states."""
    obj = spec.objective
    if obj is None:
        return []
    out = []
    for name in OBJECTIVE_SERIES:
        value = getattr(obj, name)
        if value is not None:
            out.append((name, float(value)))
    return out


def _selector(spec: ScalerSpec, name: str) -> Selector:
    pushed = next((m for m in spec.metrics if m.source is None), None)
    labels = pushed.selector if pushed is not None else {}
    return Selector(name, tuple(Matcher(k, "=", v) for k, v in sorted(labels.items())))


async def attainment(
    db: Database, spec: ScalerSpec, *, start_s: float, end_s: float, step_s: float
) -> list[Attainment]:
    """Each stated objective's attainment over [start, end), step by step."""
    step_us = max(1, round(step_s * 1e6))
    out: list[Attainment] = []
    for name, target in objective_targets(spec):
        async with db.read() as conn:
            found = await find_series(conn, _selector(spec, name), limit=MAX_SERIES)
            result = await read_range(
                conn,
                [s.id for s in found],
                start_us=round(start_s * 1e6),
                end_us=round(end_s * 1e6),
                step_us=step_us,
            )
        worst: dict[int, float] = {}
        for buckets in result.buckets.values():
            for k, bucket in buckets.items():
                worst[k] = max(worst.get(k, bucket.max), bucket.max)
        points = tuple(
            ((result.start_us + k * step_us) / 1e6, p95, p95 <= target + 1e-9)
            for k, p95 in sorted(worst.items())
        )
        out.append(Attainment(name, target, points))
    return out


async def _worst_recent(db: Database, spec: ScalerSpec, name: str, now: float) -> float | None:
    step_us = 10_000_000
    start_us = round((now - LATENCY_WINDOW_S) * 1e6)
    async with db.read() as conn:
        found = await find_series(conn, _selector(spec, name), limit=MAX_SERIES)
        if not found:
            return None
        result = await read_range(
            conn,
            [s.id for s in found],
            start_us=start_us,
            end_us=round(now * 1e6) + 1,
            step_us=step_us,
        )
    values = [
        b.max
        for buckets in result.buckets.values()
        for k, b in buckets.items()
        if result.start_us + (k + 1) * step_us > start_us
    ]
    return max(values, default=None)


async def measured_latency(db: Database, spec: ScalerSpec, now: float) -> Latency | None:
    """What the policy's objective step reads of the pods' latency: the prefill p95 when the
    spec leaves `prefill` to be measured, the ITL p95 when it states `itl_p95`. None without
    an objective (nothing read)."""
    obj = spec.objective
    if obj is None:
        return None
    prefill = None
    if obj.ttft_p95 is not None and obj.prefill is None:
        prefill = await _worst_recent(db, spec, "prefill_p95", now)
    itl = await _worst_recent(db, spec, "itl_p95", now) if obj.itl_p95 is not None else None
    return Latency(prefill, itl)
