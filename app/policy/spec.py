"""The scaler spec: what an operator writes (YAML or JSON) to say how a deployment scales.

`parse_spec` accepts the brief's `ciuic-config.yaml` verbatim (after `yaml.safe_load`) and fills
every omitted key with a default; `ScalerSpec.to_document` renders it back in the same shape
("85%", "<5", "30s", "0.5/s"), so YAML in -> YAML out keeps the meaning.

Units, once, so nobody has to guess:
- durations are seconds: a number, or a string such as "30s", "5m", "1h30m", "250ms";
- a metric `target` is compared with the metric as pushed: "85%" is 85 (percent points, like
  NVML's 0..100 GPU utilisation), "<5" and 5 are 5 (per pod, after aggregation);
- `capacity` is what one pod serves of the load signal, in units per second ("30/min" == 0.5).

Errors: `SpecError.issues` lists every problem as {field, value, rule, message}; `field` is a
dotted path into the document ("metrics.1.target"), `rule` a stable code.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "DEFAULT_COLD_START_S",
    "KNOWN_ALGORITHMS",
    "RESPONSIVE_BEHAVIOR",
    "Aggregation",
    "AlgorithmSpec",
    "BehaviorSpec",
    "CapacitySpec",
    "EmergencySpec",
    "EmergencyTrigger",
    "FallbackSpec",
    "ForecastSpec",
    "FractionalSpec",
    "MetricSpec",
    "MetricTarget",
    "PreheatSpec",
    "ReactiveSpec",
    "ScaleDownRules",
    "ScaleUpRules",
    "ScalerSpec",
    "ScalingPolicy",
    "ScheduleEntry",
    "SpecError",
    "SpecIssue",
    "TargetRef",
    "format_duration",
    "parse_duration",
    "parse_spec",
    "register_algorithm",
]

DEFAULT_COLD_START_S = 60.0
"""Cold start assumed while `cold_start: learn` has not measured one yet (7B model: 30-60 s)."""

KNOWN_ALGORITHMS: set[str] = {
    "auto",
    "prophet",
    "seasonal",
    "seasonal_naive",
    "robust_seasonal",
    "adaptive",
    "naive",
    "none",
}
"""Forecast models a spec may name; `app.forecasting` adds more with `register_algorithm`."""


def register_algorithm(name: str) -> None:
    """Let specs name another forecasting model (called by the forecasting package at import)."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"algorithm names are lower_snake_case, got {name!r}")
    KNOWN_ALGORITHMS.add(name)


# --------------------------------------------------------------------------------------------
# errors


class SpecIssue(dict[str, object]):
    """One problem: {"field": "metrics.0.weight", "value": -1, "rule": "...", "message": "..."}."""


class SpecError(Exception):
    """The spec is invalid; `issues` says where and why (the API turns it into a 422).

    Deliberately not a ValueError: raised inside a pydantic validator it passes through
    untouched, keeping the exact field paths of cross-key rules."""

    def __init__(self, issues: Iterable[Mapping[str, object]]) -> None:
        self.issues: list[SpecIssue] = [SpecIssue(i) for i in issues]
        lines = "; ".join(f"{i['field']}: {i['message']}" for i in self.issues)
        super().__init__(f"invalid scaler spec: {lines}")


_NO_VALUE = object()


def _fail(
    rule: str, message: str, *, sub: str | None = None, value: object = _NO_VALUE
) -> PydanticCustomError:
    """A validation error with a stable rule code; `sub` extends the field path (map keys,
    cross-field checks) and `value` then names the offending value."""
    ctx: dict[str, Any] = {}
    if sub is not None:
        ctx["sub"] = sub
    if value is not _NO_VALUE:
        ctx["value"] = value
    return PydanticCustomError(rule, message, ctx)


_MESSAGES = {
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
}


