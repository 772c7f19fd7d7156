"""scalers remember the replicas they applied

The reconciler compares the target's replicas with the count Ciuic last left it at in `apply`
mode: a difference is a `drift` event (a `kubectl scale`, another autoscaler, or a decision
whose record was lost). Existing scalers start with none (NULL): their next pass records the
count it finds, never a drift.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 15:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('scalers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('applied_replicas', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('applied_us', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('scalers', schema=None) as batch_op:
        batch_op.drop_column('applied_us')
        batch_op.drop_column('applied_replicas')
