"""The SDK's exception tree, in one place, mirroring the API's error body.

Every error the service returns is `{"error": {"code", "message", "details"}}` with an HTTP
status; the SDK raises the subclass of `CiuicError` for that status with those fields:

    CiuicError                 any error: .status, .code, .message, .details, .headers
    ├── Invalid                400, 413, 422: bad input, a spec that does not validate
    ├── Unauthorized           401: no token, or an unknown or revoked one
    ├── Forbidden              403: the token's scope does not allow the operation
    ├── NotFound               404
    ├── Conflict               409: exists already, or the cluster refused
    │   └── PreconditionFailed 412: If-Match did not match (someone else wrote first)
    ├── TooManyRequests        429: a limit was reached
    └── Unavailable            503, or the service could not be reached (status 0);
                               .retry_after in seconds when the service said
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

__all__ = [
    "CiuicError",
    "Conflict",
    "Forbidden",
    "Invalid",
    "NotFound",
    "PreconditionFailed",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
    "error_from_response",
    "unreachable",
]


class CiuicError(Exception):
    """An error answered by Ciuic (or, for `Unavailable` with status 0, no answer at all)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers: dict[str, str] = dict(headers or {})


class Invalid(CiuicError):
    pass


class Unauthorized(CiuicError):
    pass


class Forbidden(CiuicError):
    pass


class NotFound(CiuicError):
    pass


class Conflict(CiuicError):
    pass


class PreconditionFailed(Conflict):
    pass


class TooManyRequests(CiuicError):
    pass


class Unavailable(CiuicError):
    @property
    def retry_after(self) -> float | None:
        value = self.headers.get("retry-after")
        try:
            return None if value is None else float(value)
        except ValueError:
            return None


_BY_STATUS: dict[int, type[CiuicError]] = {
    400: Invalid,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    413: Invalid,
    422: Invalid,
    429: TooManyRequests,
    502: Unavailable,
    503: Unavailable,
    504: Unavailable,
}


def error_from_response(response: httpx.Response) -> CiuicError:
    """The typed error for a non-2xx response; a body that is not the API's error shape (a
    proxy's page) still yields an error with the status and the text."""
    code, message, details = "http_error", response.text[:500] or response.reason_phrase, None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        code = str(error.get("code", code))
        message = str(error.get("message", message))
        details = error.get("details")
    cls = _BY_STATUS.get(response.status_code, CiuicError)
    headers = {k.lower(): v for k, v in response.headers.items()}
    return cls(response.status_code, code, message, details, headers)


def unreachable(exc: httpx.TransportError) -> Unavailable:
    return Unavailable(0, "unreachable", f"cannot reach Ciuic: {type(exc).__name__}: {exc}")
