"""Prometheus remote write 1.0: POST /api/v1/write, so a Prometheus, Grafana Alloy or an
OpenTelemetry collector forwards its series into the store, through the same ingestion as the
pushes, all or nothing.

Prometheus retries a batch on 5xx and 429, and drops it on any other 4xx: bad data is a 4xx
here (retrying it would block the sender's queue behind it forever), a database that is down
is a 503 (app.api.errors), so the batch arrives once it is back.
"""

from __future__ import annotations

import asyncio
import math
import re

from fastapi import APIRouter, Request, Response

from app.api.auth import RequirePush
from app.api.body import behind_receipt, check_sample_count, read_raw_body
from app.api.context import Ctx
from app.api.remotewrite.wire import RemoteSeries, decode_write_request, snappy_decompress
from app.api.responses import errors
from app.errors import BadRequest, UnprocessableEntity, UnsupportedMediaType
from app.services.ingest import ingest
from app.settings import Settings
from app.store.series import SampleRow, SeriesKey

__all__ = ["router"]

router = APIRouter(tags=["ingestion"])

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Bodies above this are decoded off the event loop: reading a WriteRequest costs ~20 µs a
# sample (upb's attribute access, then the names' checks), ~14 compressed bytes a sample, so a
# 2,000-sample batch (28 kB) would hold the loop for ~40 ms; 4 kB holds it for at most ~6 ms.
_BIG_BODY = 4 * 1024
_SHOWN = 10  # problems listed in a 422's details; the message counts them all


def _check_headers(request: Request) -> None:
    """415 for anything but remote write 1.0 (a 2.0 sender falls back to 1.0 on a 415)."""
    media = request.headers.get("content-type", "")
    kind, _, params = media.partition(";")
    proto = dict(p.strip().partition("=")[::2] for p in params.split(";") if p.strip()).get(
        "proto", "prometheus.WriteRequest"
    )
    if kind.strip().lower() != "application/x-protobuf" or proto != "prometheus.WriteRequest":
        raise UnsupportedMediaType(
            f"unsupported Content-Type {media!r}: remote write 1.0 sends "
            "application/x-protobuf (a prometheus.WriteRequest)",
            code="unsupported_media_type",
        )
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding != "snappy":
        raise UnsupportedMediaType(
            f"unsupported Content-Encoding {encoding or 'identity'!r}: remote write sends snappy",
            code="unsupported_encoding",
        )


def _to_rows(series: list[RemoteSeries], now_us: int, settings: Settings) -> list[SampleRow]:
    """The rows to store; BadRequest for a series the store cannot name, 422 for samples
    outside the accepted window, as POST /v1/samples."""
    newest_ok = now_us + int(settings.max_future_skew_s * 1e6)
    oldest_ok = now_us - int(settings.raw_retention_days * 86400e6)
    rows: list[SampleRow] = []
    problems: list[dict[str, object]] = []
    for i, ts in enumerate(series):
        key = _key(i, ts.labels)
        for value, ms in ts.samples:
            # NaN is Prometheus' staleness marker (a target gone, a series ended): "no value
            # from now on", which the store says by holding none. An infinity would make every
            # aggregate over its bucket infinite. Both are dropped, as on the Pushgateway path.
            if not math.isfinite(value):
                continue
            ts_us = ms * 1000
            if ts_us > newest_ok or ts_us < oldest_ok:
                problems.append(
                    {
                        "field": f"timeseries.{i}",
                        "message": "more than CIUIC_MAX_FUTURE_SKEW_S "
                        f"({settings.max_future_skew_s:g} s) in the future"
                        if ts_us > newest_ok
                        else f"older than the raw retention ({settings.raw_retention_days:g} days)",
                        "value": ms,
                    }
                )
                continue
            rows.append(SampleRow(key, ts_us, value))
    if problems:
        raise UnprocessableEntity(
            f"{len(problems)} sample(s) with out-of-range timestamps; nothing was written",
            details=problems[:_SHOWN],
        )
    return rows


def _key(i: int, labels: list[tuple[str, str]]) -> SeriesKey:
    where = f"timeseries[{i}]"
    name = ""
    kept: dict[str, str] = {}
    for label, value in labels:
        if label == "__name__":
            name = value
            continue
        if not _LABEL_NAME.match(label) or label.startswith("__"):
            raise BadRequest(f"{where}: improper label name {label!r}", code="invalid_label")
        if label in kept:
            raise BadRequest(f"{where}: label {label!r} appears twice", code="invalid_label")
        if value:  # in Prometheus an empty label is no label
            kept[label] = value
    if not _METRIC_NAME.match(name):
        raise BadRequest(
            f"{where}: improper metric name (__name__) {name!r}"
            if name
            else f"{where}: no metric name (__name__ label)",
            code="invalid_metric_name",
        )
    return SeriesKey.of(name, kept)


def _decode(raw: bytes, settings: Settings, now_us: int) -> list[SampleRow]:
    series = decode_write_request(snappy_decompress(raw, settings.max_body_bytes))
    count = sum(len(ts.samples) for ts in series)
    check_sample_count(count, settings.max_samples_per_push, "the request")
    return _to_rows(series, now_us, settings)


@router.post(
    "/api/v1/write",
    status_code=204,
    operation_id="remote_write",
    summary="Append samples sent by Prometheus remote write 1.0 (all or nothing)",
    description=(
        "A snappy-compressed protobuf `prometheus.WriteRequest`, as Prometheus, Grafana Alloy "
        "and the OpenTelemetry collector send it (`Content-Encoding: snappy`, "
        "`Content-Type: application/x-protobuf`). Stale markers (NaN) and infinities are "
        "dropped; exemplars, native histograms and metadata are ignored."
    ),
    response_class=Response,
    responses={204: {"description": "Stored"}, **errors(400, 413, 415, 422, 429)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def remote_write(ctx: Ctx, request: Request, _auth: RequirePush) -> Response:
    _check_headers(request)
    raw = await read_raw_body(request, ctx.settings.max_body_bytes)
    now_us = ctx.clock.stamp_us()
    if len(raw) > _BIG_BODY:
        rows = await asyncio.to_thread(_decode, raw, ctx.settings, now_us)
    else:
        rows = _decode(raw, ctx.settings, now_us)
    if rows and max(r.ts_us for r in rows) > now_us:
        rows = behind_receipt(rows, now_us)
    await ingest(ctx, rows, now_us=now_us, protocol="remote_write")
    return Response(status_code=204)
