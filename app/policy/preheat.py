"""Step 5, preheat: warm spare capacity so new load lands on a Ready pod (zero cold start).

`eager` keeps `min_ready` spare pods above the need at all times (a warm pool, like AWS warm
pools' MinSize); `lazy` adds nothing here and relies on step 2, which already launches pods one
cold start ahead of the forecast load.
"""

from __future__ import annotations

from types import MappingProxyType

from app.policy.codes import Code
from app.policy.spec import ScalerSpec
from app.policy.types import Reason

__all__ = ["preheat_need"]

_DISABLED = Reason(Code.PREHEAT_DISABLED, "preheat disabled", MappingProxyType({}))


def preheat_need(spec: ScalerSpec, need: float) -> tuple[float, Reason]:
    """The need with the spare pods added, and why."""
    p = spec.preheat
    if not p.enabled:
        return need, _DISABLED
    if p.strategy == "lazy":
        msg = "lazy preheat: no spare pods, the forecast pre-launches capacity"
        return need, Reason(Code.PREHEAT_LAZY, msg, {"need": need})
    out = need + p.min_ready
    msg = f"eager preheat: {p.min_ready} spare ready pod(s) above the need {need:.2f}"
    return out, Reason(Code.PREHEAT_EAGER, msg, {"min_ready": float(p.min_ready), "need": out})
