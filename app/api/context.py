"""What every request can reach: the shell the services work with (settings, database,
stores, caches, clock, telemetry, cluster), plus what only the API keeps.

Built once in the app's lifespan (app.main) and handed to routes through `Ctx`; a route hands
it on to the service it calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Protocol

from fastapi import Depends, Request

from app.ratelimit import RateLimiter
from app.services.shell import Shell

__all__ = ["AppContext", "Ctx", "Leading", "get_context"]


class Leading(Protocol):
    """Whether this process leads (runs the workers), and why it cannot when it cannot (e.g.
    RBAC refusing the Lease): what /readyz reports."""

    @property
    def is_leader(self) -> bool: ...

    @property
    def error(self) -> str | None: ...


@dataclass
class AppContext(Shell):
    push_limiter: RateLimiter = field(default_factory=RateLimiter)  # per token, this process
    leadership: Leading | None = None  # None: this process runs no workers


def get_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


Ctx = Annotated[AppContext, Depends(get_context)]
