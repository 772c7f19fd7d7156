"""bench/soak.py end to end, tiny and short: the service starts, scalers are created, pods
push (periodically, and on a queue change as the agent does by default), the scalers decide on
every pod's pushes, and the report adds up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_soak_smoke(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    done = subprocess.run(
        [
            sys.executable,
            "bench/soak.py",
            *("--backend", "sqlite", "--seconds", "6", "--interval", "2"),
            *("--pods", "20", "--scalers", "2", "--sample-every", "1", "--json", str(out)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]
    result = json.loads(out.read_text())
    # 20 pods every 2 s for 6 s, each answered (the load was delivered, nothing failed).
    assert result["intended_pushes"] == 60
    assert result["sent"] == 60
    assert result["errors"] == 0, result["error_kinds"]
    # The first scaler's Deployment has its 40 s burst (queue +80) in the run: its pods read
    # the queue every second between pushes and push it at once when it grew, as JSON.
    assert result["push_on_queue"] == 5.0 and result["change_poll_s"] == 1.0
    assert result["change_pushes"] > 0
    assert result["change_push_errors"] == 0
    assert "| change push latency p50 / p99 / max |" in done.stdout
    # Both scalers decided recently, on readings from all 10 of their pods.
    assert result["final"]["reconciled_recently"] == 2
    assert result["final"]["decisions_missing_pods_count"] == 0, result["final"]
    assert result["rss_first_mb"] > 0 and result["cpu_cores_mean"] is not None
    # The exit status says whether every target was met (latency may miss on a busy machine).
    assert (done.returncode == 0) == all(result["checks"].values())
    assert "| push latency p50 / p99 / max |" in done.stdout
