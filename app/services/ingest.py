"""Ingestion: the one path from a push to the store, whichever protocol carried it.

`ingest` writes the rows (and, for a Pushgateway push, the group) in one transaction, then,
only once it committed: caches the new series ids (the store's rule: a rolled-back write must
not leave the cache pointing at rows that do not exist), wakes the reconciler for a sample over
an emergency trigger, and counts the push. A refusal (SeriesLimitExceeded, TypeClash) rolls
everything back and does none of that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.services.shell import Shell
from app.store import pushgroups
from app.store.series import SampleRow

__all__ = ["GroupPush", "delete_group", "ingest"]


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
