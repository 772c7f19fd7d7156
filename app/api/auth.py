"""Scoped bearer tokens: `push` (ingest), `read` (query), `admin` (everything).

Tokens arrive as `Authorization: Bearer <token>` or as HTTP basic auth with the token as the
password (what Pushgateway clients send). With no admin token configured the service runs
open, which `app.cli` only allows on a loopback address.

Secrets are never logged nor stored: the bootstrap token is compared in constant time
(`hmac.compare_digest`), stored tokens are found by their SHA-256 (see app.store.tokens).
`RequirePush` also holds each token to its ingestion rate (app.ratelimit): 429 + Retry-After.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.http import HTTPBase

from app.api.context import AppContext, get_context
from app.errors import Forbidden, TooManyRequests, Unauthorized
from app.ratelimit import Limit
from app.services.principals import Principal, principal_for

__all__ = [
    "Principal",
    "RequireAdmin",
    "RequirePush",
    "RequireRead",
    "require",
    "require_push",
]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ciuic", Basic realm="ciuic"'}
# The two ways to send a token, as the OpenAPI document names them. They only describe:
# neither refuses a request (auto_error=False, and HTTPBase decodes nothing); `authenticate`
# reads the header itself.
_BEARER = HTTPBearer(
    scheme_name="bearerAuth",
    description="A token (scope push, read or admin): `Authorization: Bearer <token>`",
    auto_error=False,
)
_BASIC = HTTPBase(
    scheme="basic",
    scheme_name="basicAuth",
    description="The token as the basic-auth password (what Pushgateway clients send)",
    auto_error=False,
)
_Described = HTTPAuthorizationCredentials | None


def _secret_from(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    kind, _, value = header.partition(" ")
    value = value.strip()
    if kind.lower() == "bearer" and value:
        return value
    if kind.lower() == "basic" and value:
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return password or user or None
    return None


def _missing_token_message(request: Request) -> str:
    """Why no token was read, with the header's fix (a token pasted without its scheme)."""
    header = request.headers.get("authorization", "").strip()
    scheme = header.partition(" ")[0]
    if not header:
        return "a bearer token is required: send `Authorization: Bearer <token>`"
    if scheme.lower() in ("bearer", "basic"):
        return f"the Authorization header's {scheme} credentials are empty or malformed"
    if " " not in header:
        return (
            "a bearer token is required: prefix the token with `Bearer ` "
            "(`Authorization: Bearer <token>`)"
        )
    return (
        f"a bearer token is required; the Authorization scheme {scheme!r} is not supported: "
        "use `Authorization: Bearer <token>`"
    )


async def authenticate(ctx: AppContext, request: Request) -> Principal:
    if not ctx.settings.auth_enabled:
        return Principal("anonymous", "admin")
    secret = _secret_from(request)
    if secret is None:
        raise Unauthorized(_missing_token_message(request), headers=_CHALLENGE)
    admin = ctx.settings.admin_token
    if admin is not None and hmac.compare_digest(
        secret.encode(), admin.get_secret_value().encode()
    ):
        return Principal("admin", "admin")
    principal = await principal_for(ctx.db, ctx.tokens, secret)
    if principal is None:
        raise Unauthorized("the token is unknown or revoked", headers=_CHALLENGE)
    return principal


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    async def dependency(
        request: Request,
        _bearer: Annotated[_Described, Security(_BEARER)],
        _basic: Annotated[_Described, Security(_BASIC)],
    ) -> Principal:
        ctx = get_context(request)
        principal = await authenticate(ctx, request)
        if not principal.allows(scope):
            raise Forbidden(
                f"this token has scope {principal.scope!r}; the operation needs {scope!r}",
                details={"scope": principal.scope, "required": scope},
            )
        request.state.principal = principal
        return principal

    return dependency


_require_push = require("push")


async def require_push(
    request: Request, principal: Annotated[Principal, Depends(_require_push)]
) -> Principal:
    """Push scope, within the token's ingestion rate: checked before the body is read."""
    ctx = get_context(request)
    limit = Limit(
        ctx.settings.push_rate_per_s
        if principal.push_rate_per_s is None
        else principal.push_rate_per_s,
        ctx.settings.push_burst if principal.push_burst is None else principal.push_burst,
    )
    wait_s = ctx.push_limiter.take(principal.token_id, limit, ctx.clock.now())
    if wait_s > 0:
        retry_after = max(1, math.ceil(wait_s))
        raise TooManyRequests(
            f"token {principal.token_id!r} is over its ingestion rate ({limit.rate_per_s:g} "
            f"requests/s, burst {limit.burst}); nothing was stored, retry in {retry_after} s",
            code="rate_limited",
            details={
                "token": principal.token_id,
                "rate_per_s": limit.rate_per_s,
                "burst": limit.burst,
                "retry_after_s": retry_after,
            },
            headers={"Retry-After": str(retry_after)},
        )
    return principal


RequirePush = Annotated[Principal, Depends(require_push)]
RequireRead = Annotated[Principal, Depends(require("read"))]
RequireAdmin = Annotated[Principal, Depends(require("admin"))]
