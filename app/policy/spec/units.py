"""The spec's scalars: durations, numbers, percentages, rates, and the names they may take.

Durations are the one grammar of the whole project (`app.timetext`): a number of seconds, or
"30s", "5m", "1h30m", "250ms", "1w"; they render back the same way.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema
from pydantic_core import PydanticCustomError

from app.policy.spec.errors import _fail
from app.timetext import DURATION_PATTERN, TimeTextError, format_duration
from app.timetext import parse_duration as _duration

__all__ = [
    "DEFAULT_COLD_START_S",
    "NOT_TEXT",
    "Aggregation",
    "Count",
    "Duration",
    "Flag",
    "Number",
    "format_duration",
    "parse_duration",
]

DEFAULT_COLD_START_S = 60.0
"""Cold start assumed while `cold_start: learn` has not measured one yet (7B model: 30-60 s)."""


def parse_duration(value: object) -> float:
    """Seconds from 30, 30.5, "30", "30s", "5m", "1h30m", "250ms"; rejects negatives and bools."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _fail("duration", f"expected a duration like '30s' or seconds, got {value!r}")
    try:
        return _duration(value)
    except TimeTextError as exc:
        raise _fail("duration", str(exc)) from None


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _fail("number", f"{what} must be a number, got {value!r}")
    try:
        out = float(value)
    except ValueError:
        raise _fail("number", f"{what} must be a number, got {value!r}") from None
    except OverflowError:  # an int beyond any float (10**400)
        raise _fail(
            "number", f"{what} must be finite, got a number of {len(str(value))} digits"
        ) from None
    if not math.isfinite(out):
        raise _fail("number", f"{what} must be finite, got {value!r}")
    return out


_DURATION_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": DURATION_PATTERN},
    ],
    "description": "seconds, or a duration such as '30s', '5m', '1h30m'",
}
Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration),
    WithJsonSchema(_DURATION_SCHEMA),
]
"""Seconds; accepts "30s"-style strings; renders back as such."""


def _check_percent(value: float, raw: object) -> float:
    if not 0 < value <= 100:
        raise _fail("percent", f"a percentage must be in (0%, 100%], got {raw!r}")
    return value


def _percent_fraction(value: object) -> object:
    """Utilisation given as "85%" or 0.85 -> 0.85."""
    if isinstance(value, str) and value.strip().endswith("%"):
        return _check_percent(_number(value.strip()[:-1], "percent"), value) / 100.0
    return value


def _format_percent(fraction: float) -> str:
    pct = round(fraction * 100, 6)
    return f"{int(pct)}%" if pct == int(pct) else f"{pct}%"


# --------------------------------------------------------------------------------------------
# building blocks

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = rf"{_DNS_LABEL}(\.{_DNS_LABEL})*"
_METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"


Aggregation = Literal["avg", "sum", "max", "min"]
"""How a metric's per-pod values are combined into one reading."""


Count = Annotated[int, Field(strict=True)]
"""A whole number; `true` or 2.5 are rejected rather than coerced."""


def _number_not_text(value: object) -> object:
    """A number as the document wrote it: text ("5" in JSON, '5' quoted in YAML) or a boolean
    is refused (rule float_type, as pydantic's strict mode names it), not coerced."""
    if isinstance(value, bool):
        raise _fail("float_type", f"Input should be a valid number, not a boolean ({value!r})")
    if isinstance(value, str):
        raise _fail("float_type", _text_for_a_number(value))
    return value


def _text_for_a_number(text: str) -> str:
    if not _is_number(text):
        return f"Input should be a valid number, not text ({text!r})"
    if "e" in text.lower():
        # PyYAML reads YAML 1.1, whose floats need a dot and a signed exponent: 1e3 is text
        return (
            f"Input should be a valid number, not text ({text!r}): write {float(text)!r} "
            "(YAML reads an exponent such as 1e3 as text, 1.0e+3 as a number)"
        )
    return f"Input should be a valid number, not text: write {text.strip()} without quotes"


NOT_TEXT = BeforeValidator(_number_not_text)
Number = Annotated[float, NOT_TEXT]
"""A number (an integer reads as one); "5", YAML's quoted '5' or true are rejected rather than
coerced. Fields that take text on purpose (durations, targets, rates, percentages) parse it
before this check. An optional one puts its bounds before the check, or its JSON schema
shows them as pydantic's names (`ge`), not JSON Schema's: `Annotated[float, Field(ge=0),
NOT_TEXT] | None`."""


Flag = Annotated[bool, Field(strict=True)]
"""true or false (YAML's own booleans, yes/no and on/off included, are read as such by the
YAML parser); "yes", "true" or 1 in JSON are rejected rather than coerced."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _parse_rate(value: object, signal: str) -> tuple[float, str]:
    """0.5, "0.5/s", "30/min", "1800/h" -> (per second, unit written)."""
    unit = "s"
    raw = value
    if isinstance(value, str) and "/" in value:
        amount_text, _, unit = (p.strip() for p in value.partition("/"))
        if unit in ("sec", "second"):
            unit = "s"
        elif unit in ("m", "minute"):
            unit = "min"
        elif unit == "hour":
            unit = "h"
        if unit not in ("s", "min", "h"):
            raise _fail(
                "rate",
                f"{raw!r} is not a rate: use e.g. '0.5/s', '30/min', '1800/h'",
                sub=signal,
                value=raw,
            )
        value = amount_text
    elif isinstance(value, str):
        # '0.5' quoted: a rate as text carries its unit; a bare number is a number
        hint = (
            "is text without a unit: write 0.5 (per second) or"
            if _is_number(value)
            else ("is not a rate: use e.g.")
        )
        raise _fail("rate", f"{raw!r} {hint} '0.5/s', '30/min', '1800/h'", sub=signal, value=raw)
    try:
        amount = _number(value, "capacity")
    except PydanticCustomError:
        raise _fail(
            "rate",
            f"{raw!r} is not a rate: use e.g. '0.5/s', '30/min', '1800/h'",
            sub=signal,
            value=raw,
        ) from None
    if amount <= 0:
        raise _fail("rate", f"capacity must be > 0, got {raw!r}", sub=signal, value=raw)
    return amount / {"s": 1.0, "min": 60.0, "h": 3600.0}[unit], unit


def _parse_cold_start(value: object) -> object:
    if value == "learn":
        return value
    seconds = parse_duration(value)
    if seconds > 3600:
        raise _fail("duration", f"cold_start above 1h is not plausible, got {value!r}")
    return seconds


def _format_cold_start(value: float | str) -> str:
    return value if isinstance(value, str) else format_duration(value)
