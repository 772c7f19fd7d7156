"""The schema, as SQLAlchemy Core tables. Alembic's history in migrations/ creates the same.

Times are integer microseconds since the epoch: exact, index-friendly, and the same on
PostgreSQL and SQLite.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = [
    "audit_log",
    "forecasts",
    "metadata",
    "push_families",
    "push_groups",
    "rollouts",
    "rollup_dirty",
    "rollup_state",
    "rollups_1h",
    "rollups_1m",
    "samples",
    "scaler_events",
    "scalers",
    "series",
    "simulations",
    "tokens",
]

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants BIGINT for big tables.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

series = sa.Table(
    "series",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("fingerprint", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(255), nullable=False, index=True),
    sa.Column("labels", sa.Text, nullable=False),  # canonical JSON object, sorted keys
    sa.Column("job", sa.String(255), nullable=False, index=True),
    sa.Column("created_us", sa.BigInteger, nullable=False),
)

samples = sa.Table(
    "samples",
    metadata,
    sa.Column("series_id", BigId, primary_key=True),
    sa.Column("ts", sa.BigInteger, primary_key=True),
    sa.Column("value", sa.Double, nullable=False),
    sa.Index("ix_samples_ts", "ts"),  # retention and rollups scan by time across series
)


def _rollup_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("series_id", BigId, primary_key=True),
        sa.Column("bucket", sa.BigInteger, primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("sum", sa.Double, nullable=False),
        sa.Column("min", sa.Double, nullable=False),
        sa.Column("max", sa.Double, nullable=False),
        sa.Index(f"ix_{name}_bucket", "bucket"),
    )


rollups_1m = _rollup_table("rollups_1m")
rollups_1h = _rollup_table("rollups_1h")

# How far each rollup has been computed; everything below the watermark is final unless a
# late write marked its range dirty.
rollup_state = sa.Table(
    "rollup_state",
    metadata,
    sa.Column("resolution", sa.String(8), primary_key=True),
    sa.Column("watermark_us", sa.BigInteger, nullable=False),
)

# Time ranges that received samples behind the watermark (backfills); re-aggregated later.
rollup_dirty = sa.Table(
    "rollup_dirty",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("start_us", sa.BigInteger, nullable=False),
    sa.Column("end_us", sa.BigInteger, nullable=False),
)

# Pushgateway groups: one row per grouping key, one row per metric family in it.
push_groups = sa.Table(
    "push_groups",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(64), nullable=False, unique=True),  # hash of the grouping labels
    sa.Column("labels", sa.Text, nullable=False),
    sa.Column("last_push_us", sa.BigInteger, nullable=False),  # 0: never pushed successfully
    sa.Column("last_failure_us", sa.BigInteger, nullable=False, server_default="0"),  # 0: never
)

push_families = sa.Table(
    "push_families",
    metadata,
    sa.Column(
        "group_id",
        BigId,
        sa.ForeignKey("push_groups.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("help", sa.Text, nullable=False),
    sa.Column("samples", sa.Text, nullable=False),  # JSON [[name, {labels}, value], ...]
    sa.Column("pushed_us", sa.BigInteger, nullable=False),
    # The type-clash check reads (name, type) ranges: O(clashes), not O(groups pushing it).
    sa.Index("ix_push_families_name_type", "name", "type"),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("scope", sa.String(16), nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("revoked_us", sa.BigInteger, nullable=True),
    # Per-token ingestion limits; NULL means the service's CIUIC_PUSH_RATE_PER_S / _BURST.
    sa.Column("push_rate_per_s", sa.Double, nullable=True),
    sa.Column("push_burst", sa.Integer, nullable=True),
)

# Scalers: the spec as submitted (normalised), a generation for optimistic concurrency, the
# policy's carried state and the last outcome, for status and for restarts.
scalers = sa.Table(
    "scalers",
    metadata,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("document", sa.Text, nullable=False),  # JSON, the example spec's shape
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("updated_us", sa.BigInteger, nullable=False),
    sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("state", sa.Text, nullable=True),  # JSON ScalerState
    sa.Column("last_decision", sa.Text, nullable=True),  # JSON
    sa.Column("last_decision_us", sa.BigInteger, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("last_error_us", sa.BigInteger, nullable=True),
    # The replicas Ciuic last left its target at in `apply` mode (set, or found and kept) and
    # since when; NULL when it has none to stand by (never applied, a dry run, paused, another
    # target). A pass that finds the target elsewhere records a `drift` event.
    sa.Column("applied_replicas", sa.Integer, nullable=True),
    sa.Column("applied_us", sa.BigInteger, nullable=True),
)

# What happened to each scaler: decisions, actions (or what a dry run would have done),
# errors and spec changes.
scaler_events = sa.Table(
    "scaler_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("scaler", sa.String(63), nullable=False),
    sa.Column("ts_us", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("replicas", sa.Integer, nullable=True),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # JSON
    sa.Index("ix_scaler_events_scaler_ts", "scaler", "ts_us"),
    sa.Index("ix_scaler_events_ts", "ts_us"),  # retention, and annotations across scalers
)

# The latest forecast of each scaler's load: refit in the background, read by the reconciler
# and the prediction API (never fitted on the request path).
forecasts = sa.Table(
    "forecasts",
    metadata,
    sa.Column("scaler", sa.String(63), primary_key=True),
    sa.Column("made_us", sa.BigInteger, nullable=False),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("start", sa.Double, nullable=False),
    sa.Column("step_s", sa.Double, nullable=False),
    sa.Column("points", sa.Text, nullable=False),  # JSON {"mean": [...], "quantiles": {q: [...]}}
    sa.Column("failed", sa.Text, nullable=True),
    sa.Column("details", sa.Text, nullable=False),  # JSON: notes, backtest, lead, history
)

# Simulation and tuning jobs: run in the background by the replica that accepted them; any
# replica answers their status. The owner (a random id per process) refreshes `heartbeat_us`
# while the job is pending or running; any replica fails a job whose heartbeat is too old
# (app.services.jobs). Rows from before 0008 have neither: their creation time counts.
simulations = sa.Table(
    "simulations",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # simulate | tune
    sa.Column("scaler", sa.String(63), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),  # pending | running | done | failed
    sa.Column("request", sa.Text, nullable=False),  # JSON
    sa.Column("result", sa.Text, nullable=True),  # JSON
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("finished_us", sa.BigInteger, nullable=True),
    sa.Column("owner", sa.String(32), nullable=True),
    sa.Column("heartbeat_us", sa.BigInteger, nullable=True),
    sa.Index("ix_simulations_status", "status"),  # the lost-job sweep reads the active ones
)

# Rolling updates with a surge plan (app.workers.rollouts): the request, the step reached, each
# step's times and details, and the template before the patch (for a rollback). A restart
# resumes every pending/running/rolling_back rollout from its recorded step.
rollouts = sa.Table(
    "rollouts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("scaler", sa.String(63), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("step", sa.String(16), nullable=False),
    sa.Column("steps", sa.Text, nullable=False),  # JSON [{name, status, started_us, ...}]
    sa.Column("request", sa.Text, nullable=False),  # JSON
    sa.Column("original_template", sa.Text, nullable=True),  # JSON, saved before the patch
    sa.Column("dry_run", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("updated_us", sa.BigInteger, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Index("ix_rollouts_scaler_id", "scaler", "id"),
    sa.Index("ix_rollouts_status", "status"),
)

# Who changed what: spec changes and manual actions, written in the same transaction as the
# change itself (app.api.audit). `actor` is a token id ("admin" for the bootstrap token,
# "anonymous" in open mode); `details` is JSON (a spec diff, before/after, a request).
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("ts_us", sa.BigInteger, nullable=False),
    sa.Column("actor", sa.String(32), nullable=False),
    sa.Column("scope", sa.String(16), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("target", sa.String(255), nullable=False),
    sa.Column("details", sa.Text, nullable=False),  # JSON
    sa.Index("ix_audit_log_ts_us", "ts_us"),
    sa.Index("ix_audit_log_actor_id", "actor", "id"),
    sa.Index("ix_audit_log_target_id", "target", "id"),
)
