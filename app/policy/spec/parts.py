"""The spec's parts, one model each: what to scale, the metrics, the forecast, the spares, the
schedule, the burst, the capacity, the reactive window, the fractional plan, the fallback."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Literal

from croniter import CroniterBadDateError, croniter
from pydantic import (
    Field,
    JsonValue,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_serializer,
    model_validator,
)

from app.policy.spec.algorithms import KNOWN_ALGORITHMS
from app.policy.spec.errors import _fail
from app.policy.spec.units import (
    _DNS_LABEL,
    _DNS_SUBDOMAIN,
    _LABEL_NAME,
    _METRIC_NAME,
    NOT_TEXT,
    Aggregation,
    Count,
    Duration,
    Flag,
    Number,
    _check_percent,
    _format_percent,
    _is_number,
    _Model,
    _parse_rate,
    _percent_fraction,
)

__all__ = [
    "MAX_TARGET",
    "AlgorithmSpec",
    "CapacitySpec",
    "EmergencySpec",
    "EmergencyTrigger",
    "FallbackSpec",
    "ForecastSpec",
    "FractionalSpec",
    "MetricSource",
    "MetricSpec",
    "MetricTarget",
    "PreheatSpec",
    "ReactiveSpec",
    "ScheduleEntry",
    "TargetRef",
]


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


MAX_TARGET = 1e12
"""The largest plain or `<N` target: per pod, past any reading one pod makes (GPU memory in
bytes is ~1.4e11); the policy multiplies a target by the pods (10,000 at most), which a
target near 1e308 overflows to infinity. A percent target is at most 100."""


class MetricTarget(_Model):
    """A metric's target value per pod: "85%" (percent points), "<5" or a plain number."""

    value: Number = Field(gt=0, le=MAX_TARGET)
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
            elif _is_number(text):  # '5' quoted: a number as text, as the spec's numbers refuse it
                raise _fail(
                    "target",
                    f"{data!r} is text: a plain target is a number (write {text} without "
                    f"quotes), or write '{text}%' or '<{text}'",
                )
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
        elif value > MAX_TARGET:
            raise _fail(
                "target",
                f"a target must be at most {MAX_TARGET:g} per pod, got {data!r}: no pod reads "
                "that much, and the policy's arithmetic (the target times the pods) overflows",
            )
        return {"value": value, "form": form}

    @model_serializer(mode="plain")
    def _render(self) -> str | float | int:
        v: float | int = int(self.value) if self.value == int(self.value) else self.value
        if self.form == "percent":
            return f"{v}%"
        if self.form == "below":
            return f"<{v}"
        return v


class MetricSource(_Model):
    """Where a metric is read from instead of the pushes: a PromQL instant query on the
    Prometheus server the service is configured with (CIUIC_PROMETHEUS_URL), evaluated at each
    decision. Its result is the metric's value: one sample (a scalar, or a vector of one
    series), or one series per pod (each with a distinct `pod` label), aggregated over the
    pods as the metric says. Anything else reads as missing, and the decision says why."""

    prometheus: str = Field(
        min_length=1,
        max_length=4000,
        description='PromQL instant query, e.g. sum(vllm:num_requests_waiting{namespace="llm"})',
    )

    @field_validator("prometheus")
    @classmethod
    def _query(cls, value: str) -> str:
        if not value.strip():
            raise _fail("prometheus_query", "the Prometheus query is empty")
        return value


class MetricSpec(_Model):
    """One metric the reactive step scales on (see `app.policy.reactive`): pushed to Ciuic
    (matched by name and `selector`), or read from Prometheus (`source`)."""

    name: str = Field(pattern=rf"^{_METRIC_NAME}$", max_length=200)
    target: Annotated[
        MetricTarget,
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TARGET},
                    {"type": "string", "pattern": r"^\s*(<\s*\d+(\.\d+)?|\d+(\.\d+)?\s*%)\s*$"},
                ],
                "description": "per-pod target: '85%' (percent points), '<5', or a number",
                "examples": ["85%", "<5", 5],
            }
        ),
    ]
    weight: Annotated[float, Field(ge=0), NOT_TEXT] | None = None
    selector: dict[str, str] = Field(default_factory=dict)
    aggregation: Aggregation = "avg"
    window: Duration = 60.0
    source: MetricSource | None = None

    @model_validator(mode="after")
    def _one_source(self) -> MetricSpec:
        # The query selects its own series: a selector beside it would be silently ignored.
        if self.source is not None and self.selector:
            raise _fail(
                "selector_with_source",
                "a metric read from Prometheus selects its series in its query: drop `selector`",
                sub="selector",
            )
        return self

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

    enabled: Flag = False
    min_ready: Count = Field(default=1, ge=0, le=1000)
    strategy: Literal["eager", "lazy"] = "eager"


# (name, lowest, highest) of each cron field, in order; names (jan, mon) pass croniter.
_CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
)


def _never_fires(value: str) -> str | None:
    """Each field valid, but no date has them together (day 31 of February): a floor that
    would never apply. croniter gives up after a few years' search (a few ms)."""
    try:
        croniter(value, datetime(2000, 1, 1, tzinfo=UTC)).get_next(float)
    except CroniterBadDateError:
        return (
            "it never fires: no date has that day-of-month in that month "
            "(day-of-month and month together)"
        )
    return None


