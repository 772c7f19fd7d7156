"""Knative KPA against `autoscaler.go`'s Scale() and the documented defaults."""

from __future__ import annotations

import numpy as np
import pytest

from app.sim.baselines.kpa import KPA, KPAState, kpa_scale
from tests.sim.helpers import ramp_load, run, step_load

TARGET = 8 * 0.7  # containerConcurrency 8 at 70 %


@pytest.mark.parametrize(
    ("ready", "stable", "panic", "want"),
    [
        # ceil(56 / 5.6) = 10
        pytest.param(10, 56.0, 56.0, 10, id="steady"),
        # ceil(57 / 5.6) = 11
        pytest.param(10, 57.0, 57.0, 11, id="ceil"),
        # load gone: at most /2 per tick: floor(10 / 2) = 5
        pytest.param(10, 0.0, 0.0, 5, id="max-scale-down-rate-2"),
        # ready 0 counts as 1 for the rates
        pytest.param(0, 11.2, 11.2, 2, id="ready-zero-as-one"),
    ],
)
def test_stable_mode(ready: int, stable: float, panic: float, want: int) -> None:
    assert kpa_scale(KPAState(), 0.0, ready, stable, panic, target_per_pod=TARGET) == want


def test_panic_starts_at_twice_ready_and_blocks_scale_down_for_a_stable_window() -> None:
    st = KPAState()
    # 4 ready, panic window wants ceil(56/5.6)=10 >= 2*4: panic, take max(stable, panic)
    assert kpa_scale(st, 0.0, 4, 11.2, 56.0, target_per_pod=TARGET) == 10
    assert st.panic_time == 0.0
    # load falls: stable says 2, but no scale-down while panicking
    assert kpa_scale(st, 30.0, 10, 11.2, 5.6, target_per_pod=TARGET) == 10
    assert kpa_scale(st, 60.0, 10, 11.2, 5.6, target_per_pod=TARGET) == 10
    # panic ends one stable window (60 s) after the last over-threshold tick
    assert kpa_scale(st, 62.0, 10, 11.2, 5.6, target_per_pod=TARGET) == 5  # floor(10/2)
    assert st.panic_time is None


def test_panic_is_extended_while_over_threshold() -> None:
    st = KPAState()
    kpa_scale(st, 0.0, 2, 5.6, 56.0, target_per_pod=TARGET)
    kpa_scale(st, 50.0, 4, 5.6, 56.0, target_per_pod=TARGET)  # 10/4 >= 2 again
    assert st.panic_time == 50.0
    assert kpa_scale(st, 100.0, 10, 5.6, 5.6, target_per_pod=TARGET) == 10


def test_below_threshold_does_not_panic() -> None:
    st = KPAState()
    # 10 ready, panic wants 19 < 20: stable mode only
    assert kpa_scale(st, 0.0, 10, 56.0, 106.0, target_per_pod=TARGET) == 10
    assert st.panic_time is None


def test_kpa_on_a_step_load_panics_and_scales_within_seconds() -> None:
    wl = step_load(2, 20, at=600, n=1800)
    res = run(wl, KPA(), initial=6)
    reps = res.replicas
    # 20 req/s * 16 s = 320 concurrent / 5.6 -> 58 pods, asked for within a few ticks
    first_big = int(np.argmax(reps[600:] >= 20))
    assert first_big <= 20
    assert 50 <= reps[1500] <= 65
    # every request eventually needs its pods to start: the cold start costs drops or waits
    assert res.dropped + sum(res.wait_hist[1:]) > 0


def test_kpa_scales_down_after_the_stable_window_by_at_most_half_per_tick() -> None:
    wl = step_load(20, 2, at=600, n=1500)
    res = run(wl, KPA(), initial=58)
    reps = res.replicas
    # 20 s after the drop the 60 s average still holds 2/3 of the old load (~44 pods)
    assert reps[620] >= 40
    down = -np.diff(reps[600:])
    prev = reps[600:-1]
    assert np.all(down <= np.maximum(prev - prev // 2, 0))
    assert reps[1400] <= 12


def test_kpa_on_a_slow_ramp_tracks_seventy_percent_concurrency() -> None:
    wl = ramp_load(2, 20, n=3600)
    res = run(wl, KPA(), initial=5)
    late = slice(1200, 3600)
    util = (res.busy[late] + res.queue[late]).sum() / (8 * res.ready[late]).sum()
    assert 0.55 <= util <= 0.8  # 5.6 of 8 slots per pod, a little above while it catches up
    assert res.dropped < 0.001 * res.arrived  # halving per tick on noise costs a few
