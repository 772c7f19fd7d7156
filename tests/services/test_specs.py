"""A spec is parsed once per stored version, whoever asks: the reconciler's passes, the
refits, the rollouts, Grafana and the API read the same parsed spec until a write changes it."""

from __future__ import annotations

from typing import Any

import pytest

from app.policy import SpecError, parse_spec
from app.services import specs as specs_module
from app.services.shell import Shell
from app.services.specs import SpecCache
from app.store import scalers as scaler_store
from app.workers.reconciler import reconcile_once
from tests.services.conftest import SPEC, store_scaler


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the documents parsed, in order."""
    seen: list[str] = []

    def counting(document: dict[str, Any]) -> Any:
        seen.append(str(document.get("name")))
        return parse_spec(document)

    monkeypatch.setattr(specs_module, "parse_spec", counting)
    return seen


async def test_passes_parse_each_spec_once_per_generation(shell: Shell, parses: list[str]) -> None:
    await store_scaler(shell, SPEC)
    await store_scaler(shell, SPEC | {"name": "other", "target": "other"})
    for _ in range(3):
        assert await reconcile_once(shell.db, shell.cluster, shell.clock, specs=shell.specs) == 2
    assert sorted(parses) == ["llm", "other"]
    await store_scaler(shell, SPEC | {"min_replicas": 2})  # generation 2
    await reconcile_once(shell.db, shell.cluster, shell.clock, specs=shell.specs)
    assert sorted(parses) == ["llm", "llm", "other"]


async def test_a_stored_spec_that_no_longer_validates_is_parsed_once_and_refused_each_time(
    shell: Shell, parses: list[str]
) -> None:
    stored = await store_scaler(shell, SPEC | {"min_replicas": -1})
    cache = SpecCache()
    for _ in range(2):
        with pytest.raises(SpecError, match="min_replicas"):
            cache.spec_of(stored)
    assert parses == ["llm"]


async def test_a_deleted_and_recreated_scaler_is_a_new_version(shell: Shell) -> None:
    first = await store_scaler(shell, SPEC)
    assert shell.specs.spec_of(first).min_replicas == 1
    async with shell.db.transaction() as conn:
        await scaler_store.delete_scaler(conn, "llm")
    shell.clock.advance(1)
    again = await store_scaler(shell, SPEC | {"min_replicas": 3})
    assert again.generation == first.generation == 1
    assert shell.specs.spec_of(again).min_replicas == 3


async def test_a_full_pass_forgets_deleted_scalers(shell: Shell) -> None:
    await store_scaler(shell, SPEC)
    await reconcile_once(shell.db, shell.cluster, shell.clock, specs=shell.specs)
    assert "llm" in shell.specs._parsed
    async with shell.db.transaction() as conn:
        await scaler_store.delete_scaler(conn, "llm")
    await reconcile_once(shell.db, shell.cluster, shell.clock, specs=shell.specs)
    assert "llm" not in shell.specs._parsed
