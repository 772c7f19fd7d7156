"""Simulation and tuning jobs: the pure simulator run in a process of its own, results stored.

A job runs in the replica that accepted it, in a process of its own (a 14-day replay costs
tens of CPU-seconds; the event loop must keep answering). Its status lives in the database,
so any replica answers `GET /v1/simulations/{id}`.

Two guards keep jobs from piling up or hanging:

- A replica holds at most `max_pending` jobs queued or running (each keeps its uploaded trace
  or stored load in memory until it finishes); `reserve()` refuses one more with a 429.
- Each job row names its owner (a random id per process) and carries a heartbeat that the
  owner refreshes every `heartbeat_s` while the job is queued or running. Any replica fails
  the queued or running jobs whose heartbeat is older than `lost_after_s` ("the service
  restarted before the job finished"): their owner crashed or was restarted, nothing will
  finish them, and a client polling for them would otherwise wait forever. A live replica's
  jobs are never failed this way (it keeps beating for them), provided the replicas' clocks
  agree within `lost_after_s - heartbeat_s`. A job once finished or failed stays so: the
  owner's late result never overwrites a failure.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import multiprocessing
import uuid
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from types import TracebackType
from typing import Any

import numpy as np
import sqlalchemy as sa

from app.clock import Clock
from app.policy import parse_spec
from app.pools import stop_workers, worker_init
from app.services.errors import Busy
from app.sim import (
    SCENARIOS,
    Scenario,
    report_for,
    run_simulation,
    search_knobs,
    simulate_policy,
    workload_from_arrivals,
)
from app.sim.report import markdown_table
from app.sim.traces import Workload
from app.store.db import Database, is_unavailable
from app.store.tables import simulations

__all__ = ["LOST", "SimulationJobs", "Slot", "replay_job", "trace_job", "tune_job"]

ACTIVE = ("pending", "running")  # a job in these states is owned by a live process, or lost
LOST = "the service restarted before the job finished"
RETRY_AFTER_S = 10  # a 2-day trace replays in seconds; a 14-day one in tens of seconds

log = logging.getLogger("ciuic.services.jobs")


def trace_job(
    trace: str, policies: list[str], window_s: float | None, seed: int, spec: dict[str, Any] | None
) -> dict[str, Any]:
    report = run_simulation(
        trace.splitlines(), policies=policies, window_s=window_s, seed=seed, spec=spec
    )
    return {"reports": report.rows(), "markdown": report.markdown()}


def _replay_workload(
    rates: list[float], step_s: float, start: float, spec: dict[str, Any], seed: int
) -> tuple[Workload, Scenario]:
    """Per-second Poisson arrivals at the stored load rate; the scaler's own bounds."""
    parsed = parse_spec(spec)
    base = SCENARIOS["deepseek-7b"]
    scenario = dataclasses.replace(
        base, min_replicas=max(1, parsed.min_replicas), max_replicas=parsed.max_replicas
    )
    # A learned capacity is the scaler's own; the replay prices the scenario's requests.
    per_pod = parsed.capacity.per_pod or base.slots_per_pod / base.count_service_s
    service_s = max(1, round(base.slots_per_pod / per_pod))
    per_second = np.repeat(np.nan_to_num(np.asarray(rates, dtype=np.float64)), int(step_s))
    arrivals = np.random.default_rng(seed).poisson(np.clip(per_second, 0, None))
    workload = workload_from_arrivals(
        arrivals, service_s=service_s, start=start, description="stored load of the scaler"
    )
    return workload, scenario


def replay_job(
    rates: list[float],
    step_s: float,
    start: float,
    spec: dict[str, Any],
    policies: list[str],
    seed: int,
) -> dict[str, Any]:
    workload, scenario = _replay_workload(rates, step_s, start, spec, seed)
    oracle = simulate_policy("oracle", workload=workload, scenario=scenario, spec=None, seed=seed)
    oracle_cost = report_for(oracle).cost_usd
    reports = []
    for name in policies:
        result = (
            oracle
            if name == "oracle"
            else simulate_policy(
                name,
                workload=workload,
                scenario=scenario,
                spec=spec if name == "ciuic" else None,
                seed=seed,
            )
        )
        reports.append(report_for(result, oracle_cost=oracle_cost))
    return {"reports": [r.to_dict() for r in reports], "markdown": markdown_table(reports)}


def tune_job(
    rates: list[float],
    step_s: float,
    start: float,
    spec: dict[str, Any],
    seed: int,
    max_drop_rate: float,
    monthly_budget_usd: float | None,
) -> dict[str, Any]:
    workload, scenario = _replay_workload(rates, step_s, start, spec, seed)
    result = search_knobs(
        workload,
        spec,
        scenario=scenario,
        seed=seed,
        max_drop_rate=max_drop_rate,
        monthly_budget_usd=monthly_budget_usd,
    )
    return result.to_dict()


