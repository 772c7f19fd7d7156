"""`ciuic-warmup`: warm the local model server up, then mark the pod ready.

The brief's `warmup_handler`, done right. At start it

1. waits for the model server to answer its health URL (loading a 7B model takes 30-60 s),
   up to `--wait` seconds;
2. sends the configured warm-up requests (a JSON file of request bodies, or a few generated
   completions for `--model`), retrying each failure up to `--attempts` times with backoff,
   and logs every failure with its reason;
3. marks the pod ready when at least `--min-successes` requests succeeded: it writes the
   readiness file (an `exec` probe: `test -f /ciuic/ready`) and/or answers `GET /ready` with
   200 on `--ready-port` (an `httpGet` probe; 503 until then, and 503 again whenever the model
   server's health URL stops answering).

When too few warm-up requests succeed the pod is *not* marked ready and the command exits
with status 1, so the failure shows in `kubectl describe` and the pod takes no traffic cold.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

__all__ = ["ReadinessServer", "WarmupConfig", "WarmupResult", "default_requests", "main", "warm_up"]

log = logging.getLogger("ciuic.warmup")

# Short and long prompts, so the first real requests do not pay for first-time kernels and
# cache allocation at either size.
_PROMPTS = (
    "Hello.",
    "Summarise in one sentence: predictive autoscaling starts capacity before demand arrives.",
    " ".join(["Explain step by step how a transformer attends to earlier tokens."] * 8),
)


def default_requests(model: str, max_tokens: int = 16) -> list[dict[str, Any]]:
    """OpenAI-compatible completion bodies (vLLM's /v1/completions)."""
    return [{"model": model, "prompt": p, "max_tokens": max_tokens} for p in _PROMPTS]


@dataclass(frozen=True, slots=True)
class WarmupConfig:
    url: str = "http://127.0.0.1:8000/v1/completions"
    requests: Sequence[Mapping[str, Any]] = ()
    health_url: str | None = "http://127.0.0.1:8000/health"
    wait_s: float = 600.0  # for the health URL to answer
    attempts: int = 3  # per request
    backoff_s: float = 1.0  # doubled after each failed attempt
    timeout_s: float = 120.0  # per request: a cold first request is slow
    min_successes: int = 1
    ready_file: Path | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class WarmupResult:
    succeeded: int = 0
    failed: int = 0
    attempts: int = 0
    errors: list[str] = field(default_factory=list)
    ready: bool = False


class ReadinessServer:
    """`GET /ready`: 200 once warmed up (and while the model server's health URL answers),
    503 before. `GET /live`: always 200 while the process runs."""

    def __init__(
        self,
        port: int,
        host: str = "0.0.0.0",
        check: Callable[[], bool] | None = None,
    ) -> None:
        self.warmed = threading.Event()
        self._check = check
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/live":
                    self._answer(200, "alive")
                elif self.path == "/ready":
                    ok, why = outer.status()
                    self._answer(200 if ok else 503, why)
                else:
                    self._answer(404, "not found")

            def _answer(self, status: int, text: str) -> None:
                body = (text + "\n").encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("readiness: " + format, *args)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def status(self) -> tuple[bool, str]:
        if not self.warmed.is_set():
            return False, "warming up"
        if self._check is not None and not self._check():
            return False, "the model server's health check fails"
        return True, "ready"

    def start(self) -> ReadinessServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _healthy(http: httpx.Client, url: str) -> bool:
    try:
        return http.get(url).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for_server(
    http: httpx.Client, url: str, wait_s: float, sleep: Callable[[float], None] = time.sleep
) -> bool:
    deadline = time.monotonic() + wait_s
    delay = 0.5
    while True:
        try:
            response = http.get(url)
            if response.status_code == 200:
                return True
            reason = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}"
        if time.monotonic() + delay > deadline:
            log.error("%s did not become healthy within %gs (last: %s)", url, wait_s, reason)
            return False
        log.info("waiting for %s (%s)", url, reason)
        sleep(delay)
        delay = min(delay * 2, 5.0)


def _send(
    http: httpx.Client,
    config: WarmupConfig,
    index: int,
    body: Mapping[str, Any],
    result: WarmupResult,
    sleep: Callable[[float], None],
) -> bool:
    delay = config.backoff_s
    for attempt in range(1, config.attempts + 1):
        result.attempts += 1
        try:
            response = http.post(config.url, json=dict(body), headers=dict(config.headers))
            if response.status_code < 300:
                log.info("warm-up request %d succeeded (attempt %d)", index, attempt)
                return True
            reason = f"HTTP {response.status_code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}"
        last = attempt == config.attempts
        log.warning(
            "warm-up request %d failed (attempt %d/%d): %s%s",
            index,
            attempt,
            config.attempts,
            reason,
            "" if last else f"; retrying in {delay:g}s",
        )
        if last:
            result.errors.append(f"request {index}: {reason}")
            return False
        sleep(delay)
        delay *= 2
    return False


