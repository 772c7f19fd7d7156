"""Waking the reconcile loop for a burst, instead of letting it sleep out its interval.

The ingest service calls `Wakeup.check(rows)` after a commit: a sample of a metric named in some
scaler's emergency trigger above that trigger's threshold marks the scaler and sets the event,
so the loop reconciles it at once (a dict lookup per sample; nothing when no trigger exists).
The loop also schedules a wake for the moment a held trigger's duration elapses
(`schedule`), since a trigger with `duration: 30s` fires on the tick after 30 s, not at the
next interval. The index is refreshed on every reconcile pass and whenever a spec changes.

A wake is a hint: a sample over the threshold of one pod may not move the aggregated metric;
the reconcile pass then simply decides nothing new. Conversely a trigger on a total
(`aggregation: sum`) can be over while every pod's sample is under its threshold: no push
wakes the loop then, the next interval's reconcile sees the total and the held-trigger timer
above fires it on time. The event is per process: a push received
by a follower replica does not wake the leader (it acts at its next interval).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable

from app.policy.emergency import trigger_key
from app.policy.spec import ScalerSpec
from app.policy.types import ScalerState
from app.store.series import SampleRow

__all__ = ["Wakeup"]

Pairs = tuple[tuple[str, str], ...]
_Trigger = tuple[str, float, Pairs]  # metric, threshold, the metric's selector (sorted pairs)


class _MetricIndex:
    """The triggers on one metric name, found from a sample's labels: a trigger whose
    selector has a label pair is filed under its first pair, so a sample only meets the
    triggers its own labels can match (not every scaler sharing the metric name)."""

    def __init__(self) -> None:
        self.lowest = math.inf
        self.open: list[tuple[float, str, Pairs]] = []  # no selector: any sample
        self.by_pair: dict[tuple[str, str], list[tuple[float, str, Pairs]]] = {}

    def add(self, threshold: float, scaler: str, selector: Pairs) -> None:
        self.lowest = min(self.lowest, threshold)
        entry = (threshold, scaler, selector)
        if selector:
            self.by_pair.setdefault(selector[0], []).append(entry)
        else:
            self.open.append(entry)

    def crossed(self, value: float, labels: Pairs) -> list[str]:
        found = [scaler for threshold, scaler, _ in self.open if value > threshold]
        have: dict[str, str] | None = None
        for pair in labels:
            for threshold, scaler, selector in self.by_pair.get(pair, ()):
                if not value > threshold:
                    continue
                if len(selector) > 1:
                    have = have if have is not None else dict(labels)
                    if any(have.get(k) != v for k, v in selector):
                        continue
                found.append(scaler)
        return found


class Wakeup:
    def __init__(self) -> None:
        self.event = asyncio.Event()
        self._index: dict[str, _MetricIndex] = {}  # metric name -> its triggers
        self._by_scaler: dict[str, list[_Trigger]] = {}
        self._pending: set[str] = set()
        self._timers: dict[str, float] = {}  # scaler -> when a held trigger's duration elapses
        self.wakes = 0  # how many pushes woke the loop (telemetry, tests)

    # ---- the index ----------------------------------------------------------------------

    @staticmethod
    def _triggers(spec: ScalerSpec) -> list[_Trigger]:
        """(metric, threshold, selector) per trigger: the selector is the spec metric's, so
        pods of other workloads pushing the same metric name wake nobody here."""
        if not spec.emergency.enabled:
            return []
        selectors = {m.name: tuple(sorted(m.selector.items())) for m in spec.metrics}
        return [
            (t.metric, t.threshold, selectors.get(t.metric, ())) for t in spec.emergency.triggers
        ]

    def update(self, name: str, spec: ScalerSpec | None) -> None:
        """One scaler's triggers (None: deleted or paused); the index is rebuilt only when
        they changed, so calling this on every reconcile costs a comparison."""
        triggers = self._triggers(spec) if spec is not None else []
        if triggers == self._by_scaler.get(name, []):
            return
        if triggers:
            self._by_scaler[name] = triggers
        else:
            self._by_scaler.pop(name, None)
            self._timers.pop(name, None)
        self._rebuild()

    def retain(self, names: set[str]) -> None:
        """Forget scalers not in `names` (deleted or paused since), after a full pass."""
        gone = [n for n in self._by_scaler if n not in names]
        for name in gone:
            del self._by_scaler[name]
        self._timers = {k: v for k, v in self._timers.items() if k in names}
        if gone:
            self._rebuild()

    def _rebuild(self) -> None:
        index: dict[str, _MetricIndex] = {}
        for name, triggers in self._by_scaler.items():
            for metric, threshold, selector in triggers:
                index.setdefault(metric, _MetricIndex()).add(threshold, name, selector)
        self._index = index

    # ---- ingestion ----------------------------------------------------------------------

    def check(self, rows: Iterable[SampleRow]) -> bool:
        """Wake the loop when a sample crosses a trigger's threshold; True when it did."""
        index = self._index
        if not index:
            return False
        woke = False
        for row in rows:
            entry = index.get(row.key.name)
            if entry is None or not row.value > entry.lowest:
                continue
            for scaler in entry.crossed(row.value, row.key.label_items):
                self._pending.add(scaler)
                woke = True
        if woke:
            self.wakes += 1
            self.event.set()
        return woke

    # ---- held triggers ------------------------------------------------------------------

    def schedule(self, name: str, spec: ScalerSpec, state: ScalerState, now: float) -> None:
        """Wake when the first held trigger of `name` reaches its duration (if still ahead)."""
        due: float | None = None
        if spec.emergency.enabled and state.trigger_since and state.burst_until is None:
            for i, trig in enumerate(spec.emergency.triggers):
                since = state.trigger_since.get(trigger_key(i, trig.metric))
                if since is not None and since + trig.duration > now:
                    at = since + trig.duration
                    due = at if due is None else min(due, at)
        if due is None:
            self._timers.pop(name, None)
        else:
            self._timers[name] = due

    def next_due(self) -> float | None:
        return min(self._timers.values(), default=None)

    # ---- the loop's side ----------------------------------------------------------------

    def take(self, now: float) -> set[str]:
        """The scalers to reconcile now (pushed over a threshold, or a trigger came due)."""
        self.event.clear()
        names, self._pending = self._pending, set()
        for name, at in list(self._timers.items()):
            if at <= now:
                names.add(name)
                del self._timers[name]
        return names

    def wake(self, *names: str) -> None:
        self._pending.update(names)
        self.event.set()
