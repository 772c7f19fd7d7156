"""The wake from zero, judged on the moments at rest: a model that knows the business-day
morning earns it where MAE against the last value (perfect at rest) gives it no skill; one
that cannot see demand coming (the last value, or strays at random) does not; waking for
nothing at more than a tenth of the idle steps loses it."""

from __future__ import annotations

import numpy as np
import pytest

from app.forecasting.from_spec import forecaster_for, history_span
from app.forecasting.models import NaiveForecaster
from app.forecasting.types import History
from app.forecasting.wake import (
    MAX_FALSE_WAKE,
    WakeModel,
    WakeScore,
    WithWake,
    rest_origins,
    score_wakes,
)
from app.policy import parse_spec
from tests.forecasting.test_from_spec import BASE

STEP = 300.0
DAY = 288  # steps of 5 minutes


def office_hours(weeks: int, seed: int = 1, strays: float = 0.01) -> np.ndarray:
    """5-minute request rates of an internal deployment: 0 at night and at weekends (a few
    stray requests), a ramp from 07:30-08:00 on business days, quiet from 19:00."""
    rng = np.random.default_rng(seed)
    n = weeks * 7 * DAY
    hours = (np.arange(n) % DAY) * STEP / 3600.0
    day = np.arange(n) // DAY
    y = np.zeros(n)
    for d in range(weeks * 7):
        if d % 7 >= 5:
            continue
        start = rng.uniform(7.5, 8.0)
        on = day == d
        y[on] = 2.0 * np.clip((hours[on] - start) / 1.5, 0, 1) * np.clip(19.0 - hours[on], 0, 1)
    idle = y == 0
    stray = idle & (rng.random(n) < strays)
    y[stray] = rng.uniform(0.01, 0.03, int(stray.sum()))
    return y


def test_rest_origins_are_the_origins_with_a_lead_of_zeros_behind_them() -> None:
    y = np.array([0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 2.0, 0.0])
    assert rest_origins(y, 1).tolist() == [0, 1, 3, 4, 5]
    assert rest_origins(y, 2).tolist() == [1, 4, 5]


