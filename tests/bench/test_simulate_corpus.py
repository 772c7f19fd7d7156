"""bench/simulate.py --corpus on a tiny corpus (one shipped-style file and one generated trace,
two seeds), its one JSON document, the generated traces written out, and loud failures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.sim.corpus import GENERATED, generate

ROOT = Path(__file__).resolve().parents[2]


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "bench/simulate.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _tiny(folder: Path) -> None:
    folder.mkdir()
    rows = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    rows += [f"2024-03-01 00:{i // 60:02d}:{i % 60:02d},600,100" for i in range(0, 1200, 2)]
    (folder / "tiny.csv").write_text("\n".join(rows) + "\n")


def test_a_corpus_run_prints_a_row_per_trace_and_writes_one_json_document(
    tmp_path: Path,
) -> None:
    _tiny(tmp_path / "traces")
    out, png = tmp_path / "corpus.json", tmp_path / "corpus.png"
    done = _bench(
        "--corpus",
        "--traces",
        str(tmp_path / "traces"),
        "--only",
        "tiny.csv",
        "--only",
        "gen_llm_bursty_1.csv",
        "--seed",
        "0",
        "--seed",
        "1",
        "--policy",
        "hpa",
        "--policy",
        "kpa",
        "--jobs",
        "2",
        "--json",
        str(out),
        "--png",
        str(png),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(out.read_text())  # one document for the whole run
    assert doc["seeds"] == [0, 1]
    assert [t["trace"] for t in doc["traces"]] == ["tiny.csv", "gen_llm_bursty_1.csv"]
    for t in doc["traces"]:
        assert [r["seed"] for r in t["runs"]] == [0, 1]
        rows = {r["policy"]: r for r in t["mean_over_seeds"]}
        assert set(rows) == {"hpa", "kpa", "oracle", "fluid"}  # the references always
        assert rows["oracle"]["cost_vs_oracle"] == 1.0 and rows["fluid"]["cost_vs_fluid"] == 1.0
        assert rows["kpa"]["cost_vs_kpa"] == 1.0
        seed_costs = [
            next(p for p in r["policies"] if p["policy"] == "hpa")["cost_usd"] for r in t["runs"]
        ]
        assert rows["hpa"]["cost_usd"] == pytest.approx(sum(seed_costs) / 2)
    assert set(doc["geometric_means"]) == {"hpa", "kpa", "oracle", "fluid"}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a table per policy, one row per trace, and the geometric means
    assert "#### hpa (mean over seeds 0, 1)" in done.stdout
    assert "| gen_llm_bursty_1.csv |" in done.stdout and "**geometric mean**" in done.stdout


def test_other_draws_of_the_families_are_scored_like_the_corpus() -> None:
    """`--draw 5`: the generated families drawn with generator seed 5, which the policy was not
    developed on, alone (no shipped trace), with the corpus's targets."""
    done = _bench(
        "--draw", "5", "--only", "gen_level_steps_5.csv", "--only", "gen_llm_bursty_5.csv",
        "--policy", "ciuic", "--policy", "kpa", "--jobs", "2",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "### Corpus: 2 traces" in done.stdout
    assert "| gen_level_steps_5.csv |" in done.stdout and "| gen_llm_bursty_5.csv |" in done.stdout
    assert "_1.csv" not in done.stdout and "nyc_taxi" not in done.stdout
    assert "geometric mean" in done.stdout and "x KPA over 2" in done.stdout
    assert generate("level_steps", 5) != generate("level_steps", 1)


def test_write_corpus_writes_the_generated_traces_and_their_windows(tmp_path: Path) -> None:
    done = _bench("--write-corpus", str(tmp_path))
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "corpus.json").read_text())
    assert [t["file"] for t in manifest["traces"]] == [g.name for g in GENERATED]
    small = next(g for g in GENERATED if g.family == "level_steps")
    assert (tmp_path / small.name).read_text() == generate(small.family, small.seed)
    assert (
        next(t for t in manifest["traces"] if t["file"] == small.name)["window_s"] == small.window_s
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--traces", "/nonexistent/traces"], "does not exist", id="no-folder"),
        pytest.param(["--only", "nope.csv"], "no trace named nope.csv", id="no-such-trace"),
        pytest.param(["--policy", "magic"], "unknown policy 'magic'", id="no-such-policy"),
    ],
)
def test_a_missing_input_fails_loudly(args: list[str], message: str) -> None:
    done = _bench(*args)
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""


def test_an_empty_folder_fails_loudly(tmp_path: Path) -> None:
    done = _bench("--traces", str(tmp_path))
    assert done.returncode == 2 and "no *.csv trace" in done.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("time,x\n1,2\n", "unknown trace header", id="unreadable"),
        pytest.param(
            "timestamp,value\n2014-07-01 00:00:00,0\n2014-07-01 00:30:00,0\n",
            "the scored window has no load",
            id="nothing-to-score",
        ),
    ],
)
def test_a_trace_that_cannot_be_scored_fails_before_any_run_naming_its_file(
    tmp_path: Path, text: str, message: str
) -> None:
    (tmp_path / "good.csv").write_text(_GOOD)
    (tmp_path / "bad.csv").write_text(text)
    done = _bench("--traces", str(tmp_path))
    assert done.returncode == 2, done.stderr
    assert f"{tmp_path / 'bad.csv'}: {message}" in done.stderr
    assert done.stdout == ""  # nothing ran, not even the good trace


_GOOD = "timestamp,value\n" + "".join(f"2014-07-01 {h:02d}:00:00,{100 + h}\n" for h in range(24))
