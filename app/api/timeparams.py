"""Times and durations in query parameters and bodies, read with the project's one grammar
(app.timetext) and refused as the API refuses: 400 with the parameter named.

An unreadable time is `invalid_time` wherever it appears (a query parameter, a Grafana range);
an unreadable or non-positive duration is `invalid_parameter`.
"""

from __future__ import annotations

from app import timetext
from app.errors import BadRequest

__all__ = ["optional_time_us", "parse_duration", "parse_time", "parse_time_ms"]


def _refused(name: str, value: object, exc: timetext.TimeTextError, code: str) -> BadRequest:
    return BadRequest(
        f"{name}={value!r}: {exc}", code=code, details={"parameter": name, "value": value}
    )


def parse_time(value: str, name: str) -> float:
    """Epoch seconds of unix seconds or an RFC 3339 time."""
    try:
        return timetext.parse_time(value)
    except timetext.TimeTextError as exc:
        raise _refused(name, value, exc, "invalid_time") from None


def parse_time_ms(value: str | float, name: str) -> int:
    """Epoch milliseconds of epoch milliseconds or an RFC 3339 time (what Grafana sends)."""
    try:
        return round(timetext.parse_time(value, number_unit_s=0.001) * 1000)
    except timetext.TimeTextError as exc:
        raise _refused(name, value, exc, "invalid_time") from None


def optional_time_us(value: str | None, name: str) -> int | None:
    """An optional `since`/`until`-style bound, in microseconds (None when absent)."""
    return None if value is None else round(parse_time(value, name) * 1e6)


def parse_duration(value: str, name: str) -> float:
    """Seconds of a positive duration: 15, 30s, 5m, 1h30m, 1w."""
    try:
        return timetext.parse_duration(value, positive=True)
    except timetext.TimeTextError as exc:
        raise _refused(name, value, exc, "invalid_parameter") from None
