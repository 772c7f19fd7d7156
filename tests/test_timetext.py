"""The one grammar of times and durations: what each former dialect wrote still reads the same
(specs, query parameters, traces and the command line), and what none of them accepted is
refused."""

from __future__ import annotations

import re

import pytest

from app.timetext import (
    DURATION_PATTERN,
    TimeTextError,
    format_duration,
    parse_duration,
    parse_rfc3339,
    parse_time,
)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        pytest.param("30s", 30.0, id="seconds"),
        pytest.param("5m", 300.0, id="minutes"),
        pytest.param("1h30m", 5400.0, id="compound-as-specs-write-it"),
        pytest.param("250ms", 0.25, id="milliseconds"),
        pytest.param("2d", 172800.0, id="days"),
        pytest.param("1w", 604800.0, id="weeks-as-query-parameters-wrote-them"),
        pytest.param("14d", 1209600.0, id="a-trace-window"),
        pytest.param(" 15 ", 15.0, id="bare-number-text-is-seconds"),
        pytest.param("12.5", 12.5, id="decimal-text-is-seconds"),
        pytest.param(45, 45.0, id="a-yaml-number-is-seconds"),
        pytest.param(0, 0.0, id="zero-is-a-duration"),
    ],
)
def test_durations_every_dialect_wrote_read_the_same(value: str | float, seconds: float) -> None:
    assert parse_duration(value) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param("x", id="a-word"),
        pytest.param("-3d", id="negative"),
        pytest.param("-1", id="negative-number"),
        pytest.param("5y", id="unknown-unit"),
        pytest.param("5M", id="upper-case-could-be-months"),
        pytest.param("1h 30m", id="a-space-between-parts"),
        pytest.param("nan", id="nan"),
        pytest.param("inf", id="infinite"),
        pytest.param(True, id="a-bool-is-not-seconds"),
        # issue 14: beyond a clock's reach (microseconds in 64 bits) was a 500 downstream
        pytest.param(1e308, id="1e308"),
        pytest.param(10**400, id="an-int-beyond-any-float"),
        pytest.param("101w" * 52, id="more-than-100-years"),
    ],
)
def test_what_is_not_a_duration_is_refused(value: str | float) -> None:
    with pytest.raises(TimeTextError):
        parse_duration(value)


def test_positive_refuses_zero_only() -> None:
    with pytest.raises(TimeTextError, match="more than 0"):
        parse_duration("0s", positive=True)
    assert parse_duration("1ms", positive=True) == 0.001


@pytest.mark.parametrize(
    ("text", "matches"),
    [("30s", True), ("1h30m", True), ("2w", True), ("12.5", True), ("5y", False), ("", False)],
)
def test_the_schema_pattern_agrees_with_the_parser(text: str, matches: bool) -> None:
    assert bool(re.match(DURATION_PATTERN, text)) is matches


@pytest.mark.parametrize(
    ("value", "unit", "seconds"),
    [
        pytest.param("1767225600", 1.0, 1767225600.0, id="unix-seconds-text"),
        pytest.param(1767225600.5, 1.0, 1767225600.5, id="unix-seconds"),
        pytest.param(1767225600000, 0.001, 1767225600.0, id="epoch-ms-as-grafana-sends"),
        pytest.param("2026-01-01T00:00:00Z", 1.0, 1767225600.0, id="rfc3339-z"),
        pytest.param("2026-01-01T02:00:00+02:00", 1.0, 1767225600.0, id="rfc3339-offset"),
        pytest.param("2026-01-01T00:00:00.000Z", 0.001, 1767225600.0, id="grafana-iso"),
    ],
)
def test_times(value: str | float, unit: float, seconds: float) -> None:
    assert parse_time(value, number_unit_s=unit) == seconds


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("soon", id="a-word"),
        pytest.param("2026-01-01T00:00:00", id="no-offset"),
        pytest.param("-5", id="before-1970"),
        pytest.param("inf", id="infinite"),
        pytest.param("nan", id="nan"),
        # issue 14: POST /v1/samples with "timestamp": 1e308 answered 500
        pytest.param(1e308, id="1e308"),
        pytest.param(10**400, id="an-int-beyond-any-float"),
        pytest.param(253402300800, id="after-9999"),
    ],
)
def test_what_is_not_a_time_is_refused(value: str | float) -> None:
    with pytest.raises(TimeTextError):
        parse_time(value)


def test_the_last_time_rfc3339_can_write_is_a_time() -> None:
    assert parse_time("9999-12-31T23:59:59Z") == parse_time(253402300799)


def test_a_trace_may_say_its_naive_times_are_utc_with_seven_digits() -> None:
    assert parse_rfc3339("2023-11-16 18:15:46.6805900", naive_is_utc=True) == pytest.approx(
        1700158546.68059
    )
    with pytest.raises(TimeTextError, match="no time zone"):
        parse_rfc3339("2023-11-16 18:15:46")
