from __future__ import annotations

import numpy as np
import pytest

from app.sim.traces import (
    CountTrace,
    RequestLog,
    TraceError,
    TraceKind,
    build_workload,
    detect_kind,
    parse_trace,
    workload_from_requests,
)

# First rows of the shared traces (NAB nyc_taxi.csv, commit ea702d75; Azure/AzurePublicDataset
# AzureLLMInferenceTrace_conv.csv, commit b469a113), written inline.
NYC_EXCERPT = """timestamp,value
2014-07-01 00:00:00,10844
2014-07-01 00:30:00,8127
2014-07-01 01:00:00,6210
2014-07-01 01:30:00,4656
"""
AZURE_EXCERPT = """TIMESTAMP,ContextTokens,GeneratedTokens
2023-11-16 18:15:46.6805900,374,44
2023-11-16 18:15:50.9951690,396,109
2023-11-16 18:15:51.1071780,879,48
"""


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        pytest.param("timestamp,value", TraceKind.COUNTS, id="nab-counts"),
        pytest.param("Timestamp, Value", TraceKind.COUNTS, id="counts-case-space"),
        pytest.param("\ufefftimestamp,value\n", TraceKind.COUNTS, id="counts-bom"),
        pytest.param("TIMESTAMP,ContextTokens,GeneratedTokens", TraceKind.REQUESTS, id="azure"),
        pytest.param('"timestamp","contexttokens","generatedtokens"', TraceKind.REQUESTS, id="q"),
    ],
)
def test_detect_kind(header: str, kind: TraceKind) -> None:
    assert detect_kind(header) is kind


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("time,count\n2014-07-01 00:00:00,3\n", id="unknown-header"),
        pytest.param("timestamp,value\n2014-07-01 00:00:00,3\n", id="one-row"),
        pytest.param("timestamp,value\nabc,1\n", id="one-bad-row"),
        pytest.param("timestamp,value\nyesterday,3\n2014-07-01 00:30:00,1\n", id="bad-time"),
        pytest.param("timestamp,value\n2014-07-01 00:00:00,x\n2014-07-01 00:30:00,1\n", id="nan"),
        pytest.param(
            "timestamp,value\n2014-07-01 00:00:00,-1\n2014-07-01 00:30:00,1\n", id="negative"
        ),
        pytest.param("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:00,1\n", id="cols"),
        pytest.param(
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:00,1.5,2\n", id="float-tok"
        ),
        pytest.param(
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:00,nan,2\n", id="nan-tok"
        ),
        pytest.param("timestamp,value\n2014-07-01 00:00:00,inf\n2014-07-01 00:30:00,1\n", id="inf"),
        pytest.param(
            "timestamp,value\n2014-07-01 00:00:00,NaN\n2014-07-01 00:30:00,1\n", id="one-value"
        ),
    ],
)
def test_bad_traces_raise_trace_error(text: str) -> None:
    with pytest.raises(TraceError):
        parse_trace(text.splitlines())


def test_a_bad_row_is_named_even_in_a_trace_too_short() -> None:
    with pytest.raises(TraceError, match="line 2: bad timestamp 'abc'"):
        parse_trace(["timestamp,value", "abc,1"])


def test_parse_count_excerpt() -> None:
    tr = parse_trace(NYC_EXCERPT.splitlines())
    assert isinstance(tr, CountTrace)
    assert tr.interval_s == 1800
    assert tr.values.tolist() == [10844, 8127, 6210, 4656]


def test_parse_request_log_excerpt_with_seven_fraction_digits() -> None:
    tr = parse_trace(AZURE_EXCERPT.splitlines())
    assert isinstance(tr, RequestLog)
    assert tr.generated_tokens.tolist() == [44, 109, 48]
    assert tr.times[1] - tr.times[0] == pytest.approx(4.314579, abs=1e-5)


def test_quoted_fields_read_as_their_text() -> None:
    """A CSV writer that quotes every field (QUOTE_ALL) gives the same trace."""
    quoted = ['"timestamp","value"'] + [
        ",".join(f'"{c}"' for c in line.split(",")) for line in NYC_EXCERPT.splitlines()[1:]
    ]
    tr = parse_trace(quoted)
    assert isinstance(tr, CountTrace)
    assert tr.values.tolist() == [10844, 8127, 6210, 4656] and tr.interval_s == 1800


