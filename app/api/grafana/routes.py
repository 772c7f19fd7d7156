"""The datasource's routes: each reads its body, asks the modules beside it, renders."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request

from app.api.auth import RequireRead
from app.api.context import AppContext, Ctx
from app.api.grafana.annotations import annotation_table, find_annotations
from app.api.grafana.forecast_series import forecast_metric_names, forecast_series
from app.api.grafana.frames import TimeSeries, Window, series_table
from app.api.grafana.inputs import (
    body_of,
    choice,
    choose_step_ms,
    matchers,
    payload_of,
    range_ms,
    scaler_allowed,
)
from app.api.grafana.metric_series import COMBINE, metric_series
from app.api.grafana.objective_series import objective_series
from app.api.grafana.scaler_series import SCALER_FIELDS, decision_table, scaler_series
from app.api.grafana.schemas import (
    AnnotationsIn,
    Loose,
    MetricsIn,
    PayloadOptionsIn,
    QueryIn,
    SearchIn,
    TagValuesIn,
    VariableIn,
)
from app.api.responses import errors
from app.errors import BadRequest
from app.store import catalog
from app.store import scalers as scaler_store
from app.store.query import AGGREGATIONS
from app.store.scalers import StoredScaler

__all__ = ["router"]

router = APIRouter(prefix="/grafana", tags=["grafana"])

MAX_POINTS = 11_000  # per series, whatever maxDataPoints asks
DEFAULT_POINTS = 1_000
_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_VARIABLE_CALL = re.compile(r"^\s*([a-z_]+)\(\s*(.*?)\s*\)\s*$")


@router.get("", operation_id="grafana_health")
async def health(_auth: RequireRead) -> dict[str, str]:
    """`Save & test` in Grafana: 200 when the datasource is reachable with this token."""
    return {"status": "ok", "message": "Ciuic JSON datasource"}


@router.get("/", include_in_schema=False)
async def health_slash(_auth: RequireRead) -> dict[str, str]:
    return await health(_auth)


FORMATS = ("time_series", "table")

_SELECTOR_PAYLOADS: list[dict[str, Any]] = [
    {
        "name": "agg",
        "label": "Per step",
        "type": "select",
        "placeholder": "avg",
        "options": [{"label": a, "value": a} for a in AGGREGATIONS],
    },
    {
        "name": "combine",
        "label": "Across series",
        "type": "select",
        "placeholder": "none",
        "options": [{"label": c, "value": c} for c in COMBINE],
    },
    {"name": "legend", "label": "Legend", "type": "input", "placeholder": "{{pod}}"},
    {
        "name": "format",
        "label": "Format",
        "type": "select",
        "placeholder": "time_series",
        "options": [{"value": f} for f in FORMATS],
    },
]
_STATIC_OPTIONS: dict[str, list[dict[str, str]]] = {
    p["name"]: p["options"] for p in _SELECTOR_PAYLOADS if "options" in p
}


async def _scaler_names(ctx: AppContext) -> list[str]:
    async with ctx.db.read() as conn:
        found: list[StoredScaler] = await scaler_store.list_scalers(conn)
    return [s.name for s in found]


async def _all_targets(ctx: AppContext) -> tuple[list[str], list[str], list[str]]:
    async with ctx.db.read() as conn:
        names = await catalog.metric_names(conn)
    scalers = await _scaler_names(ctx)
    fields = (*SCALER_FIELDS, "decision", "objective")
    scaler_targets = [f"scaler:{s}:{f}" for s in scalers for f in fields]
    return names, scaler_targets, forecast_metric_names(scalers)


@router.post("/metrics", operation_id="grafana_metrics", responses=errors(400, 413, 415, 422))
async def metrics(ctx: Ctx, request: Request, _auth: RequireRead) -> list[dict[str, Any]]:
    """Every queryable target. Stored metrics take a selector payload; scaler series none."""
    await body_of(ctx, request, MetricsIn)
    names, scaler_targets, forecasts = await _all_targets(ctx)
    out: list[dict[str, Any]] = [
        {"label": n, "value": n, "payloads": _SELECTOR_PAYLOADS} for n in names
    ]
    out += [{"label": t, "value": t, "payloads": []} for t in scaler_targets + forecasts]
    return out


@router.post(
    "/metric-payload-options",
    operation_id="grafana_metric_payload_options",
    responses=errors(400, 413, 415, 422),
)
async def metric_payload_options(
    ctx: Ctx, request: Request, _auth: RequireRead
) -> list[dict[str, str]]:
    body = await body_of(ctx, request, PayloadOptionsIn)
    return _STATIC_OPTIONS.get(body.name, [])


@router.post("/query", operation_id="grafana_query", responses=errors(400, 413, 415, 422))
async def query(ctx: Ctx, request: Request, _auth: RequireRead) -> list[dict[str, Any]]:
    body = await body_of(ctx, request, QueryIn)
    start_ms, end_ms = range_ms(body.range)
    max_points = min(body.maxDataPoints or DEFAULT_POINTS, MAX_POINTS)
    step_ms = choose_step_ms(start_ms, end_ms, body.intervalMs, max_points)
    window = Window(start_ms, end_ms, step_ms, max_points, round(ctx.clock.now() * 1000))
    extra = matchers([*body.filters, *body.adhocFilters])
    annotations_request = (body.requestId or "").startswith("AQ")
    out: list[dict[str, Any]] = []
    for target in body.targets:
        if target.hide:
            continue
        text = (target.target or "").strip()
        if annotations_request or target.refId == "Anno":
            found = await find_annotations(ctx, text, start_ms, end_ms, extra)
            out.append(annotation_table(found))
            continue
        if not text:
            continue
        payload = payload_of(target)
        shape = choice(payload, "format", FORMATS, "time_series")
        as_table = target.type == "table" or shape == "table"
        series: list[TimeSeries]
        parts = text.split(":")
        if text.startswith("scaler:") and len(parts) == 3:
            _, scaler, field = parts
            if field == "decision":
                out.append(await decision_table(ctx, scaler))
                continue
            if field == "objective":
                series = await objective_series(ctx, scaler, extra, window)
            elif field not in SCALER_FIELDS:
                raise BadRequest(
                    f"unknown scaler series {field!r}; known: "
                    + ", ".join((*SCALER_FIELDS, "decision", "objective")),
                    code="invalid_target",
                    details={"target": text},
                )
            else:
                series = await scaler_series(ctx, scaler, field, extra, window)
        elif text.startswith("forecast:") and len(parts) == 3:
            _, scaler, band = parts
            series = (
                await forecast_series(ctx, scaler, band, window)
                if scaler_allowed(scaler, extra)
                else []
            )
        else:
            series = await metric_series(ctx, target, text, extra, window)
        legend = payload.get("legend")
        if legend and parts[0] in ("scaler", "forecast") and len(series) == 1:
            series = [TimeSeries(str(legend), series[0].datapoints)]
        if as_table:
            out.append(series_table(series))
        else:
            out.extend(s.json() for s in series)
    return out


def _variable_query(body: VariableIn) -> str:
    if isinstance(body.payload, dict):
        value = body.payload.get("target", body.payload.get("query", ""))
        return str(value or "")
    if isinstance(body.payload, str):
        return body.payload
    return body.target or ""


async def _variable_values(ctx: AppContext, text: str) -> list[str]:
    """`metrics()` (or empty), `scalers()`, `label_values(key)`, `label_values(metric, key)`."""
    text = text.strip()
    if not text:
        text = "metrics()"
    call = _VARIABLE_CALL.match(text)
    if call is None:
        raise BadRequest(
            f"unknown variable query {text!r}; use metrics(), scalers(), label_values(key) "
            "or label_values(metric, key)",
            code="invalid_variable",
        )
    fn, args_text = call.groups()
    args = [a.strip().strip("'\"") for a in args_text.split(",")] if args_text else []
    async with ctx.db.read() as conn:
        if fn == "metrics" and not args:
            return await catalog.metric_names(conn)
        if fn == "label_values" and len(args) in (1, 2) and all(args):
            metric = args[0] if len(args) == 2 else None
            if metric is not None and not _NAME.match(metric):
                raise BadRequest(f"{metric!r} is not a metric name", code="invalid_variable")
            return await catalog.label_values(conn, args[-1], metric)
    if fn == "scalers" and not args:
        return await _scaler_names(ctx)
    raise BadRequest(
        f"unknown variable query {text!r}; use metrics(), scalers(), label_values(key) "
        "or label_values(metric, key)",
        code="invalid_variable",
    )


@router.post("/variable", operation_id="grafana_variable", responses=errors(400, 413, 415, 422))
async def variable(ctx: Ctx, request: Request, _auth: RequireRead) -> list[dict[str, str]]:
    body = await body_of(ctx, request, VariableIn)
    values = await _variable_values(ctx, _variable_query(body))
    return [{"__text": v, "__value": v} for v in values]


@router.post("/tag-keys", operation_id="grafana_tag_keys", responses=errors(400, 413, 415, 422))
async def tag_keys(ctx: Ctx, request: Request, _auth: RequireRead) -> list[dict[str, str]]:
    await body_of(ctx, request, Loose)
    async with ctx.db.read() as conn:
        keys = await catalog.label_keys(conn)
    keys = sorted({*keys, "scaler"})
    return [{"type": "string", "text": k} for k in keys]


@router.post("/tag-values", operation_id="grafana_tag_values", responses=errors(400, 413, 415, 422))
async def tag_values(ctx: Ctx, request: Request, _auth: RequireRead) -> list[dict[str, str]]:
    body = await body_of(ctx, request, TagValuesIn)
    if body.key == "scaler":
        values = await _scaler_names(ctx)
    else:
        async with ctx.db.read() as conn:
            values = await catalog.label_values(conn, body.key)
    return [{"text": v} for v in values]


@router.post("/search", operation_id="grafana_search", responses=errors(400, 413, 415, 422))
async def search(ctx: Ctx, request: Request, _auth: RequireRead) -> list[str]:
    """simple-json: the targets whose name contains the search text (all when empty)."""
    body = await body_of(ctx, request, SearchIn)
    text = (body.target or "").strip()
    if _VARIABLE_CALL.match(text):
        return await _variable_values(ctx, text)
    names, scaler_targets, forecasts = await _all_targets(ctx)
    everything = names + scaler_targets + forecasts
    return [t for t in everything if text in t] if text else everything


@router.post(
    "/annotations", operation_id="grafana_annotations", responses=errors(400, 413, 415, 422)
)
async def simple_annotations(
    ctx: Ctx, request: Request, _auth: RequireRead
) -> list[dict[str, Any]]:
    """simple-json annotations: the request's annotation object is echoed in each one."""
    body = await body_of(ctx, request, AnnotationsIn)
    start_ms, end_ms = range_ms(body.range)
    found = await find_annotations(ctx, body.annotation.query, start_ms, end_ms, ())
    echoed = body.annotation.model_dump(by_alias=True, exclude_none=True)
    return [
        {
            "annotation": echoed,
            "time": a.time_ms,
            "timeEnd": a.time_ms,
            "title": a.title,
            "text": a.text,
            "tags": a.tags,
        }
        for a in found
    ]
