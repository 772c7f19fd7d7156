"""Times and durations in query parameters: RFC 3339 or unix seconds; `30s`, `5m`, `1h`, `1d`."""

from __future__ import annotations

import math
import re
from datetime import datetime

from app.errors import BadRequest

__all__ = ["optional_time_us", "parse_duration", "parse_time"]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)?$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_time(value: str, name: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise BadRequest(
                f"{name}={value!r} is neither unix seconds nor an RFC 3339 time",
                code="invalid_parameter",
                details={"parameter": name, "value": value},
            ) from exc
        if parsed.tzinfo is None:
            raise BadRequest(
                f"{name}={value!r} has no time zone offset",
                code="invalid_parameter",
                details={"parameter": name, "value": value},
            ) from None
        return parsed.timestamp()
    if not math.isfinite(seconds) or seconds < 0:
        raise BadRequest(
            f"{name}={value!r} is not a valid unix time",
            code="invalid_parameter",
            details={"parameter": name, "value": value},
        )
    return seconds


def optional_time_us(value: str | None, name: str) -> int | None:
    """An optional `since`/`until`-style bound, in microseconds (None when absent)."""
    return None if value is None else round(parse_time(value, name) * 1e6)


def parse_duration(value: str, name: str) -> float:
    m = _DURATION.match(value.strip())
    if not m or float(m.group(1)) <= 0:
        raise BadRequest(
            f"{name}={value!r} is not a positive duration (e.g. 15, 30s, 5m, 1h)",
            code="invalid_parameter",
            details={"parameter": name, "value": value},
        )
    return float(m.group(1)) * _UNIT_S[m.group(2) or "s"]
