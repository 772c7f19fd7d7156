"""Reading request bodies under the size limit, decompressing gzip under the same limit."""

from __future__ import annotations

import zlib

from fastapi import Request

from app.errors import BadRequest, PayloadTooLarge

__all__ = ["read_body"]


def _too_large(limit: int, what: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"{what} is larger than the limit of {limit} bytes (CIUIC_MAX_BODY_BYTES)",
        details={"limit_bytes": limit},
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The body, decompressed when `Content-Encoding: gzip`. The limit applies to what is
    read and again to what decompression yields, so a gzip bomb is refused early (413)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit, "the request body")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit, "the request body")
        chunks.append(chunk)
    raw = b"".join(chunks)
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
            raise _too_large(limit, "the decompressed body")
        out += inflater.flush()
    except zlib.error as exc:
        raise BadRequest(f"invalid gzip body: {exc}", code="invalid_gzip") from exc
    if not inflater.eof:
        raise BadRequest("invalid gzip body: truncated stream", code="invalid_gzip")
    if len(out) > limit:
        raise _too_large(limit, "the decompressed body")
    return out
