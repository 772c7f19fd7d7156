"""The Grafana JSON datasource API (simPod `simpod-json-datasource`) under `/grafana`.

Point a datasource of that type at `http://<ciuic>/grafana` with a `read` token (basic auth
with the token as the password, or a Bearer header). Endpoints, relative to that URL:

    GET  /                         health (also `/grafana/`: Grafana calls the bare URL)
    POST /metrics                  what can be queried, with payload options
    POST /metric-payload-options   the options of one payload
    POST /query                    time series, tables, and annotations (refId "Anno")
    POST /variable                 dashboard variables: [{"__text", "__value"}]
    POST /tag-keys, /tag-values    ad-hoc filters
    POST /search, /annotations     the older simple-json API

Targets:

- a series selector, `gpu_utilization{deployment="deepseek"}`, with payload `agg` (how a step's
  samples reduce: avg, sum, min, max, count), `combine` (across series: none, sum, avg, max,
  min), `legend` (`{{pod}}` templates) and `format` (time_series or table);
- `scaler:<name>:desired_replicas`, `:need`, `:current_replicas`, `:ready`: step functions from
  the scaler's recorded action/dry-run events and its latest decision;
- `scaler:<name>:decision`: the latest decision's reasons as a table;
- `forecast:<name>:<band>`: the latest fitted forecast's mean, p50, p90, p99 and the replicas
  it plans, ahead of now (set the dashboard's range past `now` to see them).

Ad-hoc filters (`filters`, or `adhocFilters` from older plugin versions) are label matchers added
to every selector; a filter on the key `scaler` also narrows scaler series and annotations.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from app.api.auth import RequireRead
from app.api.body import read_body
from app.api.context import AppContext, Ctx
from app.api.errors import invalid_fields
from app.api.responses import errors
from app.api.timeparams import parse_time_ms
from app.errors import BadRequest
from app.policy import SpecError
from app.policy.predictive import planned_pods, quantile_path
from app.store import catalog
from app.store import scalers as scaler_store
from app.store.query import AGGREGATIONS, find_series, read_range
from app.store.scalers import StoredEvent, StoredScaler
from app.store.selector import Matcher, Selector, SelectorError, parse_selector

__all__ = ["FORECAST_BANDS", "forecast_metric_names", "forecast_series", "router"]

router = APIRouter(prefix="/grafana", tags=["grafana"])
M = TypeVar("M", bound=BaseModel)

MAX_POINTS = 11_000  # per series, whatever maxDataPoints asks
DEFAULT_POINTS = 1_000
MAX_SERIES = 1_000  # per target
MIN_STEP_MS = 1_000
SCALER_FIELDS = ("desired_replicas", "need", "current_replicas", "ready")
STATE_KINDS = ("action", "dry_run", "decision")
ANNOTATION_KINDS = ("action", "dry_run", "error", "spec")
COMBINE = ("none", "sum", "avg", "max", "min")
OPERATORS = ("=", "!=", "=~", "!~")
_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LEGEND = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")
_VARIABLE_CALL = re.compile(r"^\s*([a-z_]+)\(\s*(.*?)\s*\)\s*$")


# --- request bodies (Grafana sends much more than we read: extra keys are allowed) ---------


def _text(value: object) -> object:
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


Text = Annotated[str, BeforeValidator(_text)]


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class TimeRange(_Loose):
    from_: Annotated[str | float, Field(alias="from")]
    to: str | float


class Filter(_Loose):
    key: Text
    operator: Text = "="
    value: Text = ""


class Target(_Loose):
    refId: str = "A"
    target: str | None = None
    payload: dict[str, Any] | str | None = None
    type: str | None = None  # simple-json: "timeserie" or "table"
    hide: bool = False


class QueryIn(_Loose):
    range: TimeRange
    intervalMs: Annotated[float | None, Field(ge=0)] = None
    maxDataPoints: Annotated[int | None, Field(ge=1)] = None
    targets: list[Target] = Field(default_factory=list)
    filters: list[Filter] = Field(default_factory=list)
    adhocFilters: list[Filter] = Field(default_factory=list)
    requestId: str | None = None


class MetricsIn(_Loose):
    metric: str | None = None
    payload: dict[str, Any] | None = None


class PayloadOptionsIn(_Loose):
    metric: str
    name: str
    payload: dict[str, Any] | None = None


class VariableIn(_Loose):
    payload: dict[str, Any] | str | None = None
    target: str | None = None
    range: TimeRange | None = None


class TagValuesIn(_Loose):
    key: Text


class SearchIn(_Loose):
    target: str | None = None


class AnnotationSpec(_Loose):
    name: str | None = None
    query: str | None = None


class AnnotationsIn(_Loose):
    range: TimeRange
    annotation: AnnotationSpec = Field(default_factory=AnnotationSpec)


# --- helpers -----------------------------------------------------------------------------


async def _body(ctx: AppContext, request: Request, model: type[M]) -> M:
    raw = await read_body(request, ctx.settings.max_body_bytes)
    if raw.strip():
        try:
            document = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}", code="invalid_json") from exc
    else:
        document = {}
    if not isinstance(document, dict):
        raise BadRequest("the body must be a JSON object", code="invalid_body")
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise invalid_fields(exc) from exc


def _range_ms(r: TimeRange) -> tuple[int, int]:
    start, end = parse_time_ms(r.from_, "range.from"), parse_time_ms(r.to, "range.to")
    if end < start:
        raise BadRequest("range.to is before range.from", code="invalid_time")
    return start, end


def choose_step_ms(start_ms: int, end_ms: int, interval_ms: float | None, max_points: int) -> int:
    """The step for a range: at least Grafana's interval, coarse enough that at most
    `max_points` epoch-aligned buckets cover [start, end], rounded up to whole minutes or hours
    where it is that large (so rollups serve it)."""
    span = end_ms - start_ms
    step = max(MIN_STEP_MS, math.ceil(interval_ms or 0))
    if max_points >= 3:
        # aligned buckets covering [start, end]: at most span / step + 2
        step = max(step, math.ceil(span / (max_points - 2)) if span else 0)
    else:
        step = max(step, span + 1)
    for unit in (3_600_000, 60_000):
        if step >= unit:
            return math.ceil(step / unit) * unit
    return step


def _matchers(filters: Iterable[Filter]) -> tuple[Matcher, ...]:
    out: list[Matcher] = []
    for f in filters:
        if f.operator not in OPERATORS:
            raise BadRequest(
                f"ad-hoc filter operator {f.operator!r} is not supported; use one of "
                + ", ".join(OPERATORS),
                code="invalid_filter",
                details={"key": f.key, "operator": f.operator},
            )
        pattern = None
        if f.operator in ("=~", "!~"):
            try:
                pattern = re.compile(f.value)
            except re.error as exc:
                raise BadRequest(
                    f"ad-hoc filter {f.key}{f.operator}{f.value!r}: invalid regular expression",
                    code="invalid_filter",
                ) from exc
        out.append(Matcher(f.key, f.operator, f.value, pattern))
    return tuple(out)


def _selector(text: str, extra: tuple[Matcher, ...]) -> Selector:
    try:
        parsed = parse_selector(text)
    except SelectorError as exc:
        raise BadRequest(str(exc), code="invalid_selector", details={"target": text}) from exc
    return Selector(parsed.name, parsed.matchers + extra)


def _scaler_allowed(name: str, extra: tuple[Matcher, ...]) -> bool:
    return all(m.matches({"scaler": name}) for m in extra if m.label == "scaler")


def _series_name(name: str, labels: dict[str, str], legend: str | None) -> str:
    if legend:
        return _LEGEND.sub(lambda m: labels.get(m.group(1), ""), legend)
    if not labels:
        return name
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def _payload(target: Target) -> dict[str, Any]:
    if isinstance(target.payload, dict):
        return target.payload
    if isinstance(target.payload, str) and target.payload.strip():
        try:
            parsed = json.loads(target.payload)
        except json.JSONDecodeError as exc:
            raise BadRequest(
                f"target {target.refId}: payload is not a JSON object",
                code="invalid_payload",
            ) from exc
        if isinstance(parsed, dict):
            return parsed
        raise BadRequest(
            f"target {target.refId}: payload is not a JSON object", code="invalid_payload"
        )
    return {}


def _choice(payload: dict[str, Any], key: str, allowed: Sequence[str], default: str) -> str:
    value = payload.get(key) or default
    if value not in allowed:
        raise BadRequest(
            f"payload {key}={value!r} is not one of " + ", ".join(allowed),
            code="invalid_payload",
            details={"field": key, "value": value, "allowed": list(allowed)},
        )
    return str(value)


@dataclass(frozen=True, slots=True)
class Window:
    start_ms: int
    end_ms: int
    step_ms: int
    max_points: int
    now_ms: int

    def bucket_times(self) -> list[int]:
        """Epoch-aligned bucket starts covering [start, end], never past now, newest kept."""
        first = self.start_ms - self.start_ms % self.step_ms
        last = min(self.end_ms, self.now_ms)
        times = list(range(first, last + 1, self.step_ms)) if last >= first else []
        return times[-self.max_points :]


@dataclass(frozen=True, slots=True)
class TimeSeries:
    target: str
    datapoints: list[tuple[float, int]]

    def json(self) -> dict[str, Any]:
        """Grafana's time series shape; a non-finite value (which JSON cannot carry) is left
        out as a gap."""
        return {
            "target": self.target,
            "datapoints": [[v, t] for v, t in self.datapoints if math.isfinite(v)],
        }


# --- forecasts ---------------------------------------------------------------------------------

FORECAST_BANDS = ("mean", "p50", "p90", "p99", "replicas")
_BAND_QUANTILE = {"p50": 0.5, "p90": 0.9, "p99": 0.99}


def forecast_metric_names(scalers: Sequence[str]) -> list[str]:
    """The forecast series that can be queried: `forecast:<scaler>:<band>`."""
    return [f"forecast:{s}:{band}" for s in scalers for band in FORECAST_BANDS]


def _along(path: Sequence[float], start_s: float, step_s: float, t_s: float) -> float | None:
    """The path's value at t (piecewise-linear between its points, as the policy reads it);
    None outside the path."""
    if not path:
        return None
    x = (t_s - start_s) / step_s
    last = len(path) - 1
    if x < 0 or x > last:
        return None
    k = min(math.floor(x), last)
    if k == last:
        return float(path[last])
    frac = x - k
    return float(path[k] + (path[k + 1] - path[k]) * frac)


async def forecast_series(
    ctx: AppContext, scaler: str, band: str, window: Window
) -> list[TimeSeries]:
    """The latest fitted forecast of `scaler` as one series, `<scaler> forecast <band>`, on the
    window's steps (including the future: a forecast lies ahead of now). Bands: mean, p50,
    p90, p99 (only those the model produced; a missing quantile is not invented), and
    replicas (pods for the spec's quantile at planned utilisation, within the bounds). No
    forecast yet, a failed fit, or an unknown scaler: no series."""
    if band not in FORECAST_BANDS:
        raise BadRequest(
            f"unknown forecast band {band!r}; known: " + ", ".join(FORECAST_BANDS),
            code="invalid_target",
        )
    async with ctx.db.read() as conn:
        stored_scaler = await scaler_store.get_scaler(conn, scaler)
    if stored_scaler is None:
        return []
    stored = await ctx.forecasts.get(ctx.db, scaler)
    if stored is None or stored.forecast.failed is not None or not stored.forecast.mean:
        return []
    fc = stored.forecast
    spec = None
    if band == "mean":
        path: Sequence[float] = fc.mean
    elif band == "replicas":
        try:
            spec = ctx.specs.spec_of(stored_scaler)
        except SpecError:
            return []
        if spec.capacity is None:
            return []
        path, _ = quantile_path(fc, spec.forecast.quantile)
    else:
        found = fc.quantiles.get(_BAND_QUANTILE[band])
        if found is None:
            return []
        path = found
    first = window.start_ms - window.start_ms % window.step_ms
    times = list(range(first, window.end_ms + 1, window.step_ms))[-window.max_points :]
    points: list[tuple[float, int]] = []
    for t_ms in times:
        value = _along(path, fc.start, fc.step_s, t_ms / 1000)
        if value is None:
            continue
        if spec is not None:
            pods = planned_pods(spec, value)
            if pods is None:
                continue
            value = float(min(spec.max_replicas, max(spec.min_replicas, math.ceil(pods - 1e-9))))
        points.append((value, t_ms))
    return [TimeSeries(f"{scaler} forecast {band}", points)]


# --- time series ---------------------------------------------------------------------------


async def _metric_series(
    ctx: AppContext,
    target: Target,
    text: str,
    extra: tuple[Matcher, ...],
    window: Window,
) -> list[TimeSeries]:
    payload = _payload(target)
    agg = _choice(payload, "agg", AGGREGATIONS, "avg")
    combine = _choice(payload, "combine", COMBINE, "none")
    legend = payload.get("legend")
    legend = str(legend) if legend else None
    selector = _selector(text, extra)
    step_us = window.step_ms * 1000
    async with ctx.db.read() as conn:
        found = await find_series(conn, selector, limit=MAX_SERIES)
        found.sort(key=lambda f: (f.name, sorted(f.labels.items())))
        result = await read_range(
            conn,
            [s.id for s in found],
            start_us=window.start_ms * 1000,
            end_us=window.end_ms * 1000 + 1,
            step_us=step_us,
        )
    first_kept = window.bucket_times()[:1]
    floor_ms = first_kept[0] if first_kept else window.end_ms + 1

    def points(s_id: int) -> list[tuple[float, int]]:
        buckets = result.buckets.get(s_id, {})
        out = []
        for k in sorted(buckets):
            t_ms = (result.start_us + k * step_us) // 1000
            if t_ms >= floor_ms:
                out.append((buckets[k].value(agg), t_ms))
        return out[-window.max_points :]

    if combine == "none":
        return [TimeSeries(_series_name(s.name, s.labels, legend), points(s.id)) for s in found]
    by_time: dict[int, list[float]] = {}
    for s in found:
        for value, t_ms in points(s.id):
            by_time.setdefault(t_ms, []).append(value)
    combined: list[tuple[float, int]] = []
    for t_ms in sorted(by_time):
        values = by_time[t_ms]
        if combine == "sum":
            v = math.fsum(values)
        elif combine == "avg":
            v = math.fsum(values) / len(values)
        elif combine == "max":
            v = max(values)
        else:
            v = min(values)
        combined.append((v, t_ms))
    name = legend or f"{combine}({text})"
    return [TimeSeries(name, combined)] if found else []


def _event_value(event: StoredEvent, field: str) -> float | None:
    if field == "desired_replicas":
        value = event.replicas if event.replicas is not None else event.payload.get("replicas")
    elif field == "current_replicas":
        value = event.payload.get("from")
    else:
        value = event.payload.get(field)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _decision_value(decision: dict[str, Any], field: str) -> float | None:
    key = "replicas" if field == "desired_replicas" else field
    value = decision.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def step_function(
    changes: Sequence[tuple[int, float]], times: Sequence[int], step_ms: int
) -> list[tuple[float, int]]:
    """Sample a step function known at `changes` [(ms, value)] on bucket starts: each bucket
    shows the last value set before its end. Buckets before the first change are empty."""
    ordered = sorted(changes)
    out: list[tuple[float, int]] = []
    i, current = 0, None
    for t in times:
        while i < len(ordered) and ordered[i][0] < t + step_ms:
            current = ordered[i][1]
            i += 1
        if current is not None:
            out.append((current, t))
    return out


async def _scaler_series(
    ctx: AppContext, scaler: str, field: str, extra: tuple[Matcher, ...], window: Window
) -> list[TimeSeries]:
    if not _scaler_allowed(scaler, extra):
        return []
    start_us, end_us = window.start_ms * 1000, window.end_ms * 1000
    async with ctx.db.read() as conn:
        stored = await scaler_store.get_scaler(conn, scaler)
        if stored is None:
            return []
        before = await catalog.last_event_before(conn, scaler, start_us, STATE_KINDS)
        events = await catalog.events_between(
            conn, start_us=start_us, end_us=end_us, scalers=[scaler], kinds=STATE_KINDS
        )
    changes: list[tuple[int, float]] = []
    for e in ([before] if before else []) + events:
        value = _event_value(e, field)
        if value is not None:
            changes.append((e.ts_us // 1000, value))
    if stored.last_decision is not None and stored.last_decision_us is not None:
        value = _decision_value(stored.last_decision, field)
        if value is not None and stored.last_decision_us <= end_us:
            changes.append((stored.last_decision_us // 1000, value))
    points = step_function(changes, window.bucket_times(), window.step_ms)
    return [TimeSeries(f"{scaler} {field}", points)]


# --- tables ------------------------------------------------------------------------------


def _table(columns: Sequence[tuple[str, str]], rows: list[list[Any]]) -> dict[str, Any]:
    return {
        "type": "table",
        "columns": [{"text": text, "type": kind} for text, kind in columns],
        "rows": rows,
    }


def _series_table(series: Sequence[TimeSeries]) -> dict[str, Any]:
    rows: list[list[Any]] = [[t, s.target, v] for s in series for v, t in s.datapoints]
    rows.sort(key=lambda r: (r[0], r[1]))
    return _table([("Time", "time"), ("Series", "string"), ("Value", "number")], rows)


async def _decision_table(ctx: AppContext, scaler: str) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        stored = await scaler_store.get_scaler(conn, scaler)
    rows: list[list[Any]] = []
    if stored is not None and stored.last_decision is not None:
        t_ms = (stored.last_decision_us or 0) // 1000
        for step, reason in enumerate(stored.last_decision.get("reasons", []), start=1):
            rows.append(
                [
                    t_ms,
                    step,
                    str(reason.get("code", "")),
                    str(reason.get("message", "")),
                    json.dumps(reason.get("values", {}), sort_keys=True),
                ]
            )
    return _table(
        [
            ("Time", "time"),
            ("Step", "number"),
            ("Code", "string"),
            ("Reason", "string"),
            ("Values", "string"),
        ],
        rows,
    )


# --- annotations -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Annotation:
    time_ms: int
    title: str
    text: str
    tags: list[str]


def _annotation(event: StoredEvent) -> Annotation:
    tags = [event.scaler, event.kind]
    codes = {str(r.get("code", "")) for r in event.payload.get("reasons", []) or []}
    if codes & {"emergency.start", "emergency.active", "bounds.burst_floor"}:
        tags.append("burst")
    if "schedule.active" in codes:
        tags.append("schedule")
    if "predictive.floor" in codes:
        tags.append("forecast")
    title = f"{event.scaler}: {event.kind}"
    if event.replicas is not None:
        title += f" → {event.replicas}"
    return Annotation(event.ts_us // 1000, title, event.message, tags)


def _annotation_filter(query: str | None) -> tuple[list[str] | None, list[str]]:
    """An annotation query: scaler names and/or `kind:<k>` words, space or comma separated;
    empty or `*` means every scaler and the default kinds."""
    scalers: list[str] = []
    kinds: list[str] = []
    for word in re.split(r"[\s,]+", (query or "").strip()):
        if not word or word == "*":
            continue
        if word.startswith("kind:"):
            kinds.append(word.removeprefix("kind:"))
        else:
            scalers.append(word)
    return (scalers or None), (kinds or list(ANNOTATION_KINDS))


async def _annotations(
    ctx: AppContext,
    query: str | None,
    start_ms: int,
    end_ms: int,
    extra: tuple[Matcher, ...],
) -> list[Annotation]:
    scalers, kinds = _annotation_filter(query)
    async with ctx.db.read() as conn:
        events = await catalog.events_between(
            conn, start_us=start_ms * 1000, end_us=end_ms * 1000, scalers=scalers, kinds=kinds
        )
    return [_annotation(e) for e in events if _scaler_allowed(e.scaler, extra)]


def _annotation_table(annotations: Sequence[Annotation]) -> dict[str, Any]:
    return _table(
        [
            ("time", "time"),
            ("timeEnd", "time"),
            ("title", "string"),
            ("text", "string"),
            ("tags", "string"),
        ],
        [[a.time_ms, a.time_ms, a.title, a.text, ",".join(a.tags)] for a in annotations],
    )


# --- routes --------------------------------------------------------------------------------


@router.get("", operation_id="grafana_health")
async def health(_auth: RequireRead) -> dict[str, str]:
    """`Save & test` in Grafana: 200 when the datasource is reachable with this token."""
    return {"status": "ok", "message": "Ciuic JSON datasource"}


@router.get("/", include_in_schema=False)
async def health_slash(_auth: RequireRead) -> dict[str, str]:
    return await health(_auth)


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
        "options": [{"value": "time_series"}, {"value": "table"}],
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
    scaler_targets = [f"scaler:{s}:{f}" for s in scalers for f in (*SCALER_FIELDS, "decision")]
    return names, scaler_targets, forecast_metric_names(scalers)


@router.post("/metrics", operation_id="grafana_metrics", responses=errors(400, 413, 422))
async def metrics(ctx: Ctx, request: Request, _auth: RequireRead) -> list[dict[str, Any]]:
    """Every queryable target. Stored metrics take a selector payload; scaler series none."""
    await _body(ctx, request, MetricsIn)
    names, scaler_targets, forecasts = await _all_targets(ctx)
    out: list[dict[str, Any]] = [
        {"label": n, "value": n, "payloads": _SELECTOR_PAYLOADS} for n in names
    ]
    out += [{"label": t, "value": t, "payloads": []} for t in scaler_targets + forecasts]
    return out


@router.post(
    "/metric-payload-options",
    operation_id="grafana_metric_payload_options",
    responses=errors(400, 413, 422),
)
async def metric_payload_options(
    ctx: Ctx, request: Request, _auth: RequireRead
) -> list[dict[str, str]]:
    body = await _body(ctx, request, PayloadOptionsIn)
    return _STATIC_OPTIONS.get(body.name, [])


@router.post("/query", operation_id="grafana_query", responses=errors(400, 413, 422))
async def query(ctx: Ctx, request: Request, _auth: RequireRead) -> list[dict[str, Any]]:
    body = await _body(ctx, request, QueryIn)
    start_ms, end_ms = _range_ms(body.range)
    max_points = min(body.maxDataPoints or DEFAULT_POINTS, MAX_POINTS)
    step_ms = choose_step_ms(start_ms, end_ms, body.intervalMs, max_points)
    window = Window(start_ms, end_ms, step_ms, max_points, round(ctx.clock.now() * 1000))
    extra = _matchers([*body.filters, *body.adhocFilters])
    annotations_request = (body.requestId or "").startswith("AQ")
    out: list[dict[str, Any]] = []
    for target in body.targets:
        if target.hide:
            continue
        text = (target.target or "").strip()
        if annotations_request or target.refId == "Anno":
            found = await _annotations(ctx, text, start_ms, end_ms, extra)
            out.append(_annotation_table(found))
            continue
        if not text:
            continue
        payload = _payload(target)
        as_table = target.type == "table" or payload.get("format") == "table"
        series: list[TimeSeries]
        parts = text.split(":")
        if text.startswith("scaler:") and len(parts) == 3:
            _, scaler, field = parts
            if field == "decision":
                out.append(await _decision_table(ctx, scaler))
                continue
            if field not in SCALER_FIELDS:
                raise BadRequest(
                    f"unknown scaler series {field!r}; known: "
                    + ", ".join((*SCALER_FIELDS, "decision")),
                    code="invalid_target",
                    details={"target": text},
                )
            series = await _scaler_series(ctx, scaler, field, extra, window)
        elif text.startswith("forecast:") and len(parts) == 3:
            _, scaler, band = parts
            series = (
                await forecast_series(ctx, scaler, band, window)
                if _scaler_allowed(scaler, extra)
                else []
            )
        else:
            series = await _metric_series(ctx, target, text, extra, window)
        legend = payload.get("legend")
        if legend and parts[0] in ("scaler", "forecast") and len(series) == 1:
            series = [TimeSeries(str(legend), series[0].datapoints)]
        if as_table:
            out.append(_series_table(series))
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


@router.post("/variable", operation_id="grafana_variable", responses=errors(400, 413, 422))
async def variable(ctx: Ctx, request: Request, _auth: RequireRead) -> list[dict[str, str]]:
    body = await _body(ctx, request, VariableIn)
    values = await _variable_values(ctx, _variable_query(body))
    return [{"__text": v, "__value": v} for v in values]


@router.post("/tag-keys", operation_id="grafana_tag_keys", responses=errors(400, 413, 422))
async def tag_keys(ctx: Ctx, request: Request, _auth: RequireRead) -> list[dict[str, str]]:
    await _body(ctx, request, _Loose)
    async with ctx.db.read() as conn:
        keys = await catalog.label_keys(conn)
    keys = sorted({*keys, "scaler"})
    return [{"type": "string", "text": k} for k in keys]


@router.post("/tag-values", operation_id="grafana_tag_values", responses=errors(400, 413, 422))
async def tag_values(ctx: Ctx, request: Request, _auth: RequireRead) -> list[dict[str, str]]:
    body = await _body(ctx, request, TagValuesIn)
    if body.key == "scaler":
        values = await _scaler_names(ctx)
    else:
        async with ctx.db.read() as conn:
            values = await catalog.label_values(conn, body.key)
    return [{"text": v} for v in values]


@router.post("/search", operation_id="grafana_search", responses=errors(400, 413, 422))
async def search(ctx: Ctx, request: Request, _auth: RequireRead) -> list[str]:
    """simple-json: the targets whose name contains the search text (all when empty)."""
    body = await _body(ctx, request, SearchIn)
    text = (body.target or "").strip()
    if _VARIABLE_CALL.match(text):
        return await _variable_values(ctx, text)
    names, scaler_targets, forecasts = await _all_targets(ctx)
    everything = names + scaler_targets + forecasts
    return [t for t in everything if text in t] if text else everything


@router.post("/annotations", operation_id="grafana_annotations", responses=errors(400, 413, 422))
async def simple_annotations(
    ctx: Ctx, request: Request, _auth: RequireRead
) -> list[dict[str, Any]]:
    """simple-json annotations: the request's annotation object is echoed in each one."""
    body = await _body(ctx, request, AnnotationsIn)
    start_ms, end_ms = _range_ms(body.range)
    found = await _annotations(ctx, body.annotation.query, start_ms, end_ms, ())
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
