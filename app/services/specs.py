"""Each scaler's spec parsed once per stored version, not once per use.

A stored scaler changes only through a write that bumps its generation or its update time (a
replace, a pause, a delete and re-create), so `(generation, updated_us)` names the version;
the reconciler's passes, the refits, the rollouts, Grafana and the API all ask this cache and
get the same parsed `ScalerSpec` (or the same SpecError) until the next write.
"""

from __future__ import annotations

from app.policy import ScalerSpec, SpecError, parse_spec
from app.store.scalers import StoredScaler

__all__ = ["SpecCache"]

_Version = tuple[int, int]


class SpecCache:
    def __init__(self) -> None:
        self._parsed: dict[str, tuple[_Version, ScalerSpec | SpecError]] = {}

    def spec_of(self, scaler: StoredScaler) -> ScalerSpec:
        """The scaler's spec; SpecError when the stored document no longer validates (one
        stored by an older version)."""
        version = (scaler.generation, scaler.updated_us)
        hit = self._parsed.get(scaler.name)
        if hit is None or hit[0] != version:
            parsed: ScalerSpec | SpecError
            try:
                parsed = parse_spec(scaler.document)
            except SpecError as exc:
                parsed = exc
            hit = self._parsed[scaler.name] = (version, parsed)
        found = hit[1]
        if isinstance(found, SpecError):
            raise found.with_traceback(None)
        return found

    def clear(self) -> None:
        self._parsed.clear()

    def forget(self, name: str) -> None:
        self._parsed.pop(name, None)

    def retain(self, names: set[str]) -> None:
        """Forget the scalers not in `names` (deleted since), after a full pass."""
        for name in [n for n in self._parsed if n not in names]:
            del self._parsed[name]
