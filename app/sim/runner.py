"""The calls an endpoint, the CLI or the benchmark makes: trace text in, report out.

`run_simulation` replays one trace for one seed (every policy on the same workload);
`run_corpus` replays many traces for several seeds and summarises them (means over seeds,
geometric means over traces, docs/benchmark.md's targets). Both take an optional `map_fn` (a process
pool's `map`) to spread the runs; the results are the same either way.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any, TypeVar

from app.sim.baselines import HPA, KEDA, KPA, Fluid, Oracle
from app.sim.corpus import GeneratedTrace, generate
from app.sim.cost import CostModel
from app.sim.engine import SCENARIOS, Autoscaler, Scenario, SimResult, simulate
from app.sim.report import (
    CorpusSummary,
    PolicyReport,
    SeriesForPlot,
    TargetCheck,
    markdown_table,
    plot_series,
    report_for,
    summarise_corpus,
    with_dominance,
)
from app.sim.traces import (
    CountTrace,
    FloatArray,
    RequestLog,
    Trace,
    TraceKind,
    Workload,
    build_workload,
    parse_trace,
)

__all__ = [
    "DEFAULT_POLICIES",
    "KNOWN_POLICIES",
    "CorpusRun",
    "NamedPolicy",
    "PolicyLike",
    "Prior",
    "SimulationReport",
    "TraceSource",
    "UnknownPolicy",
    "make_policy",
    "run_corpus",
    "run_simulation",
    "simulate_policy",
]

# Every implementation the simulator has; a report lists these unless asked otherwise.
KNOWN_POLICIES = ("ciuic", "hpa", "keda", "kpa", "oracle", "fluid")
DEFAULT_POLICIES = KNOWN_POLICIES
_REFERENCES = ("oracle", "fluid")  # always run: every report carries cost / each of them

Progress = Callable[[str, int, int], None]
T = TypeVar("T")
R = TypeVar("R")
# How the shell may spread runs over processes: `ProcessPoolExecutor(2).map` fits.
MapFn = Callable[[Callable[[T], R], Sequence[T]], Iterable[R]]


class UnknownPolicy(ValueError):
    """A policy name the simulator does not know (or cannot build in this installation)."""


@dataclass(frozen=True, slots=True)
class Prior:
    """What was known before the scored window: all a spec chosen ahead of the run may read
    (never the window's arrivals)."""

    kind: TraceKind
    start: float  # the window's first second (Unix time)
    history_rate: FloatArray  # the load before the window, req/s, on `history_step_s`
    history_step_s: float
    service_s: int  # a count trace's service time (0 for a request log)
    scenario: Scenario


SpecFrom = Callable[[Prior], Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class NamedPolicy:
    """A row of the report under its own name: `kind` is the implementation that runs (one of
    KNOWN_POLICIES), `spec` the ciuic spec to run it with, or `spec_from` a function (top-level,
    so a process pool can send it) that chooses the spec from the `Prior`, e.g.
    `NamedPolicy("ciuic-tuned", "ciuic", spec_from=tuned_on_history)`."""

    name: str
    kind: str
    spec: Mapping[str, Any] | None = None
    spec_from: SpecFrom | None = None


PolicyLike = str | NamedPolicy


def always_on_spec(prior: Prior) -> Mapping[str, Any]:
    """Ciuic's spec with `min_replicas: 1`: the always-on comparison on a scale-to-zero trace."""
    from app.sim.ciuic import default_spec

    return {**default_spec(prior.scenario), "min_replicas": 1}


# Beside `ciuic` on a trace whose scenario allows zero: the same policy never below one pod.
ALWAYS_ON = NamedPolicy("ciuic-min1", "ciuic", spec_from=always_on_spec)


def _entry(policy: PolicyLike) -> NamedPolicy:
    entry = policy if isinstance(policy, NamedPolicy) else NamedPolicy(policy, policy)
    if entry.kind not in KNOWN_POLICIES:
        raise UnknownPolicy(
            f"unknown policy {entry.kind!r}; choose from {', '.join(KNOWN_POLICIES)}"
        )
    return entry


def prior_of(workload: Workload, scenario: Scenario) -> Prior:
    return Prior(
        kind=workload.kind,
        start=workload.start,
        history_rate=workload.history_rate.copy(),
        history_step_s=workload.history_step_s,
        service_s=workload.service_s,
        scenario=scenario,
    )


def make_policy(
    name: str, scenario: Scenario, workload: Workload, spec: Mapping[str, Any] | None = None
) -> Autoscaler:
    lo, hi = scenario.min_replicas, scenario.max_replicas
    # Kubernetes' HPA needs minReplicas >= 1 (zero is an alpha feature gate); KEDA's own
    # scale to zero (activation) is not modelled: both keep one pod on a min-0 trace.
    if name == "hpa":
        return HPA(min_replicas=max(1, lo), max_replicas=hi)
    if name == "keda":
        return KEDA(min_replicas=max(1, lo), max_replicas=hi)
    if name == "kpa":
        return KPA(container_concurrency=scenario.slots_per_pod, scale_to_zero=lo == 0)
    if name == "oracle":
        return Oracle()
    if name == "fluid":
        return Fluid()
    if name == "ciuic":
        try:
            from app.sim.ciuic import CiuicPolicy
        except ImportError as exc:  # the policy package is older than this simulator
            raise UnknownPolicy(f"the ciuic policy is not available here: {exc}") from exc
        policy: Autoscaler = CiuicPolicy.build(scenario, workload, spec)
        return policy
    raise UnknownPolicy(f"unknown policy {name!r}; choose from {', '.join(KNOWN_POLICIES)}")


def _entry_spec(
    entry: NamedPolicy, workload: Workload, scenario: Scenario, spec: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """The spec `entry` runs: its `spec_from`'s choice, else its own `spec`, else the caller's
    `spec` (None: the default). By value, not by type: `run_simulation` hands a plain "ciuic"
    on as a `NamedPolicy` without a spec, and it must still run the caller's."""
    if entry.spec_from is not None:
        return entry.spec_from(prior_of(workload, scenario))
    return entry.spec if entry.spec is not None else spec


def simulate_policy(
    name: PolicyLike,
    *,
    workload: Workload,
    scenario: Scenario,
    spec: Mapping[str, Any] | None,
    seed: int,
    progress: Progress | None = None,
) -> SimResult:
    """One policy over one workload (a top-level function, so a process pool can run it).
    `spec` is the ciuic spec for an entry that brings none (`spec` or `spec_from`) of its own."""
    entry = _entry(name)
    policy = make_policy(
        entry.kind, scenario, workload, _entry_spec(entry, workload, scenario, spec)
    )
    cb = None if progress is None else (lambda t, n: progress(entry.name, t, n))
    result = simulate(workload, policy, scenario=scenario, seed=seed, progress=cb)
    return result if result.policy == entry.name else dataclasses.replace(result, policy=entry.name)


@dataclass(frozen=True, slots=True)
class SimulationReport:
    scenario: Scenario
    workload: Workload
    seed: int
    reports: tuple[PolicyReport, ...]
    results: tuple[SimResult, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "scenario": self.scenario.name,
            "seed": self.seed,
            "workload": self.workload.description,
            "duration_s": self.workload.duration_s,
            "policies": self.rows(),
        }

    def rows(self) -> list[dict[str, object]]:
        """One JSON object per policy, in the order asked for."""
        return [r.to_dict() for r in self.reports]

    def markdown(self) -> str:
        return markdown_table(self.reports)


def _workload(trace: Trace, sc: Scenario, seed: int, window_s: float | None) -> Workload:
    return build_workload(
        trace,
        seed=seed,
        window_s=window_s,
        slots_per_pod=sc.slots_per_pod,
        count_service_s=sc.count_service_s,
        target_pods_at_p99=sc.target_pods_at_p99,
        replay_copies=sc.replay_copies,
        prefill_tokens_per_s=sc.prefill_tokens_per_s,
    )


def _run_order(entries: Sequence[NamedPolicy]) -> list[NamedPolicy]:
    """The asked-for entries plus the references, ciuic kinds first (the slowest, so a pool
    finishes early)."""
    seen = {e.name for e in entries}
    extra = [NamedPolicy(r, r) for r in _REFERENCES if r not in seen]
    return sorted([*entries, *extra], key=lambda e: (e.kind != "ciuic", e.name))


def _with_ratios(
    results: Mapping[str, SimResult], names: Sequence[str], cost_model: CostModel | None
) -> tuple[PolicyReport, ...]:
    oracle = report_for(results["oracle"], cost_model=cost_model).cost_usd
    fluid = report_for(results["fluid"], cost_model=cost_model).cost_usd
    reports = [
        report_for(results[n], oracle_cost=oracle, fluid_cost=fluid, cost_model=cost_model)
        for n in names
    ]
    return with_dominance(reports)


def run_simulation(
    trace: Iterable[str] | Trace,
    *,
    policies: Sequence[PolicyLike] = DEFAULT_POLICIES,
    scenario: Scenario | str = "deepseek-7b",
    spec: Mapping[str, Any] | None = None,
    window_s: float | None = None,
    seed: int = 0,
    cost_model: CostModel | None = None,
    progress: Progress | None = None,
    map_fn: MapFn[PolicyLike, SimResult] | None = None,
) -> SimulationReport:
    """Replay a trace (its lines, header first, or a parsed `Trace`) against each policy.

    The references (oracle, fluid) always run, since every report carries cost / each; they
    are listed only when asked for. Pure and deterministic for a given seed: safe to run in a
    worker thread. `map_fn` (e.g. a process pool's `map`) runs the policies side by side; same
    results.
    """
    sc = SCENARIOS[scenario] if isinstance(scenario, str) else scenario
    entries = list({e.name: e for e in map(_entry, policies)}.values())
    tr = trace if isinstance(trace, CountTrace | RequestLog) else parse_trace(trace)
    workload = _workload(tr, sc, seed, window_s)
    order = _run_order(entries)
    run_one = partial(simulate_policy, workload=workload, scenario=sc, spec=spec, seed=seed)
    if map_fn is None:
        run_here = partial(run_one, progress=progress)
        results = {e.name: run_here(e) for e in order}
    else:
        results = {}
        # A pool's map yields in order as results come: progress moves as policies finish.
        for e, result in zip(order, map_fn(run_one, order), strict=True):
            results[e.name] = result
            if progress is not None:
                progress(e.name, workload.duration_s, workload.duration_s)
    names = [e.name for e in entries]
    return SimulationReport(
        scenario=sc,
        workload=workload,
        seed=seed,
        reports=_with_ratios(results, names, cost_model),
        results=tuple(results[n] for n in names),
    )


# -- a corpus ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TraceSource:
    """One trace of a corpus: its CSV `text` (a file the shell read), or a `generated` entry
    of app.sim.corpus (generated where it runs, from its seed); `window_s` None is the default
    window of its shape."""

    name: str
    text: str | None = None
    generated: GeneratedTrace | None = None
    window_s: float | None = None
    scenario: tuple[tuple[str, int], ...] = ()  # the scenario's fields this trace sets

    def scenario_for(self, base: Scenario) -> Scenario:
        """`base` with this trace's own fields (a scale-to-zero trace: min_replicas 0)."""
        fields: dict[str, Any] = dict(self.scenario)
        return dataclasses.replace(base, **fields) if fields else base

    def lines(self) -> list[str]:
        if self.generated is not None:
            return _generated_text(self.generated).splitlines()
        if self.text is None:
            raise ValueError(f"trace source {self.name!r} has neither text nor a generator")
        return self.text.splitlines()

    @classmethod
    def of(cls, entry: GeneratedTrace) -> TraceSource:
        return cls(entry.name, generated=entry, window_s=entry.window_s, scenario=entry.scenario)


@lru_cache(maxsize=2)
def _generated_text(entry: GeneratedTrace) -> str:
    return generate(entry.family, entry.seed)


# A worker process keeps what it parsed and built: every trace parsed (small), and the last
# few workloads (a request log's is the same for every seed).
@lru_cache(maxsize=32)
def _source_trace(source: TraceSource) -> Trace:
    return parse_trace(source.lines())


@lru_cache(maxsize=4)
def _cached_workload(source: TraceSource, sc: Scenario, seed: int | None) -> Workload:
    return _workload(_source_trace(source), sc, seed or 0, source.window_s)


def _source_workload(source: TraceSource, sc: Scenario, seed: int) -> Workload:
    trace = _source_trace(source)
    return _cached_workload(source, sc, seed if isinstance(trace, CountTrace) else None)


@dataclass(frozen=True, slots=True)
class _Task:
    """Some policies on one trace, for some seeds, run one after another in one process."""

    source: TraceSource
    seeds: tuple[int, ...]
    entries: tuple[NamedPolicy, ...]
    scenario: Scenario
    spec: Mapping[str, Any] | None
    series_seed: int | None  # the seed whose plot series are kept


@dataclass(frozen=True, slots=True)
class _Done:
    trace: str
    seed: int
    policy: str
    result: PolicyReport  # without the ratios (the references may run elsewhere)
    series: SeriesForPlot | None
    description: str


def _with_spec(
    entry: NamedPolicy, workload: Workload, sc: Scenario, spec: Mapping[str, Any] | None
) -> tuple[NamedPolicy, str]:
    """`entry` with the spec it runs chosen (its `spec_from` asked), and that spec as text:
    two entries of one kind with the same text replay the same workload identically."""
    if entry.kind != "ciuic":
        return entry, ""
    chosen = _entry_spec(entry, workload, sc, spec)
    if chosen is None:
        from app.sim.ciuic import default_spec  # the adapter imports this module

        chosen = default_spec(sc, workload)
    resolved = NamedPolicy(entry.name, entry.kind, spec=chosen)
    return resolved, json.dumps(chosen, sort_keys=True, default=str)


def _corpus_task(task: _Task) -> tuple[_Done, ...]:
    """Its policies on its trace and seeds; returns only the reports (a process pool ships
    back a few hundred bytes a run, not the per-second series). An entry whose spec comes
    out the same as an earlier one's on the seed (a tuning that kept the example spec) is
    that run under its own name: the replay is deterministic."""
    done = []
    for seed in task.seeds:
        workload = _source_workload(task.source, task.scenario, seed)
        ran: dict[tuple[str, str], SimResult] = {}
        for entry in task.entries:
            resolved, text = _with_spec(entry, workload, task.scenario, task.spec)
            result = ran.get((entry.kind, text))
            if result is None:
                result = simulate_policy(
                    resolved, workload=workload, scenario=task.scenario, spec=None, seed=seed
                )
                ran[(entry.kind, text)] = result
            elif result.policy != entry.name:
                result = dataclasses.replace(result, policy=entry.name)
            done.append(
                _Done(
                    trace=task.source.name,
                    seed=seed,
                    policy=entry.name,
                    result=report_for(result),
                    series=plot_series(result) if seed == task.series_seed else None,
                    description=workload.description,
                )
            )
    return tuple(done)


@dataclass(frozen=True, slots=True)
class CorpusRun:
    """A corpus run: the summary (what is printed and checked) and, when asked for, the plot
    series of each trace's first seed per policy."""

    summary: CorpusSummary
    series: dict[tuple[str, str], SeriesForPlot]

    def to_dict(self) -> dict[str, object]:
        return self.summary.to_dict()


def run_corpus(
    sources: Sequence[TraceSource],
    *,
    seeds: Sequence[int] = (0, 1, 2),
    policies: Sequence[PolicyLike] = DEFAULT_POLICIES,
    scenario: Scenario | str = "deepseek-7b",
    spec: Mapping[str, Any] | None = None,
    map_fn: MapFn[_Task, tuple[_Done, ...]] | None = None,
    check_policy: str = "ciuic",
    corpus_target: bool | None = None,
    series: bool = False,
    extra_checks: Sequence[TargetCheck] = (),
    on_done: Callable[[str, int, str], None] | None = None,
) -> CorpusRun:
    """Every policy on every trace for every seed; means over seeds, geometric means over the
    traces, and docs/benchmark.md's targets for `check_policy` (the corpus one against KPA when
    `corpus_target`, by default with more than one trace). The ciuic-kind runs of a trace go
    to one process together (the slowest: they share forecasts and the tuning), longest first;
    the other policies one task per trace and seed."""
    if not sources:
        raise ValueError("a corpus needs at least one trace")
    sc = SCENARIOS[scenario] if isinstance(scenario, str) else scenario
    entries = list({e.name: e for e in map(_entry, policies)}.values())

    def order_for(src: TraceSource) -> list[NamedPolicy]:
        # a trace allowed to scale to zero also runs ciuic never below one pod
        zero = src.scenario_for(sc).min_replicas == 0 and any(e.name == "ciuic" for e in entries)
        return _run_order([*entries, ALWAYS_ON] if zero else entries)

    orders = {src.name: order_for(src) for src in sources}
    plot_seed = seeds[0] if series else None

    # Over a corpus, one task per trace runs every ciuic-kind entry on every seed: they replay
    # the same load, so a process fits its forecasts once (app.sim.ciuic) and tunes once per
    # trace; longest windows first, so the pool's processes finish together. A single trace
    # has too little else to run beside such a task: one task per run spreads it over the
    # pool. Then the references and baselines, one task per trace and seed (a worker builds
    # the workload once for them).
    def length(src: TraceSource) -> int:
        return _source_workload(src, src.scenario_for(sc), seeds[0]).duration_s

    tasks = []
    for src in sorted(sources, key=length, reverse=True):
        ours = tuple(e for e in orders[src.name] if e.kind == "ciuic")
        scenario_here = src.scenario_for(sc)
        if len(sources) > 1 and ours:
            tasks.append(_Task(src, tuple(seeds), ours, scenario_here, spec, plot_seed))
        else:
            tasks += [_Task(src, (seed,), (e,), scenario_here, spec, plot_seed)
                      for seed in seeds for e in ours]  # fmt: skip
    for src in sources:
        others = tuple(e for e in orders[src.name] if e.kind != "ciuic")
        tasks += [
            _Task(src, (seed,), others, src.scenario_for(sc), spec, plot_seed) for seed in seeds
        ]
    done: dict[tuple[str, int, str], _Done] = {}
    batches = map_fn(_corpus_task, tasks) if map_fn is not None else map(_corpus_task, tasks)
    for batch in batches:
        for d in batch:
            done[(d.trace, d.seed, d.policy)] = d
            if on_done is not None:
                on_done(d.trace, d.seed, d.policy)
    runs: dict[str, list[tuple[PolicyReport, ...]]] = {}
    descriptions: dict[str, str] = {}
    plots: dict[tuple[str, str], SeriesForPlot] = {}
    for src in sources:
        order = orders[src.name]
        # a corpus row always carries the references: every ratio and target is to them
        asked = [e.name for e in entries]
        names = asked + [e.name for e in order if e.name not in asked and e.name not in _REFERENCES]
        names += [r for r in _REFERENCES if r not in asked]
        per_seed = []
        for seed in seeds:
            got = {e.name: done[(src.name, seed, e.name)] for e in order}
            oracle = got["oracle"].result.cost_usd
            fluid = got["fluid"].result.cost_usd
            reports = [
                dataclasses.replace(
                    got[n].result,
                    cost_vs_oracle=got[n].result.cost_usd / oracle if oracle else None,
                    cost_vs_fluid=got[n].result.cost_usd / fluid if fluid else None,
                )
                for n in names
            ]
            per_seed.append(with_dominance(reports))
            descriptions.setdefault(src.name, got[names[0]].description)  # the first seed's
            for n in names:
                s = got[n].series
                if s is not None:
                    plots[(src.name, n)] = s
        runs[src.name] = per_seed
    summary = summarise_corpus(
        runs,
        seeds=seeds,
        descriptions=descriptions,
        policy=check_policy,
        corpus_target=corpus_target,
        extra_checks=extra_checks,
    )
    return CorpusRun(summary=summary, series=plots)
