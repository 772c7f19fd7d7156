"""`ciuic-hold`: hold requests while the model server is down, forward them when it answers.

With `min_replicas: 0` a request can arrive when no pod runs. Put this proxy in front of the
model server's Service (or make it your router's upstream) and that request is not lost:

- every request is forwarded to `--upstream` as it came (method, path, query, headers but the
  hop-by-hop ones, body), and the answer streams back (an LLM's server-sent events flow
  through as they are generated);
- when the upstream cannot take it (the connection is refused or times out, or it answers
  502, 503 or 504: no Ready pod behind the Service), the request is *held*: the proxy probes
  the upstream's `--health-path` every `--probe` seconds and forwards every held request as
  soon as it answers 2xx;
- the number of requests held is pushed to Ciuic as `request_queue` (the metric the scaler's
  `<5` ceiling reads), labelled with `--label`s and no `pod` label, so the scaler sees it
  with no pod up: at once whenever it changes, and every `--interval` seconds (5) so the
  reading stays fresh. A queue at zero wakes the deployment (`zero.wake_queue`);
- a request held longer than `--max-hold` seconds (300, Knative's default request timeout)
  gets a 503 with a JSON error and `Retry-After`: an answer, never a silent loss.

The body of a held request is kept in memory (LLM requests are small) so it can be sent again;
a request is only retried when the upstream never took it (no connection, or one of the
statuses above), never after it may have run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ciuic_sdk._client import AsyncClient
from ciuic_sdk._errors import CiuicError
from ciuic_sdk._options import parse_labels

__all__ = ["HoldConfig", "HoldProxy", "HoldStats", "main"]

log = logging.getLogger("ciuic.hold")

# RFC 9110 hop-by-hop headers, plus what httpx and the server recompute for each leg
_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@dataclass(frozen=True, slots=True)
class HoldConfig:
    upstream: str  # the model server's base URL (its Service)
    ciuic_url: str = "http://ciuic:8080"
    token: str | None = None
    job: str = "ciuic-hold"
    labels: Mapping[str, str] = field(default_factory=dict)  # the scaler's selector labels
    metric: str = "request_queue"
    health_path: str = "/health"  # vLLM's; 2xx means it takes requests
    max_hold_s: float = 300.0
    probe_s: float = 0.5
    interval_s: float = 5.0
    upstream_timeout_s: float = 600.0  # a long generation streams for minutes
    connect_timeout_s: float = 2.0
    hold_statuses: frozenset[int] = frozenset({502, 503, 504})


@dataclass(slots=True)
class HoldStats:
    held: int = 0  # held now
    held_total: int = 0  # requests that had to wait for the upstream
    forwarded: int = 0  # answers relayed (held or not)
    expired: int = 0  # 503s after max_hold_s
    pushes_failed: int = 0


class HoldProxy:
    """The proxy as a Starlette app (`.app`), for `uvicorn` or any ASGI server."""

    def __init__(
        self,
        config: HoldConfig,
        *,
        upstream: httpx.AsyncClient | None = None,
        ciuic: AsyncClient | None = None,
    ) -> None:
        self.config = config
        self.stats = HoldStats()
        timeout = httpx.Timeout(config.upstream_timeout_s, connect=config.connect_timeout_s)
        self._upstream = upstream or httpx.AsyncClient(
            base_url=config.upstream.rstrip("/"), timeout=timeout
        )
        self._ciuic = ciuic or AsyncClient(config.ciuic_url, config.token, timeout=5.0)
        self._ready = asyncio.Event()  # the upstream answered its health probe
        self._probe = asyncio.Event()  # someone waits: probe until it answers
        self._changed = asyncio.Event()  # the held count changed: push now
        self._push_failing = False
        route = Route("/{path:path}", self.handle, methods=_METHODS)
        self.app = Starlette(routes=[route], lifespan=self._lifespan)

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(self._push_loop()), asyncio.create_task(self._probe_loop())]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._upstream.aclose()
            await self._ciuic.aclose()

    # -- requests -----------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.max_hold_s
        held = False
        try:
            while True:
                response = await self._forward(request, body)
                if response is not None:
                    self.stats.forwarded += 1
                    return response
                if not held:
                    held = True
                    self._count(+1)
                    self.stats.held_total += 1
                self._probe.set()
                remaining = deadline - loop.time()
                if remaining > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._ready.wait(), remaining)
                if loop.time() >= deadline:
                    self.stats.expired += 1
                    return _expired(self.config.max_hold_s)
        finally:
            if held:
                self._count(-1)

    async def _forward(self, request: Request, body: bytes) -> Response | None:
        """The upstream's answer, streaming; None when it did not take the request."""
        headers = [
            (k, v) for k, v in request.headers.raw if k.decode("latin-1").lower() not in _HOP
        ]
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        outgoing = self._upstream.build_request(request.method, path, headers=headers, content=body)
        try:
            answer = await self._upstream.send(outgoing, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            self._ready.clear()
            return None
        if answer.status_code in self.config.hold_statuses:
            await answer.aclose()
            self._ready.clear()
            return None
        self._ready.set()
        kept = {
            k: v for k, v in answer.headers.items() if k.lower() not in _HOP - {"content-length"}
        }
        return StreamingResponse(
            answer.aiter_raw(),
            status_code=answer.status_code,
            headers=kept,
            background=BackgroundTask(answer.aclose),
        )

    def _count(self, delta: int) -> None:
        self.stats.held += delta
        self._changed.set()

    # -- the upstream's health, while someone waits ---------------------------------------------

    async def _probe_loop(self) -> None:
        while True:
            await self._probe.wait()
            self._probe.clear()
            while self.stats.held > 0 and not self._ready.is_set():
                if await self._healthy():
                    log.info("upstream answers: forwarding %d held request(s)", self.stats.held)
                    self._ready.set()
                else:
                    await asyncio.sleep(self.config.probe_s)

    async def _healthy(self) -> bool:
        try:
            answer = await self._upstream.get(
                self.config.health_path, timeout=self.config.probe_s + 1
            )
        except httpx.TransportError:
            return False
        return 200 <= answer.status_code < 300

    # -- the held count, pushed to Ciuic -------------------------------------------------------

    async def _push_loop(self) -> None:
        while True:
            await self.push()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.config.interval_s)

    async def push(self) -> None:
        """Push the held count now (the scaler reads it as the deployment's queue)."""
        self._changed.clear()
        gauges = {self.config.metric: float(self.stats.held)}
        try:
            await self._ciuic.push(self.config.job, gauges, dict(self.config.labels))
        except CiuicError as exc:
            self.stats.pushes_failed += 1
            if not self._push_failing:
                log.warning("cannot push the held count to Ciuic: %s", exc)
            self._push_failing = True
            return
        if self._push_failing:
            log.info("pushing to Ciuic again")
        self._push_failing = False


