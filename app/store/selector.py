"""Series selectors in PromQL style: `name{label="v", other=~"re.*", x!="y", y!~"z"}`.

Regular expressions are anchored, as in PromQL. Parsing is strict: a malformed selector is a
`SelectorError` naming the position, never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Matcher", "Selector", "SelectorError", "parse_selector"]


class SelectorError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Matcher:
    label: str
    op: str  # =, !=, =~, !~
    value: str
    pattern: re.Pattern[str] | None = None

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.label, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self.pattern is not None
        hit = self.pattern.fullmatch(actual) is not None
        return hit if self.op == "=~" else not hit


@dataclass(frozen=True, slots=True)
class Selector:
    name: str | None
    matchers: tuple[Matcher, ...]

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        if self.name is not None and name != self.name:
            return False
        full = {**labels, "__name__": name}
        return all(m.matches(full) for m in self.matchers)


_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_OP = re.compile(r"=~|!~|!=|=")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"|\'((?:[^\'\\]|\\.)*)\'')
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


def _unescape(raw: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), raw)


def parse_selector(text: str) -> Selector:
    s = text.strip()
    pos = 0
    name: str | None = None
    m = _NAME.match(s, pos)
    if m:
        name = m.group(0)
        pos = m.end()
    matchers: list[Matcher] = []
    if pos < len(s):
        if s[pos] != "{":
            raise SelectorError(f"unexpected {s[pos]!r} at position {pos} in {text!r}")
        pos += 1
        while True:
            while pos < len(s) and s[pos].isspace():
                pos += 1
            if pos < len(s) and s[pos] == "}":
                pos += 1
                break
            lm = _LABEL.match(s, pos)
            if not lm:
                raise SelectorError(f"expected a label name at position {pos} in {text!r}")
            label = lm.group(0)
            pos = lm.end()
            while pos < len(s) and s[pos].isspace():
                pos += 1
            om = _OP.match(s, pos)
            if not om:
                raise SelectorError(f"expected =, !=, =~ or !~ at position {pos} in {text!r}")
            op = om.group(0)
            pos = om.end()
            while pos < len(s) and s[pos].isspace():
                pos += 1
            sm = _STRING.match(s, pos)
            if not sm:
                raise SelectorError(f"expected a quoted value at position {pos} in {text!r}")
            value = _unescape(sm.group(1) if sm.group(1) is not None else sm.group(2))
            pos = sm.end()
            pattern = None
            if op in ("=~", "!~"):
                try:
                    pattern = re.compile(value)
                except re.error as exc:
                    raise SelectorError(f"invalid regular expression {value!r}: {exc}") from exc
            if label == "__name__" and op == "=" and name is None:
                name = value
            else:
                matchers.append(Matcher(label, op, value, pattern))
            while pos < len(s) and s[pos].isspace():
                pos += 1
            if pos < len(s) and s[pos] == ",":
                pos += 1
                continue
            if pos < len(s) and s[pos] == "}":
                pos += 1
                break
            raise SelectorError(f"expected ',' or '}}' at position {pos} in {text!r}")
        if pos != len(s):
            raise SelectorError(f"unexpected text after the selector at position {pos}")
    if name is None and not any(m.op in ("=", "=~") and m.value for m in matchers):
        raise SelectorError(
            "a selector needs a metric name or at least one non-empty matcher",
        )
    return Selector(name, tuple(matchers))