def mark_ready(path: Path) -> None:
    """Write the readiness file atomically (a probe never sees a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"warmed up at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
    tmp.replace(path)


def warm_up(
    config: WarmupConfig,
    *,
    readiness: ReadinessServer | None = None,
    http: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> WarmupResult:
    """Wait for the server, send the warm-up requests with retries, then mark ready."""
    result = WarmupResult()
    owned = http is None
    client = http or httpx.Client(timeout=config.timeout_s)
    try:
        if config.health_url and not wait_for_server(
            client, config.health_url, config.wait_s, sleep
        ):
            result.errors.append(f"{config.health_url} never became healthy")
            return result
        for index, body in enumerate(config.requests):
            if _send(client, config, index, body, result, sleep):
                result.succeeded += 1
            else:
                result.failed += 1
    finally:
        if owned:
            client.close()
    needed = min(config.min_successes, len(config.requests))
    if result.succeeded < needed:
        log.error(
            "warm-up failed: %d of %d requests succeeded, %d needed; the pod stays unready",
            result.succeeded,
            len(config.requests),
            needed,
        )
        return result
    if config.ready_file is not None:
        mark_ready(config.ready_file)
    if readiness is not None:
        readiness.warmed.set()
    result.ready = True
    log.info(
        "warmed up: %d succeeded, %d failed, %d attempts; marked ready",
        result.succeeded,
        result.failed,
        result.attempts,
    )
    return result


def load_requests(path: Path) -> list[dict[str, Any]]:
    """A JSON array of request bodies, or JSON Lines (one body per line)."""
    text = path.read_text(encoding="utf-8")
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        document = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not isinstance(document, list) or not all(isinstance(d, dict) for d in document):
        raise ValueError(f"{path}: expected a JSON array of objects or JSON Lines of objects")
    return document


_DEFAULTS = WarmupConfig()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ciuic-warmup", description="Warm the local model server up, then mark the pod ready."
    )
    p.add_argument("--url", default=_DEFAULTS.url, help="where warm-up requests are POSTed")
    p.add_argument("--requests", type=Path, help="JSON array or JSON Lines of request bodies")
    p.add_argument("--model", help="generate a few completion requests for this model")
    p.add_argument("--health-url", default=_DEFAULTS.health_url, help="'' to skip waiting")
    p.add_argument("--wait", type=float, default=_DEFAULTS.wait_s, dest="wait_s")
    p.add_argument("--attempts", type=int, default=_DEFAULTS.attempts)
    p.add_argument("--backoff", type=float, default=_DEFAULTS.backoff_s, dest="backoff_s")
    p.add_argument("--timeout", type=float, default=_DEFAULTS.timeout_s, dest="timeout_s")
    p.add_argument("--min-successes", type=int, default=_DEFAULTS.min_successes)
    p.add_argument("--ready-file", type=Path, help="written once warmed up")
    p.add_argument("--ready-port", type=int, help="serve GET /ready on this port")
    p.add_argument("--exit", action="store_true", help="exit once warmed up (no endpoint kept)")
    p.add_argument("--log-level", default="INFO")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.requests is not None:
        bodies = load_requests(args.requests)
    elif args.model:
        bodies = default_requests(args.model)
    else:
        build_parser().error("give --requests FILE or --model NAME")
    if args.ready_file is None and args.ready_port is None:
        build_parser().error("give --ready-file and/or --ready-port: how the probe learns")
    config = WarmupConfig(
        url=args.url,
        requests=bodies,
        health_url=args.health_url or None,
        wait_s=args.wait_s,
        attempts=args.attempts,
        backoff_s=args.backoff_s,
        timeout_s=args.timeout_s,
        min_successes=args.min_successes,
        ready_file=args.ready_file,
    )
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    readiness: ReadinessServer | None = None
    health = httpx.Client(timeout=2.0)
    if args.ready_port is not None:
        health_url = config.health_url
        check = (lambda: _healthy(health, health_url)) if health_url else None
        readiness = ReadinessServer(args.ready_port, check=check).start()
    try:
        result = warm_up(config, readiness=readiness)
        if not result.ready:
            return 1
        if readiness is not None and not args.exit:
            stop.wait()  # keep answering the probe until the pod stops
        return 0
    finally:
        if readiness is not None:
            readiness.stop()
        health.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    raise SystemExit(main())
