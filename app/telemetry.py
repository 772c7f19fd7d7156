"""The service's own Prometheus metrics, served at GET /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Telemetry"]


class Telemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.pushes = Counter(
            "ciuic_pushes",
            "Pushes received, by protocol and outcome (accepted, deleted, refused: a 4xx, "
            "unavailable: a 503).",
            ["protocol", "outcome"],
            registry=self.registry,
        )
        self.samples = Counter(
            "ciuic_samples_ingested",
            "Samples committed to the time-series store.",
            ["protocol"],
            registry=self.registry,
        )
        self.rejects = Counter(
            "ciuic_rejects",
            "Requests rejected, by reason code.",
            ["code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ciuic_request_duration_seconds",
            "Request latency by route.",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.db_up = Gauge(
            "ciuic_database_up", "1 when the last database check passed.", registry=self.registry
        )
        self.rollup_runs = Counter(
            "ciuic_rollup_runs",
            "Rollup and retention passes, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
