"""HPA v2 against `replica_calculator.go` / `horizontal.go` and the v2 default behaviour."""

from __future__ import annotations

import numpy as np
import pytest

from app.sim.baselines.hpa import (
    HPA,
    HPAController,
    replicas_for_average_value,
    replicas_for_utilization,
)
from tests.sim.helpers import ramp_load, run, step_load


@pytest.mark.parametrize(
    ("current", "ready", "util", "unready", "missing", "want"),
    [
        # |1 - 75/70| = 0.071 <= 0.1: inside the tolerance, hold
        pytest.param(10, 10, 75.0, 0, 0, 10, id="tolerance-holds"),
        # ceil(4 * 100/70) = ceil(5.71) = 6
        pytest.param(4, 4, 100.0, 0, 0, 6, id="scale-up-ceil"),
        # ceil(10 * 35/70) = 5
        pytest.param(10, 10, 35.0, 0, 0, 5, id="scale-down"),
        # 4 starting pods at 0 %: 400/8 = 50 % < 70 %: the direction flips, hold
        pytest.param(8, 4, 100.0, 4, 0, 8, id="unready-flips-direction-hold"),
        # 4 ready at 140 % + 1 unready at 0: 112 % -> ceil(5 * 1.6) = 8
        pytest.param(5, 4, 140.0, 1, 0, 8, id="unready-counted-zero-on-scale-up"),
        # unready pods are ignored on scale-down: ceil(4 * 0.5) = 2
        pytest.param(8, 4, 35.0, 4, 0, 2, id="unready-ignored-on-scale-down"),
        # 4 missing pods count as 100 % on scale-down: (140 + 280)/8 = 52.5 % -> ceil(6) = 6
        pytest.param(8, 4, 35.0, 0, 4, 6, id="missing-at-target-on-scale-down"),
        # missing pods count as 0 % on scale-up: 4*105/8 = 52.5 % flips: hold
        pytest.param(8, 4, 105.0, 0, 4, 8, id="missing-zero-on-scale-up-flips"),
        pytest.param(3, 0, 0.0, 3, 0, 3, id="no-ready-pod-holds"),
    ],
)
def test_replica_calculator(
    current: int, ready: int, util: float, unready: int, missing: int, want: int
) -> None:
    got = replicas_for_utilization(current, ready, util, 70.0, unready=unready, missing=missing)
    assert got == want


@pytest.mark.parametrize(
    ("current", "total", "want"),
    [
        pytest.param(2, 100.0, 20, id="ceil-total-over-target"),
        pytest.param(20, 104.0, 20, id="in-tolerance"),
        pytest.param(20, 0.0, 0, id="empty-queue-asks-zero"),
        pytest.param(3, 16.0, 3, id="16-over-15-in-tolerance"),
        pytest.param(3, 17.0, 4, id="ceil-3.4"),
    ],
)
def test_average_value(current: int, total: float, want: int) -> None:
    assert replicas_for_average_value(current, total, 5.0) == want


def test_scale_up_limited_to_max_of_four_pods_and_double_per_15s() -> None:
    c = HPAController(1, 80)
    seq = [1]
    for k in range(1, 7):
        seq.append(c.normalize(15 * k, seq[-1], 200))
    # max(+4, x2) per period: 1 -> 5 -> 10 -> 20 -> 40 -> 80 (max) -> 80
    assert seq == [1, 5, 10, 20, 40, 80, 80]
    assert c.last_reason in ("TooManyReplicas", "ScaleWithinWindow")


def test_two_syncs_in_one_period_share_the_rate_limit() -> None:
    c = HPAController(1, 80)
    assert c.normalize(0, 10, 100) == 20
    assert c.normalize(5, 20, 100) == 20  # the period that allowed +10 is still open
    assert c.normalize(15, 20, 100) == 40


def test_scale_down_waits_for_the_300s_stabilisation_window() -> None:
    c = HPAController(1, 80)
    cur = c.normalize(0, 10, 10)
    out = []
    for t in range(15, 451, 15):
        cur = c.normalize(t, cur, 2)
        out.append((t, cur))
    # the recommendation 10 made at t=0 stays in the window until t=300 has passed it
    assert all(r == 10 for t, r in out if t < 300)
    assert dict(out)[300] == 2
    assert c.last_reason == "ScaleWithinWindow"


def test_hpa_on_a_step_load_scales_up_within_its_cadence_and_down_after_300s() -> None:
    # 2 req/s for 10 min, then 20 req/s (needs 40 pods at 100 %, 58 at the 70 % target)
    wl = step_load(2, 20, at=600, n=2400)
    res = run(wl, HPA(), initial=5)
    reps = res.replicas
    # before the step, utilisation 2*16/(8*5) = 80 % -> ceil(5 * 80/70) = 6 pods, not more
    assert reps[500] <= 7
    # after the step: the metric (15 s samples, 5 s late) reaches HPA within ~35 s
    first_up = int(np.argmax(reps[600:] > reps[599]))
    assert 5 <= first_up <= 40
    # and it keeps doubling at most every 15 s until it settles near 40/0.7 = 58 pods
    assert 50 <= reps[1800] <= 70
    steps = np.diff(reps[600:900])
    assert steps.max() <= max(4, int(reps[600:900].max()))


def test_hpa_scale_down_after_the_load_drops_is_delayed_300s() -> None:
    wl = step_load(20, 2, at=900, n=2400)
    res = run(wl, HPA(), initial=58)
    reps = res.replicas
    assert reps[900 + 250] >= 50  # still stabilised
    assert reps[900 + 400] < 20


def test_hpa_on_a_slow_ramp_holds_utilisation_near_its_target() -> None:
    # 2 -> 20 req/s over an hour: HPA follows within its tolerance band, no drops
    wl = ramp_load(2, 20, n=3600)
    res = run(wl, HPA(), initial=5)
    late = slice(1200, 3600)
    util = res.busy[late].sum() / (8 * res.ready[late]).sum()
    assert 0.55 <= util <= 0.8  # target 70 % ± tolerance, minus the ramp's lag
    assert res.dropped == 0
