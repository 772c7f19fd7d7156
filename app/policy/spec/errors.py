"""The spec's errors: every problem as {field, value, rule, message}, at the key to fix.

`field` is a dotted path into the document ("metrics.1.target"), `rule` a stable code. A
`SpecError` is deliberately not a ValueError: raised inside a pydantic validator it passes
through untouched, keeping the exact field paths of cross-key rules."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

__all__ = ["SpecError", "SpecIssue"]


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


def _issues_from(err: ValidationError, root: type[BaseModel]) -> list[SpecIssue]:
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
            msg = f"unknown key {loc[-1]!r}" + _did_you_mean(root, loc[:-1], loc[-1])
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


def _model_at(root: type[BaseModel], path: list[str]) -> type[BaseModel] | None:
    """The spec model that the dotted path (list indices included) points into."""
    model: type[BaseModel] | None = root
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


def _did_you_mean(root: type[BaseModel], parent: list[str], key: str) -> str:
    model = _model_at(root, parent)
    if model is None:
        return ""
    known = [f.alias or name for name, f in model.model_fields.items()]
    close = difflib.get_close_matches(key, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"
