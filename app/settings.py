"""Service settings, read once from the environment (prefix `CIUIC_`) or a `.env` file.

Nothing else in the code base reads `os.environ`: everything configurable is a field here.
"""

from __future__ import annotations

import ipaddress
import json
from functools import lru_cache
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings", "get_settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CIUIC_", env_file=".env", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./ciuic.db"
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    admin_token: SecretStr | None = None
    log_level: str = "INFO"
    log_json: bool = True
    # One INFO line per HTTP request (uvicorn's access log). Off by default: a fleet pushing
    # every few seconds would drown the lines that matter (scale actions, errors).
    access_log: bool = False
    # Browser origins allowed to call the API (CORS); none by default, so no CORS header is
    # ever sent. A JSON list or comma-separated: https://grafana.example.com,https://ops.example
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Limits on ingestion; each breach answers 413 or 429 and names the limit.
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_samples_per_push: int = Field(50_000, ge=1)
    max_series_per_job: int = Field(10_000, ge=1)
    max_future_skew_s: float = Field(300.0, ge=0)  # JSON samples further ahead are rejected
    # Per-token rate of ingestion requests (pushes, JSON batches, group deletes), per process;
    # over it: 429 with Retry-After. Pods usually share one push token, so the default is
    # sized for a fleet: 1,000 pods pushing every 5 s are 200 requests/s, and the burst lets
    # all of them push at the same instant (after a restart). 0 turns the limit off; a token
    # may carry its own (POST /v1/tokens).
    push_rate_per_s: float = Field(500.0, ge=0)
    push_burst: int = Field(1000, ge=1)

    # Retention of the time series and its rollups, in days.
    raw_retention_days: float = Field(14.0, gt=0)
    rollup_1m_retention_days: float = Field(90.0, gt=0)
    rollup_1h_retention_days: float = Field(800.0, gt=0)
    # Scalers' events (actions, decisions, dry runs, drifts, errors, rollouts): without a
    # limit a scaler that acts every few minutes grows the table for good.
    event_retention_days: float = Field(90.0, gt=0)
    # Finished simulation and tune jobs (their requests and reports), from when they finished.
    simulation_retention_days: float = Field(30.0, gt=0)
    rollup_interval_s: float = Field(30.0, gt=0)
    rollup_lateness_s: float = Field(120.0, ge=0)  # re-aggregate this far behind the watermark

    # Simulation and tuning jobs (POST /v1/simulations, /v1/scalers/{name}/tune), per process:
    # at most this many queued or running (each holds its trace in memory); over it: 429 with
    # Retry-After. Each job's process refreshes its heartbeat every `simulation_heartbeat_s`;
    # any replica fails a queued or running job whose heartbeat is older than
    # `simulation_lost_after_s` (its process died). Replicas' clocks must agree within the
    # difference of the two.
    max_pending_simulations: int = Field(8, ge=1)
    simulation_heartbeat_s: float = Field(10.0, gt=0)
    simulation_lost_after_s: float = Field(60.0, gt=0)

    reconcile_interval_s: float = Field(5.0, gt=0)  # how often every scaler is reconciled
    rollout_poll_s: float = Field(1.0, gt=0)  # how often a running rollout is checked
    forecast_refit_s: float = Field(60.0, gt=0)  # fast models
    forecast_refit_prophet_s: float = Field(3600.0, gt=0)
    forecast_accuracy_s: float = Field(3600.0, gt=0)  # per-model accuracy re-measured
    leader_interval_s: float = Field(5.0, gt=0)  # leader election attempts / checks
    # Kubernetes: a kubeconfig file, or the pod's service account (in_cluster); with neither
    # the service drives the built-in cluster. `namespace` holds the leader Lease.
    kubeconfig: str | None = None
    kube_context: str | None = None
    in_cluster: bool = False
    namespace: str = "default"
    kube_request_timeout_s: float = Field(10.0, gt=0)
    kube_retries: int = Field(4, ge=1)  # attempts per request on 5xx, 429 and timeouts
    lease_name: str = "ciuic-leader"
    lease_duration_s: float = Field(15.0, gt=0)  # followers wait this long after the last renew
    lease_renew_deadline_s: float = Field(10.0, gt=0)  # the leader steps down after this
    lease_retry_period_s: float = Field(2.0, gt=0)  # renew / acquire attempts
    leader_identity: str | None = None  # the pod name (downward API); default: host + random

    # Prometheus, for metrics whose spec reads them from it (`source: {prometheus: <query>}`):
    # the server's base URL, a bearer token or basic auth (not both), a CA bundle for its
    # TLS (or skip verification: tests only), and the limit on each query. A query that fails
    # or times out is a missing reading (the policy holds, never scales down, and says why).
    prometheus_url: str | None = None
    prometheus_bearer_token: SecretStr | None = None
    prometheus_username: str | None = None
    prometheus_password: SecretStr | None = None
    prometheus_ca_file: str | None = None
    prometheus_insecure_skip_verify: bool = False
    prometheus_timeout_s: float = Field(5.0, gt=0)
    # Queries in flight at once (a reconcile pass's readings, a refit pass's backfills): a
    # slow server costs a pass one timeout, not one per scaler.
    prometheus_concurrency: int = Field(8, ge=1)

    db_retry_after_s: int = Field(5, ge=1)  # Retry-After on 503 when the database is down
    # PostgreSQL connections per process (SQLite always uses one). A request waits for a pooled
    # connection (503 after 10 s) rather than opening one past the pool.
    db_pool_size: int = Field(20, ge=1)
    db_max_overflow: int = Field(0, ge=0)
    run_workers: bool = True  # background loops (rollups, retention, ...) in this process

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            return "postgresql+asyncpg://" + value.split("://", 1)[1]
        if value.startswith("sqlite://") and not value.startswith("sqlite+aiosqlite://"):
            return "sqlite+aiosqlite://" + value.split("://", 1)[1]
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [o.strip() for o in text.split(",") if o.strip()]
        return value

    @model_validator(mode="after")
    def _lease_timings(self) -> Settings:
        # client-go's rule: retry < renew deadline < lease duration, so a leader that cannot
        # renew steps down before any follower may take the Lease over.
        if not self.lease_retry_period_s < self.lease_renew_deadline_s < self.lease_duration_s:
            raise ValueError(
                "need lease_retry_period_s < lease_renew_deadline_s < lease_duration_s"
            )
        return self

    @model_validator(mode="after")
    def _simulation_timings(self) -> Settings:
        # A job survives one missed or late heartbeat before another replica fails it.
        if self.simulation_lost_after_s < 2 * self.simulation_heartbeat_s:
            raise ValueError("need simulation_lost_after_s >= 2 * simulation_heartbeat_s")
        return self

    @model_validator(mode="after")
    def _prometheus_auth(self) -> Settings:
        if self.prometheus_bearer_token is not None and self.prometheus_username is not None:
            raise ValueError("set prometheus_bearer_token or prometheus_username, not both")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def auth_enabled(self) -> bool:
        return self.admin_token is not None and bool(self.admin_token.get_secret_value())

    def bind_is_loopback(self, host: str | None = None) -> bool:
        host = host or self.host
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
