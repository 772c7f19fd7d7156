"""Every shell and Python block of README.md and docs/*.md runs, against a live service, as a
reader would paste it (issue 14: examples had broken and named files nobody shipped).

Blocks run in their file's order on one fresh service (open mode, SQLite), from the repository
root, with `localhost:8080` pointed at the test's port. `curl` fails on an HTTP error (it runs
as `curl --fail-with-body`), so an example answered with a 4xx or 5xx fails the test, as does
any command that exits non-zero. A block that cannot run here (a cluster, Docker, a server
that runs until Ctrl-C) carries the marker `<!-- doc-test: skip: <why> -->` on the line
before it; the skipped blocks are listed and counted below, so a new skip is a visible change.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import IN_CI, LiveServer

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\s*$")
SKIP = re.compile(r"^<!-- doc-test: skip: (.+?) -->$")
RUN = ("sh", "bash", "console", "python")
# (file, first command before any comment) of every block skipped; the markers' reasons are
# shown when this differs: adding a skip means adding it here.
SKIPPED = {
    (
        "README.md",
        "make serve",
    ),
    ("README.md", ".venv/bin/ciuic demo"),
    ("README.md", "export CIUIC_ADMIN_TOKEN=$(openssl rand -hex 24)"),
    ("README.md", "job=$(curl -s -XPOST localhost:8080/v1/scalers/deepseek-service/tune \\"),
    ("simulator.md", "python bench/simulate.py"),
    (
        "benchmark.md",
        "python bench/simulate.py",
    ),
    ("benchmark.md", "python bench/simulate.py --corpus --only gen_scale_from_zero_1.csv --jobs 2"),
    (
        "benchmark.md",
        "python bench/simulate.py --draw 2 --draw 3 --draw 4 --draw 5 --draw 6 --seed 0 --json "
        "draws.json",
    ),
    ("benchmark.md", "mkdir -p held-out && cd held-out"),
    ("benchmark.md", "mkdir -p held-out-2 && cd held-out-2"),
    ("benchmark.md", "mkdir -p held-out-3 && cd held-out-3"),
}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    skip: str | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(1)
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        before = next((ln.strip() for ln in reversed(lines[:start]) if ln.strip()), "")
        skip = SKIP.match(before)
        found.append(
            Block(
                path,
                start + 1,
                lang,
                "\n".join(lines[start + 1 : j]) + "\n",
                skip.group(1) if skip else None,
            )
        )
        i = j + 1
    return [b for b in found if b.lang in RUN]


def _curl_shim(bin_dir: Path) -> None:
    shim = bin_dir / "curl"
    shim.write_text(f'#!/bin/sh\nexec {shutil.which("curl")} --fail-with-body -sS "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)


def _console(code: str) -> str:
    """A console block's commands: the lines after `$ ` (the rest is output)."""
    return "\n".join(ln[2:] for ln in code.splitlines() if ln.startswith("$ ")) + "\n"


def run_block(block: Block, server: LiveServer, bin_dir: Path) -> None:
    code = block.code.replace("localhost:8080", server.hostport).replace(
        "127.0.0.1:8080", server.hostport
    )
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
    }
    if block.lang == "python":
        argv = [sys.executable, "-c", code]
    else:
        script = _console(code) if block.lang == "console" else code
        argv = ["bash", "-e", "-o", "pipefail", "-c", script]
    done = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, (
        f"the example at {block.where} failed (exit {done.returncode}):\n{block.code}\n"
        f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
    )


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_every_block_names_its_language(path: Path) -> None:
    """An untagged block would escape the runner: `sh`, `python`, or `text`/`yaml` for what
    is not run."""
    lines = path.read_text(encoding="utf-8").splitlines()
    untagged, inside = [], False
    for n, line in enumerate(lines, start=1):
        if line.startswith("```"):
            if not inside and line.strip() == "```":
                untagged.append(f"{path.name}:{n}")
            inside = not inside
    assert untagged == []


def test_skipped_blocks_are_the_listed_ones() -> None:
    skipped = {
        (b.path.name, b.code.splitlines()[0].split("#")[0].strip()): b
        for path in DOCS
        for b in blocks(path)
        if b.skip is not None
    }
    listed = "\n".join(f"  {b.where}: {b.skip}" for b in skipped.values())
    assert set(skipped) == SKIPPED, f"{len(skipped)} blocks skipped:\n{listed}"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_every_example_runs(path: Path, server: LiveServer, tmp_path: Path) -> None:
    missing = [tool for tool in ("curl", "jq") if shutil.which(tool) is None]
    if missing:  # the examples use them as a reader would; .ci/run installs them
        message = f"the docs' examples need {', '.join(missing)}"
        if IN_CI:
            pytest.fail(f"{message} (required under CI=true)")
        pytest.skip(message)
    _curl_shim(tmp_path)
    for block in blocks(path):
        if block.skip is None:
            run_block(block, server, tmp_path)


# Every document a user reads, the examples' and the SDK's included.
READ = [
    *DOCS,
    *(p for d in ("data", "deploy", "examples", "sdk") for p in sorted((ROOT / d).rglob("*.md"))),
]


@pytest.mark.parametrize("path", READ, ids=[str(p.relative_to(ROOT)) for p in READ])
def test_docs_point_only_at_what_users_have(path: Path) -> None:
    """Users have the repository, not the workspace it was built in (case matters for the
    file names: docs/benchmark.md is ours, BENCHMARK.md is not)."""
    text = path.read_text(encoding="utf-8")
    found = [
        f"{path.name}:{n}: {line.strip()}"
        for n, line in enumerate(text.splitlines(), start=1)
        if re.search(r"\.\./shared|BENCHMARK\.md|NOTES\.md|(?i:the brief)", line)
    ]
    assert found == []
