"""The whole spec (`ScalerSpec`), the rules spanning several of its keys, and `parse_spec`."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import (
    BeforeValidator,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from app.policy.spec.errors import SpecError, SpecIssue, _fail, _issues_from
from app.policy.spec.objective import ObjectiveSpec
from app.policy.spec.parts import (
    AlgorithmSpec,
    CapacitySpec,
    EmergencySpec,
    EmergencyTrigger,
    FallbackSpec,
    ForecastSpec,
    FractionalSpec,
    MetricSpec,
    PreheatSpec,
    ReactiveSpec,
    ScheduleEntry,
    TargetRef,
)
from app.policy.spec.rules import RESPONSIVE_BEHAVIOR, BehaviorSpec
from app.policy.spec.units import (
    _DNS_LABEL,
    _DURATION_SCHEMA,
    Aggregation,
    Count,
    Number,
    _format_cold_start,
    _Model,
    _parse_cold_start,
)

__all__ = ["ScalerSpec", "parse_spec"]


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


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
    tolerance: Number = Field(default=0.1, ge=0, lt=1)
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
    # p95 latency objectives the policy sizes for (app.policy.objective); None: none stated.
    objective: ObjectiveSpec | None = None

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
        """The spec in the example spec's shape; only the keys the author gave unless `defaults`."""
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
            yield _above_max(f"schedule.{i}.min_replicas", entry.min_replicas, spec.max_replicas)
        if entry.max_replicas is not None and entry.max_replicas > spec.max_replicas:
            # Caps win over floors and max_replicas over every cap: this one never binds.
            issue = _above_max(f"schedule.{i}.max_replicas", entry.max_replicas, spec.max_replicas)
            issue["message"] = (
                f"{issue['message']}: a schedule cap only lowers the ceiling; to allow more "
                "pods at these hours raise max_replicas and cap the other hours instead"
            )
            yield issue
    yield from _ambiguous_entries(spec.schedule)
    if spec.preheat.min_ready > spec.max_replicas:
        yield _above_max("preheat.min_ready", spec.preheat.min_ready, spec.max_replicas)
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
        yield _above_max("fallback.replicas", spec.fallback.replicas, spec.max_replicas)


def _above_max(field: str, value: int, max_replicas: int) -> SpecIssue:
    """A count the scaler's max_replicas would never let happen."""
    name = field.rsplit(".", 1)[-1]
    return SpecIssue(
        field=field,
        value=value,
        rule="above_max",
        message=f"{name} ({value}) exceeds the scaler's max_replicas ({max_replicas})",
    )


def _firings(cron: str) -> object:
    """What a cron expression fires at, the same however it is written ("0 9 * * 1-5" and
    "00 09 * * mon-fri"; `*` and its full range); the text itself if croniter cannot say."""
    try:
        return repr(croniter.expand(cron))
    except Exception:  # validated already; any doubt: compare the text
        return " ".join(cron.split())


def _ambiguous_entries(schedule: tuple[ScheduleEntry, ...]) -> Iterable[SpecIssue]:
    """Two entries firing at the same times with different bounds: both fire, and which
    floor (or cap) is meant is ambiguous. Entries that only sometimes fire together
    ("0 9 * * *" and "0 9 * * 1-5") are a pattern: at a tie the higher floor holds."""
    first: dict[object, int] = {}
    for i, entry in enumerate(schedule):
        when = _firings(entry.time)
        j = first.setdefault(when, i)
        other = schedule[j]
        bounds = [
            f"{key} {a if a is not None else 'unset'} and {b if b is not None else 'unset'}"
            for key, a, b in (
                ("min_replicas", other.min_replicas, entry.min_replicas),
                ("max_replicas", other.max_replicas, entry.max_replicas),
            )
            if a != b
        ]
        if j == i or not bounds:
            continue
        yield SpecIssue(
            field=f"schedule.{i}.time",
            value=entry.time,
            rule="ambiguous",
            message=f"schedule.{j} and schedule.{i} both fire at {other.time!r} with different "
            f"bounds ({'; '.join(bounds)}): keep one entry",
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
        issues = _issues_from(err, ScalerSpec)
    raise SpecError([*issues, *_cross_issues_besides(document, issues)])


# Which keys, besides its own field, a cross-key rule reads: set aside, they would be judged
# at their defaults, and the rule's verdict would be about values the author did not write.
_RULE_READS = {
    "min_gt_max": {"min_replicas", "max_replicas"},
    "below_min": {"min_replicas"},
    "above_max": {"max_replicas"},
    "weights": {"combine"},
}


def _cross_issues_besides(
    document: Mapping[str, object], issues: list[SpecIssue]
) -> list[SpecIssue]:
    """The cross-key issues the field issues hid (pydantic runs cross-key rules only on a
    valid document): check again with the faulty keys (faulty schedule entries) set aside,
    so that one bad cron does not hide a min_replicas above max_replicas."""
    doc = dict(document)
    removed: set[str] = set()
    bad_entries: set[int] = set()
    for issue in issues:
        top, _, rest = str(issue["field"]).partition(".")
        index = rest.partition(".")[0]
        if top == "schedule" and index.isdigit():
            bad_entries.add(int(index))
        else:
            removed.add(top)
    for key in removed:
        doc.pop(key, None)
    kept: list[int] = []  # position in the checked schedule -> index in the author's
    if bad_entries and isinstance(doc.get("schedule"), list | tuple):
        entries = list(doc["schedule"])  # type: ignore[call-overload]
        kept = [i for i in range(len(entries)) if i not in bad_entries]
        doc["schedule"] = [entries[i] for i in kept]
    try:
        ScalerSpec.model_validate(doc)
    except SpecError as err:
        found = err.issues
    except ValidationError:
        return []  # set aside, a required key is missing: the field issues say enough
    else:
        return []
    out: list[SpecIssue] = []
    for issue in found:
        field = str(issue["field"])
        top, _, rest = field.partition(".")
        if top in removed or _RULE_READS.get(str(issue["rule"]), set()) & removed:
            continue
        index, _, tail = rest.partition(".")
        message = str(issue["message"])
        if top == "schedule" and kept and index.isdigit():
            field = ".".join(p for p in ("schedule", str(kept[int(index)]), tail) if p)
            # the entries a message names, by their places in the author's list too
            message = re.sub(r"\bschedule\.(\d+)", lambda m: f"schedule.{kept[int(m[1])]}", message)
        out.append(SpecIssue({**issue, "field": field, "message": message}))
    return out
