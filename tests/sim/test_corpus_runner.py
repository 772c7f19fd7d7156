"""`run_corpus`: a trace's ciuic-kind runs share a process, and an entry whose spec comes out
the same as another's on a seed is that run under its own name (replays are deterministic)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from app.sim import runner
from app.sim.ciuic import default_spec
from app.sim.runner import NamedPolicy, Prior, TraceSource, run_corpus
from app.sim.tune import candidate_spec


def _two_day_counts() -> str:
    rng = np.random.default_rng(0)
    lines = ["timestamp,value"]
    for i in range(2 * 48):
        h, m = divmod(i * 30, 60)
        v = int(100 + 80 * np.sin(2 * np.pi * i / 48) + rng.integers(0, 10))
        lines.append(f"2015-01-{1 + h // 24:02d} {h % 24:02d}:{m:02d}:00,{v}")
    return "\n".join(lines) + "\n"


def kept_the_example(prior: Prior) -> Mapping[str, Any]:
    """A tuning that found nothing better: the example spec itself."""
    return default_spec(prior.scenario)


def test_a_tuning_that_kept_the_example_spec_is_the_ciuic_run_under_its_own_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    replays: list[str] = []
    real = runner.simulate_policy

    def counted(name: Any, **kw: Any) -> Any:
        replays.append(name.name if isinstance(name, NamedPolicy) else name)
        return real(name, **kw)

    monkeypatch.setattr(runner, "simulate_policy", counted)
    # a corpus (two traces): a trace's ciuic-kind runs share one process
    sources = [
        TraceSource(name, text=_two_day_counts(), window_s=86400.0) for name in ("a.csv", "b.csv")
    ]
    kept = NamedPolicy("ciuic-kept", "ciuic", spec_from=kept_the_example)
    tighter = NamedPolicy(
        "ciuic-95", "ciuic", spec=candidate_spec(default_spec(runner.SCENARIOS["deepseek-7b"]),
                                                 gpu_target=95.0)
    )  # fmt: skip
    run = run_corpus(
        sources, seeds=(0, 1), policies=("ciuic", kept, tighter, "kpa"), corpus_target=False
    )
    rows = {(r["trace"], r["policy"], r["seed"]): r for r in _rows(run.to_dict())}
    for trace, seed in [(t, s) for t in ("a.csv", "b.csv") for s in (0, 1)]:
        same, ours = rows[(trace, "ciuic-kept", seed)], rows[(trace, "ciuic", seed)]
        assert {k: v for k, v in same.items() if k != "policy"} == {
            k: v for k, v in ours.items() if k != "policy"
        }
        assert rows[(trace, "ciuic-95", seed)]["cost_usd"] != ours["cost_usd"]
    # per trace and seed: ciuic and ciuic-95 replayed, ciuic-kept not; kpa and the references
    assert sorted(replays) == sorted(["ciuic", "ciuic-95", "kpa", "oracle", "fluid"] * 4)


def test_a_single_trace_spreads_its_runs_one_per_task() -> None:
    """With one trace there is too little beside a trace-wide task to keep a pool busy: each
    ciuic-kind run is its own task (the baselines one per seed)."""
    sizes: list[int] = []

    def pool_map(fn: Any, tasks: Any) -> Any:
        sizes.extend(len(t.entries) * len(t.seeds) for t in tasks)
        return map(fn, tasks)

    source = TraceSource("sine.csv", text=_two_day_counts(), window_s=86400.0)
    run_corpus([source], seeds=(0, 1), policies=("ciuic", "kpa"), map_fn=pool_map)
    assert sorted(sizes) == [1, 1, 3, 3]  # ciuic per seed; kpa, oracle, fluid per seed


def _rows(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every (policy, seed) row of a corpus document."""
    out = []
    for trace in doc["traces"]:
        for run in trace["runs"]:
            out += [{**r, "seed": run["seed"], "trace": trace["trace"]} for r in run["policies"]]
    return out
