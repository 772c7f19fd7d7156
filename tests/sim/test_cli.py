"""`ciuic simulate` end to end on a small synthetic trace file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from app.sim.report import REPORT_KEYS


def _count_trace(path: Path, days: int = 1) -> Path:
    rng = np.random.default_rng(0)
    lines = ["timestamp,value"]
    for i in range(days * 48):
        h, m = divmod(i * 30, 60)
        v = int(100 + 80 * np.sin(2 * np.pi * i / 48) + rng.integers(0, 10))
        lines.append(f"2015-01-{1 + h // 24:02d} {h % 24:02d}:{m:02d}:00,{v}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_json_output_has_the_report_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = _count_trace(tmp_path / "t.csv")
    rc = main(
        [
            "simulate",
            "--trace",
            str(trace),
            "--policy",
            "hpa",
            "--policy",
            "oracle",
            "--window",
            "6h",
            "--format",
            "json",
            "--plot",
            str(tmp_path / "p.png"),
        ]
    )
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)  # one document, not JSON lines
    rows = doc["policies"]
    assert [r["policy"] for r in rows] == ["hpa", "oracle"]
    for r in rows:
        assert tuple(k for k in r if k != "hybrid") == REPORT_KEYS
    assert rows[1]["cost_vs_oracle"] == 1.0
    assert rows[0]["cost_vs_oracle"] > 1.0
    assert rows[0]["cost_vs_fluid"] > rows[1]["cost_vs_fluid"] > 0  # fluid always runs
    assert doc["trace"] == "t.csv"
    assert doc["targets"] == []  # no ciuic row: nothing to check
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_table_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = _count_trace(tmp_path / "t.csv")
    assert main(["simulate", "--trace", str(trace), "--policy", "kpa", "--window", "3h"]) == 0
    out = capsys.readouterr().out
    assert "| policy |" in out and "| kpa |" in out


@pytest.mark.parametrize(
    ("content", "extra"),
    [
        pytest.param("time,count\n1,2\n", [], id="unknown-header"),
        pytest.param(None, [], id="missing-file"),
        pytest.param("timestamp,value\n2015-01-01 00:00:00,1\n", [], id="one-row"),
        pytest.param(
            "timestamp,value\n2015-01-01 00:00:00,1\n2015-01-01 00:30:00,1\n",
            ["--window", "soon"],
            id="bad-window",
        ),
    ],
)
def test_bad_input_is_exit_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, extra: list[str]
) -> None:
    path = tmp_path / "t.csv"
    if content is not None:
        path.write_text(content)
    assert main(["simulate", "--trace", str(path), "--policy", "hpa", *extra]) == 2
    assert "ciuic simulate:" in capsys.readouterr().err
