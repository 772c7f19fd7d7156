"""docs/benchmark.md's targets and what they read: dominance (a baseline that costs less and
drops no more), geometric means, and each target met or not, with its numbers (pure)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = [
    "BASELINES",
    "DOMINANCE_SLACK",
    "REFERENCES",
    "Scored",
    "TargetCheck",
    "check_targets",
    "dominators",
    "geometric_mean",
    "percent",
    "targets_markdown",
    "timing_check",
]

# The peers a policy is compared with; the references are clairvoyant and never "dominate".
BASELINES = ("hpa", "keda", "kpa")
REFERENCES = ("oracle", "fluid")

# "Dominated": a baseline costs less and drops at most this much more (0.01 percentage point).
DOMINANCE_SLACK = 0.0001


class Scored(Protocol):
    """What dominance and the targets read from a row (one run, or a mean over seeds)."""

    @property
    def policy(self) -> str: ...
    @property
    def cost_usd(self) -> float: ...
    @property
    def drop_rate(self) -> float: ...
    @property
    def utilization(self) -> float: ...


def dominators(
    row: Scored, others: Sequence[Scored], *, slack: float = DOMINANCE_SLACK
) -> tuple[str, ...]:
    """The baselines among `others` that dominate `row`: lower cost and a drop rate at most
    `slack` above its own. References (oracle, fluid) and the row itself never count."""
    return tuple(
        o.policy
        for o in others
        if o.policy in BASELINES
        and o.policy != row.policy
        and o.cost_usd < row.cost_usd
        and o.drop_rate <= row.drop_rate + slack
    )


def percent(x: float) -> str:
    return f"{100 * x:.3f} %"


def geometric_mean(values: Sequence[float]) -> float | None:
    """The geometric mean of positive values (None when there are none)."""
    ok = [v for v in values if v > 0 and math.isfinite(v)]
    return float(np.exp(np.mean(np.log(ok)))) if ok else None


# -- targets ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TargetCheck:
    """One docs/benchmark.md target, met or not, where, with the numbers."""

    name: str
    where: str  # a trace, "corpus", or "timing"
    met: bool
    detail: str

    def to_dict(self) -> dict[str, object]:
        return {"target": self.name, "where": self.where, "met": self.met, "detail": self.detail}


# docs/benchmark.md "Targets" (fractions; 0.0001 is 0.01 percentage point). Never loosen.
KPA_COST_SHARE = 0.85
KPA_DROP_SLACK = 0.0001
NYC_TRACE = "nyc_taxi"
NYC_COST_VS_ORACLE = 1.00
NYC_UTILIZATION = 0.89
NYC_DROP_SLACK = 0.0002
ANY_COST_VS_ORACLE = 1.35
ANY_DROP_SLACK = 0.0005


def _trace_key(name: str) -> str:
    return name.removesuffix(".csv")


def check_targets(
    by_trace: Mapping[str, Sequence[Scored]], *, policy: str = "ciuic", corpus: bool = False
) -> tuple[TargetCheck, ...]:
    """docs/benchmark.md's targets for `policy`. `by_trace` maps a trace name to its rows (a
    run's reports, or the means over seeds). Per trace: no baseline dominates it; cost <= 1.35
    x oracle and drops <= oracle + 0.05 pt; on nyc_taxi cost <= 1.00 x oracle, utilisation >=
    89 % and drops <= oracle + 0.02 pt. With `corpus`: the geometric mean of cost / KPA over
    the traces <= 0.85, with a drop rate <= KPA's + 0.01 pt on every trace (the stricter
    reading of "at drop rate <= KPA's + 0.01 pt"). A trace without the policy or the oracle
    is skipped."""
    out: list[TargetCheck] = []
    kpa_shares: list[float] = []
    kpa_worse: list[str] = []
    kpa_missing = False
    for trace, rows in by_trace.items():
        by = {r.policy: r for r in rows}
        c, o = by.get(policy), by.get("oracle")
        if c is None:
            continue
        dom = dominators(c, rows)
        out.append(
            TargetCheck(
                "no baseline dominates",
                trace,
                not dom,
                f"dominated by {', '.join(dom)}" if dom else "none dominates",
            )
        )
        if o is not None:
            ratio = c.cost_usd / o.cost_usd if o.cost_usd else math.inf
            extra = c.drop_rate - o.drop_rate
            out.append(
                TargetCheck(
                    "cost <= 1.35 x oracle, drops <= oracle + 0.05 pt",
                    trace,
                    ratio <= ANY_COST_VS_ORACLE and extra <= ANY_DROP_SLACK,
                    f"{ratio:.3f} x oracle; drops {percent(c.drop_rate)} vs {percent(o.drop_rate)} "
                    f"({100 * extra:+.4f} pt)",
                )
            )
            if _trace_key(trace) == NYC_TRACE:
                out.append(
                    TargetCheck(
                        "nyc: cost <= 1.00 x oracle, util >= 89 %, drops <= oracle + 0.02 pt",
                        trace,
                        ratio <= NYC_COST_VS_ORACLE
                        and c.utilization >= NYC_UTILIZATION
                        and extra <= NYC_DROP_SLACK,
                        f"{ratio:.3f} x oracle; util {100 * c.utilization:.1f} %; "
                        f"drops {100 * extra:+.4f} pt",
                    )
                )
        k = by.get("kpa")
        if k is None or not k.cost_usd:
            kpa_missing = True
        else:
            kpa_shares.append(c.cost_usd / k.cost_usd)
            if c.drop_rate > k.drop_rate + KPA_DROP_SLACK:
                kpa_worse.append(f"{trace} ({100 * (c.drop_rate - k.drop_rate):+.4f} pt)")
    if corpus:
        g = geometric_mean(kpa_shares)
        met = g is not None and g <= KPA_COST_SHARE and not kpa_worse and not kpa_missing
        detail = (
            "no KPA row" if g is None else f"geometric mean {g:.3f} x KPA over {len(kpa_shares)}"
        )
        detail += f"; drops above KPA's + 0.01 pt on {', '.join(kpa_worse)}" if kpa_worse else ""
        out.append(
            TargetCheck("cost <= 0.85 x KPA at drops <= KPA + 0.01 pt", "corpus", met, detail)
        )
    return tuple(out)


def timing_check(name: str, seconds: float, limit_s: float) -> TargetCheck:
    """A wall-time target measured by the shell (the pure core never reads the clock)."""
    return TargetCheck(name, "timing", seconds < limit_s, f"{seconds:.1f} s (limit {limit_s:g} s)")


def targets_markdown(checks: Sequence[TargetCheck]) -> str:
    rows = ["| target | where | met | numbers |", "|---|---|---|---|"]
    rows += [f"| {t.name} | {t.where} | {'yes' if t.met else 'NO'} | {t.detail} |" for t in checks]
    return "\n".join(rows)
