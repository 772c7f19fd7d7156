"""`ciuic-agent`: the pod metrics agent, run as a sidecar beside each inference pod.

Every `interval` seconds (5 by default) it reads

- GPU utilisation (%, averaged over the pod's GPUs) and GPU memory used (bytes, summed)
  through NVML (`nvidia-ml-py`, the `gpu` extra), when a GPU is there;
- the inference server's own Prometheus metrics: vLLM's `vllm:num_requests_waiting` (the
  request queue) and `vllm:num_requests_running`, or the metric names you configure;

and pushes them to Ciuic as `gpu_utilization`, `gpu_memory`, `request_queue` and
`requests_running`, labelled with the pod's name, namespace and deployment. From vLLM's latency
histograms it pushes the p95 over each interval (the requests that finished that stage in it)
as clients see it: `ttft_p95` from `vllm:time_to_first_token_seconds` (queue wait included:
the time from the request's arrival to its first token), `queue_wait_p95` from
`vllm:request_queue_time_seconds`, `prefill_p95` from `vllm:request_prefill_time_seconds` and
`itl_p95` from `vllm:inter_token_latency_seconds` (`vllm:time_per_output_token_seconds` before
vLLM 0.11); an interval in which no request got that far pushes nothing. Between those
rounds it reads the queue every `change_poll` second (1 by default) and pushes it at once when
it is at or over `push_on_queue` (5 waiting, the example spec's per-pod target) and longer than
at its last push: a burst reaches the scaler within about a second instead of up to one
interval later (the benchmark's simulator models exactly this). Samples carry the
time they were read, so when Ciuic cannot be reached they wait in a bounded buffer (the oldest
are dropped first, and counted) and are sent, with their own times, once it answers again;
retries back off exponentially up to `max_backoff`.

No NVML library, no driver or no GPU: the GPU gauges are skipped, with one log line saying
why. The same for a metrics endpoint that cannot be read: one line when it fails, one when it
is back.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import math
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import httpx

from ciuic_sdk._client import Client
from ciuic_sdk._errors import CiuicError, Invalid, Unavailable
from ciuic_sdk._options import parse_labels

__all__ = [
    "LATENCY_HISTOGRAMS",
    "Agent",
    "AgentConfig",
    "GpuReader",
    "Reading",
    "Scraper",
    "histogram_quantile",
    "main",
    "parse_histograms",
]

log = logging.getLogger("ciuic.agent")

DEFAULT_QUEUE_METRIC = "vllm:num_requests_waiting"
DEFAULT_RUNNING_METRIC = "vllm:num_requests_running"
# (pushed as, vLLM histograms that measure it, the first one served wins): p95 over each interval
LATENCY_HISTOGRAMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ttft_p95", ("vllm:time_to_first_token_seconds",)),
    ("queue_wait_p95", ("vllm:request_queue_time_seconds",)),
    ("prefill_p95", ("vllm:request_prefill_time_seconds",)),
    ("itl_p95", ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds")),
)


@dataclass(frozen=True, slots=True)
class AgentConfig:
    ciuic_url: str = "http://ciuic:8080"
    token: str | None = None
    job: str = "ciuic-agent"
    pod: str = ""
    namespace: str = ""
    deployment: str = ""
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    interval_s: float = 5.0
    metrics_url: str | None = "http://127.0.0.1:8000/metrics"
    queue_metric: str = DEFAULT_QUEUE_METRIC
    running_metric: str | None = DEFAULT_RUNNING_METRIC
    gpu: bool = True
    buffer_size: int = 10_000  # samples: about 40 minutes of 4 gauges every 5 s
    batch_size: int = 1_000
    max_backoff_s: float = 60.0
    timeout_s: float = 5.0
    # Push the queue at once when it is at least this long and longer than at its last push
    # (None: periodic pushes only), checked every `change_poll_s`.
    push_on_queue: float | None = 5.0
    change_poll_s: float = 1.0
    # Push the p95 of vLLM's latency histograms over each interval (LATENCY_HISTOGRAMS).
    latency: bool = True

    @property
    def labels(self) -> dict[str, str]:
        labels = {"job": self.job}
        for name, value in (
            ("pod", self.pod),
            ("namespace", self.namespace),
            ("deployment", self.deployment),
        ):
            if value:
                labels[name] = value
        labels.update(self.extra_labels)
        return labels

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> AgentConfig:
        """Defaults from the environment (what a Deployment's downward API sets):
        CIUIC_URL, CIUIC_TOKEN, CIUIC_JOB, POD_NAME, POD_NAMESPACE, DEPLOYMENT_NAME,
        CIUIC_METRICS_URL, CIUIC_QUEUE_METRIC, CIUIC_INTERVAL; explicit overrides win."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        mapping = {
            "ciuic_url": "CIUIC_URL",
            "token": "CIUIC_TOKEN",
            "job": "CIUIC_JOB",
            "pod": "POD_NAME",
            "namespace": "POD_NAMESPACE",
            "deployment": "DEPLOYMENT_NAME",
            "metrics_url": "CIUIC_METRICS_URL",
            "queue_metric": "CIUIC_QUEUE_METRIC",
        }
        for key, var in mapping.items():
            if env.get(var):
                values[key] = env[var]
        if env.get("CIUIC_INTERVAL"):
            values["interval_s"] = float(env["CIUIC_INTERVAL"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Reading:
    metric: str
    value: float


class GpuReader:
    """GPU utilisation and memory through NVML, loaded lazily. When NVML cannot be used
    (library missing, no driver, no device) it says why once and reads nothing after."""

    def __init__(self, loader: Callable[[], Any] | None = None) -> None:
        self._loader = loader or (lambda: importlib.import_module("pynvml"))
        self._nvml: Any = None
        self._handles: list[Any] = []
        self.disabled_reason: str | None = None
        self._failing = False

    def _start(self) -> bool:
        if self.disabled_reason is not None:
            return False
        if self._nvml is not None:
            return True
        try:
            nvml = self._loader()
        except ImportError:
            return self._disable("nvidia-ml-py is not installed (pip install 'ciuic-sdk[gpu]')")
        try:
            nvml.nvmlInit()
            count = int(nvml.nvmlDeviceGetCount())
            handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except (nvml.NVMLError, OSError) as exc:  # no driver, no permission, no library file
            return self._disable(f"NVML cannot be initialised: {type(exc).__name__}: {exc}")
        if not handles:
            return self._disable("NVML sees no GPU in this pod")
        self._nvml, self._handles = nvml, handles
        log.info("reading %d GPU(s) through NVML", len(handles))
        return True

    def _disable(self, reason: str) -> bool:
        self.disabled_reason = reason
        log.warning("GPU gauges skipped: %s", reason)
        return False

    def read(self) -> list[Reading]:
        if not self._start():
            return []
        try:
            utilisation = [
                float(self._nvml.nvmlDeviceGetUtilizationRates(h).gpu) for h in self._handles
            ]
            memory = [float(self._nvml.nvmlDeviceGetMemoryInfo(h).used) for h in self._handles]
        except self._nvml.NVMLError as exc:  # one failed read: skip this tick, say so once
            if not self._failing:
                log.warning("GPU read failed, skipping GPU gauges: %s: %s", type(exc).__name__, exc)
            self._failing = True
            return []
        if self._failing:
            log.info("GPU reads work again")
            self._failing = False
        return [
            Reading("gpu_utilization", sum(utilisation) / len(utilisation)),
            Reading("gpu_memory", sum(memory)),
        ]

    def close(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except self._nvml.NVMLError as exc:  # shutting down: nothing left but to say it
                log.debug("nvmlShutdown failed: %s", exc)
            self._nvml = None


def parse_metrics(text: str, wanted: Sequence[str]) -> dict[str, float]:
    """The sum over label sets of each wanted metric in Prometheus text (vLLM labels its
    gauges by model_name; a pod serving two models has one queue). Needs prometheus_client."""
    parser = importlib.import_module("prometheus_client.parser")
    totals: dict[str, float] = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name if sample.name in wanted else family.name
            if name in wanted and math.isfinite(sample.value):
                totals[name] = totals.get(name, 0.0) + float(sample.value)
    return totals


Buckets = dict[float, float]  # upper bound (le) -> cumulative count, summed over label sets


def parse_histograms(text: str, wanted: Sequence[str]) -> dict[str, Buckets]:
    """The cumulative buckets of each wanted histogram in Prometheus text, summed over label
    sets (models) per upper bound."""
    parser = importlib.import_module("prometheus_client.parser")
    out: dict[str, Buckets] = {}
    for family in parser.text_string_to_metric_families(text):
        if family.name not in wanted:
            continue
        for sample in family.samples:
            if not sample.name.endswith("_bucket") or "le" not in sample.labels:
                continue
            le = float(sample.labels["le"])
            buckets = out.setdefault(family.name, {})
            buckets[le] = buckets.get(le, 0.0) + float(sample.value)
    return out


def histogram_quantile(q: float, buckets: Buckets) -> float | None:
    """Prometheus' `histogram_quantile` on cumulative buckets: linear within the bucket that
    holds the rank; the highest finite bound when it falls in +Inf; None with no observation."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for le in bounds:
        count = buckets[le]
        if count >= rank:
            if math.isinf(le):
                return lower
            inside = count - below
            return le if inside <= 0 else lower + (le - lower) * (rank - below) / inside
        lower, below = le, count
    return lower


def _delta(now: Buckets, before: Buckets | None) -> Buckets:
    """What was observed between two scrapes; all of `now` after a restart (a count fell)."""
    if before is None:
        return {}
    if any(now.get(le, 0.0) < count for le, count in before.items()):
        return dict(now)
    return {le: count - before.get(le, 0.0) for le, count in now.items()}


class Scraper:
    """Reads the inference server's /metrics and maps the configured names to our gauges, and
    vLLM's latency histograms to their p95 since the previous read (`latency=True`)."""

    def __init__(self, config: AgentConfig, http: httpx.Client | None = None) -> None:
        self.url = config.metrics_url
        self.names: dict[str, str] = {config.queue_metric: "request_queue"}
        if config.running_metric:
            self.names[config.running_metric] = "requests_running"
        self._http = http or httpx.Client(timeout=config.timeout_s)
        self._failing = False
        self._missing: set[str] = set()
        self.disabled_reason: str | None = None
        self.latency = config.latency
        self._histograms = [h for _, names in LATENCY_HISTOGRAMS for h in names]
        self._last: dict[str, Buckets] = {}  # cumulative buckets at the previous latency read

    def read(self, *, latency: bool = True) -> list[Reading]:
        """The gauges, and with `latency` the p95s since the previous such read (the queue
        watch between rounds reads without, so each p95 covers one interval)."""
        if self.url is None or self.disabled_reason is not None:
            return []
        try:
            importlib.import_module("prometheus_client.parser")
        except ImportError:
            self.disabled_reason = (
                "prometheus-client is not installed (pip install 'ciuic-sdk[agent]')"
            )
            log.error("queue gauges skipped: %s", self.disabled_reason)
            return []
        try:
            response = self._http.get(self.url)
            response.raise_for_status()
            totals = parse_metrics(response.text, list(self.names))
            histograms = (
                parse_histograms(response.text, self._histograms)
                if latency and self.latency
                else None
            )
        except (httpx.HTTPError, ValueError) as exc:
            if not self._failing:
                log.warning(
                    "cannot read %s (%s); queue gauges skipped until it answers", self.url, exc
                )
            self._failing = True
            return []
        if self._failing:
            log.info("%s answers again", self.url)
            self._failing = False
        missing = set(self.names) - set(totals)
        for name in missing - self._missing:
            log.warning("%s has no metric %r", self.url, name)
        self._missing = missing
        out = [Reading(self.names[n], v) for n, v in totals.items()]
        if histograms is not None:
            out += self._latencies(histograms)
        return out

    def _latencies(self, histograms: dict[str, Buckets]) -> list[Reading]:
        out: list[Reading] = []
        for pushed, names in LATENCY_HISTOGRAMS:
            name = next((n for n in names if n in histograms), None)
            if name is None:
                continue
            p95 = histogram_quantile(0.95, _delta(histograms[name], self._last.get(name)))
            self._last[name] = histograms[name]
            if p95 is not None:
                out.append(Reading(pushed, p95))
        return out

    def close(self) -> None:
        self._http.close()


@dataclass(slots=True)
class Stats:
    collected: int = 0
    sent: int = 0
    dropped: int = 0  # oldest samples dropped because the buffer was full
    rejected: int = 0  # refused by Ciuic as invalid (never retried)
    failures: int = 0  # push attempts that failed


class Agent:
    """Collect, buffer, push. `tick(now)` does one round; `run()` loops until stopped."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        client: Client | None = None,
        gpu: GpuReader | None = None,
        scraper: Scraper | None = None,
    ) -> None:
        self.config = config
        self.client = client or Client(config.ciuic_url, config.token, timeout=config.timeout_s)
        self.gpu = gpu if gpu is not None else (GpuReader() if config.gpu else None)
        self.scraper = scraper or Scraper(config)
        self.buffer: deque[dict[str, Any]] = deque()
        self.stats = Stats()
        self.backoff_s = 0.0
        self.next_push_at = 0.0
        self._labels = config.labels
        self._unreachable = False
        self.pushed_queue: float | None = None  # the queue length in the last push
        self.change_pushes = 0  # pushes made on a queue change

    def collect(self, now: float) -> list[Reading]:
        readings = (self.gpu.read() if self.gpu else []) + self.scraper.read()
        for r in readings:
            if len(self.buffer) >= self.config.buffer_size:
                self.buffer.popleft()
                self.stats.dropped += 1
                if self.stats.dropped == 1 or self.stats.dropped % 1000 == 0:
                    log.warning(
                        "buffer full (%d samples): dropped %d oldest so far",
                        self.config.buffer_size,
                        self.stats.dropped,
                    )
            self.buffer.append(
                {"metric": r.metric, "labels": self._labels, "value": r.value, "timestamp": now}
            )
        self.stats.collected += len(readings)
        for r in readings:
            if r.metric == "request_queue":
                self.pushed_queue = r.value
        return readings

    def check_change(self, now: float) -> bool:
        """Read the queue and push it at once when it is at or over `push_on_queue` and longer
        than at the last push; True when it did."""
        threshold = self.config.push_on_queue
        if threshold is None:
            return False
        readings = self.scraper.read(latency=False)
        queue = next((r for r in readings if r.metric == "request_queue"), None)
        if queue is None or queue.value < threshold:
            return False
        if self.pushed_queue is not None and queue.value <= self.pushed_queue:
            return False
        self.buffer.append(
            {"metric": queue.metric, "labels": self._labels, "value": queue.value, "timestamp": now}
        )
        self.stats.collected += 1
        self.pushed_queue = queue.value
        self.change_pushes += 1
        self.flush(now)
        return True

    def _failed(self, now: float, error: CiuicError) -> None:
        self.stats.failures += 1
        base = max(self.config.interval_s, 1.0)
        self.backoff_s = min(self.config.max_backoff_s, max(base, self.backoff_s * 2))
        retry_after = error.retry_after if isinstance(error, Unavailable) else None
        self.next_push_at = now + max(self.backoff_s, retry_after or 0.0)
        if not self._unreachable:
            log.warning(
                "cannot push to %s (%s); buffering (%d samples), retrying with backoff",
                self.config.ciuic_url,
                error,
                len(self.buffer),
            )
        self._unreachable = True

    def flush(self, now: float) -> None:
        """Send buffered samples, oldest first, in batches, unless backing off."""
        if now < self.next_push_at:
            return
        while self.buffer:
            batch = [self.buffer[i] for i in range(min(self.config.batch_size, len(self.buffer)))]
            try:
                self.client.push_samples(batch)
            except Invalid as exc:
                # Never valid (e.g. older than the retention): drop them rather than retry forever.
                for _ in batch:
                    self.buffer.popleft()
                self.stats.rejected += len(batch)
                log.error("Ciuic refused %d samples, dropped: %s %s", len(batch), exc, exc.details)
                continue
            except CiuicError as exc:  # unreachable, 503, 429, or an auth problem: retry later
                self._failed(now, exc)
                return
            for _ in batch:
                self.buffer.popleft()
            self.stats.sent += len(batch)
        if self._unreachable:
            log.info("pushing to %s again; buffer drained", self.config.ciuic_url)
        self._unreachable = False
        self.backoff_s = 0.0
        self.next_push_at = 0.0

    def tick(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.collect(now)
        self.flush(now)

    def run(self, stop: threading.Event) -> None:
        log.info(
            "ciuic-agent: every %gs to %s as %s",
            self.config.interval_s,
            self.config.ciuic_url,
            self._labels,
        )
        next_at = time.monotonic()
        poll = self.config.change_poll_s if self.config.push_on_queue is not None else None
        while not stop.is_set():
            self.tick()
            next_at += self.config.interval_s
            if next_at < time.monotonic():  # a slow round: skip ahead rather than burst
                next_at = time.monotonic()
            # Between rounds, watch the queue for a burst (push on change).
            while not stop.is_set():
                delay = next_at - time.monotonic()
                if delay <= 0:
                    break
                if poll is None or poll >= delay:
                    stop.wait(delay)
                    break
                stop.wait(poll)
                if not stop.is_set() and next_at - time.monotonic() > 0:
                    self.check_change(time.time())
        self.flush(time.time())

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self.gpu:
            self.gpu.close()
        self.scraper.close()
        self.client.close()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ciuic-agent", description="Push GPU and queue gauges of this pod to Ciuic."
    )
    p.add_argument("--ciuic-url", help="Ciuic's URL (env CIUIC_URL; default http://ciuic:8080)")
    p.add_argument("--token-file", help="a file holding a push token (else env CIUIC_TOKEN)")
    p.add_argument("--job", help="the job label (env CIUIC_JOB; default ciuic-agent)")
    p.add_argument("--pod", help="the pod label (env POD_NAME)")
    p.add_argument("--namespace", help="the namespace label (env POD_NAMESPACE)")
    p.add_argument("--deployment", help="the deployment label (env DEPLOYMENT_NAME)")
    p.add_argument("--label", action="append", default=[], help="an extra label name=value")
    p.add_argument("--interval", type=float, dest="interval_s", help="seconds (default 5)")
    p.add_argument("--metrics-url", help="the inference server's /metrics (env CIUIC_METRICS_URL)")
    p.add_argument("--no-metrics", action="store_true", help="do not scrape an inference server")
    p.add_argument("--queue-metric", help=f"queue length metric (default {DEFAULT_QUEUE_METRIC})")
    p.add_argument("--running-metric", help=f"running requests (default {DEFAULT_RUNNING_METRIC})")
    p.add_argument("--no-gpu", action="store_true", help="do not read NVML")
    p.add_argument(
        "--no-latency", action="store_true", help="do not push vLLM's latency p95s (ttft_p95, ...)"
    )
    p.add_argument("--buffer-size", type=int, help="samples kept while Ciuic is unreachable")
    p.add_argument(
        "--push-on-queue",
        type=float,
        help="push the queue at once when at least this long and longer than at the last "
        "push (default 5; 0 turns it off)",
    )
    p.add_argument("--once", action="store_true", help="collect and push once, then exit")
    p.add_argument("--log-level", default="INFO")
    return p


def config_from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> AgentConfig:
    token = None
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as f:
            token = f.read().strip()
    config = AgentConfig.from_env(
        env,
        ciuic_url=args.ciuic_url,
        token=token,
        job=args.job,
        pod=args.pod,
        namespace=args.namespace,
        deployment=args.deployment,
        interval_s=args.interval_s,
        metrics_url=args.metrics_url,
        queue_metric=args.queue_metric,
        running_metric=args.running_metric,
        buffer_size=args.buffer_size,
        extra_labels=parse_labels(args.label) or None,
    )
    changes: dict[str, Any] = {}
    if args.no_gpu:
        changes["gpu"] = False
    if args.no_metrics:
        changes["metrics_url"] = None
    if args.no_latency:
        changes["latency"] = False
    if args.push_on_queue is not None:
        changes["push_on_queue"] = args.push_on_queue if args.push_on_queue > 0 else None
    if changes:
        values = {f: getattr(config, f) for f in config.__dataclass_fields__}
        config = AgentConfig(**{**values, **changes})
    return config


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    agent = Agent(config_from_args(args))
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: flushing and stopping", signum)
        stop.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if args.once:
            agent.tick()
            return 0 if not agent.buffer else 1
        agent.run(stop)
    finally:
        agent.close()
        log.info("stats: %s", agent.stats)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
