"""The OpenAPI document's error side, declared once for every operation.

Routes declare the errors only they can raise (`responses={404: {"description": ...}}`); this
module adds what follows from the shape of the service:

- an operation behind a token (its `security`, from `app.api.auth.require`) answers 401 (no,
  unknown or revoked token), 403 (scope too narrow) and 503 (the database, where tokens
  live, is down);
- every 4xx/5xx response carries the one error body, `{"error": {"code", "message", "details"}}`
  (FastAPI's own 422 shape, `HTTPValidationError`, is never sent: `app.api.errors` renders
  request validation failures in the common shape).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

__all__ = ["MAX_ID", "ErrorBody", "ErrorInfo", "errors", "install_openapi"]

MAX_ID = 2**63 - 1
"""The largest id or cursor a parameter may hold: ids are BIGINT, and a larger one, which
names nothing, is a 422 rather than a 500 at the database."""


class ErrorInfo(BaseModel):
    code: str = Field(description="Stable machine-readable reason, e.g. `invalid_spec`")
    message: str = Field(description="What went wrong, for a person")
    details: Any = Field(
        None,
        description="Structured context: for 422, a list of {field, message, ...} per problem",
    )


class ErrorBody(BaseModel):
    """Every error the API sends."""

    error: ErrorInfo


_AUTH_ERRORS = {
    "401": "No token, or the token is unknown or revoked",
    "403": "The token's scope does not allow this operation",
    "503": "The database is unavailable; nothing was written. Retry after `Retry-After` s",
}
_UNUSED = ("HTTPValidationError", "ValidationError")
_DESCRIPTIONS = {
    400: "Bad input: a body or a parameter that cannot be read",
    404: "No such resource",
    409: "Conflicts with the current state",
    412: "If-Match did not match the current generation",
    413: "The body, or the number of samples in it, is over the limit",
    415: "The body's Content-Type or Content-Encoding is not one this operation reads",
    422: "Invalid parameters or body; `details` lists each problem",
    429: "A job is over its limit of series (CIUIC_MAX_SERIES_PER_JOB)",
}


def errors(
    *codes: int, described: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """`responses=` for the errors a route raises itself, with their usual descriptions, and
    those `described` by the route itself (where a status means something else there)."""
    out: dict[int | str, dict[str, Any]] = {
        code: {"description": _DESCRIPTIONS[code]} for code in codes
    }
    out.update({code: {"description": text} for code, text in (described or {}).items()})
    return out


def _error_content() -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}


def _document(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(body.pop("$defs", {}))
    schemas["ErrorBody"] = body
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            if operation.get("security"):
                for code, description in _AUTH_ERRORS.items():
                    responses.setdefault(code, {"description": description})
            for code, response in responses.items():
                if code[0] in "45":
                    response["content"] = _error_content()
                    if response.get("description") == "Validation Error":
                        response["description"] = "Invalid parameters or body"
            operation["responses"] = dict(sorted(responses.items()))
    for name in _UNUSED:
        schemas.pop(name, None)
    _hoist_defs(schema.get("paths", {}), schemas)


def _hoist_defs(node: Any, schemas: dict[str, Any]) -> None:
    """Inline body schemas (`Model.model_json_schema()` in `openapi_extra`) carry their own
    `$defs` and refer to them as `#/$defs/X`, which resolves against the document's root:
    move them to the components and point the references there."""
    if isinstance(node, dict):
        for name, definition in node.pop("$defs", {}).items():
            _hoist_defs(definition, schemas)  # the models it refers to are its siblings
            if schemas.setdefault(name, definition) != definition:
                raise RuntimeError(f"two different schemas named {name!r} in the OpenAPI")
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/"):
                node[key] = "#/components/schemas/" + value.removeprefix("#/$defs/")
            else:
                _hoist_defs(value, schemas)
    elif isinstance(node, list):
        for item in node:
            _hoist_defs(item, schemas)


def install_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` return the document with the errors and security filled in."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            _document(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
