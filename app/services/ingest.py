"""Ingestion: the one path from a push to the store, whichever protocol carried it.

`ingest` writes the rows (and, for a Pushgateway push, the group) in one transaction, then,
only once it committed: caches the new series ids (the store's rule: a rolled-back write must
not leave the cache pointing at rows that do not exist), wakes the reconciler for a sample over
an emergency trigger, and counts the push. A refusal (SeriesLimitExceeded, TypeClash) rolls
everything back and does none of that.

A Pushgateway push refused for its content (`push_failed`: a type clash with another group, a
duplicate series, a timestamp) leaves one trace, as the real Pushgateway does: the group's
`push_failure_time_seconds`, written in a transaction of its own after the refused one rolled
back. That is bookkeeping about the group, not data: no family and no sample changes, and a
pod polling `last_push_successful` learns its pushes are being refused.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from app.services.shell import Shell
from app.store import pushgroups
from app.store.db import is_unavailable
from app.store.errors import TypeClash
from app.store.series import SampleRow

log = logging.getLogger("ciuic.ingest")

__all__ = ["GroupPush", "delete_group", "ingest", "push_failed"]


@dataclass(frozen=True, slots=True)
class GroupPush:
    """A Pushgateway group as pushed: PUT replaces it (`replace_all`), POST the families named."""

    grouping: dict[str, str]
    families: Sequence[pushgroups.GroupFamily]
    replace_all: bool


async def ingest(
    shell: Shell,
    rows: Sequence[SampleRow],
    *,
    now_us: int,
    protocol: str,
    group: GroupPush | None = None,
) -> int:
    """Store `rows` (all or nothing); returns the samples written (a batch repeating a
    (series, time) keeps its last value)."""
    try:
        async with shell.db.transaction() as conn:
            if group is not None:
                await pushgroups.push(
                    conn,
                    group.grouping,
                    group.families,
                    replace_all=group.replace_all,
                    now_us=now_us,
                )
            written = await shell.series.write(conn, rows, now_us=now_us)
    except TypeClash:
        if group is not None:
            await push_failed(shell, group.grouping, now_us=now_us)
        raise
    shell.series.remember(written)
    shell.wakeup.check(rows)  # a burst over an emergency trigger: reconcile now
    shell.telemetry.pushes.labels(protocol, "accepted").inc()
    shell.telemetry.samples.labels(protocol).inc(written.samples)
    return written.samples


async def delete_group(shell: Shell, grouping: dict[str, str]) -> None:
    """Forget a Pushgateway group (its samples stay in the time series)."""
    async with shell.db.transaction() as conn:
        await pushgroups.delete_group(conn, grouping)
    shell.telemetry.pushes.labels("pushgateway", "deleted").inc()


async def push_failed(shell: Shell, grouping: dict[str, str], *, now_us: int) -> None:
    """Record that a push to `grouping` was refused for its content (see the module's note).
    Best effort: with the database down the refusal still stands (a 400 for bad input, not a
    503), only its timestamp on the group is lost."""
    try:
        async with shell.db.transaction() as conn:
            await pushgroups.record_failure(conn, grouping, now_us=now_us)
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        log.warning("the refused push's failure time was not recorded: %s", exc)
