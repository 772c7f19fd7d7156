"""Reading series: GET /v1/series and GET /v1/query_range."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from app.api.auth import RequireRead
from app.api.context import Ctx
from app.api.responses import errors
from app.api.timeparams import parse_duration, parse_time
from app.errors import BadRequest
from app.store.query import find_series, read_range
from app.store.selector import Selector, SelectorError, parse_selector

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["query"])

MAX_POINTS = 11_000  # per series, as Prometheus


class SeriesOut(BaseModel):
    metric: str
    labels: dict[str, str]


class SeriesList(BaseModel):
    series: list[SeriesOut]


class RangeSeries(BaseModel):
    metric: str
    labels: dict[str, str]
    points: list[tuple[float, float]]


class RangeOut(BaseModel):
    source: str
    step: float
    agg: str
    series: list[RangeSeries]


def _selector(text: str) -> Selector:
    try:
        return parse_selector(text)
    except SelectorError as exc:
        raise BadRequest(str(exc), code="invalid_selector", details={"selector": text}) from exc


@router.get("/series", operation_id="list_series", response_model=SeriesList, responses=errors(400))
async def list_series(
    ctx: Ctx,
    _auth: RequireRead,
    match: Annotated[str, Query(description='A selector, e.g. gpu_utilization{job="x"}')],
) -> SeriesList:
    selector = _selector(match)
    async with ctx.db.read() as conn:
        found = await find_series(conn, selector)
    return SeriesList(series=[SeriesOut(metric=s.name, labels=s.labels) for s in found])


@router.get(
    "/query_range", operation_id="query_range", response_model=RangeOut, responses=errors(400)
)
async def query_range(
    ctx: Ctx,
    _auth: RequireRead,
    query: Annotated[str, Query(description="A series selector")],
    start: Annotated[str, Query(description="RFC 3339 or unix seconds")],
    end: Annotated[str, Query(description="RFC 3339 or unix seconds")],
    step: Annotated[str, Query(description="Seconds or a duration such as 5m")] = "60",
    agg: Annotated[Literal["avg", "sum", "min", "max", "count"], Query()] = "avg",
) -> RangeOut:
    selector = _selector(query)
    t0, t1 = parse_time(start, "start"), parse_time(end, "end")
    step_s = parse_duration(step, "step")
    if t1 < t0:
        raise BadRequest("end is before start", code="invalid_time")
    if step_s < 0.001:
        raise BadRequest("step must be at least 1 ms", code="invalid_parameter")
    if (t1 - t0) / step_s > MAX_POINTS:
        raise BadRequest(
            f"the range holds more than {MAX_POINTS} steps; use a larger step",
            code="too_many_points",
            details={"limit": MAX_POINTS},
        )
    step_us = round(step_s * 1e6)
    async with ctx.db.read() as conn:
        found = await find_series(conn, selector)
        result = await read_range(
            conn,
            [s.id for s in found],
            start_us=round(t0 * 1e6),
            end_us=round(t1 * 1e6) + 1,
            step_us=step_us,
        )
    out: list[RangeSeries] = []
    for s in found:
        buckets = result.buckets.get(s.id, {})
        points = [
            ((result.start_us + k * step_us) / 1e6, buckets[k].value(agg)) for k in sorted(buckets)
        ]
        out.append(RangeSeries(metric=s.name, labels=s.labels, points=points))
    return RangeOut(source=result.source, step=step_s, agg=agg, series=out)