def _issues_from(err: ValidationError) -> list[SpecIssue]:
    out: list[SpecIssue] = []
    for e in err.errors(include_url=False):
        loc = [str(p) for p in e["loc"]]
        ctx = e.get("ctx") or {}
        if isinstance(ctx.get("sub"), str):
            loc.append(ctx["sub"])
        rule = e["type"]
        msg = _MESSAGES.get(rule, e["msg"])
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if rule == "extra_forbidden" and loc:
            msg = f"unknown key {loc[-1]!r}" + _did_you_mean(loc[:-1], loc[-1])
        value = ctx["value"] if "value" in ctx else e.get("input")
        if rule == "missing":
            value = None  # pydantic reports the enclosing mapping
        out.append(SpecIssue(field=".".join(loc) or "(root)", value=value, rule=rule, message=msg))
    # pydantic also reports a list as "too short" when its only items failed: noise.
    fields = [str(i["field"]) for i in out]
    return [
        i
        for i in out
        if i["rule"] != "too_short" or not any(f.startswith(f"{i['field']}.") for f in fields)
    ]


def _model_at(path: list[str]) -> type[BaseModel] | None:
    """The spec model that the dotted path (list indices included) points into."""
    model: type[BaseModel] | None = ScalerSpec
    for part in path:
        if model is None:
            return None
        if part.isdigit():
            continue
        fields = {f.alias or name: f for name, f in model.model_fields.items()}
        fields.update(model.model_fields)
        info = fields.get(part)
        model = _model_in(info.annotation) if info is not None else None
    return model


