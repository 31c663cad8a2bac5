"""The saga tables: one row per saga (step, phase, lease) and the answers given to sagas.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "journal_sagas",
        sa.Column("saga_id", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("definition", sa.String(64), nullable=False),
        sa.Column("step", sa.String(32), nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("last_error", sa.String(200), nullable=True),
        sa.Column("end_to_end_id", sa.String(64), nullable=True),
        sa.Column("uetr", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("saga_id", name="pk_journal_sagas"),
    )
    op.create_index("ix_journal_sagas_phase_next_at", "journal_sagas", ["phase", "next_at"])
    op.create_index("ix_journal_sagas_uetr", "journal_sagas", ["uetr"])
    op.create_index("ix_journal_sagas_end_to_end_id", "journal_sagas", ["end_to_end_id"])
    op.create_table(
        "journal_saga_signals",
        sa.Column("signal_key", sa.String(128), nullable=False),
        sa.Column("saga_id", sa.String(64), nullable=False),
        sa.Column("signal", sa.String(32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("signal_key", name="pk_journal_saga_signals"),
    )
    op.create_index(
        "ix_journal_saga_signals_saga_id_state", "journal_saga_signals", ["saga_id", "state"]
    )


def downgrade() -> None:
    op.drop_index("ix_journal_saga_signals_saga_id_state", table_name="journal_saga_signals")
    op.drop_table("journal_saga_signals")
    op.drop_index("ix_journal_sagas_end_to_end_id", table_name="journal_sagas")
    op.drop_index("ix_journal_sagas_uetr", table_name="journal_sagas")
    op.drop_index("ix_journal_sagas_phase_next_at", table_name="journal_sagas")
    op.drop_table("journal_sagas")
