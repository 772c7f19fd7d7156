"""Where a decision is made: one function observes the target and calls the policy, for the
reconciler and for the decision endpoint alike, with the same observation."""

from __future__ import annotations

from typing import Any

import pytest

from app.policy import Decision, decide
from app.policy.types import Observation
from app.services import decisions
from app.services.errors import Conflict
from app.services.shell import Shell
from app.store import scalers as scaler_store
from app.store.series import SampleRow, SeriesKey
from app.workers.reconciler import reconcile_once
from tests.services.conftest import SPEC, store_scaler


@pytest.fixture
def observed(monkeypatch: pytest.MonkeyPatch) -> list[Observation]:
    """Every observation the policy is asked to decide on, through the decisions service."""
    seen: list[Observation] = []

    def recording(spec: Any, observation: Observation, *args: Any) -> Decision:
        seen.append(observation)
        return decide(spec, observation, *args)

    monkeypatch.setattr(decisions, "decide", recording)
    return seen


async def test_the_reconciler_and_the_preview_decide_through_one_function(
    shell: Shell, observed: list[Observation]
) -> None:
    await store_scaler(shell, SPEC)
    at = shell.clock.stamp_us()
    key = SeriesKey.of("gpu_utilization", {"pod": "p0"})
    async with shell.db.transaction() as conn:
        await shell.series.write(conn, [SampleRow(key, at, 95.0)], now_us=at)
    async with shell.db.read() as conn:
        scaler = await scaler_store.get_scaler(conn, "llm")
    assert scaler is not None
    previewed = await decisions.preview(shell, scaler, shell.specs.spec_of(scaler))
    await reconcile_once(shell.db, shell.cluster, shell.clock, specs=shell.specs)
    [from_preview, from_reconciler] = observed
    assert from_preview == from_reconciler  # the same observation, built in one place
    assert from_preview.metrics["gpu_utilization"].value == 95.0
    assert from_preview.current_replicas == previewed.cluster.replicas == 2
    async with shell.db.read() as conn:
        after = await scaler_store.get_scaler(conn, "llm")
    assert after is not None and after.last_decision is not None
    assert after.last_decision == scaler_store.decision_to_json(previewed.decision)


async def test_a_target_that_cannot_be_read_is_a_conflict_for_the_preview(
    shell: Shell, observed: list[Observation]
) -> None:
    scaler = await store_scaler(shell, SPEC | {"target": "gone"})

    async def unreadable(_target: object) -> None:
        from app.kube.cluster import TargetNotFound

        raise TargetNotFound('deployments.apps "gone" not found')

    shell.cluster.observe = unreadable  # type: ignore[method-assign, assignment]
    with pytest.raises(Conflict, match="cannot read the target") as refused:
        await decisions.preview(shell, scaler, shell.specs.spec_of(scaler))
    assert refused.value.code == "cluster_error"
    assert observed == []  # nothing decided