def _model_in(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _did_you_mean(parent: list[str], key: str) -> str:
    model = _model_at(parent)
    if model is None:
        return ""
    known = [f.alias or name for name, f in model.model_fields.items()]
    close = difflib.get_close_matches(key, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"


# --------------------------------------------------------------------------------------------
# scalar parsers (durations, thresholds, rates) and their renderers

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float:
    """Seconds from 30, 30.5, "30", "30s", "5m", "1h30m", "250ms"; rejects negatives and bools."""
    if isinstance(value, bool):
        raise _fail("duration", f"expected a duration like '30s' or seconds, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            pos, seconds = 0, 0.0
            for m in _DURATION_PART.finditer(text):
                if m.start() != pos:
                    break
                seconds += float(m.group(1)) * _UNIT_S[m.group(2)]
                pos = m.end()
            if pos != len(text) or not text:
                raise _fail(
                    "duration",
                    f"{value!r} is not a duration: use a number of seconds or units "
                    "ms, s, m, h, d such as '30s', '5m', '1h30m'",
                ) from None
    else:
        raise _fail("duration", f"expected a duration like '30s' or seconds, got {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise _fail("duration", f"duration must be a finite number >= 0 seconds, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact string for a duration: 30 -> "30s", 5400 -> "1h30m", 0.25 -> "250ms"."""
    if seconds != int(seconds):
        ms = seconds * 1000
        return f"{int(ms)}ms" if ms == int(ms) else f"{seconds!r}s"
    rest = int(seconds)
    if rest == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, rest = divmod(rest, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _fail("number", f"{what} must be a number, got {value!r}")
    try:
        out = float(value)
    except ValueError:
        raise _fail("number", f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise _fail("number", f"{what} must be finite, got {value!r}")
    return out


_DURATION_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": r"^(\d+(\.\d+)?(ms|s|m|h|d))+$|^\d+(\.\d+)?$"},
    ],
    "description": "seconds, or a duration such as '30s', '5m', '1h30m'",
}
Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration),
    WithJsonSchema(_DURATION_SCHEMA),
]
"""Seconds; accepts "30s"-style strings; renders back as such."""


def _check_percent(value: float, raw: object) -> float:
    if not 0 < value <= 100:
        raise _fail("percent", f"a percentage must be in (0%, 100%], got {raw!r}")
    return value


def _percent_fraction(value: object) -> object:
    """Utilisation given as "85%" or 0.85 -> 0.85."""
    if isinstance(value, str) and value.strip().endswith("%"):
        return _check_percent(_number(value.strip()[:-1], "percent"), value) / 100.0
    return value


def _format_percent(fraction: float) -> str:
    pct = round(fraction * 100, 6)
    return f"{int(pct)}%" if pct == int(pct) else f"{pct}%"


# --------------------------------------------------------------------------------------------
# building blocks

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = rf"{_DNS_LABEL}(\.{_DNS_LABEL})*"
_METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"


Aggregation = Literal["avg", "sum", "max", "min"]
"""How a metric's per-pod values are combined into one reading."""


Count = Annotated[int, Field(strict=True)]
"""A whole number; `true` or 2.5 are rejected rather than coerced."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TargetRef(_Model):
    """What to scale: a bare name means a Deployment in the `default` namespace."""

    kind: Literal["Deployment", "StatefulSet"] = "Deployment"
    namespace: str = Field(default="default", max_length=63, pattern=rf"^{_DNS_LABEL}$")
    name: str = Field(max_length=253, pattern=rf"^{_DNS_SUBDOMAIN}$")

    @model_validator(mode="before")
    @classmethod
    def _bare_name(cls, data: object) -> object:
        return {"name": data} if isinstance(data, str) else data

    @model_serializer(mode="plain")
    def _render(self) -> str | dict[str, str]:
        if self.kind == "Deployment" and self.namespace == "default":
            return self.name
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name}


class MetricTarget(_Model):
    """A metric's target value per pod: "85%" (percent points), "<5" or a plain number."""

    value: float = Field(gt=0)
    form: Literal["percent", "below", "plain"] = "plain"

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: object) -> object:
        if isinstance(data, Mapping):
            return data
        if isinstance(data, bool) or not isinstance(data, int | float | str):
            raise _fail("target", f"expected a target such as '85%', '<5' or 5, got {data!r}")
        if isinstance(data, int | float):
            form, text = "plain", str(data)
        else:
            text = data.strip()
            if text.endswith("%"):
                form, text = "percent", text[:-1].strip()
            elif text.startswith("<") and not text.startswith("<="):
                form, text = "below", text[1:].strip()
            else:
                form = "plain"
        try:
            value = float(text)
        except ValueError:
            raise _fail(
                "target", f"{data!r} is not a target: use '85%', '<5' or a plain number"
            ) from None
        if not math.isfinite(value) or value <= 0:
            raise _fail("target", f"a target must be a number > 0, got {data!r}")
        if form == "percent":
            _check_percent(value, data)
        return {"value": value, "form": form}

    @model_serializer(mode="plain")
    def _render(self) -> str | float | int:
        v: float | int = int(self.value) if self.value == int(self.value) else self.value
        if self.form == "percent":
            return f"{v}%"
        if self.form == "below":
            return f"<{v}"
        return v


class MetricSpec(_Model):
    """One pushed metric the reactive step scales on (see `app.policy.reactive`)."""

    name: str = Field(pattern=rf"^{_METRIC_NAME}$", max_length=200)
    target: Annotated[
        MetricTarget,
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "number", "exclusiveMinimum": 0},
                    {"type": "string", "pattern": r"^\s*<?\s*\d+(\.\d+)?\s*%?\s*$"},
                ],
                "description": "per-pod target: '85%' (percent points), '<5', or a number",
                "examples": ["85%", "<5", 5],
            }
        ),
    ]
    weight: float | None = Field(default=None, ge=0)
    selector: dict[str, str] = Field(default_factory=dict)
    aggregation: Aggregation = "avg"
    window: Duration = 60.0

    @field_validator("selector")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not re.fullmatch(_LABEL_NAME, key) or key.startswith("__"):
                raise _fail(
                    "label_name", f"{key!r} is not a Prometheus label name", sub=key, value=key
                )
        return value

    @field_validator("window")
    @classmethod
    def _window(cls, value: float) -> float:
        if value <= 0:
            raise _fail("duration", "window must be > 0")
        return value


class AlgorithmSpec(_Model):
    """Which forecasting model predicts the load; `params` are passed to it untouched."""

    name: str = "auto"
    params: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in KNOWN_ALGORITHMS:
            known = ", ".join(sorted(KNOWN_ALGORITHMS))
            raise _fail("algorithm", f"unknown algorithm {value!r}; known: {known}")
        return value


class PreheatSpec(_Model):
    """Warm spares: eager keeps `min_ready` spare pods; lazy only pre-launches by forecast."""

    enabled: bool = False
    min_ready: Count = Field(default=1, ge=0, le=1000)
    strategy: Literal["eager", "lazy"] = "eager"


