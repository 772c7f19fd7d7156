"""Reading request bodies under the size limit, decompressing gzip under the same limit, and
the limits on samples in one push (whichever protocol carried it): their count, and a pod
clock running ahead."""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import yaml
from fastapi import Request
from pydantic import BaseModel, ValidationError

from app.api.context import get_context
from app.api.errors import field_errors
from app.errors import BadRequest, PayloadTooLarge, UnprocessableEntity, UnsupportedMediaType
from app.store.series import SampleRow, SeriesKey

__all__ = [
    "JSON_TYPE",
    "behind_receipt",
    "body_type",
    "check_sample_count",
    "json_body",
    "json_body_doc",
    "read_body",
    "read_raw_body",
    "require_json",
    "too_large",
    "yaml_hint",
]

M = TypeVar("M", bound=BaseModel)


def too_large(limit: int, what: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"{what} is larger than the limit of {limit} bytes (CIUIC_MAX_BODY_BYTES)",
        details={"limit_bytes": limit},
    )


def check_sample_count(count: int, limit: int, what: str) -> None:
    """413 when `what` ("the push", "the request") holds more than `limit` samples."""
    if count > limit:
        raise PayloadTooLarge(
            f"{what} has {count} samples; the limit (CIUIC_MAX_SAMPLES_PER_PUSH) is {limit}",
            code="too_many_samples",
            details={"samples": count, "limit": limit},
        )


async def read_raw_body(request: Request, limit: int) -> bytes:
    """The body as sent, whatever its Content-Encoding, refused (413) past `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit, "the request body")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit, "the request body")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, decompressed when `Content-Encoding: gzip`. The limit applies to what is
    read and again to what decompression yields, so a gzip bomb is refused early (413)."""
    raw = await read_raw_body(request, limit)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding != "gzip":
        raise BadRequest(
            f"unsupported Content-Encoding {encoding!r}; send identity or gzip",
            code="unsupported_encoding",
        )
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(raw, limit + 1)
        if len(out) > limit or inflater.unconsumed_tail:
            raise too_large(limit, "the decompressed body")
        out += inflater.flush()
    except zlib.error as exc:
        raise BadRequest(f"invalid gzip body: {exc}", code="invalid_gzip") from exc
    if not inflater.eof:
        raise BadRequest("invalid gzip body: truncated stream", code="invalid_gzip")
    if len(out) > limit:
        raise too_large(limit, "the decompressed body")
    return out


JSON_TYPE = "application/json"
JSON_FORM_HINT = "add -H 'Content-Type: application/json'"
FORM_TYPE = "application/x-www-form-urlencoded"


def body_type(request: Request, reads: Sequence[str], *, form_hint: str = JSON_FORM_HINT) -> str:
    """The body's media type (lower case, parameters dropped) when it is one of `reads`, the
    types this operation reads; a body sent without a Content-Type is read as `reads[0]`, as
    clients that set no type expect. Anything else (YAML where JSON is read, text, a form, XML)
    is a 415 naming the types read, with `form_hint` (what to add to curl) for a form, which
    is what `curl -d` sends unless told otherwise."""
    given = request.headers.get("content-type")
    media = (given or reads[0]).split(";")[0].strip().lower()
    if media in reads:
        return media
    hint = f" (curl -d sends a form: {form_hint})" if media == FORM_TYPE else ""
    raise UnsupportedMediaType(
        f"unsupported Content-Type {given!r}: this operation reads "
        f"{' or '.join(_named(reads))}{hint}",
        details={"content_type": given, "supported": list(reads)},
    )


def _named(reads: Sequence[str]) -> list[str]:
    """The types to name in a message: one of each kind (application/yaml, not its aliases)."""
    kinds: dict[str, str] = {}
    for media in reads:
        kinds.setdefault(media.rsplit("/", 1)[-1].removeprefix("x-"), media)
    return list(kinds.values())


def require_json(request: Request) -> None:
    """415 for a body whose Content-Type says it is not JSON (YAML, text, a form); a body
    sent without one is read as JSON, as clients that set no type expect."""
    body_type(request, (JSON_TYPE,))


def yaml_hint(body: bytes) -> str:
    """A hint for a body that failed as JSON but reads as a YAML mapping (a spec file posted
    without its content type); "" otherwise."""
    try:
        document = yaml.safe_load(body.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        return ""
    if not isinstance(document, dict) or not document:
        return ""
    return (
        "; the body looks like YAML: send it with `Content-Type: application/yaml` "
        "(curl -H 'Content-Type: application/yaml' --data-binary @spec.yaml)"
    )


def json_body(model: type[M], *, optional: bool = False) -> Callable[[Request], Awaitable[M]]:
    """A dependency: the JSON body as `model`, read under CIUIC_MAX_BODY_BYTES (FastAPI's own
    body parameters read any size), 415 when its Content-Type is not JSON (`require_json`);
    with `optional`, no body at all is `{}`, whatever type the request names. Declare it after
    the route's auth dependency: FastAPI parses its own body parameters before any dependency
    runs, so a request without a token would learn about its body (400/422) instead of being
    refused (401)."""

    async def dependency(request: Request) -> M:
        if not optional:
            require_json(request)
        raw = await read_body(request, get_context(request).settings.max_body_bytes)
        if optional and not raw.strip():
            raw = b"{}"
        elif optional:
            require_json(request)  # a type is refused only on a body it would describe
        try:
            return model.model_validate_json(raw)
        except ValidationError as exc:
            errors = exc.errors()
            if any(e["type"] == "json_invalid" for e in errors):
                raise BadRequest(
                    f"the body is not valid JSON: {errors[0]['msg']}",
                    code="invalid_json",
                ) from exc
            details = field_errors([{**e, "loc": ("body", *e["loc"])} for e in errors])
            raise UnprocessableEntity(
                f"{len(details)} invalid field(s) in the request", details=details
            ) from exc

    return dependency


def json_body_doc(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """`openapi_extra` describing a body read by `json_body(model)`."""
    schema = model.model_json_schema()
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"required": required, "content": content}}


def behind_receipt(rows: list[SampleRow], now_us: int) -> list[SampleRow]:
    """A sample cannot have been measured after it arrived: a series whose newest sample in
    this push is ahead of the server's clock (by up to CIUIC_MAX_FUTURE_SKEW_S) comes from a pod
    whose clock runs fast. Its samples in the push are moved back together, so the newest is
    at the time of receipt and their spacing is kept. Stored as sent, they would be invisible
    to the reconciler until the server's clock caught up, and would then look fresh for as
    long as the pod's clock is ahead after the pod fell silent."""
    ahead: dict[SeriesKey, int] = {}
    for row in rows:
        if row.ts_us > now_us and row.ts_us - now_us > ahead.get(row.key, 0):
            ahead[row.key] = row.ts_us - now_us
    return [
        SampleRow(row.key, row.ts_us - ahead[row.key], row.value) if row.key in ahead else row
        for row in rows
    ]
