"""Rollouts: start one on a scaler's target, cancel one. The leader's executor
(app.workers.rollouts) carries them out; these record the request and kick it.

Starting checks the request against the live template first, so a container that does not
exist is refused now (Invalid), not a failed rollout later: `image` of an unknown `container`,
and a `template_patch` naming a container or init container the template lacks (containers
merge by name, so the API server would add it to every pod). One active rollout per scaler
(Conflict): the scaler's row lock serialises two concurrent starts.
"""

from __future__ import annotations

from typing import Any

from app.kube.cluster import ClusterError
from app.policy import SpecError
from app.services.audit import audit
from app.services.errors import Conflict, Invalid, NotFound
from app.services.principals import Principal
from app.services.shell import Shell
from app.store import rollouts as store
from app.store import scalers as scaler_store

__all__ = ["cancel", "get", "image_patch", "start", "unknown_containers"]

# The pod spec's lists of containers that a strategic merge patch merges by name.
_CONTAINER_LISTS = ("containers", "initContainers")


def image_patch(template: dict[str, Any], image: str, container: str | None) -> dict[str, Any]:
    """The strategic merge patch that sets one container's image (the first by default);
    ValueError names the containers when `container` is not one of them."""
    names = [c.get("name") for c in (template.get("spec") or {}).get("containers") or []]
    if not names:
        raise ValueError("the pod template has no containers")
    name = container or names[0]
    if name not in names:
        raise ValueError(f"no container {name!r} in the pod template (it has {names})")
    return {"spec": {"containers": [{"name": name, "image": image}]}}


def _names_in(items: Any) -> list[str]:
    """The names of a list of containers (a patch's directives, which have none, skipped)."""
    if not isinstance(items, list):
        return []
    return [i["name"] for i in items if isinstance(i, dict) and isinstance(i.get("name"), str)]


def _patched_lists(patch: dict[str, Any] | None) -> list[str]:
    """The container lists of the pod spec that a template patch names containers in."""
    spec = (patch or {}).get("spec")
    if not isinstance(spec, dict):
        return []
    return [key for key in _CONTAINER_LISTS if _names_in(spec.get(key))]


def unknown_containers(template: dict[str, Any], patch: dict[str, Any]) -> list[dict[str, Any]]:
    """One problem per container list (containers, initContainers) in which `patch` names
    containers the pod template does not have: its field, a message, the unknown names and
    the template's own. Empty when every name is known."""
    have = template.get("spec") or {}
    problems: list[dict[str, Any]] = []
    for key in _patched_lists(patch):
        known = _names_in(have.get(key))
        unknown = [n for n in dict.fromkeys(_names_in(patch["spec"][key])) if n not in known]
        if not unknown:
            continue
        what = "container" if key == "containers" else "init container"
        names = ", ".join(map(repr, unknown))
        it_has = ", ".join(map(repr, known)) if known else "none"
        message = (
            f"no {what} {names} in the pod template (its {key}: {it_has}): {key} merge by "
            f"name, so the patch would add {'it' if len(unknown) == 1 else 'them'} to every "
            "pod; a rollout changes the containers the target has (add or remove one in its "
            "manifest)"
        )
        problems.append(
            {
                "field": f"template_patch.spec.{key}",
                "message": message,
                "unknown": unknown,
                "containers": known,
            }
        )
    return problems


async def get(shell: Shell, rollout_id: int) -> store.StoredRollout:
    async with shell.db.read() as conn:
        found = await store.get_rollout(conn, rollout_id)
    if found is None:
        raise NotFound(f"no rollout {rollout_id}")
    return found


