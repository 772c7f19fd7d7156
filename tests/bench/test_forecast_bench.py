"""bench/forecast.py on traces we do not ship, and `--weeks-earlier`: the scored window moves
back by whole weeks, with nothing after its end in sight; a request log has no earlier week."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STEP_MIN = 30
PER_DAY = 24 * 60 // STEP_MIN


def _counts(path: Path, days: int) -> None:
    """Half-hour counts with a daily cycle; the last week is ten times busier (a level the
    earlier windows must not see)."""
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    rows = ["timestamp,value"]
    n = days * PER_DAY
    for i in range(n):
        t = t0 + timedelta(minutes=STEP_MIN * i)
        value = 200 + 150 * math.sin(2 * math.pi * i / PER_DAY)
        if i >= n - 7 * PER_DAY:
            value *= 10
        rows.append(f"{t:%Y-%m-%d %H:%M:%S},{value:.0f}")
    path.write_text("\n".join(rows) + "\n")


def _requests(path: Path) -> None:
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    rows = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    rows += [f"{(t0 + timedelta(seconds=s)).isoformat()},800,120" for s in range(0, 1200, 2)]
    path.write_text("\n".join(rows) + "\n")


def _run(folder: Path, *extra: str) -> dict[str, Any]:
    bench = [sys.executable, str(ROOT / "bench" / "forecast.py"), "--traces", str(folder)]
    out = subprocess.run(
        [*bench, "--no-prophet", "--speed-reps", "1", *extra],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    report: dict[str, Any] = json.loads(out.splitlines()[0])
    return report


def test_an_earlier_week_is_scored_without_the_data_after_it(tmp_path: Path) -> None:
    _counts(tmp_path / "orders.csv", days=35)
    _requests(tmp_path / "chat_log.csv")

    now = _run(tmp_path)
    earlier = _run(tmp_path, "--weeks-earlier", "1")

    assert set(now["traces"]) == {"orders", "chat_log"}
    assert set(earlier["traces"]) == {"orders"}, "a request log has no earlier week"
    assert "1 week(s) before" in earlier["traces"]["orders"]

    def naive_mae(report: dict[str, Any]) -> float:
        return next(
            float(r["mae"])
            for r in report["rows"]
            if r["trace"] == "orders" and r["model"] == "naive" and r["lead_steps"] == 2
        )

    # The benchmark's window (the last 7 days by default) holds the 10x level; a week earlier
    # is the quiet series only, so its errors are a tenth or less.
    assert naive_mae(earlier) < naive_mae(now) / 5
    assert {t["trace"] for t in earlier["targets"]} == {"orders"}
