"""Step 5, preheat: warm spare capacity so new load lands on a Ready pod (zero cold start).

`eager` keeps at least `min_ready` pods' worth of spare capacity above the recent demand at full
use (a warm pool, like AWS warm pools' MinSize): `need >= demand + min_ready`. Headroom the
other steps already provide counts as spare: at 40 busy pods planned at 85 % the six idle pods'
worth is spare enough, while at 2 busy pods at night the pool still holds one more. Without a
load metric (no demand to measure against) the spares are added on top of the need, unless
that need is a count kept for missing metrics (held or the fallback): spares on a held count
would add a pod at every reconcile until the metrics come back. `lazy` adds
nothing here and relies on step 2, which already launches pods one cold start ahead of the
forecast load.
"""

from __future__ import annotations

from types import MappingProxyType

from app.policy.codes import Code
from app.policy.spec import ScalerSpec
from app.policy.types import Reason

__all__ = ["preheat_need", "with_spares"]

_DISABLED = Reason(Code.PREHEAT_DISABLED, "preheat disabled", MappingProxyType({}))


def with_spares(
    spec: ScalerSpec, need: float, demand: float | None, measured: bool = True
) -> float:
    """`preheat_need`'s count alone (no sentence built): the spares of a need the decision
    only remembers."""
    p = spec.preheat
    if not p.enabled or p.strategy == "lazy" or not measured:
        return need
    if demand is None:
        return need + p.min_ready
    return need if need >= demand + p.min_ready else demand + p.min_ready


def preheat_need(
    spec: ScalerSpec, need: float, demand: float | None, measured: bool = True
) -> tuple[float, Reason]:
    """The need with the spare capacity ensured, and why (`measured` False: the need is a
    count kept for missing metrics, which already holds the spares it had)."""
    p = spec.preheat
    if not p.enabled:
        return need, _DISABLED
    if p.strategy == "lazy":
        msg = "lazy preheat: no spare pods, the forecast pre-launches capacity"
        return need, Reason(Code.PREHEAT_LAZY, msg, {"need": need})
    if not measured:
        msg = f"eager preheat: no spare added to {need:.2f}, a count kept for missing metrics"
        return need, Reason(
            Code.PREHEAT_EAGER, msg, {"min_ready": float(p.min_ready), "need": need}
        )
    out = with_spares(spec, need, demand)
    values = {"min_ready": float(p.min_ready)}
    if demand is None:
        msg = f"eager preheat: {p.min_ready} spare ready pod(s) above the need {need:.2f}"
    elif out == need:
        values["demand"] = demand
        msg = (
            f"eager preheat: the need {need:.2f} already leaves {need - demand:.2f} pods spare "
            f"above the demand {demand:.2f} (>= {p.min_ready})"
        )
    else:
        values["demand"] = demand
        msg = (
            f"eager preheat: {p.min_ready} spare ready pod(s) above the demand {demand:.2f}: "
            f"{out:.2f}"
        )
    values["need"] = out
    return out, Reason(Code.PREHEAT_EAGER, msg, values)