class ScheduleEntry(_Model):
    """From each `time` (cron, in the spec's time zone) on, at least `min_replicas`; the most
    recent entry wins; with `duration` the entry lapses after that long."""

    time: str
    min_replicas: Count = Field(ge=0)
    max_replicas: Count | None = Field(default=None, ge=1)
    duration: Duration | None = None

    @field_validator("time")
    @classmethod
    def _cron(cls, value: str) -> str:
        fields = value.split()
        if len(fields) != 5 or not croniter.is_valid(value):
            raise _fail(
                "cron",
                f"{value!r} is not a cron expression with 5 fields "
                "(minute hour day-of-month month day-of-week)",
            )
        return value

    @field_validator("duration")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise _fail("duration", "duration must be > 0")
        return value

    @model_validator(mode="after")
    def _min_le_max(self) -> ScheduleEntry:
        if self.max_replicas is not None and self.max_replicas < self.min_replicas:
            raise _fail(
                "min_gt_max",
                f"max_replicas ({self.max_replicas}) is below min_replicas ({self.min_replicas})",
                sub="max_replicas",
                value=self.max_replicas,
            )
        return self


class EmergencyTrigger(_Model):
    """Burst when `metric` stays above `threshold` for `duration`.

    `aggregation` is how the trigger reads the metric over the target's pods: None (the
    default) reads it as aggregated in `metrics:` (per pod by default, `avg`), so the brief's
    `threshold: 50` on `request_queue` means 50 waiting per pod; `sum` compares the threshold
    with the total over pods (50 waiting in all), `max` with the busiest pod. The reactive
    step keeps comparing the metric's own aggregation with its per-pod target."""

    metric: str = Field(pattern=rf"^{_METRIC_NAME}$")
    threshold: float
    duration: Duration = 30.0
    aggregation: Aggregation | None = None


class EmergencySpec(_Model):
    """Knative-style panic mode for load the forecast did not see."""

    enabled: bool = False
    burst_multiplier: float = Field(default=2.0, gt=1, le=100)  # the cap on a burst
    triggers: tuple[EmergencyTrigger, ...] = ()
    stable_window: Duration = 0.0  # hold a burst this long after the last reading over


class CapacitySpec(_Model):
    """What one pod serves of the load signal: `{request_rate: 0.5/s}`, `30/min`, or `learn`
    (the default): learned online from what the pods push (`per_pod` is then None).

    `utilization` is the share of that capacity to plan for (default 100%)."""

    signal: str = Field(default="request_rate", pattern=rf"^{_METRIC_NAME}$")
    per_pod: float | None = Field(default=None, gt=0)  # units/s; None: learned
    per_unit: Literal["s", "min", "h"] = "s"  # how it was written, for rendering back
    utilization: float = Field(default=1.0, gt=0, le=1)

    @property
    def learned(self) -> bool:
        return self.per_pod is None

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: object) -> object:
        if isinstance(data, Mapping) and (not data or "per_pod" in data or "signal" in data):
            return data
        if not isinstance(data, Mapping):
            data = {"request_rate": data}
        out: dict[str, object] = {}
        signals = [k for k in data if k != "utilization"]
        if len(signals) != 1:
            raise _fail(
                "capacity",
                "capacity names exactly one load signal, e.g. {request_rate: 0.5/s} or "
                "{request_rate: learn}",
            )
        signal = str(signals[0])
        out["signal"] = signal
        if data[signal] == "learn":
            out["per_pod"] = None
        else:
            out["per_pod"], out["per_unit"] = _parse_rate(data[signal], signal)
        if "utilization" in data:
            out["utilization"] = _percent_fraction(data["utilization"])
        return out

    @model_serializer(mode="plain")
    def _render(self) -> str | dict[str, object]:
        out: dict[str, object]
        if self.per_pod is None:
            if self.signal == "request_rate" and self.utilization == 1.0:
                return "learn"
            out = {self.signal: "learn"}
        else:
            scale = {"s": 1.0, "min": 60.0, "h": 3600.0}[self.per_unit]
            amount = round(self.per_pod * scale, 9)
            shown = int(amount) if amount == int(amount) else amount
            out = {self.signal: f"{shown}/{self.per_unit}"}
        if self.utilization != 1.0:
            out["utilization"] = _format_percent(self.utilization)
        return out


