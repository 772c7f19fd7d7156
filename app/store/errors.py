"""What the store refuses, in its own terms (never HTTP): the caller's transaction rolls back.

`code` is stable and machine-readable, `details` says which limit or which rows; the API maps
each class to a status in one place (app.api.errors).
"""

from __future__ import annotations

from typing import Any

__all__ = ["SeriesLimitExceeded", "StoreError", "TypeClash"]


class StoreError(Exception):
    code = "store_error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class SeriesLimitExceeded(StoreError):
    """A job would have more series than CIUIC_MAX_SERIES_PER_JOB."""

    code = "series_limit"


class TypeClash(StoreError):
    """A metric pushed with another type than other groups push it with."""

    code = "type_clash"
