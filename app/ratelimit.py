"""Token buckets, keyed by who is asking: pure, `now` is an argument (no clock, no I/O).

A bucket holds up to `burst` requests and refills at `rate_per_s`; a request takes one. When
the bucket is empty the answer is how long to wait for the next request to fit, so the caller
can say `Retry-After`. A rate of 0 means unlimited.

The buckets live in one process: with N replicas (or `--workers N`) a token may push N times
its rate in all, one rate per process.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limit", "RateLimiter"]


@dataclass(frozen=True, slots=True)
class Limit:
    rate_per_s: float  # refill; 0 = unlimited
    burst: int  # bucket size: requests allowed at once after a quiet spell

    @property
    def unlimited(self) -> bool:
        return self.rate_per_s <= 0


@dataclass(slots=True)
class _Bucket:
    level: float  # requests that would be allowed now
    at: float  # when `level` was measured


class RateLimiter:
    """One bucket per key; a key's limit may differ from the next key's (per-token limits)."""

    def __init__(self, *, max_keys: int = 100_000) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._max_keys = max_keys

    def take(self, key: str, limit: Limit, now: float) -> float:
        """Take one request from `key`'s bucket: 0.0 when allowed, else the seconds to wait
        until one would be (nothing is taken then)."""
        if limit.unlimited:
            return 0.0
        burst = float(max(limit.burst, 1))
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._buckets.clear()  # a full bucket each: the generous side of forgetting
            bucket = self._buckets[key] = _Bucket(burst, now)
        elapsed = max(0.0, now - bucket.at)  # a clock stepping back refills nothing
        bucket.level = min(burst, bucket.level + elapsed * limit.rate_per_s)
        bucket.at = max(bucket.at, now)
        if bucket.level >= 1.0:
            bucket.level -= 1.0
            return 0.0
        return (1.0 - bucket.level) / limit.rate_per_s

    def forget(self) -> None:
        self._buckets.clear()
