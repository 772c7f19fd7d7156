"""`ciuic serve` as a real process for the e2e tier, and the few API calls the tests make."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port

__all__ = ["Serve", "events", "push", "rollout", "scaler", "serve_env"]

ROOT = Path(__file__).resolve().parents[2]


def serve_env(
    *, kubeconfig: Path, namespace: str, database_url: str, **settings: object
) -> dict[str, str]:
    """The process's environment: nothing CIUIC_ from ours, then the given settings (by
    their field names) over quick defaults for tests."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith("CIUIC_")}
    values: dict[str, object] = {
        "kubeconfig": kubeconfig,
        "namespace": namespace,
        "database_url": database_url,
        "reconcile_interval_s": 0.2,
        "rollout_poll_s": 0.05,
        "lease_duration_s": 3,
        "lease_renew_deadline_s": 2,
        "lease_retry_period_s": 0.2,
        "kube_request_timeout_s": 5,
        "log_level": "INFO",
        **settings,
    }
    return keep | {f"CIUIC_{k.upper()}": str(v) for k, v in values.items()}


class Serve:
    """One `ciuic serve` process on a free port; `kill()` is SIGKILL."""

    def __init__(self, identity: str, env: dict[str, str], log: Path) -> None:
        self.identity = identity
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve", "--port", self.url.rsplit(":", 1)[1]],
                cwd=ROOT,
                env={**env, "CIUIC_LEADER_IDENTITY": identity},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while not self._healthy():
            if time.monotonic() > deadline:
                raise AssertionError(f"{identity} not serving within 60 s:\n{self.tail()}")
            time.sleep(0.05)

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.identity} exited:\n{self.tail()}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def readyz(self) -> dict[str, Any]:
        found: dict[str, Any] = httpx.get(f"{self.url}/readyz", timeout=5).json()
        return found

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def push(url: str, metric: str | dict[str, float], value: float = 0.0, pod: str = "p0") -> None:
    """One pod's reading of `metric`, or of each metric of a dict, in one request."""
    values = metric if isinstance(metric, dict) else {metric: value}
    samples = [{"metric": m, "labels": {"pod": pod}, "value": v} for m, v in values.items()]
    response = httpx.post(f"{url}/v1/samples", json={"samples": samples}, timeout=10)
    assert response.status_code == 200, response.text


def scaler(url: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = httpx.get(f"{url}/v1/scalers/{name}", timeout=10).json()
    return found


def events(url: str, name: str, kind: str | None = None) -> list[dict[str, Any]]:
    """Oldest first."""
    params = {"kind": kind, "limit": "1000"} if kind else {"limit": "1000"}
    body = httpx.get(f"{url}/v1/scalers/{name}/events", params=params, timeout=10).json()
    found: list[dict[str, Any]] = body["events"][::-1]
    return found


def rollout(url: str, rollout_id: int) -> dict[str, Any]:
    found: dict[str, Any] = httpx.get(f"{url}/v1/rollouts/{rollout_id}", timeout=10).json()
    return found
