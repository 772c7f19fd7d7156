"""Simulations and tuning: replay an uploaded trace or a scaler's stored load through the real
policy and the baselines, or search a scaler's targets for the cheapest spec within limits.

Each start records the job (and its audit entry) and submits it into a slot the caller took
from `shell.simulations.reserve()` before reading the request (what holds memory); the job
runs in a process of its own (app.services.jobs) and any replica answers for it.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from app.policy import parse_spec
from app.services import scalers
from app.services.audit import audit
from app.services.backfill import history_selector
from app.services.errors import Conflict, Invalid, NotFound, Stale
from app.services.forecasts import asleep_spans, load_history
from app.services.jobs import Slot, replay_job, trace_job, tune_job
from app.services.principals import Principal
from app.services.shell import Shell
from app.sim import candidate_spec
from app.store import scalers as store
from app.store.tables import simulations

__all__ = [
    "StoredLoad",
    "apply_tune",
    "start_replay",
    "start_trace",
    "start_tune",
    "stored_load",
]


@dataclass(frozen=True, slots=True)
class StoredLoad:
    """A scaler's stored load over a range, as a replay needs it."""

    spec: dict[str, Any]  # with every default filled in: the job parses it in its own process
    rates: list[float]
    step_s: float
    start: float


async def stored_load(shell: Shell, name: str, t0: float, t1: float) -> StoredLoad:
    """NotFound; Invalid when the scaler does not know its capacity yet or has less than an
    hour of load."""
    spec, per_pod = await scalers.capacity_of(shell, name)
    if per_pod is None:
        raise Invalid(
            f"scaler {name!r} does not know its per-pod capacity yet: its load cannot be "
            "turned into requests",
            details=[
                {
                    "field": "capacity",
                    "message": "state it in the spec, or let the pods push "
                    f"{spec.capacity.signal} until the scaler has learned it",
                }
            ],
        )
    async with shell.db.read() as conn:
        asleep = await asleep_spans(conn, name, t0, t1) if spec.min_replicas == 0 else []
        history = await load_history(
            conn, spec, t1, span_s=t1 - t0, series=history_selector(name, spec), asleep=asleep
        )
    if history is None or len(history) < 12:
        raise Invalid(
            f"scaler {name!r} has less than an hour of stored load ({spec.capacity.signal})",
            code="not_enough_history",
        )
    rates = [float(v) for v in history.values]
    doc = spec.to_document(defaults=True)
    # The replay prices the load with the capacity the scaler uses now (stated or learned).
    doc["capacity"] = {spec.capacity.signal: f"{per_pod:.6g}/s"}
    return StoredLoad(doc, rates, history.step_s, history.start)


async def _record(
    shell: Shell, kind: str, scaler: str | None, request: dict[str, Any], actor: Principal
) -> str:
    """The job's row and its audit entry: a tune is recorded against its scaler, a simulation
    against itself."""
    job_id = secrets.token_hex(8)
    now_us = shell.clock.stamp_us()
    async with shell.db.transaction() as conn:
        await conn.execute(
            sa.insert(simulations).values(
                id=job_id,
                kind=kind,
                scaler=scaler,
                status="pending",
                request=json.dumps(request),
                created_us=now_us,
                owner=shell.simulations.owner,
                heartbeat_us=now_us,
            )
        )
        tune = kind == "tune" and scaler is not None
        await audit(
            conn,
            actor,
            ts_us=now_us,
            action="scaler.tune" if tune else "simulation.run",
            target=f"scaler/{scaler}" if tune else f"simulation/{job_id}",
            details={"job": job_id, "scaler": scaler, "request": request},
        )
    return job_id


async def start_trace(
    shell: Shell,
    slot: Slot,
    trace: str,
    *,
    trace_bytes: int,
    policies: list[str],
    window_s: float | None,
    seed: int,
    scaler: str | None,
    actor: Principal,
) -> str:
    """Replay an uploaded trace (already checked readable); `scaler`: its spec drives ciuic."""
    spec = None
    if scaler is not None:
        spec = (await scalers.spec_of(shell, scaler)).to_document(defaults=True)
    request = {
        "trace_bytes": trace_bytes,
        "policies": policies,
        "window_s": window_s,
        "seed": seed,
    }
    job_id = await _record(shell, "simulate", scaler, request, actor)
    slot.submit(job_id, trace_job, trace, policies, window_s, seed, spec)
    return job_id