def _expired(max_hold_s: float) -> JSONResponse:
    message = f"the model server did not become ready within {max_hold_s:g}s"
    return JSONResponse(
        {"error": {"code": "upstream_not_ready", "message": message, "details": {}}},
        status_code=503,
        headers={"Retry-After": "30"},
    )


# -- command line -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    env = os.environ
    p = argparse.ArgumentParser(
        prog="ciuic-hold",
        description="Hold requests while the model server is scaled to zero or starting, "
        "push how many wait to Ciuic, forward them when it answers.",
    )
    p.add_argument("--upstream", default=env.get("CIUIC_HOLD_UPSTREAM"),
                   help="the model server's base URL (env CIUIC_HOLD_UPSTREAM)")  # fmt: skip
    p.add_argument("--listen", default="0.0.0.0:8081", help="host:port to serve on")
    p.add_argument("--ciuic-url", default=env.get("CIUIC_URL", "http://ciuic:8080"))
    p.add_argument("--token", default=env.get("CIUIC_TOKEN"), help="a push token (env CIUIC_TOKEN)")
    p.add_argument("--job", default="ciuic-hold")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                   help="a label of the pushed queue, the scaler's selector")  # fmt: skip
    p.add_argument("--metric", default="request_queue")
    p.add_argument("--health-path", default="/health")
    p.add_argument("--max-hold", type=float, default=300.0, help="seconds before a 503")
    p.add_argument("--probe", type=float, default=0.5, help="seconds between health probes")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between pushes")
    return p


def config_from_args(args: argparse.Namespace) -> HoldConfig:
    if not args.upstream:
        raise SystemExit("ciuic-hold: --upstream (or CIUIC_HOLD_UPSTREAM) is required")
    return HoldConfig(
        upstream=args.upstream,
        ciuic_url=args.ciuic_url,
        token=args.token,
        job=args.job,
        labels=parse_labels(args.label),
        metric=args.metric,
        health_path=args.health_path,
        max_hold_s=args.max_hold,
        probe_s=args.probe,
        interval_s=args.interval,
    )


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn  # the server only where the proxy runs

    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    host, _, port = str(args.listen).rpartition(":")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    proxy = HoldProxy(config)
    server = uvicorn.Server(uvicorn.Config(proxy.app, host=host or "0.0.0.0", port=int(port),
                                           log_config=None))  # fmt: skip

    def _stop(_signum: int, _frame: Any) -> None:
        server.should_exit = True

    signal.signal(signal.SIGTERM, _stop)
    server.run()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
