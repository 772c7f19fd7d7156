"""Benchmarks fail loudly on missing inputs (issue 14): a non-zero exit and a line saying
what is missing, never an empty table that looks like a result."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("script", ["simulate.py", "forecast.py"])
@pytest.mark.parametrize("folder", ["missing", "empty"])
def test_a_bench_without_traces_fails_and_says_so(script: str, folder: str, tmp_path: Path) -> None:
    traces = tmp_path / folder
    if folder == "empty":
        traces.mkdir()
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--traces", str(traces)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode != 0
    assert str(traces) in done.stderr


def test_the_benches_default_to_the_shipped_traces() -> None:
    shipped = sorted((ROOT / "data" / "traces").glob("*.csv"))
    assert shipped, "data/traces holds the benchmark's traces"
    for script in ("simulate.py", "forecast.py"):
        text = (ROOT / "bench" / script).read_text()
        assert '"data" / "traces"' in text or "data/traces" in text, script
