"""Annotations: a scaler's events (actions, dry runs, drifts, errors, spec changes) tagged for
Grafana, filtered by a query of scaler names and `kind:<k>` words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, get_args

from app.api.context import AppContext
from app.api.grafana.frames import table
from app.api.grafana.inputs import scaler_allowed
from app.errors import BadRequest
from app.store import catalog
from app.store.scalers import EventKind, StoredEvent
from app.store.selector import Matcher

__all__ = ["ANNOTATION_KINDS", "Annotation", "annotation_table", "find_annotations"]

ANNOTATION_KINDS = ("action", "dry_run", "drift", "error", "spec")  # the default
_KNOWN_KINDS: tuple[str, ...] = get_args(EventKind)


@dataclass(frozen=True, slots=True)
class Annotation:
    time_ms: int
    title: str
    text: str
    tags: list[str]


def _annotation(event: StoredEvent) -> Annotation:
    tags = [event.scaler, event.kind]
    codes = {str(r.get("code", "")) for r in event.payload.get("reasons", []) or []}
    if codes & {"emergency.start", "emergency.active", "bounds.burst_floor"}:
        tags.append("burst")
    if "schedule.active" in codes:
        tags.append("schedule")
    if "predictive.floor" in codes:
        tags.append("forecast")
    title = f"{event.scaler}: {event.kind}"
    if event.replicas is not None:
        title += f" → {event.replicas}"
    return Annotation(event.ts_us // 1000, title, event.message, tags)


def _annotation_filter(query: str | None) -> tuple[list[str] | None, list[str]]:
    """An annotation query: scaler names and/or `kind:<k>` words, space or comma separated;
    empty or `*` means every scaler and the default kinds. An unknown kind is a BadRequest."""
    scalers: list[str] = []
    kinds: list[str] = []
    for word in re.split(r"[\s,]+", (query or "").strip()):
        if not word or word == "*":
            continue
        if word.startswith("kind:"):
            kind = word.removeprefix("kind:")
            if kind not in _KNOWN_KINDS:  # a typo would read as a quiet day: say so
                raise BadRequest(
                    f"unknown event kind {kind!r} in the annotation query {query!r}; known: "
                    + ", ".join(_KNOWN_KINDS),
                    code="invalid_annotation_query",
                    details={"kind": kind, "allowed": list(_KNOWN_KINDS)},
                )
            kinds.append(kind)
        else:
            scalers.append(word)
    return (scalers or None), (kinds or list(ANNOTATION_KINDS))


async def find_annotations(
    ctx: AppContext,
    query: str | None,
    start_ms: int,
    end_ms: int,
    extra: tuple[Matcher, ...],
) -> list[Annotation]:
    scalers, kinds = _annotation_filter(query)
    async with ctx.db.read() as conn:
        events = await catalog.events_between(
            conn, start_us=start_ms * 1000, end_us=end_ms * 1000, scalers=scalers, kinds=kinds
        )
    return [_annotation(e) for e in events if scaler_allowed(e.scaler, extra)]


def annotation_table(annotations: Sequence[Annotation]) -> dict[str, Any]:
    return table(
        [
            ("time", "time"),
            ("timeEnd", "time"),
            ("title", "string"),
            ("text", "string"),
            ("tags", "string"),
        ],
        [[a.time_ms, a.time_ms, a.title, a.text, ",".join(a.tags)] for a in annotations],
    )