async def start_replay(
    shell: Shell,
    slot: Slot,
    scaler: str,
    *,
    t0: float,
    t1: float,
    policies: list[str],
    seed: int,
    actor: Principal,
) -> str:
    """Replay the scaler's stored load between t0 and t1 through each policy."""
    load = await stored_load(shell, scaler, t0, t1)
    request = {"start": t0, "end": t1, "policies": policies, "seed": seed}
    job_id = await _record(shell, "simulate", scaler, request, actor)
    slot.submit(job_id, replay_job, load.rates, load.step_s, load.start, load.spec, policies, seed)
    return job_id


async def start_tune(
    shell: Shell,
    slot: Slot,
    scaler: str,
    *,
    t0: float,
    t1: float,
    seed: int,
    max_drop_rate: float,
    monthly_budget_usd: float | None,
    request: dict[str, Any],
    actor: Principal,
) -> str:
    """Search the scaler's knobs on its stored load; `request` is what was asked, audited,
    with the spec's generation the search starts from (`apply_tune` applies onto it only)."""
    generation = (await scalers.get(shell, scaler)).generation
    load = await stored_load(shell, scaler, t0, t1)
    request = {**request, "generation": generation}
    job_id = await _record(shell, "tune", scaler, request, actor)
    slot.submit(
        job_id,
        tune_job,
        load.rates,
        load.step_s,
        load.start,
        load.spec,
        seed,
        max_drop_rate,
        monthly_budget_usd,
    )
    return job_id


async def apply_tune(
    shell: Shell, job_id: str, *, mode: str | None, actor: Principal
) -> tuple[store.StoredScaler, dict[str, Any]]:
    """Set a finished tune's knobs on its scaler's spec (a new generation, audited as a
    replace), and its `mode` where given (`dry_run` shows the tuned decisions before they
    act). Only onto the generation the tune searched from (Stale when the spec moved since:
    tune again); the scaler and the knobs applied are returned. NotFound; Conflict when the
    job is not a finished tune with a best spec."""
    async with shell.db.read() as conn:
        row = (await conn.execute(sa.select(simulations).where(simulations.c.id == job_id))).first()
    if row is None:
        raise NotFound(f"no simulation {job_id!r}")
    if row.kind != "tune" or row.scaler is None:
        raise Conflict(f"job {job_id!r} is a simulation, not a tune: it has no spec to apply")
    if row.status != "done":
        raise Conflict(
            f"tune {job_id!r} is {row.status}: only a finished tune can be applied",
            details={"status": row.status},
        )
    result = json.loads(row.result or "null") or {}
    changes = result.get("changes")
    if changes is None:
        why = result.get("message")  # absent from tunes finished before it was recorded
        raise Conflict(
            f"tune {job_id!r} found no spec within its limits: there is nothing to apply"
            + (f" ({why})" if why else ""),
            code="nothing_to_apply",
        )
    generation = json.loads(row.request).get("generation")
    existing = await scalers.get(shell, row.scaler)
    if generation is not None and existing.generation != generation:
        raise Stale(
            f"scaler {row.scaler!r} changed since the tune (generation {generation}, now "
            f"{existing.generation}): tune again on the current spec",
            details={"generation": existing.generation, "tuned_generation": generation},
        )
    document = candidate_spec(existing.document, **changes)
    if mode is not None:
        document["mode"] = mode
    if document == existing.document:
        return existing, changes  # the tune kept the spec as it is: no new generation
    spec = parse_spec({**document, "name": document.get("name", row.scaler)})
    saved, _ = await scalers.save(
        shell,
        row.scaler,
        spec,
        create_only=False,
        if_match=None if generation is None else scalers.etag(generation),
        actor=actor,
    )
    return saved, changes
