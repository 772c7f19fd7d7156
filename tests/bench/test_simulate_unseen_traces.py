"""bench/simulate.py on traces we do not ship: every CSV in the folder, either shape, scored
with the same default spec and default window, and every report adds up."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _counts(path: Path) -> None:
    """Ten-minute counts for three days with a daily cycle (a resolution no shipped trace has),
    timestamps in Unix seconds."""
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    rows = ["timestamp,value"]
    for i in range(3 * 144):
        t = t0 + timedelta(minutes=10 * i)
        value = 200 + 150 * math.sin(2 * math.pi * i / 144) + (400 if 300 <= i < 303 else 0)
        rows.append(f"{int(t.timestamp())},{value:.0f}")
    path.write_text("\n".join(rows) + "\n")


def _requests(path: Path) -> None:
    """Ten minutes of a request log, arrivals ramping up."""
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    rows = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    t = 0.0
    while t < 600:
        rows.append(f"{(t0 + timedelta(seconds=t)).isoformat()},{800},{120}")
        t += 0.5 if t < 300 else 0.25
    path.write_text("\n".join(rows) + "\n")


def test_every_trace_in_the_folder_is_scored_with_the_default_spec(tmp_path: Path) -> None:
    _counts(tmp_path / "shop_orders.csv")
    _requests(tmp_path / "chat_log.csv")
    out = tmp_path / "run.json"
    args = ["--traces", str(tmp_path), "--jobs", "1", "--json", str(out)]
    done = subprocess.run(
        [sys.executable, "bench/simulate.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["seeds"] == [0]
    traces = {t["trace"]: t for t in doc["traces"]}
    assert set(traces) == {"shop_orders.csv", "chat_log.csv"}
    for t in traces.values():
        [run] = t["runs"]
        assert [r["policy"] for r in run["policies"]] == [
            "ciuic",
            "hpa",
            "keda",
            "kpa",
            "oracle",
            "fluid",
            "ciuic-tuned",  # tuned on the history before the window (none for a log)
        ]
        for r in run["policies"]:
            assert r["requests"] > 0
            assert 0 <= r["dropped"] <= r["requests"]
            assert r["gpu_hours"] > 0 and r["cost_usd"] > 0
            assert 0 < r["utilization"] <= 1
    # the target checks ran for both (met or not is the benchmark's business, not this test's)
    assert {c["where"] for c in doc["targets"]} == {"shop_orders.csv", "chat_log.csv"}
    assert "### shop_orders.csv (seed 0)" in done.stdout