class ReactiveSpec(_Model):
    """How the metrics as measured are read (see `app.policy.reactive`).

    `window`: the needs are averaged over it (Knative's stable window) and a scale-down keeps
    what any decision in it wanted; `panic`: a newest reading asking for this multiple of the
    Ready pods is acted on at once and holds scale-down for a window; `drain`: a queue over
    its ceiling (`<5`) asks for the pods that serve it within this time after they are Ready
    (how long a queued request may wait: the clients' timeout)."""

    window: Duration = 60.0
    panic: float = Field(default=2.0, gt=1, le=100)
    drain: Duration = 30.0

    @field_validator("window", "drain")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise _fail("duration", "must be > 0")
        return value


def _parse_rate(value: object, signal: str) -> tuple[float, str]:
    """0.5, "0.5/s", "30/min", "1800/h" -> (per second, unit written)."""
    unit = "s"
    raw = value
    if isinstance(value, str) and "/" in value:
        amount_text, _, unit = (p.strip() for p in value.partition("/"))
        if unit in ("sec", "second"):
            unit = "s"
        elif unit in ("m", "minute"):
            unit = "min"
        elif unit == "hour":
            unit = "h"
        if unit not in ("s", "min", "h"):
            raise _fail(
                "rate",
                f"{raw!r} is not a rate: use e.g. '0.5/s', '30/min', '1800/h'",
                sub=signal,
                value=raw,
            )
        value = amount_text
    try:
        amount = _number(value, "capacity")
    except PydanticCustomError:
        raise _fail(
            "rate",
            f"{raw!r} is not a rate: use e.g. '0.5/s', '30/min', '1800/h'",
            sub=signal,
            value=raw,
        ) from None
    if amount <= 0:
        raise _fail("rate", f"capacity must be > 0, got {raw!r}", sub=signal, value=raw)
    return amount / {"s": 1.0, "min": 60.0, "h": 3600.0}[unit], unit


class ForecastSpec(_Model):
    """How the predictive step reads a forecast (see `app.policy.predictive`)."""

    buffer: Duration = 60.0  # extra lead beyond the cold start
    # The band to provision for: 0.5 is the calibrated median (the forecast's own bias
    # removed); higher trades pods for fewer under-forecasts (the tune job searches it).
    quantile: float = Field(default=0.5, ge=0.5, lt=1)
    max_age: Duration = 1800.0  # older forecasts are ignored

    @field_validator("max_age")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise _fail("duration", "max_age must be > 0")
        return value


class ScalingPolicy(_Model):
    """HPA v2 HPAScalingPolicy: change by at most `value` pods or percent per `periodSeconds`."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True
    )

    type: Literal["Pods", "Percent"]
    value: Count = Field(gt=0)
    period_seconds: Count = Field(alias="periodSeconds", gt=0, le=1800)


_UP_POLICIES = (
    ScalingPolicy(type="Pods", value=4, period_seconds=15),
    ScalingPolicy(type="Percent", value=100, period_seconds=15),
)
_DOWN_POLICIES = (ScalingPolicy(type="Percent", value=100, period_seconds=15),)


class _Rules(_Model):
    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True
    )

    select_policy: Literal["Max", "Min", "Disabled"] = Field(default="Max", alias="selectPolicy")

    @field_validator("policies", check_fields=False)
    @classmethod
    def _non_empty(cls, value: tuple[ScalingPolicy, ...]) -> tuple[ScalingPolicy, ...]:
        if not value:
            raise _fail("policies", "must specify at least one policy (or omit for defaults)")
        return value


class ScaleUpRules(_Rules):
    """HPA v2 scaleUp defaults: no window, max(4 pods, 100%) per 15 s."""

    stabilization_window_seconds: Count = Field(
        default=0, alias="stabilizationWindowSeconds", ge=0, le=3600
    )
    policies: tuple[ScalingPolicy, ...] = _UP_POLICIES


class ScaleDownRules(_Rules):
    """HPA v2 scaleDown defaults: 300 s window, 100% per 15 s."""

    stabilization_window_seconds: Count = Field(
        default=300, alias="stabilizationWindowSeconds", ge=0, le=3600
    )
    policies: tuple[ScalingPolicy, ...] = _DOWN_POLICIES


class BehaviorSpec(_Model):
    """Kubernetes HPA v2 `behavior`, same keys, same defaults, same meaning."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True
    )

    scale_up: ScaleUpRules = Field(default_factory=ScaleUpRules, alias="scaleUp")
    scale_down: ScaleDownRules = Field(default_factory=ScaleDownRules, alias="scaleDown")


