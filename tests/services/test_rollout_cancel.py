"""A cancel that races the rollout's end: the rollout read active, then finished by the executor
before the cancel is written. The cancel is a 409 that writes nothing (no flag, no event, no
audit entry), not a "cancel requested" on a rollout that is over."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from app.services import rollouts
from app.services.errors import Conflict
from app.services.principals import Principal
from app.services.shell import Shell
from app.store import rollouts as rollout_store
from app.store.tables import audit_log, scaler_events
from tests.services.conftest import SPEC, store_scaler

ADMIN = Principal("admin", "admin")
REQUEST: dict[str, Any] = {"surge_percent": 50.0, "template_patch": {}}


async def _written(shell: Shell) -> tuple[int, int]:
    async with shell.db.read() as conn:
        events = await conn.scalar(sa.select(sa.func.count()).select_from(scaler_events))
        audits = await conn.scalar(sa.select(sa.func.count()).select_from(audit_log))
    return int(events or 0), int(audits or 0)


async def test_a_rollout_that_ends_between_the_read_and_the_cancel_is_a_409_writing_nothing(
    shell: Shell, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store_scaler(shell, SPEC)
    async with shell.db.transaction() as conn:
        created = await rollout_store.create_rollout(
            conn, "llm", REQUEST, dry_run=False, now_us=shell.clock.stamp_us()
        )
    stale = await rollouts.get(shell, created.id)
    assert stale.active
    async with shell.db.transaction() as conn:  # the executor finishes it meanwhile
        done = await rollout_store.get_rollout(conn, created.id)
        assert done is not None
        done.status = "succeeded"
        await rollout_store.save_rollout(conn, done, now_us=shell.clock.stamp_us())
    before = await _written(shell)

    async def read_before_it_ended(_shell: Shell, _rollout_id: int) -> rollout_store.StoredRollout:
        return stale

    monkeypatch.setattr(rollouts, "get", read_before_it_ended)
    with pytest.raises(Conflict) as caught:
        await rollouts.cancel(shell, created.id, actor=ADMIN)
    assert caught.value.code == "rollout_finished"
    assert "succeeded" in str(caught.value)
    assert await _written(shell) == before
    async with shell.db.read() as conn:
        now = await rollout_store.get_rollout(conn, created.id)
    assert now is not None and now.cancel_requested is False


async def test_a_cancel_of_an_active_rollout_flags_it_once(shell: Shell) -> None:
    await store_scaler(shell, SPEC)
    async with shell.db.transaction() as conn:
        created = await rollout_store.create_rollout(
            conn, "llm", REQUEST, dry_run=False, now_us=shell.clock.stamp_us()
        )
    before = await _written(shell)
    first = await rollouts.cancel(shell, created.id, actor=ADMIN)
    again = await rollouts.cancel(shell, created.id, actor=ADMIN)
    assert first.cancel_requested and again.cancel_requested
    events, audits = await _written(shell)
    assert (events - before[0], audits - before[1]) == (1, 1)  # one "cancel requested" each