def test_the_score_counts_hits_and_false_wakes_by_the_requests_expected() -> None:
    """At 5-minute steps one request is 1/300 req/s: an origin is an event when the next step
    holds a request, a wake when the forecast expects one."""
    y = np.array([0.0, 0.0, 0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    origins = rest_origins(y, 1)  # 0, 1, 3, 4, 5, 6, 7 -> the next step: 1 event (origin 1)
    forecast = {1: 0.01, 4: 0.01, 5: 0.001}  # a hit, a false wake, under one request
    score = score_wakes(y, STEP, 1, origins, lambda o: np.array([[forecast.get(int(i), 0.0)]
                                                                 for i in o]))  # fmt: skip
    assert score == WakeScore(events=1, hits=1, quiet=6, false_wakes=1)
    assert score.skill == pytest.approx(1.0 - 1 / 6)


def test_never_waking_and_always_waking_both_have_no_wake_skill() -> None:
    never = WakeScore(events=20, hits=0, quiet=1000, false_wakes=0)
    always = WakeScore(events=20, hits=20, quiet=1000, false_wakes=1000)
    assert never.skill == 0 and always.skill == 0
    assert not never.earned and not always.earned


def test_a_wake_that_spends_more_than_a_tenth_of_the_idle_time_is_not_earned() -> None:
    quiet = 1000
    over = WakeScore(events=10, hits=10, quiet=quiet, false_wakes=int(MAX_FALSE_WAKE * quiet) + 1)
    under = WakeScore(events=10, hits=10, quiet=quiet, false_wakes=int(MAX_FALSE_WAKE * quiet))
    assert over.skill > 0 and not over.earned
    assert under.earned
    assert not WakeScore(events=10, hits=1, quiet=quiet, false_wakes=0).earned  # one is luck


def test_the_week_before_earns_the_wake_of_business_mornings_the_last_value_cannot() -> None:
    """Three weeks of office hours: last week's morning at the same time wakes ahead of about
    half the ramps (this week's may start before last week's), for nothing at a few percent of
    the idle steps; the last value (0 at rest) never wakes, and a day earlier (Friday's
    morning for a Saturday) wakes for nothing too often."""
    y = office_hours(weeks=3)
    wake = WakeModel(lead=1).fit(History(0.0, STEP, y))
    assert wake.config is not None and wake.config.season == 7 * DAY
    assert wake.score is not None and wake.score.earned
    assert wake.score.hits >= 3 and wake.score.false_rate <= 0.05
    naive = NaiveForecaster(lead=1).fit(History(0.0, STEP, y))
    assert naive.predict(1).wake is None  # a model alone judges no wake


def test_stray_requests_at_random_are_not_a_wake_anyone_earns() -> None:
    """Nothing but strays (no business days): no seasonal shape sees one coming."""
    rng = np.random.default_rng(3)
    y = np.where(rng.random(3 * 7 * DAY) < 0.02, 0.02, 0.0)
    wake = WakeModel(lead=1).fit(History(0.0, STEP, y))
    assert wake.score is not None and not wake.score.earned


def test_one_week_of_history_has_no_past_week_to_wake_by() -> None:
    """With one week, only the daily shape can be judged, and a Friday for a Saturday (or a
    Sunday for a Monday) makes it wake for nothing or miss: not earned."""
    wake = WakeModel(lead=1).fit(History(0.0, STEP, office_hours(weeks=1)))
    assert wake.config is None or wake.config.season == DAY
    assert wake.score is None or not wake.score.earned


def test_a_series_that_never_rests_has_no_wake() -> None:
    y = 1.0 + 0.5 * np.sin(np.arange(7 * DAY) * 2 * np.pi / DAY)
    wake = WakeModel(lead=1).fit(History(0.0, STEP, y))
    assert wake.score is None and wake.predict(4) is None


def test_a_scaler_allowed_to_sleep_forecasts_its_wake_and_the_path_rises_before_monday() -> None:
    """At one step ahead `auto` serves `adaptive`, which at rest repeats the last value (0);
    a min-0 scaler's forecast also carries the wake: at 07:00 of the Monday after three weeks
    its path expects the ramp within the next hour and a half, while the mean expects none."""
    spec = parse_spec({**BASE, "min_replicas": 0, "algorithm": {"name": "auto"}})
    y = office_hours(weeks=4)
    monday_0700 = 3 * 7 * DAY + 84
    history = History(0.0, STEP, y[: monday_0700 + 1])
    model = forecaster_for(spec, lead=1).fit(history)
    forecast = model.predict(24, (0.5, 0.9))
    assert forecast.wake is not None and forecast.wake.score.earned
    assert forecast.wake.model.startswith("wake:season=2016")
    path = forecast.wake.path
    assert path[0] * STEP < 1.0  # 07:00-07:05: nothing expected yet
    assert max(path[6:18]) * STEP >= 1.0  # 07:30-08:30: the ramp is expected
    assert max(forecast.mean[:6]) * STEP < 1.0
    # refreshed with the next point, the same choice follows the newer data
    model.refresh(History(0.0, STEP, y[: monday_0700 + 2]))
    later = model.predict(24, (0.5,))
    assert later.wake is not None and later.start == forecast.start + STEP


def test_a_scaler_that_may_not_sleep_carries_no_wake() -> None:
    spec = parse_spec({**BASE, "min_replicas": 1, "algorithm": {"name": "auto"}})
    model = forecaster_for(spec, lead=1).fit(History(0.0, STEP, office_hours(weeks=3)))
    assert model.predict(4).wake is None


def test_the_wake_is_judged_on_four_weeks_while_the_model_fits_the_last_two() -> None:
    """A scaler that may sleep reads four weeks (`history_span`); its model is fitted on the
    last 14 days only, as any scaler's, and the wake on all of it (three weeks of Mondays)."""
    seen: list[int] = []

    class Spy(NaiveForecaster):
        def fit(self, history: History) -> Spy:
            seen.append(len(history))
            return super().fit(history)

    sleepy = parse_spec({**BASE, "min_replicas": 0})
    assert history_span(sleepy) == 28 * 86400 and history_span(parse_spec(BASE)) == 14 * 86400
    y = office_hours(weeks=4)
    model = WithWake(Spy(lead=1), lead=1, model_span_s=14 * 86400).fit(History(0.0, STEP, y))
    assert seen == [14 * DAY]
    wake = model.predict(4).wake
    assert (
        wake is not None
        and wake.score.events
        > WakeModel(lead=1).fit(History(0.0, STEP, y[-14 * DAY :])).score.events
    )  # type: ignore[union-attr]
