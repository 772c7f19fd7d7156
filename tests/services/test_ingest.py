"""Ingestion's one path: what happens after a commit happens only after a commit.

A push both routes carry reaches `ingest`: on success the new series ids are cached, a sample
over an emergency trigger wakes the reconciler, the push is counted. A refused push (a job over
its series limit) rolls back and does none of the three: the cache never points at rows that
were rolled back.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.policy import parse_spec
from app.services.ingest import GroupPush, delete_group, ingest
from app.services.shell import Shell
from app.store.errors import SeriesLimitExceeded
from app.store.pushgroups import GroupFamily, list_groups
from app.store.series import SampleRow, SeriesKey
from app.store.tables import samples
from tests.services.conftest import SPEC


def rows(shell: Shell, job: str, pods: int, queue: float) -> list[SampleRow]:
    at = shell.clock.stamp_us()
    return [
        SampleRow(SeriesKey.of("request_queue", {"job": job, "pod": f"p{i}"}), at, queue)
        for i in range(pods)
    ]


def counted(shell: Shell, protocol: str) -> tuple[float, float]:
    pushes = shell.telemetry.pushes.labels(protocol, "accepted")._value.get()
    stored = shell.telemetry.samples.labels(protocol)._value.get()
    return pushes, stored


async def stored_samples(shell: Shell) -> int:
    async with shell.db.read() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(samples)) or 0)


@pytest.mark.parametrize(
    ("pods", "accepted"),
    [
        pytest.param(3, True, id="within-the-series-limit-all-follows-the-commit"),
        pytest.param(4, False, id="over-it-nothing-follows-the-rollback"),
    ],
)
async def test_what_follows_a_write_follows_only_its_commit(
    shell: Shell, pods: int, accepted: bool
) -> None:
    shell.wakeup.update("llm", parse_spec(SPEC))
    batch = rows(shell, "pods", pods, queue=100.0)  # every sample over the trigger's 50
    if accepted:
        assert await ingest(shell, batch, now_us=shell.clock.stamp_us(), protocol="json") == pods
    else:
        with pytest.raises(SeriesLimitExceeded):
            await ingest(shell, batch, now_us=shell.clock.stamp_us(), protocol="json")
    assert len(shell.series._ids) == (pods if accepted else 0)  # ids cached after commit only
    assert shell.wakeup.event.is_set() is accepted
    assert counted(shell, "json") == ((1.0, float(pods)) if accepted else (0.0, 0.0))
    assert await stored_samples(shell) == (pods if accepted else 0)


async def test_a_group_and_its_samples_commit_together(shell: Shell) -> None:
    grouping = {"job": "pods", "instance": "p0"}
    family = GroupFamily("request_queue", "gauge", "", [("request_queue", {}, 7.0)])
    group = GroupPush(grouping, [family], replace_all=True)
    with pytest.raises(SeriesLimitExceeded):  # four series: the push is refused whole
        await ingest(
            shell, rows(shell, "pods", 4, 7.0), now_us=0, protocol="pushgateway", group=group
        )
    async with shell.db.read() as conn:
        assert await list_groups(conn) == []
    await ingest(shell, rows(shell, "pods", 1, 7.0), now_us=0, protocol="pushgateway", group=group)
    async with shell.db.read() as conn:
        [stored] = await list_groups(conn)
    assert stored.labels == grouping and [f.name for f in stored.families] == ["request_queue"]
    assert counted(shell, "pushgateway") == (1.0, 1.0)
    await delete_group(shell, grouping)
    async with shell.db.read() as conn:
        assert await list_groups(conn) == []
    assert await stored_samples(shell) == 1  # the series keep what was pushed
