"""The generated half of the corpus: the same text for the same seed, and every family has the
shape its name promises."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from app.sim.corpus import FAMILIES, GENERATED, generate
from app.sim.traces import (
    CountTrace,
    RequestLog,
    Trace,
    TraceKind,
    build_workload,
    detect_kind,
    parse_trace,
)

DAY = 86400


@cache
def _parsed(family: str, seed: int) -> Trace:
    return parse_trace(generate(family, seed).splitlines())


def _counts(family: str, seed: int = 1) -> CountTrace:
    tr = _parsed(family, seed)
    assert isinstance(tr, CountTrace)
    return tr


def _log(family: str, seed: int = 1) -> RequestLog:
    tr = _parsed(family, seed)
    assert isinstance(tr, RequestLog)
    return tr


@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_same_text_other_seed_other_text(family: str) -> None:
    text = generate(family, 1)
    assert text == generate(family, 1)
    assert text != generate(family, 2)
    assert _parsed(family, 1).kind is detect_kind(text.partition("\n")[0])


def test_unknown_family_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown family"):
        generate("sawtooth", 1)


def test_the_corpus_has_every_family_with_history_before_count_windows() -> None:
    assert {g.family for g in GENERATED} == set(FAMILIES)
    assert len(GENERATED) >= 5
    for g in GENERATED:
        tr = _parsed(g.family, g.seed)
        if isinstance(tr, CountTrace):
            assert g.window_s is not None
            history = tr.end - float(tr.times[0]) - g.window_s
            assert history >= (14 if g.family == "weekly_holidays" else 3) * DAY, g.family
            wl = build_workload(tr, seed=0, window_s=g.window_s)
            assert wl.duration_s == g.window_s and len(wl.history_rate) > 0
        else:
            assert g.window_s is None  # a request log is scored whole
    kinds = {_parsed(g.family, g.seed).kind for g in GENERATED}
    assert kinds == {TraceKind.COUNTS, TraceKind.REQUESTS}


def _daily_mean(values: np.ndarray, per_day: int) -> np.ndarray:
    return values[: len(values) // per_day * per_day].reshape(-1, per_day).mean(axis=0)


def test_flash_crowds_spike_on_a_daily_cycle() -> None:
    tr = _counts("flash_crowds")
    v = tr.values
    per_day = DAY // int(tr.interval_s)
    profile = _daily_mean(np.minimum(v, np.median(v) * 2), per_day)
    assert profile.max() > 2.5 * profile.min()  # a daily cycle
    # crowds: jumps within one interval to several times the level, one or two a day
    jumps = np.flatnonzero(v[1:] > 1.8 * v[:-1] + 500)
    assert 9 <= len(jumps) <= 2 * 9
    assert v.max() > 2.2 * np.percentile(v, 90)


def test_noisy_monitoring_is_noisy_and_only_weakly_seasonal() -> None:
    tr = _counts("noisy_monitoring")
    y = np.log(tr.values)
    phase = 2 * np.pi * (tr.times % DAY) / DAY
    design = np.column_stack((np.ones_like(y), np.sin(phase), np.cos(phase)))
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    amplitude = float(np.hypot(coef[1], coef[2]))
    residual = y - design @ coef
    assert 0.04 < amplitude < 0.2  # a daily cycle of about +-10 % ...
    assert residual.std() > amplitude  # ... under noise larger than it
    assert np.diff(y).std() > 0.08  # step-to-step noise
    assert (tr.values > 1.5 * np.median(tr.values)).sum() >= 3  # outliers


def test_level_steps_hold_a_level_then_step() -> None:
    v = _counts("level_steps").values
    ratio = np.abs(np.diff(np.log(v)))
    steps = np.flatnonzero(ratio > 0.3)
    assert len(steps) >= 8  # over 8 days
    assert np.median(np.diff(steps)) >= 8  # levels held for hours (15 min intervals)
    assert np.median(ratio[ratio <= 0.3]) < 0.06  # flat between steps


def test_weekly_holidays_have_quiet_weekends_and_holiday_weekdays() -> None:
    tr = _counts("weekly_holidays")
    v = tr.values.reshape(-1, 24).sum(axis=1)  # per day
    weekday = np.arange(len(v)) % 7
    weekend = v[weekday >= 5]
    quiet_weekdays = np.flatnonzero((weekday < 5) & (v < weekend.max() * 1.2))
    assert v[weekday < 5].max() > 2 * weekend.mean()
    assert len(quiet_weekdays) == 2  # the holidays: one in the history, one in the last week
    assert quiet_weekdays[0] < 21 <= quiet_weekdays[1]


def _pods_busy(log: RequestLog) -> np.ndarray:
    """Slots the 4x replay keeps busy per second (service as the scenario computes it), in
    pods of 8 slots."""
    svc = 0.5 + 0.03 * log.generated_tokens + 0.0002 * log.context_tokens
    t = log.times - log.times[0]
    n = int(t.max() + svc.max()) + 2
    delta = np.zeros(n + 1)
    np.add.at(delta, t.astype(int), 4)
    np.add.at(delta, (t + svc).astype(int), -4)
    return np.cumsum(delta)[:n] / 8


def test_llm_bursty_comes_in_twenty_to_forty_five_pod_bursts_of_about_a_minute() -> None:
    log = _log("llm_bursty")
    pods = _pods_busy(log)
    base = np.median(pods)
    assert base < 3  # a low base volume
    over = pods > 10
    edges = np.diff(np.concatenate(([0], over.astype(int), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    assert 6 <= len(starts) <= 20  # every 8-25 minutes over 3 hours
    peaks = [pods[a:b].max() for a, b in zip(starts, ends, strict=True)]
    assert min(peaks) >= 15 and max(peaks) <= 60
    lengths = ends - starts
    assert 40 <= np.median(lengths) <= 150  # about a minute, plus the service tail


def test_llm_diurnal_is_a_log_of_days_with_a_daily_cycle() -> None:
    log = _log("llm_diurnal")
    span = log.times[-1] - log.times[0]
    assert span > 1.9 * DAY
    hours = ((log.times - log.times[0]) // 3600 % 24).astype(int)
    per_hour = np.bincount(hours, minlength=24)
    assert per_hour.max() > 3 * per_hour.min()
    assert 12 <= int(np.argmax(per_hour)) <= 16  # the afternoon peak
