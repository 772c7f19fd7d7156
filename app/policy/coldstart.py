"""The learned cold start (`cold_start: learn`): what the live cluster adapter, the built-in
simulated cluster and the benchmark's simulator all report to the policy, one definition.

A high quantile (nearest rank) of the last pods' creation -> Ready times: robust to the odd
slow node, yet conservative enough that a pod asked for one cold start ahead is Ready in time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["COLD_START_QUANTILE", "COLD_START_WINDOW", "learned_cold_start"]

COLD_START_WINDOW = 20  # the most recent pods that count
COLD_START_QUANTILE = 0.9


def learned_cold_start(
    recent: Sequence[float], quantile: float = COLD_START_QUANTILE
) -> float | None:
    """The `quantile` (nearest rank) of the cold starts in `recent`; None when empty."""
    if not recent:
        return None
    ordered = sorted(recent)
    return ordered[max(1, math.ceil(quantile * len(ordered))) - 1]
