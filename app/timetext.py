"""Times and durations written as text: the one grammar of the whole project.

Specs, query parameters, Grafana requests, uploaded traces and the command line all read them
here, so `5m` means the same everywhere. Pure: no clock, no I/O (any layer may import it).

Durations
    a number of seconds (`90`, `1.5`, or the number itself), or one or more `<number><unit>`
    parts written together (`250ms`, `30s`, `5m`, `1h30m`, `14d`, `2w`); units `ms`, `s`, `m`,
    `h`, `d`, `w`, lower case (`M` could be a month). Finite, >= 0 and at most 100 years
    (`MAX_DURATION_S`); `positive=True` refuses 0.

Times
    unix seconds (a number, or a string of one) or an RFC 3339 / ISO 8601 timestamp with an
    offset (`2026-01-01T00:00:00Z`, `...+02:00`); fractions of a second of any length. A
    timestamp without an offset is refused unless the caller says it means UTC (trace files).
    From 1970 to the end of year 9999 (`MAX_TIME_S`, the last time RFC 3339 can write).

The bounds keep every time and duration a finite float whose microseconds fit a 64-bit
integer (the store's timestamps): 1e308 is refused here as text, not as an overflow deep in
a query.

Errors are `TimeTextError` (a ValueError) with a message for a person; the caller names the
field and picks the error code (the API: `invalid_time`, `invalid_parameter`).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

__all__ = [
    "DURATION_PATTERN",
    "MAX_DURATION_S",
    "MAX_TIME_S",
    "TimeTextError",
    "format_duration",
    "parse_duration",
    "parse_rfc3339",
    "parse_time",
]

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
DURATION_PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h|d|w))+$|^\d+(\.\d+)?$"
"""The text form in a JSON schema (a bare number of seconds is a JSON number)."""
MAX_DURATION_S = 100 * 365 * 86400.0
MAX_TIME_S = 253402300799.0  # 9999-12-31T23:59:59Z
UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


class TimeTextError(ValueError):
    """Text that is not a time or a duration in the project's grammar."""


def parse_duration(value: str | float, *, positive: bool = False) -> float:
    """Seconds from 30, 30.5, "30", "30s", "250ms", "1h30m", "2w"; refuses negatives, NaN,
    infinities and bools (and 0 when `positive`)."""
    if isinstance(value, bool):
        raise TimeTextError(f"expected a duration like '30s' or seconds, got {value!r}")
    if isinstance(value, int | float):
        seconds = _float(value)
    elif isinstance(value, str):
        seconds = _duration_text(value)
    else:
        raise TimeTextError(f"expected a duration like '30s' or seconds, got {value!r}")
    if math.isnan(seconds) or seconds < 0:
        raise TimeTextError(f"a duration is a finite number >= 0 seconds, got {_short(value)}")
    if seconds > MAX_DURATION_S:
        raise TimeTextError(
            f"a duration is at most 100 years ({MAX_DURATION_S:.0f} s), got {_short(value)}"
        )
    if positive and seconds == 0:
        raise TimeTextError(f"the duration must be more than 0, got {value!r}")
    return seconds


def _float(value: float) -> float:
    """float(value), with an int too large for a float (10**400 in JSON) as infinity."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _short(value: object) -> str:
    """repr(value), cut short: a 400-digit number is not echoed whole."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _duration_text(value: str) -> float:
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    pos, seconds = 0, 0.0
    for m in _PART.finditer(text):
        if m.start() != pos:
            break
        seconds += float(m.group(1)) * UNIT_S[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise TimeTextError(
            f"{value!r} is not a duration: use a number of seconds or units "
            "ms, s, m, h, d, w such as '30s', '5m', '1h30m'"
        )
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact text for a duration: 30 -> "30s", 5400 -> "1h30m", 0.25 -> "250ms".
    (Weeks are written as days, as specs always have.)"""
    if seconds != int(seconds):
        ms = seconds * 1000
        return f"{int(ms)}ms" if ms == int(ms) else f"{seconds!r}s"
    rest = int(seconds)
    if rest == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, rest = divmod(rest, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)


def parse_rfc3339(text: str, *, naive_is_utc: bool = False) -> float:
    """Epoch seconds of a timestamp; one without an offset is refused unless `naive_is_utc`."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise TimeTextError(f"{text!r} is not an RFC 3339 time") from exc
    if parsed.tzinfo is None:
        if not naive_is_utc:
            raise TimeTextError(f"{text!r} has no time zone offset (add Z for UTC)")
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def parse_time(value: str | float, *, number_unit_s: float = 1.0) -> float:
    """Epoch seconds of a unix time (a number, or its text, counted in `number_unit_s`: 0.001
    for epoch milliseconds) or of an RFC 3339 timestamp; a time before 1970 is refused."""
    if isinstance(value, bool):
        raise TimeTextError(f"expected a time, got {value!r}")
    if isinstance(value, int | float):
        seconds = _float(value) * number_unit_s
    else:
        try:
            seconds = float(value) * number_unit_s
        except ValueError:
            seconds = parse_rfc3339(value)
    if math.isnan(seconds) or seconds < 0:
        raise TimeTextError(f"{_short(value)} is not a valid unix time (1970 or later)")
    if seconds > MAX_TIME_S:
        raise TimeTextError(f"{_short(value)} is after the year 9999")
    return seconds
