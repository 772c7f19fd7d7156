"""Scalers: read one, save (create or replace), delete, pause and resume.

Every write is one transaction with its event and its audit entry; `If-Match` makes it
conditional on the generation (Stale when it moved). After the commit the wake-up index learns
the scaler's triggers (gone when deleted or paused), so a burst pushed a moment later already
wakes the reconciler.
"""

from __future__ import annotations

from app.policy import ScalerSpec, SpecError
from app.policy.capacity import CapacityInUse, capacity_in_use
from app.services.audit import audit
from app.services.errors import Conflict, NotFound, Stale
from app.services.principals import Principal
from app.services.shell import Shell
from app.store import rollouts as rollout_store
from app.store import scalers as store
from app.store.audit import diff_documents

__all__ = [
    "capacity_in_use_of",
    "capacity_of",
    "delete",
    "etag",
    "get",
    "save",
    "set_paused",
    "spec_of",
]


def etag(generation: int) -> str:
    return f'"{generation}"'


async def get(shell: Shell, name: str) -> store.StoredScaler:
    async with shell.db.read() as conn:
        found = await store.get_scaler(conn, name)
    if found is None:
        raise NotFound(f"no scaler named {name!r}")
    return found


async def spec_of(shell: Shell, name: str) -> ScalerSpec:
    """The stored scaler's spec, parsed once per generation (NotFound; SpecError when the
    stored document no longer validates)."""
    return shell.specs.spec_of(await get(shell, name))


async def capacity_of(shell: Shell, name: str) -> tuple[ScalerSpec, float | None]:
    """The stored scaler's spec and the per-pod capacity its decisions use now (the spec's,
    or the learned one; None while it is still being learned)."""
    spec, in_use = await capacity_in_use_of(shell, name)
    return spec, in_use.per_pod


async def capacity_in_use_of(shell: Shell, name: str) -> tuple[ScalerSpec, CapacityInUse]:
    """The stored scaler's spec and its capacity in use, with how it was found (the spec's,
    learned, or why it is not known yet)."""
    found = await get(shell, name)
    spec = shell.specs.spec_of(found)
    return spec, capacity_in_use(spec, found.state.capacity)


def _check_match(if_match: str | None, existing: store.StoredScaler | None, name: str) -> None:
    if if_match is None:
        return
    if existing is None:
        raise Stale(f"scaler {name!r} does not exist (If-Match: {if_match})")
    wanted = {t.strip() for t in if_match.split(",")}
    if "*" not in wanted and etag(existing.generation) not in wanted:
        raise Stale(
            f"scaler {name!r} is at generation {existing.generation}; If-Match was {if_match}",
            details={"generation": existing.generation},
        )


async def save(
    shell: Shell,
    name: str,
    spec: ScalerSpec,
    *,
    create_only: bool,
    if_match: str | None,
    actor: Principal,
) -> tuple[store.StoredScaler, bool]:
    """Create the scaler, or replace its spec (a new generation); True when created. A spec
    that changes nothing (the stored document again) writes nothing: no generation, no event,
    no audit entry; the scaler is returned as it is (If-Match is checked all the same)."""
    now_us = shell.clock.stamp_us()
    # Stored with the name it goes by, whether the author wrote it (PUT names it from the
    # path) or not: the same file POSTed and then PUT is the same document.
    document = {"name": name, **spec.to_document()}
    async with shell.db.transaction() as conn:
        existing = await store.get_scaler(conn, name, for_update=True)
        if create_only and existing is not None:
            raise Conflict(
                f"scaler {name!r} already exists; PUT /v1/scalers/{name} replaces it",
                details={"generation": existing.generation},
            )
        _check_match(if_match, existing, name)
        # A scaler stored before names were stored has none: the name is no change either.
        if existing is not None and {"name": name, **existing.document} == document:
            return existing, False
        saved = await store.upsert_scaler(conn, name, document, now_us=now_us)
        await store.add_event(
            conn,
            name,
            ts_us=now_us,
            kind="spec",
            message="created" if existing is None else f"replaced (generation {saved.generation})",
            payload={"generation": saved.generation, "actor": actor.token_id},
        )
        await audit(
            conn,
            actor,
            ts_us=now_us,
            action="scaler.create" if existing is None else "scaler.replace",
            target=f"scaler/{name}",
            details={"generation": saved.generation, "spec": document}
            if existing is None
            else {
                "generation": saved.generation,
                "previous_generation": existing.generation,
                "changes": diff_documents({"name": name, **existing.document}, document),
            },
        )
    shell.wakeup.update(name, None if saved.paused else spec)
    shell.forecasts.due_now(name)  # a new model or a new load query: a forecast at once
    return saved, existing is None


async def delete(shell: Shell, name: str, *, if_match: str | None, actor: Principal) -> None:
    now_us = shell.clock.stamp_us()
    async with shell.db.transaction() as conn:
        existing = await store.get_scaler(conn, name, for_update=True)
        if existing is None:
            raise NotFound(f"no scaler named {name!r}")
        _check_match(if_match, existing, name)
        active = (await rollout_store.active_for(conn)).get(name)
        if active is not None:
            # Deleting would drop the rollout mid-flight: the target left surged, its template
            # patched (or half rolled out), and nothing left to restore or release it.
            raise Conflict(
                f"rollout {active} of scaler {name!r} is still active: cancel it (POST "
                f"/v1/rollouts/{active}/cancel) and wait for it to end, then delete the scaler",
                code="rollout_active",
                details={"rollout": active},
            )
        await store.delete_scaler(conn, name)
        await audit(
            conn,
            actor,
            ts_us=now_us,
            action="scaler.delete",
            target=f"scaler/{name}",
            details={"generation": existing.generation, "spec": existing.document},
        )
    shell.wakeup.update(name, None)
    shell.specs.forget(name)


async def set_paused(
    shell: Shell, name: str, paused: bool, *, actor: Principal
) -> store.StoredScaler:
    """Pause (the reconciler leaves the target alone) or resume; audited either way."""
    now_us = shell.clock.stamp_us()
    async with shell.db.transaction() as conn:
        existing = await store.get_scaler(conn, name, for_update=True)
        if existing is None:
            raise NotFound(f"no scaler named {name!r}")
        if existing.paused != paused:
            await store.set_paused(conn, name, paused, now_us)
            await store.add_event(
                conn,
                name,
                ts_us=now_us,
                kind="spec",
                message="paused: the reconciler leaves the target alone" if paused else "resumed",
                payload={"paused": paused, "actor": actor.token_id},
            )
        await audit(
            conn,
            actor,
            ts_us=now_us,
            action="scaler.pause" if paused else "scaler.resume",
            target=f"scaler/{name}",
            details={"before": {"paused": existing.paused}, "after": {"paused": paused}},
        )
        saved = await store.get_scaler(conn, name)
    assert saved is not None
    shell.wakeup.update(name, None if paused else _spec_or_none(shell, saved))
    return saved


def _spec_or_none(shell: Shell, scaler: store.StoredScaler) -> ScalerSpec | None:
    """The spec whose triggers the wake-up index should hold; none for a spec that no longer
    validates (the reconciler reports that one)."""
    try:
        return shell.specs.spec_of(scaler)
    except SpecError:
        return None
