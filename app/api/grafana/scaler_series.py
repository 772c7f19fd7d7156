"""`scaler:<name>:<field>`: step functions of a scaler's recorded decisions and actions, and
`scaler:<name>:decision`, the latest decision's reasons as a table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from app.api.context import AppContext
from app.api.grafana.frames import TimeSeries, Window, table
from app.api.grafana.inputs import scaler_allowed
from app.store import catalog
from app.store import scalers as scaler_store
from app.store.scalers import StoredEvent
from app.store.selector import Matcher

__all__ = ["SCALER_FIELDS", "STATE_KINDS", "decision_table", "scaler_series", "step_function"]

SCALER_FIELDS = ("desired_replicas", "need", "current_replicas", "ready")
STATE_KINDS = ("action", "dry_run", "decision")


def _event_value(event: StoredEvent, field: str) -> float | None:
    if field == "desired_replicas":
        value = event.replicas if event.replicas is not None else event.payload.get("replicas")
    elif field == "current_replicas":
        value = event.payload.get("from")
    else:
        value = event.payload.get(field)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _decision_value(decision: dict[str, Any], field: str) -> float | None:
    key = "replicas" if field == "desired_replicas" else field
    value = decision.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def step_function(
    changes: Sequence[tuple[int, float]], times: Sequence[int], step_ms: int
) -> list[tuple[float, int]]:
    """Sample a step function known at `changes` [(ms, value)] on bucket starts: each bucket
    shows the last value set before its end. Buckets before the first change are empty."""
    ordered = sorted(changes)
    out: list[tuple[float, int]] = []
    i, current = 0, None
    for t in times:
        while i < len(ordered) and ordered[i][0] < t + step_ms:
            current = ordered[i][1]
            i += 1
        if current is not None:
            out.append((current, t))
    return out


async def scaler_series(
    ctx: AppContext, scaler: str, field: str, extra: tuple[Matcher, ...], window: Window
) -> list[TimeSeries]:
    if not scaler_allowed(scaler, extra):
        return []
    start_us, end_us = window.start_ms * 1000, window.end_ms * 1000
    async with ctx.db.read() as conn:
        stored = await scaler_store.get_scaler(conn, scaler)
        if stored is None:
            return []
        before = await catalog.last_event_before(conn, scaler, start_us, STATE_KINDS)
        events = await catalog.events_between(
            conn, start_us=start_us, end_us=end_us, scalers=[scaler], kinds=STATE_KINDS
        )
    changes: list[tuple[int, float]] = []
    for e in ([before] if before else []) + events:
        value = _event_value(e, field)
        if value is not None:
            changes.append((e.ts_us // 1000, value))
    if stored.last_decision is not None and stored.last_decision_us is not None:
        value = _decision_value(stored.last_decision, field)
        if value is not None and stored.last_decision_us <= end_us:
            changes.append((stored.last_decision_us // 1000, value))
    points = step_function(changes, window.bucket_times(), window.step_ms)
    return [TimeSeries(f"{scaler} {field}", points)]


async def decision_table(ctx: AppContext, scaler: str) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        stored = await scaler_store.get_scaler(conn, scaler)
    rows: list[list[Any]] = []
    if stored is not None and stored.last_decision is not None:
        t_ms = (stored.last_decision_us or 0) // 1000
        for step, reason in enumerate(stored.last_decision.get("reasons", []), start=1):
            rows.append(
                [
                    t_ms,
                    step,
                    str(reason.get("code", "")),
                    str(reason.get("message", "")),
                    json.dumps(reason.get("values", {}), sort_keys=True),
                ]
            )
    return table(
        [
            ("Time", "time"),
            ("Step", "number"),
            ("Code", "string"),
            ("Reason", "string"),
            ("Values", "string"),
        ],
        rows,
    )
