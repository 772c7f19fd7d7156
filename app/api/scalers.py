"""Scalers: create, replace, read (JSON or YAML), delete, validate; decisions and events.

A spec arrives as JSON or, with `Content-Type: application/yaml`, as YAML (the product's file
verbatim); a body of any other type (text, a form as `curl -d` sends, XML) is a 415. Every
change bumps the generation, which is the ETag (a PUT of the spec as it is changes nothing:
200, the same generation); `If-Match` makes a write conditional (412 when stale).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, Field

from app.api.auth import RequireAdmin, RequireRead
from app.api.body import JSON_TYPE, body_type, read_body, yaml_hint
from app.api.context import AppContext, Ctx
from app.api.responses import MAX_ID, errors
from app.api.timeparams import optional_time_us, parse_duration
from app.errors import BadRequest, UnprocessableEntity
from app.policy import ScalerSpec, parse_spec
from app.services import decisions, objectives, scalers
from app.services.scalers import etag as etag_of
from app.services.sources import SourceNote
from app.store import scalers as store

__all__ = ["router"]

router = APIRouter(prefix="/v1/scalers", tags=["scalers"])

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
# What a spec is read as; a body without a Content-Type is JSON; any other type is a 415.
SPEC_TYPES = (JSON_TYPE, *YAML_TYPES)
_FORM_HINT = (
    "add -H 'Content-Type: application/json', or for a YAML file "
    "-H 'Content-Type: application/yaml' --data-binary @spec.yaml"
)
# The example scaler (examples/ciuic-config.yaml; a test keeps the two equal): what Swagger's
# "Try it out" starts from, rather than `{}`.
SPEC_EXAMPLE: dict[str, Any] = {
    "target": "deepseek-service",
    "scaler": "predictive",
    "metrics": [
        {
            "name": "gpu_utilization",
            "weight": 0.6,
            "target": "85%",
            "selector": {"job": "deepseek-monitor"},
        },
        {
            "name": "request_queue",
            "weight": 0.4,
            "target": "<5",
            "selector": {"job": "deepseek-monitor"},
        },
    ],
    "algorithm": {"name": "prophet", "params": {"seasonality": "daily", "growth": "logistic"}},
    "preheat": {"enabled": True, "min_ready": 1, "strategy": "eager"},
    "schedule": [
        {"time": "0 9 * * *", "min_replicas": 4},
        {"time": "0 23 * * *", "min_replicas": 2},
    ],
    "emergency": {
        "enabled": True,
        "burst_multiplier": 3.0,
        "triggers": [{"metric": "request_queue", "threshold": 50, "duration": "30s"}],
    },
}


def _spec_schema() -> dict[str, Any]:
    """A reference to the spec's JSON Schema, which `install_openapi` moves (with the models
    it refers to) into the components: one copy for the three operations that take a spec."""
    schema = ScalerSpec.model_json_schema()
    defs = schema.pop("$defs", {})
    return {"$ref": "#/$defs/ScalerSpec", "$defs": {**defs, "ScalerSpec": schema}}


_SPEC_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A scaler spec, as JSON or YAML (see the README's spec reference). "
        "Omitted keys take their defaults; `name` defaults to the target's name.",
        "content": {
            "application/json": {
                "schema": _spec_schema(),
                "example": SPEC_EXAMPLE,
            },
            "application/yaml": {
                "schema": {"type": "string"},
                "example": yaml.safe_dump(SPEC_EXAMPLE, sort_keys=False),
            },
        },
    }
}


class ScalerStatus(BaseModel):
    generation: int
    created_at: datetime
    updated_at: datetime
    paused: bool
    last_decision: dict[str, Any] | None = None
    last_decision_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None


class ScalerOut(BaseModel):
    name: str
    spec: dict[str, Any] = Field(
        description="The spec as written (the shape of examples/ciuic-config.yaml)"
    )
    status: ScalerStatus

    @classmethod
    def of(cls, s: store.StoredScaler) -> ScalerOut:
        created, updated = _time(s.created_us), _time(s.updated_us)
        assert created is not None and updated is not None
        return cls(
            name=s.name,
            spec=s.document,
            status=ScalerStatus(
                generation=s.generation,
                created_at=created,
                updated_at=updated,
                paused=s.paused,
                last_decision=s.last_decision,
                last_decision_at=_time(s.last_decision_us),
                last_error=s.last_error,
                last_error_at=_time(s.last_error_us),
            ),
        )


class ScalerList(BaseModel):
    scalers: list[ScalerOut]


class ValidationOut(BaseModel):
    valid: bool
    name: str
    spec: dict[str, Any] = Field(description="The spec with every default filled in")


class DecisionOut(BaseModel):
    scaler: str
    time: datetime
    replicas: int
    need: float
    plan: dict[str, Any]
    reasons: list[dict[str, Any]]
    valid: bool
    observation: dict[str, Any]
    cluster: dict[str, Any]


class ObjectivePoint(BaseModel):
    time: datetime
    p95_s: float = Field(description="the worst pod's worst pushed p95 in this step")
    met: bool


class ObjectiveAttainment(BaseModel):
    objective: str = Field(description="ttft_p95, queue_wait_p95 or itl_p95")
    target_s: float
    met_share: float | None = Field(
        description="share of the steps with data that met the objective (null: no data)"
    )
    steps: int
    worst_p95_s: float | None
    points: list[ObjectivePoint]


class ObjectiveOut(BaseModel):
    scaler: str
    objective: dict[str, Any] | None = Field(description="the spec's objective, as written")
    since: datetime
    until: datetime
    step_s: float
    attainment: list[ObjectiveAttainment]


class EventOut(BaseModel):
    id: int
    time: datetime
    kind: str
    replicas: int | None
    message: str
    payload: dict[str, Any]


class EventPage(BaseModel):
    events: list[EventOut]
    next_cursor: int | None = Field(None, description="Pass as `cursor` for the next page")


def _time(us: int | None) -> datetime | None:
    return None if us is None else datetime.fromtimestamp(us / 1e6, tz=UTC)


def _wants_yaml(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return any(t in accept for t in YAML_TYPES)


def _render(
    request: Request, payload: BaseModel, *, status: int = 200, etag: int | None = None
) -> Response:
    headers = {"ETag": etag_of(etag)} if etag is not None else {}
    if _wants_yaml(request):
        text = yaml.safe_dump(payload.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
        return Response(text, status_code=status, media_type="application/yaml", headers=headers)
    return Response(
        payload.model_dump_json(),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


async def _document(ctx: AppContext, request: Request) -> dict[str, Any]:
    content_type = body_type(request, SPEC_TYPES, form_hint=_FORM_HINT)
    body = await read_body(request, ctx.settings.max_body_bytes)
    try:
        if content_type in YAML_TYPES:
            document = yaml.safe_load(body.decode("utf-8"))
        else:
            document = json.loads(body)
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        if content_type in YAML_TYPES:
            message = f"the body is not valid YAML: {exc}"
        else:
            message = f"the body is not valid JSON: {exc}{yaml_hint(body)}"
        raise BadRequest(message, code="invalid_body") from exc
    if not isinstance(document, dict):
        raise UnprocessableEntity(
            "a scaler spec is a mapping of keys to values",
            details=[
                {
                    "field": "",
                    "value": type(document).__name__,
                    "rule": "type",
                    "message": "expected a mapping",
                }
            ],
        )
    return document


@router.post(
    "",
    status_code=201,
    operation_id="create_scaler",
    response_model=ScalerOut,
    openapi_extra=_SPEC_BODY,
    responses={
        **errors(400, 413, 415),
        409: {"description": "A scaler of that name exists"},
        422: {"description": "Invalid spec"},
    },
)
async def create_scaler(ctx: Ctx, request: Request, auth: RequireAdmin) -> Response:
    spec = parse_spec(await _document(ctx, request))
    saved, _ = await scalers.save(
        ctx, spec.scaler_name, spec, create_only=True, if_match=None, actor=auth
    )
    response = _render(request, ScalerOut.of(saved), status=201, etag=saved.generation)
    response.headers["Location"] = f"/v1/scalers/{saved.name}"
    return response


@router.post(
    "/validate",
    operation_id="validate_scaler",
    response_model=ValidationOut,
    openapi_extra=_SPEC_BODY,
    responses={**errors(400, 413, 415), 422: {"description": "Invalid spec"}},
)
async def validate_scaler(ctx: Ctx, request: Request, _auth: RequireRead) -> Response:
    spec = parse_spec(await _document(ctx, request))
    out = ValidationOut(valid=True, name=spec.scaler_name, spec=spec.to_document(defaults=True))
    return _render(request, out)


@router.put(
    "/{name}",
    operation_id="put_scaler",
    response_model=ScalerOut,
    openapi_extra=_SPEC_BODY,
    responses={
        **errors(400, 413, 415),
        201: {"description": "Created"},
        412: {"description": "If-Match did not match"},
        422: {"description": "Invalid spec"},
    },
)
async def put_scaler(
    ctx: Ctx,
    request: Request,
    name: str,
    auth: RequireAdmin,
    if_match: Annotated[str | None, Header()] = None,
) -> Response:
    document = await _document(ctx, request)
    spec = parse_spec({**document, "name": document.get("name", name)})
    if spec.scaler_name != name:
        raise UnprocessableEntity(
            f"the spec's name {spec.scaler_name!r} differs from the path's {name!r}",
            code="invalid_spec",
            details=[
                {
                    "field": "name",
                    "value": spec.scaler_name,
                    "rule": "matches_path",
                    "message": f"must be {name!r} (the name in the path)",
                }
            ],
        )
    saved, created = await scalers.save(
        ctx, name, spec, create_only=False, if_match=if_match, actor=auth
    )
    return _render(
        request, ScalerOut.of(saved), status=201 if created else 200, etag=saved.generation
    )


@router.get("", operation_id="list_scalers", response_model=list[ScalerOut])
async def list_scalers(ctx: Ctx, request: Request, _auth: RequireRead) -> Response:
    async with ctx.db.read() as conn:
        found = await store.list_scalers(conn)

    if _wants_yaml(request):
        return _render(request, ScalerList(scalers=[ScalerOut.of(s) for s in found]))
    body = json.dumps([ScalerOut.of(s).model_dump(mode="json") for s in found])
    return Response(body, media_type="application/json")


@router.get("/{name}", operation_id="get_scaler", response_model=ScalerOut, responses=errors(404))
async def get_scaler(ctx: Ctx, request: Request, name: str, _auth: RequireRead) -> Response:
    found = await scalers.get(ctx, name)
    return _render(request, ScalerOut.of(found), etag=found.generation)


@router.delete(
    "/{name}",
    status_code=204,
    operation_id="delete_scaler",
    responses={
        **errors(404),
        409: {"description": "A rollout of this scaler is active: cancel it first"},
        412: {"description": "If-Match did not match"},
    },
)
async def delete_scaler(
    ctx: Ctx,
    name: str,
    auth: RequireAdmin,
    if_match: Annotated[str | None, Header()] = None,
) -> Response:
    await scalers.delete(ctx, name, if_match=if_match, actor=auth)
    return Response(status_code=204)


@router.post(
    "/{name}/pause", operation_id="pause_scaler", response_model=ScalerOut, responses=errors(404)
)
async def pause_scaler(ctx: Ctx, name: str, auth: RequireAdmin) -> ScalerOut:
    """Stop acting on the target (decisions are still computed on request)."""
    return ScalerOut.of(await scalers.set_paused(ctx, name, True, actor=auth))


@router.post(
    "/{name}/resume", operation_id="resume_scaler", response_model=ScalerOut, responses=errors(404)
)
async def resume_scaler(ctx: Ctx, name: str, auth: RequireAdmin) -> ScalerOut:
    return ScalerOut.of(await scalers.set_paused(ctx, name, False, actor=auth))


@router.get(
    "/{name}/decision",
    operation_id="get_scaler_decision",
    response_model=DecisionOut,
    responses={**errors(404), 409: {"description": "The target cannot be read from the cluster"}},
)
async def get_decision(ctx: Ctx, name: str, _auth: RequireRead) -> DecisionOut:
    """What the policy decides now from the stored metrics; nothing is changed."""
    found = await scalers.get(ctx, name)
    decided = await decisions.preview(ctx, found, ctx.specs.spec_of(found))
    metrics, state = decided.metrics, decided.cluster
    return DecisionOut(
        scaler=name,
        time=datetime.fromtimestamp(decided.now, tz=UTC),
        observation={
            "metrics": {
                k: {
                    "value": r.value,
                    "pods_reporting": r.pods_reporting,
                    "age_s": r.age_s,
                    **_source_of(decided.sources.get(k)),
                }
                for k, r in metrics.readings.items()
            },
            # what emergency triggers with their own aggregation read, as "<metric>.<how>"
            "trigger_readings": {
                f"{metric}.{how}": {
                    "value": r.value,
                    "pods_reporting": r.pods_reporting,
                    "age_s": r.age_s,
                }
                for (metric, how), r in metrics.by_aggregation.items()
            },
            "load_rate": metrics.load_rate,
        },
        cluster={
            "source": ctx.cluster.name,
            "replicas": state.replicas,
            "ready": state.ready,
            "starting": state.starting,
            "cold_start_s": state.learned_cold_start_s,
        },
        **store.decision_to_json(decided.decision),
    )


MAX_OBJECTIVE_STEPS = 10_000


@router.get(
    "/{name}/objective",
    operation_id="get_scaler_objective",
    response_model=ObjectiveOut,
    responses=errors(400, 404),
)
async def get_objective(
    ctx: Ctx,
    name: str,
    _auth: RequireRead,
    since: Annotated[
        str | None, Query(description="RFC 3339 or unix seconds (default: 1h ago)")
    ] = None,
    until: Annotated[
        str | None, Query(description="RFC 3339 or unix seconds (default: now)")
    ] = None,
    step: Annotated[str, Query(description="a duration such as 1m (default)")] = "1m",
) -> ObjectiveOut:
    """Whether the scaler's latency objective was met, step by step, from the p95s the pods
    push (`ttft_p95`, `queue_wait_p95`, `itl_p95`): a step is met when its worst pod's worst
    p95 is within the objective; `met_share` is the share of steps with data that met it."""
    found = await scalers.get(ctx, name)
    spec = ctx.specs.spec_of(found)
    until_us = optional_time_us(until, "until")
    since_us = optional_time_us(since, "since")
    end = until_us / 1e6 if until_us is not None else ctx.clock.now()
    start = since_us / 1e6 if since_us is not None else end - 3600.0
    step_s = parse_duration(step, "step")
    if start >= end:
        raise BadRequest(
            "since must be before until",
            code="invalid_parameter",
            details={"parameter": "since", "since": start, "until": end},
        )
    if (end - start) / step_s > MAX_OBJECTIVE_STEPS:
        raise BadRequest(
            f"at most {MAX_OBJECTIVE_STEPS} steps: widen step or narrow the window",
            code="invalid_parameter",
            details={"parameter": "step", "steps": (end - start) / step_s},
        )
    found_att = await objectives.attainment(ctx.db, spec, start_s=start, end_s=end, step_s=step_s)
    doc = spec.to_document(defaults=True).get("objective")
    return ObjectiveOut(
        scaler=name,
        objective=doc,
        since=datetime.fromtimestamp(start, tz=UTC),
        until=datetime.fromtimestamp(end, tz=UTC),
        step_s=step_s,
        attainment=[
            ObjectiveAttainment(
                objective=a.objective,
                target_s=a.target_s,
                met_share=a.met_share,
                steps=a.steps,
                worst_p95_s=a.worst_p95_s,
                points=[
                    ObjectivePoint(time=datetime.fromtimestamp(t, tz=UTC), p95_s=p, met=m)
                    for t, p, m in a.points
                ],
            )
            for a in found_att
        ],
    )


def _source_of(note: SourceNote | None) -> dict[str, Any]:
    """How a metric read from Prometheus was read: its query, the series, any error."""
    if note is None:
        return {}
    return {"source": {"prometheus": note.query, "series": note.series, "error": note.error}}


@router.get(
    "/{name}/events",
    operation_id="list_scaler_events",
    response_model=EventPage,
    responses=errors(400, 404),
)
async def list_events(
    ctx: Ctx,
    name: str,
    _auth: RequireRead,
    since: Annotated[str | None, Query(description="RFC 3339 or unix seconds")] = None,
    until: Annotated[str | None, Query(description="RFC 3339 or unix seconds")] = None,
    kind: Annotated[
        list[store.EventKind] | None,
        Query(description="Only events of these kinds (repeat the parameter for several)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> EventPage:
    await scalers.get(ctx, name)
    since_us = optional_time_us(since, "since")
    until_us = optional_time_us(until, "until")
    async with ctx.db.read() as conn:
        events = await store.list_events(
            conn,
            name,
            since_us=since_us,
            until_us=until_us,
            kinds=None if kind is None else list(kind),
            before_id=cursor,
            limit=limit + 1,
        )
    more = len(events) > limit
    events = events[:limit]
    out = []
    for e in events:
        when = _time(e.ts_us)
        assert when is not None
        out.append(
            EventOut(
                id=e.id,
                time=when,
                kind=e.kind,
                replicas=e.replicas,
                message=e.message,
                payload=e.payload,
            )
        )
    return EventPage(events=out, next_cursor=events[-1].id if more and events else None)
