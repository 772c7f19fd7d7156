"""What a service refuses, in its own terms (never HTTP): the API maps each class to a status
in one place (app.api.errors); a worker records the message.

`code` is the stable machine-readable reason; `details` says which field, limit or row.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Busy", "Conflict", "Invalid", "NotFound", "ServiceError", "Stale"]


class ServiceError(Exception):
    code = "service_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.retry_after_s = retry_after_s
        if code is not None:
            self.code = code


class NotFound(ServiceError):
    """No such scaler, rollout, token or job."""

    code = "not_found"


class Conflict(ServiceError):
    """The current state forbids it (a scaler of that name exists, a rollout is active, the
    target cannot be read)."""

    code = "conflict"


class Stale(ServiceError):
    """A conditional write whose precondition (If-Match) no longer holds."""

    code = "precondition_failed"


class Invalid(ServiceError):
    """The request cannot be carried out as asked (a container that does not exist, a stored
    load too short to replay)."""

    code = "invalid"


class Busy(ServiceError):
    """Over a limit for now: retry after `retry_after_s`."""

    code = "too_many_requests"
