"""scaler events indexed by time

Events are now kept `CIUIC_EVENT_RETENTION_DAYS` (90 by default): the retention pass deletes
the older ones across every scaler, and Grafana's annotations read a time range across
scalers; both look events up by time alone.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 16:00:00.000000
"""

from __future__ import annotations

from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_scaler_events_ts', 'scaler_events', ['ts_us'])


def downgrade() -> None:
    op.drop_index('ix_scaler_events_ts', table_name='scaler_events')
