"""Who is asking: a token's id and scope, found by its secret and remembered for a few
seconds, so a push costs no extra query (a revoked token stops working on the other replicas
within that time; revoking clears this replica's memory at once)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from app.store.db import Database
from app.store.tokens import find_by_secret, hash_secret

__all__ = ["CACHE_TTL_S", "Principal", "TokenCache", "principal_for"]

CACHE_TTL_S = 5.0


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: str  # "admin" for the bootstrap token, "anonymous" in open mode
    scope: str
    push_rate_per_s: float | None = None  # the token's own ingestion limit; None: the default
    push_burst: int | None = None

    def allows(self, scope: str) -> bool:
        return self.scope == "admin" or self.scope == scope


class TokenCache:
    """Short-lived memory of token look-ups, by the secret's hash."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._entries: dict[str, tuple[float, Principal | None]] = {}

    def get(self, key: str) -> tuple[bool, Principal | None]:
        hit = self._entries.get(key)
        if hit is None or hit[0] < self._monotonic():
            return False, None
        return True, hit[1]

    def put(self, key: str, principal: Principal | None) -> None:
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[key] = (self._monotonic() + CACHE_TTL_S, principal)

    def clear(self) -> None:
        self._entries.clear()


async def principal_for(db: Database, cache: TokenCache, secret: str) -> Principal | None:
    """The live token holding `secret` (None: unknown or revoked)."""
    key = hash_secret(secret)
    hit, principal = cache.get(key)
    if not hit:
        async with db.read() as conn:
            stored = await find_by_secret(conn, secret)
        principal = (
            Principal(stored.id, stored.scope, stored.push_rate_per_s, stored.push_burst)
            if stored is not None and stored.revoked_us is None
            else None
        )
        cache.put(key, principal)
    return principal
