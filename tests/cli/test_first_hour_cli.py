"""Issue 14, the command line in a newcomer's hands: a version, help on every option, one
clear line when the service is not there, traces in Unix seconds or milliseconds, and
progress a log can hold."""

from __future__ import annotations

import argparse
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.cli import build_parser, main
from app.cli.simulate import _Progress
from tests.conftest import free_port


def _options(parser: argparse.ArgumentParser, name: str) -> list[tuple[str, argparse.Action]]:
    found: list[tuple[str, argparse.Action]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                found += _options(child, f"{name} {sub}")
        else:
            found.append((name, action))
    return found


def test_every_option_has_help() -> None:
    missing = [
        f"{name} {'/'.join(a.option_strings) or a.dest}"
        for name, a in _options(build_parser(), "ciuic")
        if not a.help
    ]
    assert missing == []


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("ciuic ") and out.strip() != "ciuic"


def test_demo_without_a_service_is_one_line_and_a_failure() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "demo", "--url", url, "--ticks", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"ciuic demo: cannot reach {url}") and "ciuic serve" in line


def test_progress_off_a_terminal_is_a_line_per_ten_percent() -> None:
    stream = io.StringIO()
    progress = _Progress(stream, 2, terminal=False)
    for t in range(0, 101, 5):
        progress("ciuic", t, 100)
    for t in range(0, 101, 5):
        progress("hpa", t, 100)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines == [
        f"ciuic simulate: {p:3d} % ({'ciuic' if p <= 50 else 'hpa'})" for p in range(10, 101, 10)
    ]
    assert "\r" not in stream.getvalue()


@pytest.mark.parametrize("scale", [1, 1000], ids=["unix-seconds", "unix-milliseconds"])
def test_simulate_reads_unix_timestamps(tmp_path: Path, scale: int) -> None:
    trace = tmp_path / "trace.csv"
    rows = [f"{(1_700_000_000 + 300 * i) * scale},{50 + (i % 12) * 10}" for i in range(600)]
    trace.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "simulate",
            "--trace",
            str(trace),
            "--policy",
            "hpa",
            "--jobs",
            "1",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert '"hpa"' in done.stdout
    assert "ciuic simulate: 100 %" in done.stderr  # a pipe: plain progress lines


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "--ppid", str(pid), "-o", "pid="], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")  # a zombie is gone


def _long_trace(folder: Path) -> Path:
    trace = folder / "long.csv"
    rows = (f"{1_700_000_000 + 60 * i},{100 + (i % 1440) // 10}" for i in range(100_000))
    trace.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    return trace


def _started_workers(proc: subprocess.Popen[str]) -> list[int]:
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while time.monotonic() < deadline and len(workers) < 2:
        workers = _children(proc.pid)
        time.sleep(0.2)
    assert workers, "the pool never started"
    return workers


def _sigint_state(pid: int) -> str:
    """The process's SIGINT as the kernel has it (ignored, blocked, caught), for a failure."""
    try:
        fields = dict(
            line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        )
    except OSError:
        return f"{pid}: gone"
    bit = 1 << (signal.SIGINT - 1)
    says = [k for k in ("SigIgn", "SigBlk", "SigCgt") if int(fields[k], 16) & bit]
    return f"{pid}: SIGINT {'/'.join(says) or 'default'}"


def _stopped(proc: subprocess.Popen[str], workers: list[int]) -> str:
    """The command's stderr once it has exited; if it has not within 30 s, it and its workers
    are killed (never left running beside the rest of the suite) and the failure says how
    each of them held SIGINT."""
    try:
        return proc.communicate(timeout=30)[1]
    except subprocess.TimeoutExpired:
        states = [_sigint_state(pid) for pid in [proc.pid, *workers]]
        os.killpg(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate()
        raise AssertionError(f"still running 30 s after the signal ({states}):\n{stderr}") from None


def test_sigterm_stops_the_workers_with_the_command(tmp_path: Path) -> None:
    """Killed by SIGTERM, `ciuic simulate` died at once and left its pool's workers running
    their policies to the end (then "leaked semaphore" warnings): it now stops them."""
    trace = _long_trace(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "simulate", "--trace", str(trace), "--jobs", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    workers = _started_workers(proc)
    proc.send_signal(signal.SIGTERM)
    stderr = _stopped(proc, workers)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "stopped (SIGTERM)" in stderr and "leaked" not in stderr
    time.sleep(0.5)
    assert [pid for pid in workers if _alive(pid)] == []


@pytest.mark.parametrize(
    ("command", "name"),
    [
        pytest.param(["-m", "app.cli", "simulate", "--trace"], "ciuic simulate", id="ciuic"),
        pytest.param(["bench/simulate.py", "--traces"], "bench/simulate.py", id="bench"),
    ],
)
def test_ctrl_c_stops_the_workers_with_one_line(
    tmp_path: Path, command: list[str], name: str
) -> None:
    """Ctrl-C reaches the whole process group: each worker died on its own KeyboardInterrupt
    and printed a traceback. Now they ignore it; the command stops them and says so once."""
    trace = _long_trace(tmp_path)
    target = str(trace if name == "ciuic simulate" else tmp_path)
    proc = subprocess.Popen(
        [sys.executable, *command, target, "--jobs", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        start_new_session=True,  # a terminal's process group of its own, workers included
    )
    workers = _started_workers(proc)
    time.sleep(0.5)  # a Ctrl-C while the workers start: forked ones ignore it from the start
    os.killpg(proc.pid, signal.SIGINT)
    stderr = _stopped(proc, workers)
    assert proc.returncode == 128 + signal.SIGINT
    assert stderr.strip().splitlines()[-1:] == [f"{name}: stopped (Ctrl-C)"]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    time.sleep(0.5)
    assert [pid for pid in workers if _alive(pid)] == []
