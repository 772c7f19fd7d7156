"""The request bodies Grafana sends. Grafana sends much more than we read: extra keys are
allowed everywhere, and numbers where text is expected are taken as text.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from app.timetext import MAX_DURATION_S

__all__ = [
    "AnnotationSpec",
    "AnnotationsIn",
    "Filter",
    "Loose",
    "MetricsIn",
    "PayloadOptionsIn",
    "QueryIn",
    "SearchIn",
    "TagValuesIn",
    "Target",
    "Text",
    "TimeRange",
    "VariableIn",
]


def _text(value: object) -> object:
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


Text = Annotated[str, BeforeValidator(_text)]


class Loose(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class TimeRange(Loose):
    from_: Annotated[str | float, Field(alias="from")]
    to: str | float


class Filter(Loose):
    key: Text
    operator: Text = "="
    value: Text = ""


class Target(Loose):
    refId: str = "A"
    target: str | None = None
    payload: dict[str, Any] | str | None = None
    type: str | None = None  # simple-json: "timeserie" or "table"
    hide: bool = False


class QueryIn(Loose):
    range: TimeRange
    # At most the longest duration the project reads (100 years): 2**63 ms was a 500 at the
    # database; NaN and infinities are refused with the rest.
    intervalMs: Annotated[
        float | None, Field(ge=0, le=MAX_DURATION_S * 1000, allow_inf_nan=False)
    ] = None
    maxDataPoints: Annotated[int | None, Field(ge=1)] = None
    targets: list[Target] = Field(default_factory=list)
    filters: list[Filter] = Field(default_factory=list)
    adhocFilters: list[Filter] = Field(default_factory=list)
    requestId: str | None = None


class MetricsIn(Loose):
    metric: str | None = None
    payload: dict[str, Any] | None = None


class PayloadOptionsIn(Loose):
    metric: str
    name: str
    payload: dict[str, Any] | None = None


class VariableIn(Loose):
    payload: dict[str, Any] | str | None = None
    target: str | None = None
    range: TimeRange | None = None


class TagValuesIn(Loose):
    key: Text


class SearchIn(Loose):
    target: str | None = None


class AnnotationSpec(Loose):
    name: str | None = None
    query: str | None = None


class AnnotationsIn(Loose):
    range: TimeRange
    annotation: AnnotationSpec = Field(default_factory=AnnotationSpec)
