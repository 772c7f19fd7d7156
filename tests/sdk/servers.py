"""Small real HTTP servers standing in for a pod's model server (vLLM-style), on real ports."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VLLM_METRICS = """\
# HELP vllm:num_requests_running Number of requests currently running on GPU.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="deepseek-7b"} 4.0
vllm:num_requests_running{model_name="deepseek-7b-lora"} 1.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="deepseek-7b"} 7.0
vllm:num_requests_waiting{model_name="deepseek-7b-lora"} 2.0
# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="deepseek-7b"} 0.42
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{model_name="deepseek-7b"} 12345.0
# HELP vllm:e2e_request_latency_seconds Histogram of end to end request latency in seconds.
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{le="1.0",model_name="deepseek-7b"} 3.0
vllm:e2e_request_latency_seconds_bucket{le="+Inf",model_name="deepseek-7b"} 5.0
vllm:e2e_request_latency_seconds_count{model_name="deepseek-7b"} 5.0
vllm:e2e_request_latency_seconds_sum{model_name="deepseek-7b"} 6.5
"""


@dataclass
class ModelServer:
    """`GET /metrics` serves `metrics` (or `metrics_status`); `GET /health` answers 503 for the
    first `unhealthy_first` calls; `POST /v1/completions` fails (500) the first `fail_first`."""

    metrics: str = VLLM_METRICS
    metrics_status: int = 200
    unhealthy_first: int = 0
    fail_first: int = 0
    healthy: bool = True
    posts: list[dict[str, Any]] = field(default_factory=list)
    health_calls: int = 0
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def model_server(state: ModelServer) -> Iterator[ModelServer]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._answer(state.metrics_status, state.metrics, "text/plain; version=0.0.4")
            elif self.path == "/health":
                with state.lock:
                    state.health_calls += 1
                    ok = state.healthy and state.health_calls > state.unhealthy_first
                self._answer(200 if ok else 503, "")
            else:
                self._answer(404, "")

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            with state.lock:
                state.posts.append(body)
                failing = len(state.posts) <= state.fail_first
            if failing:
                self._answer(500, '{"error": "model is still loading"}', "application/json")
            else:
                self._answer(200, '{"choices": [{"text": "ok"}]}', "application/json")

        def _answer(self, status: int, text: str, content_type: str = "text/plain") -> None:
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", state.port), Handler)  # 0: any free port
    state.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
