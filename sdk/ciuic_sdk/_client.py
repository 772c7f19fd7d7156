"""Sync and async clients for the Ciuic API.

Each operation is described once (a `Call`: operation id, method, path, parameters and how to
read the answer) and run by either client, so both behave alike. `OPERATIONS` names every
operation the SDK uses with its method and path; a test checks them against
`openapi/openapi.json`, so the SDK cannot drift from the service.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Generic, Literal, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter

from ciuic_sdk._errors import error_from_response, unreachable
from ciuic_sdk._models import (
    AuditEntry,
    AuditPage,
    Decision,
    Event,
    EventPage,
    Forecast,
    ForecastAccuracy,
    Objective,
    Prediction,
    RangeResult,
    Rollout,
    Sample,
    Scaler,
    Series,
    Simulation,
    Token,
    TokenCreated,
    Validation,
)

__all__ = ["OPERATIONS", "AsyncClient", "Client", "SpecInput", "TimeInput"]

T = TypeVar("T")
SpecInput = str | bytes | Mapping[str, Any] | BaseModel
TimeInput = datetime | float | int | str
Scope = Literal["push", "read", "admin"]
Agg = Literal["avg", "sum", "min", "max", "count"]

VERSION = "0.1.0"
DEFAULT_URL = "http://127.0.0.1:8080"

# operation id -> (method, path template): what the SDK calls, checked against the OpenAPI.
OPERATIONS: dict[str, tuple[str, str]] = {
    "healthz": ("GET", "/healthz"),
    "readyz": ("GET", "/readyz"),
    "ingest_samples": ("POST", "/v1/samples"),
    "push_replace_group": ("PUT", "/metrics/{grouping}"),
    "push_add_to_group": ("POST", "/metrics/{grouping}"),
    "push_delete_group": ("DELETE", "/metrics/{grouping}"),
    "list_scalers": ("GET", "/v1/scalers"),
    "create_scaler": ("POST", "/v1/scalers"),
    "validate_scaler": ("POST", "/v1/scalers/validate"),
    "get_scaler": ("GET", "/v1/scalers/{name}"),
    "put_scaler": ("PUT", "/v1/scalers/{name}"),
    "delete_scaler": ("DELETE", "/v1/scalers/{name}"),
    "pause_scaler": ("POST", "/v1/scalers/{name}/pause"),
    "resume_scaler": ("POST", "/v1/scalers/{name}/resume"),
    "get_scaler_decision": ("GET", "/v1/scalers/{name}/decision"),
    "list_scaler_events": ("GET", "/v1/scalers/{name}/events"),
    "get_scaler_prediction": ("GET", "/v1/scalers/{name}/prediction"),
    "get_forecast_accuracy": ("GET", "/v1/scalers/{name}/forecast-accuracy"),
    "get_scaler_objective": ("GET", "/v1/scalers/{name}/objective"),
    "forecast_series": ("POST", "/v1/forecasts"),
    "list_series": ("GET", "/v1/series"),
    "query_range": ("GET", "/v1/query_range"),
    "list_tokens": ("GET", "/v1/tokens"),
    "create_token": ("POST", "/v1/tokens"),
    "revoke_token": ("DELETE", "/v1/tokens/{token_id}"),
    "list_audit_entries": ("GET", "/v1/audit"),
    "create_simulation": ("POST", "/v1/simulations"),
    "get_simulation": ("GET", "/v1/simulations/{job_id}"),
    "tune_scaler": ("POST", "/v1/scalers/{name}/tune"),
    "create_rollout": ("POST", "/v1/scalers/{name}/rollouts"),
    "list_scaler_rollouts": ("GET", "/v1/scalers/{name}/rollouts"),
    "get_rollout": ("GET", "/v1/rollouts/{rollout_id}"),
    "cancel_rollout": ("POST", "/v1/rollouts/{rollout_id}/cancel"),
}

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_SCALERS = TypeAdapter(list[Scaler])
_SERIES = TypeAdapter(list[Series])
_TOKENS = TypeAdapter(list[Token])
_ROLLOUTS = TypeAdapter(list[Rollout])


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    operation: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: tuple[tuple[str, str], ...] = ()
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return OPERATIONS[self.operation][0]


def _path(operation: str, **params: str) -> str:
    template = OPERATIONS[operation][1]
    return template.format(**{k: quote(v, safe="") for k, v in params.items()})


def _model(cls: type[BaseModel]) -> Callable[[httpx.Response], Any]:
    return lambda r: cls.model_validate(r.json())


def _none(_response: httpx.Response) -> None:
    return None


def _true(_response: httpx.Response) -> bool:
    return True


def _time(value: TimeInput, name: str) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{name}: a datetime needs a time zone")
        return value.isoformat()
    if isinstance(value, int | float):
        return repr(float(value))
    return value


def _duration(value: float | str) -> str:
    return repr(float(value)) if isinstance(value, int | float) else value


def spec_body(spec: SpecInput) -> tuple[bytes, str]:
    """A scaler spec as a request body: YAML text as it is (the server parses it), a mapping
    or a pydantic model as JSON."""
    if isinstance(spec, bytes):
        return spec, "application/yaml"
    if isinstance(spec, str):
        return spec.encode("utf-8"), "application/yaml"
    if isinstance(spec, BaseModel):
        document = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    else:
        document = dict(spec)
    return json.dumps(document).encode("utf-8"), "application/json"


def _etag(if_match: int | str | None) -> dict[str, str]:
    if if_match is None:
        return {}
    return {"If-Match": f'"{if_match}"' if isinstance(if_match, int) else if_match}


def _segment(name: str, value: str) -> str:
    """One `<name>/<value>` pair of a Pushgateway path, base64 where plain text cannot go."""
    if value == "":
        return f"{name}@base64/="
    if "/" in value or " " in value:
        encoded = base64.urlsafe_b64encode(value.encode()).decode()
        return f"{name}@base64/{encoded}"
    return f"{name}/{quote(value, safe='')}"


def grouping_path(job: str, grouping_key: Mapping[str, str] | None) -> str:
    if not job:
        raise ValueError("job must not be empty")
    parts = [_segment("job", job)]
    for name in sorted(grouping_key or {}):
        if not _LABEL_NAME.match(name) or name.startswith("__"):
            raise ValueError(f"{name!r} is not a valid label name")
        parts.append(_segment(name, (grouping_key or {})[name]))
    return "/".join(parts)


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def exposition(gauges: Mapping[str, float]) -> bytes:
    """Gauges in the Prometheus text format 0.0.4 (what push_to_gateway sends)."""
    lines: list[str] = []
    for name, value in gauges.items():
        if not _METRIC_NAME.match(name):
            raise ValueError(f"{name!r} is not a valid metric name")
        lines += [f"# TYPE {name} gauge", f"{name} {_number(float(value))}"]
    return ("\n".join(lines) + "\n").encode() if lines else b""


def _samples_json(samples: Iterable[Sample | Mapping[str, Any]]) -> dict[str, Any]:
    wire = [
        (s if isinstance(s, Sample) else Sample.model_validate(dict(s))).wire() for s in samples
    ]
    return {"samples": wire}


class _Calls:
    """Every operation as a `Call`; the clients below only run them."""

    @staticmethod
    def healthz() -> Call[bool]:
        return Call("healthz", _path("healthz"), _true)

    @staticmethod
    def readyz() -> Call[bool]:
        return Call("readyz", _path("readyz"), _true)

    @staticmethod
    def push_samples(samples: Iterable[Sample | Mapping[str, Any]]) -> Call[int]:
        return Call(
            "ingest_samples",
            _path("ingest_samples"),
            lambda r: int(r.json()["accepted"]),
            json=_samples_json(samples),
        )

    @staticmethod
    def push_gauges(
        job: str, gauges: Mapping[str, float], grouping_key: Mapping[str, str] | None, replace: bool
    ) -> Call[None]:
        operation = "push_replace_group" if replace else "push_add_to_group"
        return Call(
            operation,
            _path(operation, grouping="") + grouping_path(job, grouping_key),
            _none,
            content=exposition(gauges),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    @staticmethod
    def delete_group(job: str, grouping_key: Mapping[str, str] | None) -> Call[None]:
        return Call(
            "push_delete_group",
            _path("push_delete_group", grouping="") + grouping_path(job, grouping_key),
            _none,
        )

    @staticmethod
    def list_scalers() -> Call[list[Scaler]]:
        return Call(
            "list_scalers",
            _path("list_scalers"),
            lambda r: _SCALERS.validate_python(r.json()),
            headers={"Accept": "application/json"},
        )

    @staticmethod
    def get_scaler(name: str) -> Call[Scaler]:
        return Call("get_scaler", _path("get_scaler", name=name), _model(Scaler))

    @staticmethod
    def create_scaler(spec: SpecInput) -> Call[Scaler]:
        body, content_type = spec_body(spec)
        return Call(
            "create_scaler",
            _path("create_scaler"),
            _model(Scaler),
            content=body,
            headers={"Content-Type": content_type, "Accept": "application/json"},
        )

    @staticmethod
    def put_scaler(name: str, spec: SpecInput, if_match: int | str | None) -> Call[Scaler]:
        body, content_type = spec_body(spec)
        return Call(
            "put_scaler",
            _path("put_scaler", name=name),
            _model(Scaler),
            content=body,
            headers={
                "Content-Type": content_type,
                "Accept": "application/json",
                **_etag(if_match),
            },
        )

    @staticmethod
    def validate_scaler(spec: SpecInput) -> Call[Validation]:
        body, content_type = spec_body(spec)
        return Call(
            "validate_scaler",
            _path("validate_scaler"),
            _model(Validation),
            content=body,
            headers={"Content-Type": content_type, "Accept": "application/json"},
        )

    @staticmethod
    def delete_scaler(name: str, if_match: int | str | None) -> Call[None]:
        return Call(
            "delete_scaler", _path("delete_scaler", name=name), _none, headers=_etag(if_match)
        )

    @staticmethod
    def pause_scaler(name: str, pause: bool) -> Call[Scaler]:
        operation = "pause_scaler" if pause else "resume_scaler"
        return Call(operation, _path(operation, name=name), _model(Scaler))

    @staticmethod
    def decision(name: str) -> Call[Decision]:
        return Call(
            "get_scaler_decision", _path("get_scaler_decision", name=name), _model(Decision)
        )

    @staticmethod
    def events_page(
        name: str,
        *,
        kinds: Iterable[str] | None,
        since: TimeInput | None,
        until: TimeInput | None,
        limit: int,
        cursor: int | None,
    ) -> Call[EventPage]:
        params = [("limit", str(limit))]
        params += [("kind", k) for k in kinds or ()]
        if since is not None:
            params.append(("since", _time(since, "since")))
        if until is not None:
            params.append(("until", _time(until, "until")))
        if cursor is not None:
            params.append(("cursor", str(cursor)))
        return Call(
            "list_scaler_events",
            _path("list_scaler_events", name=name),
            _model(EventPage),
            params=tuple(params),
        )

    @staticmethod
    def prediction(name: str, horizon: float | str, step: float | str | None) -> Call[Prediction]:
        params = [("horizon", _duration(horizon))]
        if step is not None:
            params.append(("step", _duration(step)))
        return Call(
            "get_scaler_prediction",
            _path("get_scaler_prediction", name=name),
            _model(Prediction),
            params=tuple(params),
        )

    @staticmethod
    def objective(
        name: str, since: TimeInput | None, until: TimeInput | None, step: float | str
    ) -> Call[Objective]:
        params = [("step", _duration(step))]
        if since is not None:
            params.append(("since", _time(since, "since")))
        if until is not None:
            params.append(("until", _time(until, "until")))
        return Call(
            "get_scaler_objective",
            _path("get_scaler_objective", name=name),
            _model(Objective),
            params=tuple(params),
        )

    @staticmethod
    def forecast_accuracy(name: str) -> Call[ForecastAccuracy]:
        return Call(
            "get_forecast_accuracy",
            _path("get_forecast_accuracy", name=name),
            _model(ForecastAccuracy),
        )

    @staticmethod
    def forecast(
        points: Iterable[tuple[float, float]], horizon: float, step: float, model: str
    ) -> Call[Forecast]:
        return Call(
            "forecast_series",
            _path("forecast_series"),
            _model(Forecast),
            json={
                "points": [[float(t), float(v)] for t, v in points],
                "horizon": horizon,
                "step": step,
                "model": model,
            },
        )

    @staticmethod
    def simulate_trace(
        trace: str | bytes,
        policies: Iterable[str] | None,
        window: str | None,
        seed: int,
        scaler: str | None,
    ) -> Call[Simulation]:
        params = [("policy", p) for p in policies or ()] + [("seed", str(seed))]
        if window is not None:
            params.append(("window", window))
        if scaler is not None:
            params.append(("scaler", scaler))
        body = trace.encode() if isinstance(trace, str) else trace
        return Call(
            "create_simulation",
            _path("create_simulation"),
            _model(Simulation),
            params=tuple(params),
            content=body,
            headers={"Content-Type": "text/csv"},
        )

    @staticmethod
    def simulate_scaler(
        scaler: str,
        start: TimeInput | None,
        end: TimeInput | None,
        policies: Iterable[str] | None,
        seed: int,
    ) -> Call[Simulation]:
        body: dict[str, Any] = {"scaler": scaler, "seed": seed}
        if start is not None:
            body["start"] = _time(start, "start")
        if end is not None:
            body["end"] = _time(end, "end")
        if policies is not None:
            body["policies"] = list(policies)
        return Call("create_simulation", _path("create_simulation"), _model(Simulation), json=body)

    @staticmethod
    def get_simulation(job_id: str) -> Call[Simulation]:
        return Call("get_simulation", _path("get_simulation", job_id=job_id), _model(Simulation))

    @staticmethod
    def tune(
        scaler: str,
        start: TimeInput | None,
        end: TimeInput | None,
        max_drop_rate: float,
        monthly_budget_usd: float | None,
        seed: int,
    ) -> Call[Simulation]:
        body: dict[str, Any] = {"max_drop_rate": max_drop_rate, "seed": seed}
        if start is not None:
            body["start"] = _time(start, "start")
        if end is not None:
            body["end"] = _time(end, "end")
        if monthly_budget_usd is not None:
            body["monthly_budget_usd"] = monthly_budget_usd
        return Call("tune_scaler", _path("tune_scaler", name=scaler), _model(Simulation), json=body)

    @staticmethod
    def create_rollout(scaler: str, body: dict[str, Any]) -> Call[Rollout]:
        return Call(
            "create_rollout", _path("create_rollout", name=scaler), _model(Rollout), json=body
        )

    @staticmethod
    def list_rollouts(scaler: str) -> Call[list[Rollout]]:
        return Call(
            "list_scaler_rollouts",
            _path("list_scaler_rollouts", name=scaler),
            lambda r: _ROLLOUTS.validate_python(r.json()["rollouts"]),
        )

    @staticmethod
    def get_rollout(rollout_id: int) -> Call[Rollout]:
        return Call(
            "get_rollout", _path("get_rollout", rollout_id=str(rollout_id)), _model(Rollout)
        )

    @staticmethod
    def cancel_rollout(rollout_id: int) -> Call[Rollout]:
        return Call(
            "cancel_rollout", _path("cancel_rollout", rollout_id=str(rollout_id)), _model(Rollout)
        )

    @staticmethod
    def series(match: str) -> Call[list[Series]]:
        return Call(
            "list_series",
            _path("list_series"),
            lambda r: _SERIES.validate_python(r.json()["series"]),
            params=(("match", match),),
        )

    @staticmethod
    def query_range(
        query: str, start: TimeInput, end: TimeInput, step: float | str, agg: Agg
    ) -> Call[RangeResult]:
        return Call(
            "query_range",
            _path("query_range"),
            _model(RangeResult),
            params=(
                ("query", query),
                ("start", _time(start, "start")),
                ("end", _time(end, "end")),
                ("step", _duration(step)),
                ("agg", agg),
            ),
        )

    @staticmethod
    def list_tokens() -> Call[list[Token]]:
        return Call(
            "list_tokens", _path("list_tokens"), lambda r: _TOKENS.validate_python(r.json())
        )

    @staticmethod
    def create_token(
        name: str, scope: Scope, push_rate_per_s: float | None, push_burst: int | None
    ) -> Call[TokenCreated]:
        body: dict[str, Any] = {"name": name, "scope": scope}
        if push_rate_per_s is not None:
            body["push_rate_per_s"] = push_rate_per_s
        if push_burst is not None:
            body["push_burst"] = push_burst
        return Call("create_token", _path("create_token"), _model(TokenCreated), json=body)

    @staticmethod
    def audit_page(
        *,
        since: TimeInput | None,
        until: TimeInput | None,
        actor: str | None,
        target: str | None,
        action: str | None,
        limit: int,
        cursor: int | None,
    ) -> Call[AuditPage]:
        params = [("limit", str(limit))]
        if since is not None:
            params.append(("since", _time(since, "since")))
        if until is not None:
            params.append(("until", _time(until, "until")))
        for name, value in (("actor", actor), ("target", target), ("action", action)):
            if value is not None:
                params.append((name, value))
        if cursor is not None:
            params.append(("cursor", str(cursor)))
        return Call(
            "list_audit_entries",
            _path("list_audit_entries"),
            _model(AuditPage),
            params=tuple(params),
        )

    @staticmethod
    def revoke_token(token_id: str) -> Call[None]:
        return Call("revoke_token", _path("revoke_token", token_id=token_id), _none)


def _headers(token: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    headers = {"User-Agent": f"ciuic-sdk/{VERSION}", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    headers.update(extra or {})
    return headers


def _check(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        raise error_from_response(response)
    return response


class Client:
    """The synchronous client.

    >>> with Client("http://ciuic:8080", token="...") as ciuic:
    ...     ciuic.create_scaler(open("ciuic-config.yaml").read())
    ...     print(ciuic.decision("deepseek-service").replicas)
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self._http = http or httpx.Client(
            base_url=base_url.rstrip("/"), headers=_headers(token, headers), timeout=timeout
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def run(self, call: Call[T]) -> T:
        try:
            response = self._http.request(
                call.method,
                call.path,
                params=call.params or None,
                json=call.json,
                content=call.content,
                headers=call.headers,
            )
        except httpx.TransportError as exc:
            raise unreachable(exc) from exc
        return call.parse(_check(response))

    # operations
    def healthz(self) -> bool:
        return self.run(_Calls.healthz())

    def readyz(self) -> bool:
        return self.run(_Calls.readyz())

    def push_samples(self, samples: Iterable[Sample | Mapping[str, Any]]) -> int:
        """Append samples (POST /v1/samples, all or nothing); returns how many were accepted."""
        return self.run(_Calls.push_samples(samples))

    def push(
        self,
        job: str,
        gauges: Mapping[str, float],
        grouping_key: Mapping[str, str] | None = None,
        *,
        replace: bool = True,
    ) -> None:
        """Pushgateway-style push of gauges: PUT replaces the group (`replace=True`), POST
        replaces only these metrics."""
        self.run(_Calls.push_gauges(job, gauges, grouping_key, replace))

    def delete_group(self, job: str, grouping_key: Mapping[str, str] | None = None) -> None:
        self.run(_Calls.delete_group(job, grouping_key))

    def list_scalers(self) -> list[Scaler]:
        return self.run(_Calls.list_scalers())

    def get_scaler(self, name: str) -> Scaler:
        return self.run(_Calls.get_scaler(name))

    def create_scaler(self, spec: SpecInput) -> Scaler:
        return self.run(_Calls.create_scaler(spec))

    def put_scaler(
        self, name: str, spec: SpecInput, *, if_match: int | str | None = None
    ) -> Scaler:
        return self.run(_Calls.put_scaler(name, spec, if_match))

    def validate_scaler(self, spec: SpecInput) -> Validation:
        return self.run(_Calls.validate_scaler(spec))

    def delete_scaler(self, name: str, *, if_match: int | str | None = None) -> None:
        self.run(_Calls.delete_scaler(name, if_match))

    def pause(self, name: str) -> Scaler:
        return self.run(_Calls.pause_scaler(name, True))

    def resume(self, name: str) -> Scaler:
        return self.run(_Calls.pause_scaler(name, False))

    def decision(self, name: str) -> Decision:
        return self.run(_Calls.decision(name))

    def events_page(
        self,
        name: str,
        *,
        kinds: Iterable[str] | None = None,
        since: TimeInput | None = None,
        until: TimeInput | None = None,
        limit: int = 100,
        cursor: int | None = None,
    ) -> EventPage:
        return self.run(
            _Calls.events_page(
                name, kinds=kinds, since=since, until=until, limit=limit, cursor=cursor
            )
        )

    def events(
        self,
        name: str,
        *,
        kinds: Iterable[str] | None = None,
        since: TimeInput | None = None,
        until: TimeInput | None = None,
        page_size: int = 100,
    ) -> Iterator[Event]:
        """Every event, newest first, fetching pages as the iteration goes."""
        kinds = list(kinds or ())
        cursor: int | None = None
        while True:
            page = self.events_page(
                name, kinds=kinds, since=since, until=until, limit=page_size, cursor=cursor
            )
            yield from page.events
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def get_prediction(
        self, scaler: str, horizon: float | str = "1h", step: float | str | None = None
    ) -> Prediction:
        """The scaler's load forecast for `horizon` (seconds or a duration such as '1h')."""
        return self.run(_Calls.prediction(scaler, horizon, step))

    def get_ciuic_prediction(
        self, scaler: str, horizon: float | str = "1h", step: float | str | None = None
    ) -> Prediction:
        """The brief's name for `get_prediction`."""
        return self.get_prediction(scaler, horizon, step)

    def forecast_accuracy(self, scaler: str) -> ForecastAccuracy:
        return self.run(_Calls.forecast_accuracy(scaler))

    def objective(
        self,
        scaler: str,
        *,
        since: TimeInput | None = None,
        until: TimeInput | None = None,
        step: float | str = 60.0,
    ) -> Objective:
        """The latency objective's attainment per step (default: the last hour by minute)."""
        return self.run(_Calls.objective(scaler, since, until, step))

    def forecast(
        self,
        points: Iterable[tuple[float, float]],
        *,
        horizon: float = 3600.0,
        step: float = 300.0,
        model: str = "auto",
    ) -> Forecast:
        """What-if: forecast `points` [(unix seconds, value)] without a scaler."""
        return self.run(_Calls.forecast(points, horizon, step, model))

    def series(self, match: str) -> list[Series]:
        return self.run(_Calls.series(match))

    def query_range(
        self,
        query: str,
        start: TimeInput,
        end: TimeInput,
        step: float | str = 60,
        agg: Agg = "avg",
    ) -> RangeResult:
        return self.run(_Calls.query_range(query, start, end, step, agg))

    def simulate(
        self,
        trace: str | bytes,
        *,
        policies: Iterable[str] | None = None,
        window: str | None = None,
        seed: int = 0,
        scaler: str | None = None,
    ) -> Simulation:
        """Start a simulation of a CSV trace (counts or a request log); returns the job."""
        return self.run(_Calls.simulate_trace(trace, policies, window, seed, scaler))

    def simulate_scaler(
        self,
        scaler: str,
        *,
        start: TimeInput | None = None,
        end: TimeInput | None = None,
        policies: Iterable[str] | None = None,
        seed: int = 0,
    ) -> Simulation:
        """Start a replay of the scaler's stored load through its spec and the baselines."""
        return self.run(_Calls.simulate_scaler(scaler, start, end, policies, seed))

    def tune(
        self,
        scaler: str,
        *,
        start: TimeInput | None = None,
        end: TimeInput | None = None,
        max_drop_rate: float = 0.01,
        monthly_budget_usd: float | None = None,
        seed: int = 0,
    ) -> Simulation:
        """Start a search for the cheapest spec within the drop rate and the budget."""
        return self.run(_Calls.tune(scaler, start, end, max_drop_rate, monthly_budget_usd, seed))

    def get_simulation(self, job_id: str) -> Simulation:
        return self.run(_Calls.get_simulation(job_id))

    def wait_simulation(
        self, job_id: str, *, timeout_s: float = 600.0, poll_s: float = 1.0
    ) -> Simulation:
        """Poll a simulation or tuning job until it is done or failed."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.get_simulation(job_id)
            if job.finished or time.monotonic() > deadline:
                return job
            time.sleep(poll_s)

    def start_rollout(
        self,
        scaler: str,
        *,
        image: str | None = None,
        container: str | None = None,
        template_patch: Mapping[str, Any] | None = None,
        surge_percent: float = 50,
        stabilize_s: float = 60,
    ) -> Rollout:
        """A rolling update with a surge plan (give `image` or `template_patch`)."""
        body: dict[str, Any] = {"surge_percent": surge_percent, "stabilize_s": stabilize_s}
        if image is not None:
            body["image"] = image
        if container is not None:
            body["container"] = container
        if template_patch is not None:
            body["template_patch"] = dict(template_patch)
        return self.run(_Calls.create_rollout(scaler, body))

    def rollouts(self, scaler: str) -> list[Rollout]:
        return self.run(_Calls.list_rollouts(scaler))

    def get_rollout(self, rollout_id: int) -> Rollout:
        return self.run(_Calls.get_rollout(rollout_id))

    def cancel_rollout(self, rollout_id: int) -> Rollout:
        return self.run(_Calls.cancel_rollout(rollout_id))

    def list_tokens(self) -> list[Token]:
        return self.run(_Calls.list_tokens())

    def create_token(
        self,
        name: str,
        scope: Scope,
        *,
        push_rate_per_s: float | None = None,
        push_burst: int | None = None,
    ) -> TokenCreated:
        """A new token; the secret is in the answer only. `push_rate_per_s` / `push_burst`
        override the service's ingestion limit for this token (0: unlimited)."""
        return self.run(_Calls.create_token(name, scope, push_rate_per_s, push_burst))

    def revoke_token(self, token_id: str) -> None:
        self.run(_Calls.revoke_token(token_id))

    def audit_page(
        self,
        *,
        since: TimeInput | None = None,
        until: TimeInput | None = None,
        actor: str | None = None,
        target: str | None = None,
        action: str | None = None,
        limit: int = 100,
        cursor: int | None = None,
    ) -> AuditPage:
        return self.run(
            _Calls.audit_page(
                since=since,
                until=until,
                actor=actor,
                target=target,
                action=action,
                limit=limit,
                cursor=cursor,
            )
        )

    def audit(
        self,
        *,
        since: TimeInput | None = None,
        until: TimeInput | None = None,
        actor: str | None = None,
        target: str | None = None,
        action: str | None = None,
        page_size: int = 100,
    ) -> Iterator[AuditEntry]:
        """Every audit entry (admin token), newest first, fetching pages as needed."""
        cursor: int | None = None
        while True:
            page = self.audit_page(
                since=since,
                until=until,
                actor=actor,
                target=target,
                action=action,
                limit=page_size,
                cursor=cursor,
            )
            yield from page.entries
            if page.next_cursor is None:
                return
            cursor = page.next_cursor


class AsyncClient:
    """The asyncio client: the same operations as `Client`, awaited."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._http = http or httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=_headers(token, headers), timeout=timeout
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def run(self, call: Call[T]) -> T:
        try:
            response = await self._http.request(
                call.method,
                call.path,
                params=call.params or None,
                json=call.json,
                content=call.content,
                headers=call.headers,
            )
        except httpx.TransportError as exc:
            raise unreachable(exc) from exc
        return call.parse(_check(response))

    async def healthz(self) -> bool:
        return await self.run(_Calls.healthz())

    async def readyz(self) -> bool:
        return await self.run(_Calls.readyz())

    async def push_samples(self, samples: Iterable[Sample | Mapping[str, Any]]) -> int:
        return await self.run(_Calls.push_samples(samples))

    async def push(
        self,
        job: str,
        gauges: Mapping[str, float],
        grouping_key: Mapping[str, str] | None = None,
        *,
        replace: bool = True,
    ) -> None:
        await self.run(_Calls.push_gauges(job, gauges, grouping_key, replace))

    async def delete_group(self, job: str, grouping_key: Mapping[str, str] | None = None) -> None:
        await self.run(_Calls.delete_group(job, grouping_key))

    async def list_scalers(self) -> list[Scaler]:
        return await self.run(_Calls.list_scalers())

    async def get_scaler(self, name: str) -> Scaler:
        return await self.run(_Calls.get_scaler(name))

    async def create_scaler(self, spec: SpecInput) -> Scaler:
        return await self.run(_Calls.create_scaler(spec))

    async def put_scaler(
        self, name: str, spec: SpecInput, *, if_match: int | str | None = None
    ) -> Scaler:
        return await self.run(_Calls.put_scaler(name, spec, if_match))

    async def validate_scaler(self, spec: SpecInput) -> Validation:
        return await self.run(_Calls.validate_scaler(spec))

    async def delete_scaler(self, name: str, *, if_match: int | str | None = None) -> None:
        await self.run(_Calls.delete_scaler(name, if_match))

    async def pause(self, name: str) -> Scaler:
        return await self.run(_Calls.pause_scaler(name, True))

    async def resume(self, name: str) -> Scaler:
        return await self.run(_Calls.pause_scaler(name, False))

    async def decision(self, name: str) -> Decision:
        return await self.run(_Calls.decision(name))

    async def events_page(
        self,
        name: str,
        *,
        kinds: Iterable[str] | None = None,
        since: TimeInput | None = None,
        until: TimeInput | None = None,
        limit: int = 100,
        cursor: int | None = None,
    ) -> EventPage:
        return await self.run(
            _Calls.events_page(
                name, kinds=kinds, since=since, until=until, limit=limit, cursor=cursor
            )
        )

    async def events(
        self,
        name: str,
        *,
        kinds: Iterable[str] | None = None,
        since: TimeInput | None = None,
        until: TimeInput | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[Event]:
        kinds = list(kinds or ())
        cursor: int | None = None
        while True:
            page = await self.events_page(
                name, kinds=kinds, since=since, until=until, limit=page_size, cursor=cursor
            )
            for event in page.events:
                yield event
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def get_prediction(
        self, scaler: str, horizon: float | str = "1h", step: float | str | None = None
    ) -> Prediction:
        return await self.run(_Calls.prediction(scaler, horizon, step))

    async def get_ciuic_prediction(
        self, scaler: str, horizon: float | str = "1h", step: float | str | None = None
    ) -> Prediction:
        return await self.get_prediction(scaler, horizon, step)

    async def forecast_accuracy(self, scaler: str) -> ForecastAccuracy:
        return await self.run(_Calls.forecast_accuracy(scaler))

    async def objective(
        self,
        scaler: str,
        *,
        since: TimeInput | None = None,
        until: TimeInput | None = None,
        step: float | str = 60.0,
    ) -> Objective:
        return await self.run(_Calls.objective(scaler, since, until, step))

    async def forecast(
        self,
        points: Iterable[tuple[float, float]],
        *,
        horizon: float = 3600.0,
        step: float = 300.0,
        model: str = "auto",
    ) -> Forecast:
        return await self.run(_Calls.forecast(points, horizon, step, model))

    async def series(self, match: str) -> list[Series]:
        return await self.run(_Calls.series(match))

    async def query_range(
        self,
        query: str,
        start: TimeInput,
        end: TimeInput,
        step: float | str = 60,
        agg: Agg = "avg",
    ) -> RangeResult:
        return await self.run(_Calls.query_range(query, start, end, step, agg))

    async def simulate(
        self,
        trace: str | bytes,
        *,
        policies: Iterable[str] | None = None,
        window: str | None = None,
        seed: int = 0,
        scaler: str | None = None,
    ) -> Simulation:
        """Start a simulation of a CSV trace (counts or a request log); returns the job."""
        return await self.run(_Calls.simulate_trace(trace, policies, window, seed, scaler))

    async def simulate_scaler(
        self,
        scaler: str,
        *,
        start: TimeInput | None = None,
        end: TimeInput | None = None,
        policies: Iterable[str] | None = None,
        seed: int = 0,
    ) -> Simulation:
        """Start a replay of the scaler's stored load through its spec and the baselines."""
        return await self.run(_Calls.simulate_scaler(scaler, start, end, policies, seed))

    async def tune(
        self,
        scaler: str,
        *,
        start: TimeInput | None = None,
        end: TimeInput | None = None,
        max_drop_rate: float = 0.01,
        monthly_budget_usd: float | None = None,
        seed: int = 0,
    ) -> Simulation:
        """Start a search for the cheapest spec within the drop rate and the budget."""
        return await self.run(
            _Calls.tune(scaler, start, end, max_drop_rate, monthly_budget_usd, seed)
        )

    async def get_simulation(self, job_id: str) -> Simulation:
        return await self.run(_Calls.get_simulation(job_id))

    async def wait_simulation(
        self, job_id: str, *, timeout_s: float = 600.0, poll_s: float = 1.0
    ) -> Simulation:
        """Poll a simulation or tuning job until it is done or failed."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = await self.get_simulation(job_id)
            if job.finished or time.monotonic() > deadline:
                return job
            await asyncio.sleep(poll_s)

    async def start_rollout(
        self,
        scaler: str,
        *,
        image: str | None = None,
        container: str | None = None,
        template_patch: Mapping[str, Any] | None = None,
        surge_percent: float = 50,
        stabilize_s: float = 60,
    ) -> Rollout:
        """A rolling update with a surge plan (give `image` or `template_patch`)."""
        body: dict[str, Any] = {"surge_percent": surge_percent, "stabilize_s": stabilize_s}
        if image is not None:
            body["image"] = image
        if container is not None:
            body["container"] = container
        if template_patch is not None:
            body["template_patch"] = dict(template_patch)
        return await self.run(_Calls.create_rollout(scaler, body))

    async def rollouts(self, scaler: str) -> list[Rollout]:
        return await self.run(_Calls.list_rollouts(scaler))

    async def get_rollout(self, rollout_id: int) -> Rollout:
        return await self.run(_Calls.get_rollout(rollout_id))

    async def cancel_rollout(self, rollout_id: int) -> Rollout:
        return await self.run(_Calls.cancel_rollout(rollout_id))

    async def list_tokens(self) -> list[Token]:
        return await self.run(_Calls.list_tokens())

    async def create_token(
        self,
        name: str,
        scope: Scope,
        *,
        push_rate_per_s: float | None = None,
        push_burst: int | None = None,
    ) -> TokenCreated:
        return await self.run(_Calls.create_token(name, scope, push_rate_per_s, push_burst))

    async def revoke_token(self, token_id: str) -> None:
        await self.run(_Calls.revoke_token(token_id))

    async def audit_page(
        self,
        *,
        since: TimeInput | None = None,
        until: TimeInput | None = None,
        actor: str | None = None,
        target: str | None = None,
        action: str | None = None,
        limit: int = 100,
        cursor: int | None = None,
    ) -> AuditPage:
        return await self.run(
            _Calls.audit_page(
                since=since,
                until=until,
                actor=actor,
                target=target,
                action=action,
                limit=limit,
                cursor=cursor,
            )
        )

    async def audit(
        self,
        *,
        since: TimeInput | None = None,
        until: TimeInput | None = None,
        actor: str | None = None,
        target: str | None = None,
        action: str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[AuditEntry]:
        cursor: int | None = None
        while True:
            page = await self.audit_page(
                since=since,
                until=until,
                actor=actor,
                target=target,
                action=action,
                limit=page_size,
                cursor=cursor,
            )
            for entry in page.entries:
                yield entry
            if page.next_cursor is None:
                return
            cursor = page.next_cursor
