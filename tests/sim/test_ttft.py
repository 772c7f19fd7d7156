"""Time to first token in the simulator: queue wait + prefill for a request log, the queue wait
alone for a count trace, and the share of requests within the scenario's objective."""

from __future__ import annotations

import numpy as np
import pytest

from app.sim.report import markdown_table, report_for, summarise_seeds, ttft_attainment
from app.sim.traces import build_workload, parse_trace, workload_from_arrivals
from app.sim.traces import workload_from_requests as log
from tests.sim.helpers import SC, Fixed, run


def test_a_request_log_ttft_is_its_wait_plus_its_prefill() -> None:
    # One pod of 8 slots. At 0 ten 5 s requests with 0.5 s of prefill each: eight start at
    # once (TTFT 0.5 s), two wait for the first to finish at 5 (TTFT 5.5 s).
    wl = log({0: [5] * 10}, 60, prefills={0: [0.5] * 10})
    res = run(wl, Fixed(1), initial=1)
    assert sorted(res.ttft_s.tolist()) == [0.5] * 8 + [5.5] * 2
    p95, within = ttft_attainment(res, 2.0)
    assert p95 == 5.5 and within == pytest.approx(0.8)


def test_a_dropped_request_misses_the_objective() -> None:
    # One pod busy for 100 s with eight requests; two more time out after 30 s of waiting.
    wl = log({0: [100] * 10}, 120, prefills={0: [0.1] * 10})
    res = run(wl, Fixed(1), initial=1)
    assert res.dropped == 2 and len(res.ttft_s) == 8
    p95, within = ttft_attainment(res, 2.0)
    assert p95 == pytest.approx(0.1) and within == pytest.approx(0.8)


def test_a_count_trace_ttft_is_the_queue_wait() -> None:
    # One pod: eight 16 s requests at 0 start at once; eight more at 1 wait 15 s.
    arr = np.zeros(60, dtype=np.int64)
    arr[0], arr[1] = 8, 8
    res = run(workload_from_arrivals(arr), Fixed(1), initial=1)
    assert len(res.ttft_s) == 0 and res.wait_hist[15] == 8
    p95, within = ttft_attainment(res, 2.0)
    assert p95 == 15.0 and within == pytest.approx(0.5)
    p95, within = ttft_attainment(res, 15.0)
    assert within == 1.0


def test_prefill_is_context_tokens_at_the_scenario_rate() -> None:
    trace = parse_trace(
        [
            "TIMESTAMP,ContextTokens,GeneratedTokens",
            "2023-11-16 18:15:46.0,5000,10",
            "2023-11-16 18:15:47.5,500,10",
        ]
    )
    wl = build_workload(trace, seed=0, replay_copies=1, prefill_tokens_per_s=5000.0)
    assert wl.prefills == {0: (1.0,), 1: (0.1,)}
    assert "prefill ctx / 5000 tokens/s" in wl.description


def test_the_report_shows_attainment_per_policy_and_over_seeds() -> None:
    wl = log({0: [5] * 10}, 60, prefills={0: [0.5] * 10})
    one = report_for(run(wl, Fixed(1), initial=1))
    two = report_for(run(wl, Fixed(2), initial=2))
    assert (one.within_objective, two.within_objective) == (pytest.approx(0.8), 1.0)
    assert one.ttft_objective_s == SC.ttft_objective_s == 2.0
    d = one.to_dict()
    assert (d["ttft_p95_s"], d["within_objective"]) == (5.5, pytest.approx(0.8))
    assert "| 5.5 | 80.0 % <= 2s |" in markdown_table([one])
    (row,) = summarise_seeds([[one], [two]])
    assert row.within_objective == pytest.approx(0.9) and row.ttft_p95_s == pytest.approx(3.0)


def test_prefill_times_must_match_the_requests() -> None:
    with pytest.raises(ValueError, match="one prefill time per request"):
        log({0: [5, 5]}, 10, prefills={0: [0.5]})
    with pytest.raises(ValueError, match="finite"):
        log({0: [5]}, 10, prefills={0: [float("nan")]})
