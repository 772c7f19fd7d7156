"""The latest forecast of each scaler, persisted so a restart or another replica has it."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.policy.types import LoadForecast, WakeForecast
from app.store.tables import forecasts

__all__ = ["StoredForecast", "delete_forecast", "forecast_names", "get_forecast", "save_forecast"]


@dataclass(frozen=True, slots=True)
class StoredForecast:
    scaler: str
    forecast: LoadForecast
    details: dict[str, Any]  # notes, backtest, lead, history span, accuracy


async def save_forecast(
    conn: AsyncConnection, scaler: str, forecast: LoadForecast, details: dict[str, Any]
) -> None:
    values = {
        "scaler": scaler,
        "made_us": round(forecast.made_at * 1e6),
        "model": forecast.model,
        "start": forecast.start,
        "step_s": forecast.step_s,
        "points": json.dumps(
            {
                "mean": list(forecast.mean),
                "quantiles": {str(q): list(p) for q, p in forecast.quantiles.items()},
                "skill": forecast.skill,
                "wake": None if forecast.wake is None else dataclasses.asdict(forecast.wake),
            }
        ),
        "failed": forecast.failed,
        "details": json.dumps(details),
    }
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(forecasts)
    await conn.execute(
        insert.values(values).on_conflict_do_update(
            index_elements=["scaler"], set_={k: v for k, v in values.items() if k != "scaler"}
        )
    )


async def get_forecast(conn: AsyncConnection, scaler: str) -> StoredForecast | None:
    row = (await conn.execute(sa.select(forecasts).where(forecasts.c.scaler == scaler))).first()
    if row is None:
        return None
    points = json.loads(row.points)
    forecast = LoadForecast(
        model=row.model,
        made_at=int(row.made_us) / 1e6,
        start=float(row.start),
        step_s=float(row.step_s),
        mean=tuple(float(v) for v in points["mean"]),
        quantiles={float(q): tuple(float(v) for v in p) for q, p in points["quantiles"].items()},
        failed=row.failed,
        skill=points.get("skill"),  # absent in forecasts stored before skill was measured
        wake=_wake(points.get("wake")),  # absent before the wake was judged
    )
    return StoredForecast(scaler, forecast, json.loads(row.details))


def _wake(stored: dict[str, Any] | None) -> WakeForecast | None:
    if not stored:
        return None
    return WakeForecast(**{**stored, "path": tuple(float(v) for v in stored["path"])})


async def delete_forecast(conn: AsyncConnection, scaler: str) -> None:
    await conn.execute(sa.delete(forecasts).where(forecasts.c.scaler == scaler))


async def forecast_names(conn: AsyncConnection) -> set[str]:
    """The scalers that have a stored forecast (a reconcile pass skips the rest's lookups)."""
    rows = await conn.execute(sa.select(forecasts.c.scaler))
    return {str(r.scaler) for r in rows.all()}
