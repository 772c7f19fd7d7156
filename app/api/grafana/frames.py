"""What a query answers with: the window of buckets asked for, a named series of points, and
tables (Grafana's `table` shape).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["TimeSeries", "Window", "series_name", "series_table", "table"]

_LEGEND = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


@dataclass(frozen=True, slots=True)
class Window:
    start_ms: int
    end_ms: int
    step_ms: int
    max_points: int
    now_ms: int

    def bucket_times(self) -> list[int]:
        """Epoch-aligned bucket starts covering [start, end], never past now, newest kept."""
        first = self.start_ms - self.start_ms % self.step_ms
        last = min(self.end_ms, self.now_ms)
        times = list(range(first, last + 1, self.step_ms)) if last >= first else []
        return times[-self.max_points :]


@dataclass(frozen=True, slots=True)
class TimeSeries:
    target: str
    datapoints: list[tuple[float, int]]

    def json(self) -> dict[str, Any]:
        """Grafana's time series shape; a non-finite value (which JSON cannot carry) is left
        out as a gap."""
        return {
            "target": self.target,
            "datapoints": [[v, t] for v, t in self.datapoints if math.isfinite(v)],
        }


def table(columns: Sequence[tuple[str, str]], rows: list[list[Any]]) -> dict[str, Any]:
    return {
        "type": "table",
        "columns": [{"text": text, "type": kind} for text, kind in columns],
        "rows": rows,
    }


def series_table(series: Sequence[TimeSeries]) -> dict[str, Any]:
    rows: list[list[Any]] = [[t, s.target, v] for s in series for v, t in s.datapoints]
    rows.sort(key=lambda r: (r[0], r[1]))
    return table([("Time", "time"), ("Series", "string"), ("Value", "number")], rows)


def series_name(name: str, labels: dict[str, str], legend: str | None) -> str:
    if legend:
        return _LEGEND.sub(lambda m: labels.get(m.group(1), ""), legend)
    if not labels:
        return name
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"
