"""Pushgateway-compatible routes: PUT/POST/DELETE /metrics/job/<job>{/<label>/<value>}.

A push is answered only after its group and its samples are committed. The catch-all path
parameter means no request here is ever redirected (prometheus_client treats a 307 as failure).
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from starlette.convertors import PathConvertor, register_url_convertor

from app.api.auth import RequirePush, RequireRead
from app.api.body import check_sample_count, read_body
from app.api.context import Ctx
from app.api.pushgateway.exposition import (
    InconsistentPush,
    PushedFamily,
    format_value,
    parse_push_body,
)
from app.api.pushgateway.grouping import parse_grouping_key
from app.api.responses import errors
from app.errors import BadRequest, UnsupportedMediaType
from app.services.ingest import GroupPush, delete_group, ingest, push_failed
from app.store import pushgroups
from app.store.series import SampleRow, SeriesKey

__all__ = ["router"]


class _GroupingConvertor(PathConvertor):
    """Starlette's `path`, newlines included: a label value may hold one (URL-encoded), and
    the grouping parser, not the router, is the one to judge it (400, not 404)."""

    regex = r"[\s\S]*"


register_url_convertor("grouping", _GroupingConvertor())

router = APIRouter(tags=["pushgateway"])

_PROTOBUF = "application/vnd.google.protobuf"
_BIG_BODY = 64 * 1024  # parse bodies above this off the event loop
_TEXT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "content": {"text/plain": {"schema": {"type": "string"}}},
        "description": "Text exposition format 0.0.4; may be gzip-compressed.",
    }
}


def _grouping(request: Request) -> dict[str, str]:
    raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
    path = raw.decode("latin-1").split("?", 1)[0]
    prefix = request.scope.get("root_path", "") + "/metrics/"
    if not path.startswith(prefix):
        prefix = "/metrics/"
    return parse_grouping_key(path[len(prefix) :])


async def _push(ctx: Ctx, request: Request, *, replace_all: bool) -> Response:
    grouping = _grouping(request)
    given = request.headers.get("content-type")
    if (given or "").split(";")[0].strip().lower() == _PROTOBUF:
        # The one type refused: any other is read as the text format, as the Pushgateway does
        # (`curl --data-binary @-` sends a form's type; prometheus_client sends text/plain).
        raise UnsupportedMediaType(
            f"unsupported Content-Type {given!r}: the protobuf exposition format is not "
            "supported; push the text format (text/plain; version=0.0.4)",
            details={"content_type": given, "supported": ["text/plain"]},
        )
    body = await read_body(request, ctx.settings.max_body_bytes)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("the body is not valid UTF-8", code="parse_error") from exc
    now_us = ctx.clock.stamp_us()
    try:
        if len(text) > _BIG_BODY:
            families = await asyncio.to_thread(parse_push_body, text, grouping)
        else:
            families = parse_push_body(text, grouping)
    except InconsistentPush:
        await push_failed(ctx, grouping, now_us=now_us)
        raise
    count = sum(len(f.samples) for f in families)
    check_sample_count(count, ctx.settings.max_samples_per_push, "the push")
    # NaN and ±Inf are valid pushed values: the group keeps them and shows them back, as the
    # Pushgateway does. The time series do not: a NaN is "no value" (Prometheus' staleness
    # marker; SQLite cannot even store one), and an infinity would make every sum, average and
    # max over its bucket infinite, in the rollups, the queries and the policy's reading of
    # all the scaler's pods, for a single pod's bad sample. The JSON path refuses both (422).
    rows = [
        SampleRow(SeriesKey(s.name, s.items), now_us, s.value)
        for f in families
        for s in f.samples
        if math.isfinite(s.value)
    ]
    group = GroupPush(grouping, _to_group(families), replace_all=replace_all)
    await ingest(ctx, rows, now_us=now_us, protocol="pushgateway", group=group)
    return Response(status_code=200)


def _to_group(families: list[PushedFamily]) -> list[pushgroups.GroupFamily]:
    return [
        pushgroups.GroupFamily(
            f.name, f.type, f.help, [(s.name, s.labels, s.value) for s in f.samples]
        )
        for f in families
    ]


@router.put(
    "/metrics/{grouping:grouping}",
    operation_id="push_replace_group",
    summary="Replace a group's metrics (Pushgateway PUT, prometheus_client push_to_gateway)",
    openapi_extra=_TEXT_BODY,
    response_class=Response,
    responses={200: {"description": "Stored"}, **errors(400, 413, 415, 429)},
)
async def push_replace(ctx: Ctx, request: Request, _auth: RequirePush, grouping: str) -> Response:
    return await _push(ctx, request, replace_all=True)


@router.post(
    "/metrics/{grouping:grouping}",
    operation_id="push_add_to_group",
    summary="Replace the families named in the body (Pushgateway POST, pushadd_to_gateway)",
    openapi_extra=_TEXT_BODY,
    response_class=Response,
    responses={200: {"description": "Stored"}, **errors(400, 413, 415, 429)},
)
async def push_add(ctx: Ctx, request: Request, _auth: RequirePush, grouping: str) -> Response:
    return await _push(ctx, request, replace_all=False)


@router.delete(
    "/metrics/{grouping:grouping}",
    status_code=202,
    operation_id="push_delete_group",
    summary="Delete a group (Pushgateway DELETE, delete_from_gateway)",
    response_class=Response,
    responses={202: {"description": "Deleted (or there was no such group)"}, **errors(400)},
)
async def push_delete(ctx: Ctx, request: Request, _auth: RequirePush, grouping: str) -> Response:
    await delete_group(ctx, _grouping(request))
    return Response(status_code=202)


def _rfc3339(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, tz=UTC).isoformat().replace("+00:00", "Z")


def _family_json(family: pushgroups.StoredFamily, grouping: dict[str, str]) -> dict[str, Any]:
    metrics: list[dict[str, Any]] = []
    if family.type in ("histogram", "summary"):
        by_labels: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        for name, labels, value in family.samples:
            own = {k: v for k, v in labels.items() if k not in ("le", "quantile")}
            entry = by_labels.setdefault(tuple(sorted(own.items())), {"labels": own})
            # a histogram always shows its buckets, a summary its quantiles, even none
            entry.setdefault("buckets" if family.type == "histogram" else "quantiles", {})
            if name.endswith("_bucket"):
                entry.setdefault("buckets", {})[labels.get("le", "")] = format_value(value)
            elif name.endswith("_count"):
                entry["count"] = format_value(value)
            elif name.endswith("_sum"):
                entry["sum"] = format_value(value)
            else:
                entry.setdefault("quantiles", {})[labels.get("quantile", "")] = format_value(value)
        metrics = list(by_labels.values())
    else:
        metrics = [
            {"labels": labels, "value": format_value(value)} for _, labels, value in family.samples
        ]
    for m in metrics:
        # The Pushgateway gives every pushed series an `instance` (empty unless the body or
        # the grouping key names one) so that Prometheus does not add its own on scrape.
        m["labels"].setdefault("instance", "")
        m["labels"].update(grouping)
    rendered: dict[str, Any] = {"time_stamp": _rfc3339(family.pushed_us)}
    rendered["type"] = family.type.upper()
    if family.help:  # Go's JSON leaves an empty HELP out
        rendered["help"] = family.help
    rendered["metrics"] = metrics
    return rendered


@router.get(
    "/api/v1/metrics",
    operation_id="list_push_groups",
    summary="All pushed groups, in the Pushgateway's JSON shape",
)
async def list_groups(ctx: Ctx, _auth: RequireRead) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        groups = await pushgroups.list_groups(conn)
    data: list[dict[str, Any]] = []
    for group in groups:
        # The group's labels are the grouping key as pushed, an empty value included; only
        # its series carry the added `instance: ""`.
        labels = dict(group.labels)
        entry: dict[str, Any] = {
            "labels": labels,
            "last_push_successful": group.last_push_us >= group.last_failure_us,
        }
        for family in group.families:
            entry[family.name] = _family_json(family, labels)
        series_labels = {"instance": "", **labels}
        # Each stamp's family is dated by its own event; a group that only ever failed dates
        # its zero push time by its creation, the failure (as the Pushgateway does).
        pushed, failed = group.last_push_us, group.last_failure_us
        for name, value, stamp in (
            ("push_time_seconds", pushed, pushed or failed),
            ("push_failure_time_seconds", failed, failed or pushed),
        ):
            entry[name] = {
                "time_stamp": _rfc3339(stamp),
                "type": "GAUGE",
                "help": "Last Unix time when changing this group in the Pushgateway succeeded."
                if name == "push_time_seconds"
                else "Last Unix time when changing this group in the Pushgateway failed.",
                "metrics": [{"labels": dict(series_labels), "value": format_value(value / 1e6)}],
            }
        data.append(entry)
    return {"status": "success", "data": data}


@router.get(
    "/-/healthy",
    response_class=PlainTextResponse,
    operation_id="pushgateway_healthy",
    summary="Liveness, as the Pushgateway answers it: `OK`",
    responses={200: {"content": {"text/plain": {"example": "OK"}}}},
)
async def pgw_healthy() -> str:
    return "OK"


@router.get(
    "/-/ready",
    response_class=PlainTextResponse,
    operation_id="pushgateway_ready",
    summary="Readiness, as the Pushgateway answers it: `OK` once the database answers",
    responses={
        200: {"content": {"text/plain": {"example": "OK"}}},
        503: {"description": "The database is unavailable"},
    },
)
async def pgw_ready(ctx: Ctx) -> str:
    await ctx.db.ping()
    return "OK"
