"""Which spec the ciuic policy runs in `run_simulation`: the caller's, unless an entry brings
its own (the CLI's `--spec`, an upload replayed with a scaler's spec)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pytest

from app.sim.ciuic import default_spec
from app.sim.engine import SCENARIOS, SimResult
from app.sim.runner import NamedPolicy, Prior, run_simulation

SC = SCENARIOS["deepseek-7b"]
WINDOW_S = 6 * 3600.0


def _daily_counts(days: int = 2) -> list[str]:
    """A daily sine every 30 min: the window's peak needs tens of pods at the default spec."""
    start = 1_420_070_400  # 2015-01-01
    lines = ["timestamp,value"]
    for i in range(days * 48):
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(start + i * 1800))
        lines.append(f"{stamp},{int(500 + 400 * np.sin(2 * np.pi * (i % 48) / 48))}")
    return lines


def _capped(prior: Prior) -> Mapping[str, Any]:
    return {**default_spec(prior.scenario), "max_replicas": 3}


def _peaks(results: Iterable[SimResult]) -> dict[str, int]:
    # after the first minute: the window opens with the same fleet for every policy
    return {r.policy: int(r.replicas[60:].max()) for r in results}


def _in_order(fn: Any, items: Sequence[Any]) -> Iterable[Any]:
    return map(fn, items)  # what a process pool's map does, in this process


@pytest.mark.parametrize("map_fn", [None, _in_order], ids=["in-process", "through-map_fn"])
def test_the_callers_spec_bounds_ciuic_and_named_entries_keep_their_own(map_fn: Any) -> None:
    """`--spec` with `max_replicas: 5` used to be dropped on the way (the plain "ciuic" became
    a named entry with no spec): the run scaled to the default's peak as if no spec was given."""
    lines = _daily_counts()
    default = run_simulation(lines, policies=["ciuic"], window_s=WINDOW_S)
    assert _peaks(default.results)["ciuic"] > 5  # the default spec needs more at the peak

    spec = {**default_spec(SC), "max_replicas": 5}
    own = {**default_spec(SC), "max_replicas": 4}
    report = run_simulation(
        lines,
        policies=[
            "ciuic",
            NamedPolicy("ciuic-own", "ciuic", spec=own),
            NamedPolicy("ciuic-chosen", "ciuic", spec_from=_capped),
        ],
        spec=spec,
        window_s=WINDOW_S,
        map_fn=map_fn,
    )
    peaks = _peaks(report.results)
    assert peaks["ciuic"] == 5
    assert peaks["ciuic-own"] == 4
    assert peaks["ciuic-chosen"] == 3
