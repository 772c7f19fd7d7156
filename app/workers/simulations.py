"""Simulation and tuning jobs: the pure simulator run in a worker process, results stored.

A job runs in the replica that accepted it, in a process of its own (a 14-day replay costs
tens of CPU-seconds; the event loop must keep answering). Its status lives in the database,
so any replica answers `GET /v1/simulations/{id}`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import sqlalchemy as sa

from app.policy import parse_spec
from app.sim import (
    SCENARIOS,
    Scenario,
    report_for,
    run_simulation,
    simulate_policy,
    tune_spec,
    workload_from_arrivals,
)
from app.sim.report import markdown_table
from app.sim.traces import Workload
from app.store.db import Database
from app.store.tables import simulations

__all__ = ["SimulationJobs", "replay_job", "trace_job", "tune_job"]

log = logging.getLogger("ciuic.workers.simulations")


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
    per_pod = parsed.capacity.per_pod if parsed.capacity else 1.0 / base.count_service_s * 8
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
    result = tune_spec(
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


class SimulationJobs:
    def __init__(self, db: Database, *, now_us: Callable[[], int]) -> None:
        self.db = db
        self.now_us = now_us
        self._pool: ProcessPoolExecutor | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn: a clean interpreter, never a fork of a process holding an event loop
            self._pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn")
            )
        return self._pool

    def submit(self, job_id: str, fn: Callable[..., dict[str, Any]], *args: Any) -> None:
        task = asyncio.create_task(self._run(job_id, fn, args), name=f"simulation-{job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _set(self, job_id: str, **values: Any) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                sa.update(simulations).where(simulations.c.id == job_id).values(**values)
            )

    async def _run(
        self, job_id: str, fn: Callable[..., dict[str, Any]], args: tuple[Any, ...]
    ) -> None:
        await self._set(job_id, status="running")
        try:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self._executor(), fn, *args)
        except asyncio.CancelledError:
            await self._set(
                job_id, status="failed", error="the service stopped", finished_us=self.now_us()
            )
            raise
        except Exception as exc:
            log.warning("simulation %s failed: %s", job_id, exc)
            await self._set(
                job_id,
                status="failed",
                error=f"{type(exc).__name__}: {exc}",
                finished_us=self.now_us(),
            )
            return
        await self._set(
            job_id, status="done", result=json.dumps(_clean(result)), finished_us=self.now_us()
        )

    async def wait(self) -> None:
        """Until every job submitted so far has finished (tests, shutdown)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.wait()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