def _clean(value: Any) -> Any:
    """JSON without NaN/inf (they become null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


class Slot:
    """A place among a replica's pending jobs, taken before the request is read: released on
    leaving the `with` block unless a job was submitted into it (the job releases it when it
    finishes)."""

    def __init__(self, jobs: SimulationJobs) -> None:
        self._jobs = jobs
        self._held = True

    def submit(self, job_id: str, fn: Callable[..., dict[str, Any]], *args: Any) -> None:
        if not self._held:
            raise RuntimeError("this slot was already used")
        self._held = False
        self._jobs._reserved -= 1
        self._jobs._submit(job_id, fn, args)

    def __enter__(self) -> Slot:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._held:
            self._held = False
            self._jobs._reserved -= 1


class SimulationJobs:
    def __init__(
        self,
        db: Database,
        *,
        clock: Clock,
        max_pending: int = 8,
        heartbeat_s: float = 10.0,
        lost_after_s: float = 60.0,
        owner: str | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.now_us = clock.stamp_us
        self.max_pending = max_pending
        self.heartbeat_s = heartbeat_s
        self.lost_after_s = lost_after_s
        self.owner = owner or uuid.uuid4().hex  # this process; rows record it
        # Where jobs run: a spawned process, made on first use (a test may hold jobs in its own).
        self.pool: Executor | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Jobs queued or running here, until their outcome is known: what the limit counts and
        # the heartbeat covers. A job leaves it before its outcome is written, so a client that
        # reads the outcome finds its slot free.
        self._active: set[str] = set()
        self._reserved = 0  # slots taken by requests not yet submitted

    @property
    def pending(self) -> int:
        """Jobs queued or running here, and requests holding a slot for one."""
        return len(self._active) + self._reserved

    def reserve(self) -> Slot:
        """A slot for one more job, or Busy (the API's 429) when the replica is full.

        Synchronous, so two concurrent requests cannot both take the last slot."""
        if self.pending >= self.max_pending:
            raise Busy(
                f"this replica already has {self.pending} simulation jobs queued or running, "
                f"its limit (CIUIC_MAX_PENDING_SIMULATIONS); nothing was created, retry in "
                f"{RETRY_AFTER_S} s",
                code="too_many_simulations",
                details={
                    "pending": self.pending,
                    "limit": self.max_pending,
                    "retry_after_s": RETRY_AFTER_S,
                },
                retry_after_s=RETRY_AFTER_S,
            )
        self._reserved += 1
        return Slot(self)

    def _executor(self) -> Executor:
        if self.pool is None:
            # spawn: a clean interpreter, never a fork of a process holding an event loop;
            # Ctrl-C on `ciuic serve` is the service's to handle: close() stops the worker
            self.pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=worker_init,
            )
        return self.pool

    def _submit(
        self, job_id: str, fn: Callable[..., dict[str, Any]], args: tuple[Any, ...]
    ) -> None:
        task = asyncio.create_task(self._run(job_id, fn, args), name=f"simulation-{job_id}")
        self._active.add(job_id)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _set(self, job_id: str, **values: Any) -> bool:
        """Update a job that is still queued or running; False when it no longer is (another
        replica failed it as lost)."""
        async with self.db.transaction() as conn:
            result = await conn.execute(
                sa.update(simulations)
                .where(simulations.c.id == job_id, simulations.c.status.in_(ACTIVE))
                .values(**values)
            )
        return bool(result.rowcount)

    async def _run(
        self, job_id: str, fn: Callable[..., dict[str, Any]], args: tuple[Any, ...]
    ) -> None:
        try:
            await self._run_job(job_id, fn, args)
        finally:
            self._active.discard(job_id)

    async def _run_job(
        self, job_id: str, fn: Callable[..., dict[str, Any]], args: tuple[Any, ...]
    ) -> None:
        if not await self._set(job_id, status="running", heartbeat_us=self.now_us()):
            log.warning("simulation %s was failed as lost before it started", job_id)
            return
        outcome: dict[str, Any]
        try:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self._executor(), fn, *args)
        except asyncio.CancelledError:
            self._active.discard(job_id)
            await self._set(
                job_id, status="failed", error="the service stopped", finished_us=self.now_us()
            )
            raise
        except Exception as exc:
            log.warning("simulation %s failed: %s", job_id, exc)
            outcome = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        else:
            outcome = {"status": "done", "result": json.dumps(_clean(result))}
        self._active.discard(job_id)
        if not await self._set(job_id, finished_us=self.now_us(), **outcome):
            log.warning("simulation %s finished after it was failed as lost", job_id)

    async def beat(self) -> None:
        """Refresh the heartbeat of every job this process is queueing or running."""
        ids = list(self._active)
        if not ids:
            return
        async with self.db.transaction() as conn:
            await conn.execute(
                sa.update(simulations)
                .where(
                    simulations.c.id.in_(ids),
                    simulations.c.owner == self.owner,
                    simulations.c.status.in_(ACTIVE),
                )
                .values(heartbeat_us=self.now_us())
            )

    async def reap(self) -> int:
        """Fail the queued or running jobs whose owner stopped beating for them (any replica's:
        a job's heartbeat says whether its owner is alive); returns how many."""
        now_us = self.now_us()
        last_sign = sa.func.coalesce(simulations.c.heartbeat_us, simulations.c.created_us)
        async with self.db.transaction() as conn:
            result = await conn.execute(
                sa.update(simulations)
                .where(
                    simulations.c.status.in_(ACTIVE),
                    last_sign < now_us - round(self.lost_after_s * 1e6),
                )
                .values(status="failed", error=LOST, finished_us=now_us)
            )
        reaped = int(result.rowcount or 0)
        if reaped:
            log.warning("failed %d simulation job(s) whose replica is gone", reaped)
        return reaped

    async def keep_alive(self, stop: asyncio.Event) -> None:
        """Beat for this process's jobs, and fail other replicas' lost ones, until `stop`."""
        while True:
            try:
                await self.beat()
                await self.reap()
            except Exception as exc:
                if not is_unavailable(exc):
                    raise  # a bug: the supervisor logs it and restarts the loop
                log.warning("simulation heartbeat skipped, the database is unavailable: %s", exc)
            if await self.clock.wait_for(stop, timeout_s=self.heartbeat_s):
                return

    async def wait(self) -> None:
        """Until every job submitted so far has finished (tests, shutdown)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.wait()
        if isinstance(self.pool, ProcessPoolExecutor):
            # A job still running is failed already ("the service stopped"): end it now, or
            # the service waits at exit for a replay that may take a minute.
            await asyncio.to_thread(stop_workers, self.pool)
        elif self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = None