def test_token_counts_written_as_whole_floats_are_read() -> None:
    """pandas writes an integer column with gaps as floats: `374.0` is 374 tokens."""
    text = AZURE_EXCERPT.replace(",374,44", ",374.0,44.0")
    tr = parse_trace(text.splitlines())
    assert isinstance(tr, RequestLog)
    assert tr.context_tokens.tolist() == [374, 396, 879]
    assert tr.generated_tokens.tolist() == [44, 109, 48]


@pytest.mark.parametrize("missing", ["", "NaN", "null", " nan "])
def test_a_missing_reading_is_a_gap_like_a_missing_row(missing: str) -> None:
    """A monitoring export writes a missed scrape as an empty or NaN value: the interval has no
    arrivals and a NaN history bucket, exactly as if its row were absent."""
    rows = [f"2015-01-01 {h:02d}:{m:02d}:00" for h in range(4) for m in (0, 30)][:7]
    with_missing = ["timestamp,value"] + [
        f"{t},{missing if i in (2, 3) else 1800}" for i, t in enumerate(rows)
    ]
    without = ["timestamp,value"] + [f"{t},1800" for i, t in enumerate(rows) if i not in (2, 3)]
    a, b = parse_trace(with_missing), parse_trace(without)
    assert isinstance(a, CountTrace) and isinstance(b, CountTrace)
    assert a.times.tolist() == b.times.tolist() and a.values.tolist() == b.values.tolist()
    wa = build_workload(a, seed=0, window_s=7200)
    wb = build_workload(b, seed=0, window_s=7200)
    assert wa.arrivals.tolist() == wb.arrivals.tolist()
    assert wa.arrivals[:1800].sum() == 0  # 01:30-02:00 had no reading
    assert np.isnan(wa.history_rate[2]) and not np.isnan(wa.history_rate[0])


def _counts(values: list[float], interval_min: int = 30) -> CountTrace:
    lines = ["timestamp,value"]
    for i, v in enumerate(values):
        h, m = divmod(i * interval_min, 60)
        lines.append(f"2014-07-{1 + h // 24:02d} {h % 24:02d}:{m:02d}:00,{v}")
    tr = parse_trace(lines)
    assert isinstance(tr, CountTrace)
    return tr


def test_count_scaling_puts_p99_rate_at_forty_pods() -> None:
    # 100 intervals of 30 min with counts 1..100: p99 rate maps to 40 pods * 8 / 16 s = 20/s.
    tr = _counts([float(v) for v in range(1, 101)])
    wl = build_workload(tr, seed=3, window_s=100 * 1800)
    p99 = np.percentile(np.arange(1, 101) / 1800, 99)
    assert wl.scale == pytest.approx(20.0 / p99)
    # the last interval (count 100) runs at 100/1800*scale req/s; Poisson mean checks it
    last = wl.arrivals[-1800:]
    assert last.mean() == pytest.approx(100 / 1800 * wl.scale, rel=0.05)
    assert wl.service_s == 16
    assert wl.duration_s == 100 * 1800


def test_count_window_splits_history_and_poisson_is_seeded() -> None:
    tr = _counts([10.0] * 96)  # two days
    a = build_workload(tr, seed=7, window_s=86400)
    b = build_workload(tr, seed=7, window_s=86400)
    c = build_workload(tr, seed=8, window_s=86400)
    assert a.duration_s == 86400
    assert len(a.history_rate) == 48  # the day before the window
    assert np.array_equal(a.arrivals, b.arrivals)
    assert not np.array_equal(a.arrivals, c.arrivals)


def test_request_log_replays_four_interleaved_copies_with_token_service_times() -> None:
    wl = build_workload(parse_trace(AZURE_EXCERPT.splitlines()), seed=0)
    assert wl.kind is TraceKind.REQUESTS
    assert int(wl.arrivals.sum()) == 12
    assert wl.arrivals[0] == 4  # copy k at +k/4 s: all in the first second
    # 0.5 + 0.03*44 + 0.0002*374 = 1.8948 -> 2 s; 0.5 + 3.27 + 0.0792 = 3.85 -> 4 s
    assert wl.services[0] == (2, 2, 2, 2)
    assert len(wl.history_rate) == 0


def test_request_log_services_use_formula() -> None:
    wl = build_workload(parse_trace(AZURE_EXCERPT.splitlines()), seed=0)
    expected = sorted(
        max(1, round(0.5 + 0.03 * g + 0.0002 * c)) for c, g in [(374, 44), (396, 109), (879, 48)]
    )
    got = sorted({s for v in wl.services.values() for s in v})
    assert got == sorted(set(expected))