RESPONSIVE_BEHAVIOR = BehaviorSpec.model_validate(
    {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "policies": [
                {"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 99900, "periodSeconds": 15},
            ],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": 0,
            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
        },
    }
)
"""The behaviour of a spec without `behavior`: no stabilisation windows (the hold step's
hysteresis and the forecast decide scale-down), scale-up at most x1000 (or 4 pods) per 15 s,
Knative's max scale-up rate: a burst from 2 pods reaches its 60 at once (max_replicas caps a
wild reading). Measured on the benchmark: HPA's x2 per 15 s added a tenth to twitter's drops,
and x10 held a one-minute LLM burst from 2 pods at 20 for 15 s."""


class FractionalSpec(_Model):
    """Capacity in steps of a pod: 3.7 -> 3 full + 1 at 70%; remainders < min_fraction absorbed."""

    enabled: bool = False
    step: float = 0.1
    min_fraction: float = Field(default=0.3, gt=0, lt=1)

    @field_validator("step")
    @classmethod
    def _step(cls, value: float) -> float:
        if value not in (0.1, 0.01):
            raise _fail("step", f"step must be 0.1 or 0.01, got {value!r}")
        return value


class FallbackSpec(_Model):
    """What to do when no metric has fresh data: hold the current count, or go to `replicas`."""

    on_missing: Literal["hold", "replicas"] = "hold"
    replicas: Count | None = Field(default=None, ge=0)
    stale_after: Duration = 60.0

    @model_validator(mode="before")
    @classmethod
    def _implied(cls, data: object) -> object:
        if isinstance(data, Mapping) and "replicas" in data and "on_missing" not in data:
            return {**data, "on_missing": "replicas"}
        return data

    @model_validator(mode="after")
    def _needs_replicas(self) -> FallbackSpec:
        if self.on_missing == "replicas" and self.replicas is None:
            raise _fail(
                "required",
                "replicas is required when on_missing is 'replicas'",
                sub="replicas",
                value=None,
            )
        if self.stale_after <= 0:
            raise _fail("duration", "stale_after must be > 0", sub="stale_after", value=0)
        return self


def _parse_cold_start(value: object) -> object:
    if value == "learn":
        return value
    seconds = parse_duration(value)
    if seconds > 3600:
        raise _fail("duration", f"cold_start above 1h is not plausible, got {value!r}")
    return seconds


def _format_cold_start(value: float | str) -> str:
    return value if isinstance(value, str) else format_duration(value)


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# the spec