async def start(
    shell: Shell,
    name: str,
    request: dict[str, Any],
    *,
    image: str | None,
    container: str | None,
    actor: Principal,
) -> store.StoredRollout:
    """Record a rollout of `request` (surge_percent, stabilize_s, timeout_s, and either
    `template_patch` or `image` of `container`) for the executor; returns it, pending."""
    async with shell.db.read() as conn:
        scaler = await scaler_store.get_scaler(conn, name)
    if scaler is None:
        raise NotFound(f"no scaler named {name!r}")
    try:
        spec = shell.specs.spec_of(scaler)
    except SpecError as exc:
        raise Invalid(f"the scaler's spec is invalid: {exc}") from exc
    patch = request.get("template_patch")
    if image is not None or _patched_lists(patch):
        try:
            template = await shell.cluster.template(spec.target)
        except ClusterError as exc:
            raise Conflict(f"cannot read the target: {exc}", code="cluster_error") from exc
        if image is None:
            assert patch is not None  # the request has one or the other
            problems = unknown_containers(template, patch)
            if problems:
                raise Invalid(
                    "; ".join(p["message"] for p in problems),
                    code="invalid_rollout",
                    details=problems,
                )
        else:
            try:
                patch = image_patch(template, image, container)
            except ValueError as exc:
                raise Invalid(
                    str(exc),
                    code="invalid_rollout",
                    details=[{"field": "container", "message": str(exc)}],
                ) from exc
    # The rollout is pinned to the workload it starts on: a spec pointed elsewhere meanwhile
    # does not move it (its saved template is that workload's).
    pinned = {"kind": spec.target.kind, "namespace": spec.target.namespace}
    request = {**request, "patch": patch, "target": {**pinned, "name": spec.target.name}}
    now_us = shell.clock.stamp_us()
    async with shell.db.transaction() as conn:
        # The scaler row lock (PostgreSQL) serialises two concurrent requests for one scaler.
        if await scaler_store.get_scaler(conn, name, for_update=True) is None:
            raise NotFound(f"no scaler named {name!r}")
        active = (await store.active_for(conn)).get(name)
        if active is not None:
            raise Conflict(
                f"rollout {active} of scaler {name!r} is still active; wait for it or cancel "
                f"it (POST /v1/rollouts/{active}/cancel)",
                code="rollout_active",
                details={"rollout": active},
            )
        dry_run = spec.mode == "dry_run"
        created = await store.create_rollout(conn, name, request, dry_run=dry_run, now_us=now_us)
        if not dry_run:  # its surge moves the count on purpose: not a drift after it ends
            await scaler_store.forget_applied(conn, name)
        await scaler_store.add_event(
            conn,
            name,
            ts_us=now_us,
            kind="rollout",
            message=f"rollout {created.id}: requested ({request['surge_percent']:g} % surge"
            f"{', dry run' if dry_run else ''})",
            payload={"rollout": created.id, "request": request, "actor": actor.token_id},
        )
        await audit(
            conn,
            actor,
            ts_us=now_us,
            action="rollout.start",
            target=f"scaler/{name}",
            details={"rollout": created.id, "dry_run": dry_run, "request": request},
        )
    shell.rollout_kick.set()
    return created


def _finished(rollout_id: int, status: str) -> Conflict:
    return Conflict(
        f"rollout {rollout_id} is {status}; only an active rollout can be cancelled",
        code="rollout_finished",
        details={"status": status},
    )


async def cancel(shell: Shell, rollout_id: int, *, actor: Principal) -> store.StoredRollout:
    """Ask the executor to roll back (the original template restored when it was patched,
    then the target handed back to the policy); Conflict when the rollout already ended."""
    found = await get(shell, rollout_id)
    if not found.active:
        raise _finished(rollout_id, found.status)
    now_us = shell.clock.stamp_us()
    if not found.cancel_requested:
        async with shell.db.transaction() as conn:
            if not await store.request_cancel(conn, rollout_id, now_us=now_us):
                # it ended (or was flagged) since it was read: no event, no audit entry
                now = await store.get_rollout(conn, rollout_id)
                if now is None or not now.active:
                    raise _finished(rollout_id, "deleted" if now is None else now.status)
                return now
            await scaler_store.add_event(
                conn,
                found.scaler,
                ts_us=now_us,
                kind="rollout",
                message=f"rollout {rollout_id}: cancel requested",
                payload={"rollout": rollout_id, "actor": actor.token_id},
            )
            await audit(
                conn,
                actor,
                ts_us=now_us,
                action="rollout.cancel",
                target=f"scaler/{found.scaler}",
                details={
                    "rollout": rollout_id,
                    "before": {"status": found.status, "cancel_requested": False},
                    "after": {"status": found.status, "cancel_requested": True},
                },
            )
    shell.rollout_kick.set()
    return await get(shell, rollout_id)