def test_gaps_in_a_count_trace_have_no_arrivals_and_nan_history() -> None:
    text = [
        "timestamp,value",
        "2015-01-01 00:00:00,1800",
        "2015-01-01 00:30:00,1800",
        # 01:00 and 01:30 missing
        "2015-01-01 02:00:00,1800",
        "2015-01-01 02:30:00,1800",
        "2015-01-01 03:00:00,1800",
    ]
    tr = parse_trace(text)
    wl = build_workload(tr, seed=0, window_s=7200)  # 01:30 .. 03:30
    assert wl.arrivals[:1800].sum() == 0  # 01:30-02:00 is a gap
    assert wl.arrivals[1800:].sum() > 0
    hist = wl.history_rate
    assert len(hist) == 3  # 00:00, 00:30, 01:00 on the grid
    assert np.isnan(hist[2]) and not np.isnan(hist[0])


@pytest.mark.parametrize(
    "stamp",
    [
        pytest.param("2015-01-01 00:00:00", id="iso"),
        pytest.param("1420070400", id="unix-seconds"),
        pytest.param("1420070400.0", id="unix-seconds-float"),
        pytest.param("1420070400000", id="unix-milliseconds"),
    ],
)
def test_count_timestamps_may_be_iso_or_unix(stamp: str) -> None:
    second = {"2015-01-01 00:00:00": "2015-01-01 00:30:00"}.get(stamp, "")
    if not second:  # the next row, 30 minutes later, in the same notation
        unit = 1000 if len(stamp) == 13 else 1
        second = str(int(float(stamp)) + 1800 * unit)
    tr = parse_trace(["timestamp,value", f"{stamp},1", f"{second},2"])
    assert isinstance(tr, CountTrace)
    assert tr.times[0] == 1420070400.0 and tr.interval_s == 1800


def test_a_count_workload_carries_the_rate_its_arrivals_are_drawn_from() -> None:
    tr = _counts([900.0, 1800.0, 3600.0, 3600.0])  # 0.5, 1, 2, 2 req/s before scaling
    wl = build_workload(tr, seed=0, window_s=4 * 1800)
    assert wl.rate_at.tolist() == [0, 1800, 3600]  # one piece per distinct interval rate
    rate = wl.rate_per_second()
    assert len(rate) == wl.duration_s
    assert rate[0] == pytest.approx(0.5 * wl.scale) and rate[-1] == pytest.approx(2 * wl.scale)
    assert wl.arrivals[3600:].mean() == pytest.approx(rate[-1], rel=0.05)
    # a request log has no rate behind it
    assert not build_workload(parse_trace(AZURE_EXCERPT.splitlines()), seed=0).has_rate


@pytest.mark.parametrize(
    ("services", "n"),
    [
        pytest.param({5: [3]}, 5, id="outside"),
        pytest.param({0: [0]}, 5, id="zero-service"),
        pytest.param({}, 0, id="empty"),
    ],
)
def test_workload_from_requests_rejects(services: dict[int, list[int]], n: int) -> None:
    with pytest.raises(ValueError):
        workload_from_requests(services, n)


def test_workload_from_requests_keeps_arrival_order_and_demand() -> None:
    wl = workload_from_requests({0: [5, 2], 3: [1]}, 10)
    assert wl.kind is TraceKind.REQUESTS
    assert wl.arrivals.tolist() == [2, 0, 0, 1, 0, 0, 0, 0, 0, 0]
    assert wl.services == {0: (5, 2), 3: (1,)}
    assert wl.demand.tolist() == [2, 2, 1, 2, 1, 0, 0, 0, 0, 0]


def test_a_series_idle_over_99_percent_of_the_time_is_scaled_by_its_peak() -> None:
    """Its 99th percentile is 0: scaling that would replay no load at all and score every
    policy as perfect. The peak rate is the one put at 40 pods instead."""
    values = [0.0] * 400
    values[100], values[300] = 900.0, 1800.0  # the peak: 1 req/s on a 30-minute grid
    wl = build_workload(_counts(values), seed=0, window_s=200 * 1800)
    assert wl.scale == pytest.approx(20.0)  # 1 req/s -> 20 req/s, 40 pods at 100 %
    assert wl.arrivals.sum() > 0
    assert "peak" in wl.description


def test_a_window_with_no_load_is_an_error_not_an_empty_score() -> None:
    values = [600.0] * 100 + [0.0] * 300  # load only in the history before the window
    with pytest.raises(TraceError, match="no load"):
        build_workload(_counts(values), seed=0, window_s=200 * 1800)