class ScalerSpec(_Model):
    """A complete, validated scaler spec. Build it with `parse_spec`."""

    name: str | None = Field(default=None, max_length=63, pattern=rf"^{_DNS_LABEL}$")
    target: Annotated[
        TargetRef,
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string", "description": "a Deployment in the default namespace"},
                    {
                        "type": "object",
                        "properties": {
                            "kind": {"enum": ["Deployment", "StatefulSet"]},
                            "namespace": {"type": "string"},
                            "name": {"type": "string"},
                        },
                        "required": ["name"],
                        "additionalProperties": False,
                    },
                ]
            }
        ),
    ]
    scaler: Literal["predictive", "reactive"] = "predictive"
    mode: Literal["apply", "dry_run"] = "apply"
    metrics: tuple[MetricSpec, ...] = Field(min_length=1, max_length=20)
    combine: Literal["weighted", "max"] = "weighted"
    tolerance: float = Field(default=0.1, ge=0, lt=1)
    min_replicas: Count = Field(default=1, ge=0, le=10000)
    max_replicas: Count = Field(default=10, ge=1, le=10000)
    algorithm: AlgorithmSpec = Field(default_factory=AlgorithmSpec)
    forecast: ForecastSpec = Field(default_factory=ForecastSpec)
    capacity: Annotated[
        CapacitySpec,
        WithJsonSchema(
            {
                "anyOf": [
                    {
                        "type": ["number", "string"],
                        "description": "request_rate per pod, or 'learn' (the default)",
                    },
                    {
                        "type": "object",
                        "description": "{<load signal>: rate | learn, utilization?: percent}",
                        "additionalProperties": {"type": ["number", "string"]},
                    },
                ],
                "examples": ["learn", {"request_rate": "0.5/s"}, "30/min"],
            }
        ),
    ] = Field(default_factory=CapacitySpec)
    cold_start: Annotated[
        float | Literal["learn"],
        BeforeValidator(_parse_cold_start),
        PlainSerializer(_format_cold_start),
        WithJsonSchema(
            {
                "anyOf": [*_DURATION_SCHEMA["anyOf"], {"const": "learn"}],
                "description": "seconds from pod created to Ready, or 'learn'",
            }
        ),
    ] = "learn"
    preheat: PreheatSpec = Field(default_factory=PreheatSpec)
    schedule: tuple[ScheduleEntry, ...] = Field(default=(), max_length=100)
    timezone: str = "UTC"
    emergency: EmergencySpec = Field(default_factory=EmergencySpec)
    reactive: ReactiveSpec = Field(default_factory=ReactiveSpec)
    # None: no stabilisation windows and no rate limits but KPA_LIKE's generous scale-up
    # limit; the forecast and the recent demand decide scale-down. Given: HPA v2 exactly.
    behavior: BehaviorSpec | None = None
    fractional: FractionalSpec = Field(default_factory=FractionalSpec)
    fallback: FallbackSpec = Field(default_factory=FallbackSpec)

    @field_validator("timezone", mode="before")
    @classmethod
    def _tz(cls, value: object) -> object:
        if not isinstance(value, str) or _zone(value) is None:
            raise _fail(
                "timezone", f"unknown time zone {value!r}; use an IANA name like Europe/Paris"
            )
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> ScalerSpec:
        issues = list(_cross_issues(self))
        if issues:
            # A SpecError passes through pydantic untouched, keeping our field paths.
            raise SpecError(issues)
        return self

    # -- derived values the policy uses -------------------------------------------------------

    @property
    def scaler_name(self) -> str:
        """`name`, or the target's name when the spec has none."""
        return self.name or self.target.name

    @property
    def weights(self) -> dict[str, float]:
        """Each metric's share in the weighted combination (equal shares when none given)."""
        if all(m.weight is None for m in self.metrics):
            return {m.name: 1.0 / len(self.metrics) for m in self.metrics}
        return {m.name: float(m.weight or 0.0) for m in self.metrics}

    @property
    def effective_behavior(self) -> BehaviorSpec:
        """`behavior` as given (HPA v2 semantics), else `RESPONSIVE_BEHAVIOR`."""
        return self.behavior if self.behavior is not None else RESPONSIVE_BEHAVIOR

    def aggregation_of(self, metric: str) -> Aggregation:
        """How `metrics:` aggregates `metric` over pods (what `Observation.metrics` holds)."""
        for m in self.metrics:
            if m.name == metric:
                return m.aggregation
        return "avg"  # not a spec metric (a trigger always names one: validated)

    def trigger_aggregation(self, trigger: EmergencyTrigger) -> Aggregation:
        """How `trigger` reads its metric: its own `aggregation`, else the metric's."""
        return trigger.aggregation or self.aggregation_of(trigger.metric)

    @property
    def extra_readings(self) -> tuple[tuple[str, Aggregation], ...]:
        """(metric, aggregation) pairs an enabled emergency trigger reads that `metrics:`
        does not aggregate that way: the callers of `decide` put these readings in
        `Observation.by_aggregation`, from the same pod samples as the metric's own."""
        if not self.emergency.enabled:
            return ()
        pairs: dict[tuple[str, Aggregation], None] = {}  # ordered, without repeats
        for trig in self.emergency.triggers:
            how = self.trigger_aggregation(trig)
            if how != self.aggregation_of(trig.metric):
                pairs[(trig.metric, how)] = None
        return tuple(pairs)

    @property
    def zone(self) -> ZoneInfo:
        zone = _zone(self.timezone)
        assert zone is not None  # validated
        return zone

    def to_document(self, *, defaults: bool = False) -> dict[str, Any]:
        """The spec in the brief's shape; only the keys the author gave unless `defaults`."""
        doc: dict[str, Any] = self.model_dump(
            mode="json", by_alias=True, exclude_unset=not defaults, exclude_none=True
        )
        return doc


