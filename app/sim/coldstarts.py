"""Cold starts for the simulated pods: the same draw for every policy (common random numbers).

A pod's cold start depends only on the run's seed, the second it is created in and its index
within that second, so two policies that create a pod at the same moment pay the same cold
start, and the clairvoyant references can know it before they launch the pod.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["ColdStarts"]

_MASK = (1 << 64) - 1


def _mix(x: int) -> int:
    """splitmix64's finaliser: a fixed bijection that scatters nearby keys."""
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _MASK
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _MASK
    return x ^ (x >> 31)


class ColdStarts:
    """Cold starts keyed by (creation second, index within that second) and the seed.

    Every policy that creates its j-th pod of second s gets the same cold start (common random
    numbers, so policies differ by their decisions, not their luck), and the references can know
    a pod's cold start before they launch it. Uniform on [lo, hi], whole seconds.
    """

    def __init__(self, seed: int, lo: float, hi: float) -> None:
        self._key = _mix((seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & _MASK)
        self.lo, self.hi = lo, hi

    def at(self, second: int, index: int) -> int:
        u = _mix(self._key ^ _mix((second << 8 | (index & 0xFF)) & _MASK)) >> 11
        return round(self.lo + (self.hi - self.lo) * u / (1 << 53))

    def first_of_each_second(self, n: int) -> npt.NDArray[np.int64]:
        """`at(s, 0)` for s in 0..n-1, vectorised; equal to the scalar."""
        x = np.arange(n, dtype=np.uint64) << np.uint64(8)
        u = _mix_array(np.uint64(self._key) ^ _mix_array(x)) >> np.uint64(11)
        f = u.astype(np.float64) / float(1 << 53)
        return np.rint(self.lo + (self.hi - self.lo) * f).astype(np.int64)


def _mix_array(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """`_mix` on arrays (uint64 arithmetic wraps like the masked scalar version)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    out: npt.NDArray[np.uint64] = x ^ (x >> np.uint64(31))
    return out
