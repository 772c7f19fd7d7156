"""Parse and check a pushed body (text exposition format 0.0.4).

prometheus_client's parser does the tokenising; it does not check what the Pushgateway
rejects, so that is done here: samples with timestamps, duplicate series, bad label names.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from app.api.pushgateway.grouping import LABEL_NAME
from app.errors import BadRequest

__all__ = ["InconsistentPush", "PushedFamily", "PushedSample", "parse_push_body"]


class InconsistentPush(BadRequest):
    """A body that parses but that the Pushgateway's consistency check refuses (timestamps,
    duplicate series): unlike a parse error, it stamps the group's push_failure_time_seconds."""


@dataclass(frozen=True, slots=True)
class PushedSample:
    name: str  # the sample's own name: x_total, x_bucket, x_sum, ...
    labels: dict[str, str]  # body labels overridden by the grouping key
    value: float
    items: tuple[tuple[str, str], ...]  # the labels, sorted: the series identity


@dataclass(frozen=True, slots=True)
class PushedFamily:
    name: str
    type: str  # gauge, counter, histogram, summary, untyped, ...
    help: str
    samples: tuple[PushedSample, ...]


def parse_push_body(text: str, grouping: dict[str, str]) -> list[PushedFamily]:
    """Raises BadRequest with the Pushgateway's reason when the body is not acceptable."""
    declared = _declared_types(text)
    try:
        parsed = list(text_string_to_metric_families(text))
    except Exception as exc:  # the parser raises ValueError, IndexError, KeyError, ...
        raise BadRequest(
            f"text format parsing error{_where(text)}: {exc or type(exc).__name__}",
            code="parse_error",
        ) from exc
    families: dict[str, PushedFamily] = {}
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for metric in parsed:
        kind = "untyped" if metric.type == "unknown" else metric.type
        name = metric.name
        if kind == "counter" and name not in declared and f"{name}_total" in declared:
            name += "_total"  # the parser strips it; the Pushgateway keeps the name as sent
        if name in families and families[name].type != kind:
            raise BadRequest(
                f"metric {name!r} is declared with two types in one push",
                code="type_clash",
            )
        pushed: list[PushedSample] = []
        for sample in metric.samples:
            if sample.timestamp is not None:
                raise InconsistentPush(
                    f"pushed metrics must not have timestamps (sample {sample.name!r})",
                    code="timestamp_not_allowed",
                )
            for label in sample.labels:
                if not LABEL_NAME.match(label) or label.startswith("__"):
                    raise BadRequest(f"improper label name {label!r}", code="invalid_label")
            labels = {**sample.labels, **grouping}
            items = tuple(sorted(labels.items()))
            identity = (sample.name, items)
            if identity in seen:
                raise InconsistentPush(
                    f"duplicate series {sample.name}{_render(labels)} in the pushed metrics",
                    code="duplicate_series",
                )
            seen.add(identity)
            pushed.append(PushedSample(sample.name, labels, _value(sample), items))
        previous = families.get(name)
        samples = (previous.samples if previous else ()) + tuple(pushed)
        families[name] = PushedFamily(name, kind, metric.documentation, samples)
    return list(families.values())


def _value(sample: Sample) -> float:
    """The sample's value as a float; an integer too large for one (the parser keeps 400
    digits as an int) is refused as the Pushgateway's ParseFloat refuses it: out of range."""
    try:
        return float(sample.value)
    except OverflowError:
        raise BadRequest(
            f"text format parsing error: the value of {sample.name!r} is out of range "
            "for a 64-bit float",
            code="parse_error",
        ) from None


def _where(text: str) -> str:
    """ " on line N: <line>" for the first line the parser refuses on its own, "" when each
    line parses alone (the parser names neither the line nor, often, the problem)."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            list(text_string_to_metric_families(line + "\n"))
        except Exception:  # whatever the parser raises, this is the line
            shown = line if len(line) <= 200 else line[:200] + "..."
            unclosed = len(re.findall(r'(?<!\\)"', line)) % 2 == 1
            hint = " (a label value's closing quote is missing)" if unclosed else ""
            return f" on line {number}{hint}: {shown!r}"
    return ""


def _declared_types(text: str) -> set[str]:
    # prometheus_client's parser silently merges a family declared twice; the Pushgateway
    # (Go's parser) refuses it, and so do we.
    declared: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            parts = line.split()
            if len(parts) >= 3:
                if parts[2] in declared:
                    raise BadRequest(
                        f"second TYPE line for metric name {parts[2]!r}", code="type_clash"
                    )
                declared.add(parts[2])
    return declared


def _render(labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def format_value(value: float) -> str:
    """Render a value as the Pushgateway's JSON API does: Go's FormatFloat(v, 'g', -1, 64),
    the shortest digits that read back exactly, in exponent form below 1e-4 and from 1e6 on
    (`1e+06`, `1.234567e+06`, `1e-05`)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    shortest = Decimal(repr(float(value))).normalize()  # repr: the shortest round-trip too
    sign, digits, exponent = shortest.as_tuple()
    assert isinstance(exponent, int)  # finite
    exp = len(digits) + exponent - 1  # the power of ten of the first digit
    if -4 <= exp < 6:
        return format(shortest, "f")
    mantissa = "".join(map(str, digits))
    fraction = "." + mantissa[1:] if len(mantissa) > 1 else ""
    return f"{'-' if sign else ''}{mantissa[0]}{fraction}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