def _cross_issues(spec: ScalerSpec) -> Iterable[SpecIssue]:
    """Rules spanning several keys, each reported at the key to fix."""
    if spec.min_replicas > spec.max_replicas:
        yield SpecIssue(
            field="max_replicas",
            value=spec.max_replicas,
            rule="min_gt_max",
            message=f"max_replicas ({spec.max_replicas}) must be >= min_replicas "
            f"({spec.min_replicas})",
        )
    names: set[str] = set()
    for i, m in enumerate(spec.metrics):
        if m.name in names:
            yield SpecIssue(
                field=f"metrics.{i}.name",
                value=m.name,
                rule="duplicate",
                message=f"metric {m.name!r} is listed twice",
            )
        names.add(m.name)
    given = [m.weight is not None for m in spec.metrics]
    if spec.combine == "weighted" and any(given):
        if not all(given):
            i = given.index(False)
            yield SpecIssue(
                field=f"metrics.{i}.weight",
                value=None,
                rule="weights",
                message="give every metric a weight, or none (equal shares)",
            )
        else:
            total = sum(float(m.weight or 0.0) for m in spec.metrics)
            if abs(total - 1.0) > 1e-3:
                yield SpecIssue(
                    field="metrics",
                    value=[m.weight for m in spec.metrics],
                    rule="weights",
                    message=f"weights must sum to 1 with combine: weighted, got {total:g}",
                )
    for i, entry in enumerate(spec.schedule):
        if entry.max_replicas is not None and entry.max_replicas < spec.min_replicas:
            yield SpecIssue(
                field=f"schedule.{i}.max_replicas",
                value=entry.max_replicas,
                rule="below_min",
                message=f"max_replicas ({entry.max_replicas}) is below the scaler's "
                f"min_replicas ({spec.min_replicas})",
            )
        if entry.min_replicas > spec.max_replicas:
            yield SpecIssue(
                field=f"schedule.{i}.min_replicas",
                value=entry.min_replicas,
                rule="above_max",
                message=f"min_replicas ({entry.min_replicas}) exceeds the scaler's "
                f"max_replicas ({spec.max_replicas})",
            )
    if spec.emergency.enabled and not spec.emergency.triggers:
        yield SpecIssue(
            field="emergency.triggers",
            value=[],
            rule="required",
            message="an enabled emergency needs at least one trigger",
        )
    for i, trig in enumerate(spec.emergency.triggers):
        if trig.metric not in names:
            yield SpecIssue(
                field=f"emergency.triggers.{i}.metric",
                value=trig.metric,
                rule="unknown_metric",
                message=f"trigger metric {trig.metric!r} is not one of the spec's metrics "
                f"({', '.join(sorted(names))})",
            )
    if spec.fractional.min_fraction < spec.fractional.step:
        yield SpecIssue(
            field="fractional.min_fraction",
            value=spec.fractional.min_fraction,
            rule="below_step",
            message=f"min_fraction must be >= step ({spec.fractional.step})",
        )
    if spec.fallback.replicas is not None and spec.fallback.replicas > spec.max_replicas:
        yield SpecIssue(
            field="fallback.replicas",
            value=spec.fallback.replicas,
            rule="above_max",
            message=f"fallback replicas ({spec.fallback.replicas}) exceed max_replicas "
            f"({spec.max_replicas})",
        )


def parse_spec(document: Mapping[str, object]) -> ScalerSpec:
    """Validate a spec document (YAML after `yaml.safe_load`, or JSON); raise `SpecError`."""
    if not isinstance(document, Mapping):
        raise SpecError(
            [
                SpecIssue(
                    field="(root)",
                    value=document,
                    rule="type",
                    message="a scaler spec is a mapping of keys to values",
                )
            ]
        )
    try:
        return ScalerSpec.model_validate(dict(document))
    except ValidationError as err:
        raise SpecError(_issues_from(err)) from None
