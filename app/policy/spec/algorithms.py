"""The forecasting models a spec may name, defined once (`app.forecasting` builds them)."""

from __future__ import annotations

__all__ = ["ALGORITHM_ALIASES", "KNOWN_ALGORITHMS", "MODEL_NAMES"]

MODEL_NAMES: tuple[str, ...] = (
    "auto",
    "robust_seasonal",
    "adaptive",
    "seasonal_naive",
    "naive",
    "prophet",
)
"""The models `app.forecasting.make_forecaster` builds (a test checks it builds each)."""

ALGORITHM_ALIASES: dict[str, str] = {"seasonal": "robust_seasonal"}
"""Other names a spec may use for a model."""

KNOWN_ALGORITHMS: frozenset[str] = frozenset({*MODEL_NAMES, *ALGORITHM_ALIASES, "none"})
"""What `algorithm.name` may be: a model, an alias, or `none` (no forecast)."""
