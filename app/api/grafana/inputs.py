"""Reading a Grafana request: the body under the size limit, the time range and the step, ad-hoc
filters as label matchers, a target's selector and payload options. Every refusal is a 400
or 422 naming what was wrong (a 415 for a body that is not JSON by its Content-Type).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from app.api.body import read_body, require_json
from app.api.context import AppContext
from app.api.errors import invalid_fields
from app.api.grafana.schemas import Filter, Target, TimeRange
from app.api.timeparams import parse_time_ms
from app.errors import BadRequest
from app.store.selector import Matcher, Selector, SelectorError, parse_selector

__all__ = [
    "MIN_STEP_MS",
    "OPERATORS",
    "body_of",
    "choice",
    "choose_step_ms",
    "matchers",
    "payload_of",
    "range_ms",
    "scaler_allowed",
    "target_selector",
]

M = TypeVar("M", bound=BaseModel)

MIN_STEP_MS = 1_000
OPERATORS = ("=", "!=", "=~", "!~")


async def body_of(ctx: AppContext, request: Request, model: type[M]) -> M:
    """The JSON body as `model`: no body is `{}`; a body of another type than JSON is a 415."""
    raw = await read_body(request, ctx.settings.max_body_bytes)
    if raw.strip():
        require_json(request)
        try:
            document = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}", code="invalid_json") from exc
    else:
        document = {}
    if not isinstance(document, dict):
        raise BadRequest("the body must be a JSON object", code="invalid_body")
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise invalid_fields(exc) from exc


def range_ms(r: TimeRange) -> tuple[int, int]:
    start, end = parse_time_ms(r.from_, "range.from"), parse_time_ms(r.to, "range.to")
    if end < start:
        raise BadRequest("range.to is before range.from", code="invalid_time")
    return start, end


def choose_step_ms(start_ms: int, end_ms: int, interval_ms: float | None, max_points: int) -> int:
    """The step for a range: at least Grafana's interval, coarse enough that at most
    `max_points` epoch-aligned buckets cover [start, end], in whole seconds, minutes or hours
    where it is that large (so rollups serve it)."""
    span = end_ms - start_ms
    step = max(MIN_STEP_MS, math.ceil(interval_ms or 0))
    if max_points >= 3:
        # aligned buckets covering [start, end]: at most span / step + 2
        step = max(step, math.ceil(span / (max_points - 2)) if span else 0)
    else:
        step = max(step, span + 1)
    step = _whole(step)
    # Rounding up can still leave a bucket boundary inside a short range (2 h from 01:00 in
    # 3 h buckets is two buckets): grow by whole units until the buckets fit.
    while end_ms // step - start_ms // step + 1 > max(1, max_points):
        step = _whole(step + _unit(step))
    return step


def _unit(step_ms: int) -> int:
    return next(u for u in (3_600_000, 60_000, 1_000) if step_ms >= u or u == 1_000)


def _whole(step_ms: int) -> int:
    """Up to whole hours, minutes or seconds, whichever the step is at least."""
    unit = _unit(step_ms)
    return math.ceil(step_ms / unit) * unit


def matchers(filters: Iterable[Filter]) -> tuple[Matcher, ...]:
    out: list[Matcher] = []
    for f in filters:
        if f.operator not in OPERATORS:
            raise BadRequest(
                f"ad-hoc filter operator {f.operator!r} is not supported; use one of "
                + ", ".join(OPERATORS),
                code="invalid_filter",
                details={"key": f.key, "operator": f.operator},
            )
        pattern = None
        if f.operator in ("=~", "!~"):
            try:
                pattern = re.compile(f.value)
            except re.error as exc:
                raise BadRequest(
                    f"ad-hoc filter {f.key}{f.operator}{f.value!r}: invalid regular expression",
                    code="invalid_filter",
                ) from exc
        out.append(Matcher(f.key, f.operator, f.value, pattern))
    return tuple(out)


def target_selector(text: str, extra: tuple[Matcher, ...]) -> Selector:
    try:
        parsed = parse_selector(text)
    except SelectorError as exc:
        raise BadRequest(str(exc), code="invalid_selector", details={"target": text}) from exc
    return Selector(parsed.name, parsed.matchers + extra)


def scaler_allowed(name: str, extra: tuple[Matcher, ...]) -> bool:
    return all(m.matches({"scaler": name}) for m in extra if m.label == "scaler")


def payload_of(target: Target) -> dict[str, Any]:
    if isinstance(target.payload, dict):
        return target.payload
    if isinstance(target.payload, str) and target.payload.strip():
        try:
            parsed = json.loads(target.payload)
        except json.JSONDecodeError as exc:
            raise BadRequest(
                f"target {target.refId}: payload is not a JSON object",
                code="invalid_payload",
            ) from exc
        if isinstance(parsed, dict):
            return parsed
        raise BadRequest(
            f"target {target.refId}: payload is not a JSON object", code="invalid_payload"
        )
    return {}


def choice(payload: dict[str, Any], key: str, allowed: Sequence[str], default: str) -> str:
    value = payload.get(key) or default
    if value not in allowed:
        raise BadRequest(
            f"payload {key}={value!r} is not one of " + ", ".join(allowed),
            code="invalid_payload",
            details={"field": key, "value": value, "allowed": list(allowed)},
        )
    return str(value)
