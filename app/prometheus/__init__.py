"""The Prometheus HTTP API client: instant queries (`/api/v1/query`) whose answers become
metric readings, and range queries (`/api/v1/query_range`) that backfill a forecast's history.
The only module that talks to a Prometheus server.

Errors: every failure (unreachable, timeout, an HTTP error, Prometheus' own `"status":
"error"`, an answer of an unexpected shape) is a `PrometheusError` whose message says what
went wrong in a sentence an operator can act on; the caller turns it into a missing reading.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from app.settings import Settings

__all__ = [
    "MAX_POINTS",
    "PrometheusClient",
    "PrometheusError",
    "RangeSeries",
    "Sample",
    "parse_instant",
    "parse_range",
]

# Prometheus refuses a range query of more than 11,000 points per series ("exceeded maximum
# resolution"); longer ranges are asked for in chunks of at most this many steps.
MAX_POINTS = 11_000


class PrometheusError(Exception):
    """A query that gave no usable answer; the message says why."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One series of an instant query's answer (a scalar has no labels)."""

    labels: Mapping[str, str]
    ts: float  # seconds since the epoch: the evaluation time
    value: float  # NaN and +-Inf as Prometheus wrote them: the policy leaves them out


@dataclass(frozen=True, slots=True)
class RangeSeries:
    """One series of a range query's answer: (time in seconds, value) per step it has."""

    labels: Mapping[str, str]
    points: tuple[tuple[float, float], ...]


def _number(pair: object) -> tuple[float, float]:
    if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[1], str)):
        raise PrometheusError(f'unexpected sample {pair!r}: want [time, "value"]')
    try:
        ts, value = float(pair[0]), float(pair[1])  # "NaN", "+Inf" parse as such
    except (TypeError, ValueError):
        raise PrometheusError(f"unexpected sample {pair!r}: not numbers") from None
    if not math.isfinite(ts):
        raise PrometheusError(f"unexpected sample time {pair[0]!r}")
    return ts, value


def parse_instant(body: object) -> list[Sample]:
    """The samples of an `/api/v1/query` answer: one per series of a vector, one for a scalar.

    A matrix (a range selector such as `x[5m]`) or a string is refused: the metric needs one
    number per series."""
    kind, result = _data(body)
    if kind == "scalar":
        ts, value = _number(result)
        return [Sample({}, ts, value)]
    if kind != "vector":
        raise PrometheusError(
            f"the query returned a {kind}, not an instant vector or a scalar "
            "(drop the range selector, or wrap it: rate(x[1m]), max_over_time(x[1m]))"
        )
    if not isinstance(result, list):
        raise PrometheusError("the vector's result is not a list")
    samples = []
    for item in result:
        if not isinstance(item, dict) or not isinstance(item.get("metric", {}), dict):
            raise PrometheusError(f"unexpected series {item!r}")
        labels = {str(k): str(v) for k, v in item.get("metric", {}).items()}
        ts, value = _number(item.get("value"))
        samples.append(Sample(labels, ts, value))
    return samples


def _data(body: object) -> tuple[object, object]:
    if not isinstance(body, dict):
        raise PrometheusError("the answer is not a JSON object")
    if body.get("status") != "success":
        kind = body.get("errorType") or "error"
        raise PrometheusError(f"{kind}: {body.get('error') or 'no message'}")
    data = body.get("data")
    if not isinstance(data, dict):
        raise PrometheusError("the answer has no data")
    return data.get("resultType"), data.get("result")


def parse_range(body: object) -> list[RangeSeries]:
    """The series of an `/api/v1/query_range` answer (a matrix; a scalar query's answer is
    one series without labels)."""
    kind, result = _data(body)
    if kind != "matrix" or not isinstance(result, list):
        raise PrometheusError(f"the range query returned a {kind}, not a matrix")
    out = []
    for item in result:
        if not isinstance(item, dict) or not isinstance(item.get("values"), list):
            raise PrometheusError(f"unexpected series {item!r}")
        labels = {str(k): str(v) for k, v in (item.get("metric") or {}).items()}
        out.append(RangeSeries(labels, tuple(_number(pair) for pair in item["values"])))
    return out


class PrometheusClient:
    """Instant queries on one Prometheus server, with its auth, TLS and a timeout per query."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        verify: ssl.SSLContext | bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._http = httpx.AsyncClient(
            base_url=self.url,
            timeout=timeout_s,
            headers=dict(headers or {}),
            auth=auth,
            verify=verify,
            transport=transport,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> PrometheusClient | None:
        """The configured server (CIUIC_PROMETHEUS_*); None when no URL is set."""
        if not settings.prometheus_url:
            return None
        headers = {}
        if settings.prometheus_bearer_token is not None:
            token = settings.prometheus_bearer_token.get_secret_value()
            headers["Authorization"] = f"Bearer {token}"
        auth = None
        if settings.prometheus_username is not None:
            password = settings.prometheus_password
            auth = (settings.prometheus_username, password.get_secret_value() if password else "")
        verify: ssl.SSLContext | bool = not settings.prometheus_insecure_skip_verify
        if verify and settings.prometheus_ca_file:
            verify = ssl.create_default_context(cafile=settings.prometheus_ca_file)
        return cls(
            settings.prometheus_url,
            timeout_s=settings.prometheus_timeout_s,
            headers=headers,
            auth=auth,
            verify=verify,
        )

    async def query(self, expr: str, at: float) -> list[Sample]:
        """`expr` evaluated at `at` (seconds); PrometheusError when it gives no answer."""
        params = {"query": expr, "time": f"{at:.3f}"}
        return parse_instant(await self._post("/api/v1/query", params))

    async def query_range(
        self, expr: str, start: float, end: float, step_s: float
    ) -> list[RangeSeries]:
        """`expr` evaluated every `step_s` from `start` to `end` (seconds, both included), in
        requests of at most MAX_POINTS steps each, each under the client's timeout; the
        chunks' series are joined by their labels. PrometheusError when any chunk fails."""
        joined: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
        at = start
        while at <= end:
            upto = min(end, at + (MAX_POINTS - 1) * step_s)
            params = {
                "query": expr,
                "start": f"{at:.3f}",
                "end": f"{upto:.3f}",
                "step": f"{step_s:g}",
            }
            for series in parse_range(await self._post("/api/v1/query_range", params)):
                joined.setdefault(tuple(sorted(series.labels.items())), []).extend(series.points)
            at = upto + step_s
        return [RangeSeries(dict(k), tuple(v)) for k, v in joined.items()]

    async def _post(self, path: str, params: dict[str, Any]) -> object:
        # Prometheus' own deadline (a Go duration: "2.5s" is refused, "2500ms" is not) ends
        # a heavy query server-side instead of leaving it running after we gave up.
        params = {**params, "timeout": f"{max(1, round(self.timeout_s * 1000))}ms"}
        try:
            response = await self._http.post(path, data=params)
        except httpx.TimeoutException:
            raise PrometheusError(f"no answer within {self.timeout_s:g}s") from None
        except httpx.HTTPError as exc:
            raise PrometheusError(f"unreachable: {type(exc).__name__}: {exc}") from None
        try:
            body = response.json()
        except ValueError:
            raise PrometheusError(
                f"HTTP {response.status_code}: {response.text[:200].strip() or 'no body'}"
            ) from None
        # Prometheus answers 400 (bad_data) and 422 (execution) with a JSON error body.
        return body

    async def aclose(self) -> None:
        await self._http.aclose()
