"""Pushgateway groups, persisted so that every replica of the service sees the same state.

A push locks its group's row for the length of its transaction (the upsert does that), so
concurrent pushes to one group apply one after another: the last committed write wins.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.errors import TypeClash
from app.store.series import canonical_labels
from app.store.tables import push_families, push_groups

__all__ = [
    "GroupFamily",
    "StoredFamily",
    "StoredGroup",
    "delete_group",
    "list_groups",
    "push",
    "record_failure",
]


@dataclass(frozen=True, slots=True)
class GroupFamily:
    """A family as it is written: samples as (sample name, labels, value)."""

    name: str
    type: str
    help: str
    samples: Sequence[tuple[str, dict[str, str], float]]


@dataclass(frozen=True, slots=True)
class StoredFamily:
    name: str
    type: str
    help: str
    samples: list[tuple[str, dict[str, str], float]]
    pushed_us: int


@dataclass(frozen=True, slots=True)
class StoredGroup:
    labels: dict[str, str]
    last_push_us: int  # 0 for a group that only ever failed
    last_failure_us: int  # 0 until a push to it fails
    families: list[StoredFamily]


def group_key(labels: dict[str, str]) -> str:
    return hashlib.blake2b(canonical_labels(labels).encode(), digest_size=16).hexdigest()


async def push(
    conn: AsyncConnection,
    grouping: dict[str, str],
    families: Sequence[GroupFamily],
    *,
    replace_all: bool,
    now_us: int,
) -> None:
    """PUT (`replace_all`) replaces the group; POST replaces only the families named."""
    values = {
        "key": group_key(grouping),
        "labels": canonical_labels(grouping),
        "last_push_us": now_us,
    }
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(
        push_groups
    )
    group_id = await conn.scalar(
        insert.values(values)
        .on_conflict_do_update(index_elements=["key"], set_={"last_push_us": now_us})
        .returning(push_groups.c.id)
    )
    assert group_id is not None
    delete = sa.delete(push_families).where(push_families.c.group_id == group_id)
    if not replace_all:
        delete = delete.where(push_families.c.name.in_([f.name for f in families]))
    held = dict(
        (await conn.execute(delete.returning(push_families.c.name, push_families.c.type))).all()
    )
    # A family this group already held with the same type cannot clash: any other group's
    # family of that name was checked against it. Only new or retyped names are looked up,
    # so a pod re-pushing its usual metrics costs no query here (a failed check rolls the
    # delete back with the rest of the transaction).
    await _check_types(conn, group_id, [f for f in families if held.get(f.name) != f.type])
    if families:
        await conn.execute(
            sa.insert(push_families),
            [
                {
                    "group_id": group_id,
                    "name": f.name,
                    "type": f.type,
                    "help": f.help,
                    "samples": json.dumps([[n, lab, v] for n, lab, v in f.samples]),
                    "pushed_us": now_us,
                }
                for f in families
            ],
        )


async def record_failure(conn: AsyncConnection, grouping: dict[str, str], *, now_us: int) -> None:
    """Stamp the group's last failed push, creating it empty (never pushed: 0) if there is
    none, as the Pushgateway does. Only the stamp: families and samples stay as they were."""
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(
        push_groups
    )
    await conn.execute(
        insert.values(
            key=group_key(grouping),
            labels=canonical_labels(grouping),
            last_push_us=0,
            last_failure_us=now_us,
        ).on_conflict_do_update(index_elements=["key"], set_={"last_failure_us": now_us})
    )


async def _check_types(
    conn: AsyncConnection, group_id: int, families: Sequence[GroupFamily]
) -> None:
    if not families:
        return
    wanted = {f.name: f.type for f in families}
    # Only a family of the same name with another type is a clash: ask for exactly that, as
    # two ranges of the (name, type) index around the wanted type, so the query reads only
    # clashing rows however many groups push the same metrics ("type != kind" would make the
    # database visit every group's row of that name: 2 ms a push at 1,000 pods).
    clash = (
        await conn.execute(
            sa.select(push_families.c.name, push_families.c.type, push_families.c.group_id)
            .where(
                push_families.c.name.in_(list(wanted)),
                push_families.c.group_id != group_id,
                sa.or_(
                    *(
                        sa.and_(
                            push_families.c.name == name,
                            sa.or_(push_families.c.type < kind, push_families.c.type > kind),
                        )
                        for name, kind in wanted.items()
                    )
                ),
            )
            .limit(1)
        )
    ).first()
    if clash is not None:
        name, kind, other = clash
        labels = await conn.scalar(sa.select(push_groups.c.labels).where(push_groups.c.id == other))
        raise TypeClash(
            f"metric {name!r} is pushed as {wanted[name]} but is a {kind} in group "
            f"{labels}; a metric name must keep one type across groups",
        )


async def delete_group(conn: AsyncConnection, grouping: dict[str, str]) -> None:
    await conn.execute(sa.delete(push_groups).where(push_groups.c.key == group_key(grouping)))


async def list_groups(conn: AsyncConnection) -> list[StoredGroup]:
    groups = (await conn.execute(sa.select(push_groups).order_by(push_groups.c.id))).all()
    fams = (
        await conn.execute(
            sa.select(push_families).order_by(push_families.c.group_id, push_families.c.name)
        )
    ).all()
    by_group: dict[int, list[StoredFamily]] = {}
    for f in fams:
        samples = [(str(n), dict(lab), float(v)) for n, lab, v in json.loads(f.samples)]
        by_group.setdefault(int(f.group_id), []).append(
            StoredFamily(f.name, f.type, f.help, samples, int(f.pushed_us))
        )
    return [
        StoredGroup(
            json.loads(g.labels),
            int(g.last_push_us),
            int(g.last_failure_us),
            by_group.get(int(g.id), []),
        )
        for g in groups
    ]
