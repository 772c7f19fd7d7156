"""Rendering every failure as `{"error": {"code", "message", "details"}}`: the one place where
the store's and the services' refusals become HTTP statuses (`STATUS`).

A database that cannot be reached is a 503 with Retry-After, never a 500; request validation
failures are 422 with one entry per field; a spec that does not validate is 422 `invalid_spec`
with one entry per problem.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from app.errors import ApiError, UnprocessableEntity
from app.policy import SpecError
from app.services import errors as services
from app.store import errors as store
from app.store.db import is_unavailable

__all__ = [
    "STATUS",
    "error_body",
    "field_errors",
    "install_error_handlers",
    "invalid_fields",
    "invalid_spec",
]

# What the layers below refuse, as the API answers it (a subclass takes its nearest entry).
STATUS: dict[type[Exception], int] = {
    store.SeriesLimitExceeded: 429,
    store.TypeClash: 400,
    services.NotFound: 404,
    services.Conflict: 409,
    services.Stale: 412,
    services.Invalid: 422,
    services.Busy: 429,
}

log = logging.getLogger("ciuic.api")

# The ingestion routes (by operationId) and the protocol `ciuic_pushes` counts them under.
_PUSH_PROTOCOL = {
    "ingest_samples": "json",
    "push_replace_group": "pushgateway",
    "push_add_to_group": "pushgateway",
    "push_delete_group": "pushgateway",
    "remote_write": "remote_write",
}


def _count_push(request: Request, status: int) -> None:
    """A push answered with an error counts in `ciuic_pushes` too: `refused` (4xx: the pusher
    must change what it sends, or slow down) or `unavailable` (503: retried), so the accepted
    share is visible beside the rejects' reasons. Whatever refused it (a handler, the auth,
    the body's validation), the route is known by then."""
    protocol = _PUSH_PROTOCOL.get(str(getattr(request.scope.get("route"), "operation_id", "")))
    ctx = getattr(request.app.state, "ctx", None)
    if protocol is None or ctx is None:
        return
    if 400 <= status < 500:
        ctx.telemetry.pushes.labels(protocol, "refused").inc()
    elif status == 503:
        ctx.telemetry.pushes.labels(protocol, "unavailable").inc()


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": _jsonable(details)}}


def _jsonable(value: Any) -> Any:
    """`details` as strict JSON can carry it, whatever the input held (NaN, bytes, dates):
    an error response must never fail to render."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _retry_after(request: Request) -> str:
    ctx = getattr(request.app.state, "ctx", None)
    return str(ctx.settings.db_retry_after_s if ctx is not None else 5)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    ctx = getattr(request.app.state, "ctx", None)
    if ctx is not None and exc.status < 500:
        ctx.telemetry.rejects.labels(exc.code).inc()
    _count_push(request, exc.status)
    return JSONResponse(
        error_body(exc.code, exc.message, exc.details), status_code=exc.status, headers=exc.headers
    )


def _status_of(exc: Exception) -> int:
    for cls in type(exc).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return status
    return 500


async def _refused(request: Request, exc: Exception) -> JSONResponse:
    """A store's or a service's refusal, as its status says."""
    assert isinstance(exc, store.StoreError | services.ServiceError)
    retry_after = getattr(exc, "retry_after_s", None)
    api = ApiError(
        exc.message,
        code=exc.code,
        details=exc.details,
        headers={} if retry_after is None else {"Retry-After": str(retry_after)},
    )
    api.status = _status_of(exc)
    return await _api_error(request, api)


def invalid_spec(exc: SpecError) -> UnprocessableEntity:
    """The 422 for a spec that does not validate: one entry per problem, as sent."""
    return UnprocessableEntity(
        f"invalid scaler spec: {len(exc.issues)} problem(s)",
        code="invalid_spec",
        details=[{**i, "value": _jsonable_value(i.get("value"))} for i in exc.issues],
    )


def _jsonable_value(value: object) -> object:
    """A spec value as JSON can carry it (YAML may hold dates, sets, ...)."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


async def _spec_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SpecError)
    return await _api_error(request, invalid_spec(exc))


_MAX_VALUE_CHARS = 200


def _scalar(value: object) -> object:
    """The refused input as JSON can carry it: containers are left out, bytes and non-finite
    numbers become text, long text is cut."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict | list | tuple | set):
        return None
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", errors="replace")
    text = value if isinstance(value, str) else str(value)
    if len(text) > _MAX_VALUE_CHARS:
        return text[:_MAX_VALUE_CHARS] + "…"
    return text


def field_errors(errors: Sequence[Any]) -> list[dict[str, object]]:
    """pydantic's errors as the API reports them: dotted field, message, type, scalar value."""
    out: list[dict[str, object]] = []
    for e in errors:
        out.append(
            {
                "field": ".".join(str(p) for p in e["loc"]),
                "message": e["msg"],
                "type": e["type"],
                "value": _scalar(e.get("input")),
            }
        )
    return out


def invalid_fields(exc: ValidationError, what: str = "the request") -> UnprocessableEntity:
    """The 422 for a body that pydantic refused."""
    return UnprocessableEntity(
        f"{exc.error_count()} invalid field(s) in {what}", details=field_errors(exc.errors())
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = field_errors(exc.errors())
    _count_push(request, 422)
    return JSONResponse(
        error_body("invalid", f"{len(details)} invalid field(s) in the request", details),
        status_code=422,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    _count_push(request, exc.status_code)
    return JSONResponse(
        error_body(code, str(exc.detail)),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    if is_unavailable(exc):
        log.warning("database unavailable: %s", exc)
        _count_push(request, 503)
        return JSONResponse(
            error_body(
                "database_unavailable",
                "the database is unavailable; nothing was written, retry later",
            ),
            status_code=503,
            headers={"Retry-After": _retry_after(request)},
        )
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body("internal", "internal error"), status_code=500)


async def _client_gone(request: Request, exc: Exception) -> Response:
    """The client hung up before its body arrived (a pusher's timeout): nothing was read, so
    nothing was written, and nobody is left to answer. One quiet line, not a traceback: under
    overload, formatting tracebacks for every abandoned push would cost the CPU that the
    remaining pushes need."""
    log.info("client disconnected during %s %s", request.method, request.url.path)
    return Response(status_code=499)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(store.StoreError, _refused)
    app.add_exception_handler(services.ServiceError, _refused)
    app.add_exception_handler(SpecError, _spec_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(SQLAlchemyError, _unexpected)
    app.add_exception_handler(OSError, _unexpected)
    app.add_exception_handler(Exception, _unexpected)