def _cron_problem(value: str) -> str | None:
    """What is wrong with a 5-field cron expression, field by field; None when it is valid.

    croniter only says "not acceptable", so each field is tried alone (the others `*`) to
    name the one at fault and its range."""
    fields = value.split()
    if len(fields) != len(_CRON_FIELDS):
        return (
            f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), "
            f"this one has {len(fields)}"
        )
    if croniter.is_valid(value):
        return _never_fires(value)
    problems: list[str] = []
    for i, (name, low, high) in enumerate(_CRON_FIELDS):
        alone = ["*"] * len(_CRON_FIELDS)
        alone[i] = fields[i]
        if croniter.is_valid(" ".join(alone)):
            continue
        # Numbers after "/" are steps, not values of the field.
        values = [int(n) for n in re.findall(r"(?<![/\d])\d+", fields[i])]
        outside = [v for v in values if not low <= v <= high]
        if outside:
            problems.append(f"{name} {outside[0]} is out of range {low}-{high}")
        else:
            problems.append(
                f"{name} {fields[i]!r} is not valid: use a number {low}-{high}, a list (1,2), "
                "a range (1-5), a step (*/15) or *"
            )
    if not problems:  # each field is fine alone; croniter rejects the combination
        problems.append("not a valid cron expression (minute hour day-of-month month day-of-week)")
    return "; ".join(problems)


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
        problem = _cron_problem(value)
        if problem is not None:
            raise _fail("cron", f"{value!r} is not a valid cron expression: {problem}")
        return value

    @field_validator("duration")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise _fail("duration", "duration must be > 0")
        return value

    @field_validator("max_replicas")
    @classmethod
    def _min_le_max(cls, value: int | None, info: ValidationInfo) -> int | None:
        # A field validator (min_replicas is validated first): it still runs when `time` is
        # wrong, so one entry reports both of its problems.
        low = info.data.get("min_replicas")
        if value is not None and isinstance(low, int) and value < low:
            raise _fail(
                "min_gt_max",
                f"max_replicas ({value}) is below min_replicas ({low})",
                value=value,
            )
        return value


class EmergencyTrigger(_Model):
    """Burst when `metric` stays above `threshold` for `duration`.

    `aggregation` is how the trigger reads the metric over the target's pods: None (the
    default) reads it as aggregated in `metrics:` (per pod by default, `avg`), so the product's
    `threshold: 50` on `request_queue` means 50 waiting per pod; `sum` compares the threshold
    with the total over pods (50 waiting in all), `max` with the busiest pod. The reactive
    step keeps comparing the metric's own aggregation with its per-pod target."""

    metric: str = Field(pattern=rf"^{_METRIC_NAME}$")
    # >= 0: the metrics are counts, rates and percentages, never below 0, so a negative
    # threshold is always exceeded (a burst that never ends); 0 bursts while anything waits.
    threshold: Number = Field(json_schema_extra={"minimum": 0})
    duration: Duration = 30.0
    aggregation: Aggregation | None = None

    @field_validator("threshold")
    @classmethod
    def _not_negative(cls, value: float) -> float:
        if value < 0:
            raise _fail(
                "threshold",
                f"threshold must be >= 0, got {value:g}: a metric is never below a negative "
                "threshold, so the burst would never end",
            )
        return value


class EmergencySpec(_Model):
    """Knative-style panic mode for load the forecast did not see."""

    enabled: Flag = False
    burst_multiplier: Number = Field(default=2.0, gt=1, le=100)  # the cap on a burst
    triggers: tuple[EmergencyTrigger, ...] = ()
    stable_window: Duration = 0.0  # hold a burst this long after the last reading over


class CapacitySpec(_Model):
    """What one pod serves of the load signal: `{request_rate: 0.5/s}`, `30/min`, or `learn`
    (the default): learned online from what the pods push (`per_pod` is then None).

    `utilization` is the share of that capacity to plan for (default 100%)."""

    signal: str = Field(default="request_rate", pattern=rf"^{_METRIC_NAME}$")
    per_pod: Annotated[float, Field(gt=0), NOT_TEXT] | None = None  # units/s; None: learned
    per_unit: Literal["s", "min", "h"] = "s"  # how it was written, for rendering back
    utilization: Number = Field(default=1.0, gt=0, le=1)

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
    panic: Number = Field(default=2.0, gt=1, le=100)
    drain: Duration = 30.0

    @field_validator("window", "drain")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise _fail("duration", "must be > 0")
        return value


class ForecastSpec(_Model):
    """How the predictive step reads a forecast (see `app.policy.predictive`)."""

    buffer: Duration = 60.0  # extra lead beyond the cold start
    # The band to provision for: 0.5 is the calibrated median (the forecast's own bias
    # removed); higher trades pods for fewer under-forecasts (the tune job searches it).
    quantile: Number = Field(default=0.5, ge=0.5, lt=1)
    max_age: Duration = 1800.0  # older forecasts are ignored

    @field_validator("max_age")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise _fail("duration", "max_age must be > 0")
        return value


class FractionalSpec(_Model):
    """Capacity in steps of a pod: 3.7 -> 3 full + 1 at 70%; remainders < min_fraction absorbed."""

    enabled: Flag = False
    step: Number = 0.1
    min_fraction: Number = Field(default=0.3, gt=0, lt=1)

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
