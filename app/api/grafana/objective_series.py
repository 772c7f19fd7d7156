"""`scaler:<name>:objective`: the scaler's latency objective over time, per objective stated:
the worst pod's p95 in each step, the objective as a line, and whether the step met it (1/0;
its mean over a range is the attainment). See app.services.objectives.
"""

from __future__ import annotations

from app.api.context import AppContext
from app.api.grafana.frames import TimeSeries, Window
from app.api.grafana.inputs import scaler_allowed
from app.policy.spec import SpecError
from app.services import objectives
from app.store import scalers as scaler_store
from app.store.selector import Matcher

__all__ = ["objective_series"]


async def objective_series(
    ctx: AppContext, scaler: str, extra: tuple[Matcher, ...], window: Window
) -> list[TimeSeries]:
    if not scaler_allowed(scaler, extra):
        return []
    async with ctx.db.read() as conn:
        stored = await scaler_store.get_scaler(conn, scaler)
    if stored is None:
        return []
    try:
        spec = ctx.specs.spec_of(stored)
    except SpecError:
        return []  # a document an older version stored: nothing to score against
    found = await objectives.attainment(
        ctx.db,
        spec,
        start_s=window.start_ms / 1000,
        end_s=window.end_ms / 1000 + 0.001,
        step_s=window.step_ms / 1000,
    )
    floor_ms = min(window.bucket_times(), default=window.end_ms + 1)
    out: list[TimeSeries] = []
    for a in found:
        kept = [(round(t * 1000), p, m) for t, p, m in a.points if round(t * 1000) >= floor_ms]
        kept = kept[-window.max_points :]
        out += [
            TimeSeries(f"{scaler} {a.objective}", [(p, t) for t, p, _ in kept]),
            TimeSeries(f"{scaler} {a.objective} objective", [(a.target_s, t) for t, _, _ in kept]),
            TimeSeries(f"{scaler} {a.objective} met", [(1.0 if m else 0.0, t) for t, _, m in kept]),
        ]
    return out
