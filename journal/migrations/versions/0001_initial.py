"""The journal's first schema: events, chain head, checkpoints, tenant keys, read model.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_GENESIS = "0" * 64
_CHECKPOINT_EVERY = 1000


def upgrade() -> None:
    op.create_table(
        "journal_events",
        sa.Column("seq", _SEQ, autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("transaction_id", sa.String(64), nullable=False),
        sa.Column("end_to_end_id", sa.String(64), nullable=True),
        sa.Column("stan", sa.String(64), nullable=True),
        sa.Column("terminal_id", sa.String(64), nullable=True),
        sa.Column("uetr", sa.String(64), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("personal", sa.LargeBinary(), nullable=True),
        sa.Column("key_version", sa.Integer(), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_journal_events"),
    )
    op.create_index("ix_journal_events_transaction_id", "journal_events", ["transaction_id"])
    op.create_index("ix_journal_events_end_to_end_id", "journal_events", ["end_to_end_id"])
    op.create_index("ix_journal_events_stan_terminal_id", "journal_events", ["stan", "terminal_id"])
    op.create_index("ix_journal_events_uetr", "journal_events", ["uetr"])
    head = op.create_table(
        "journal_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", _SEQ, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("checkpoint_seq", _SEQ, nullable=False),
        sa.Column("checkpoint_every", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_journal_head"),
    )
    op.bulk_insert(
        head,
        [
            {
                "id": 1,
                "seq": 0,
                "hash": _GENESIS,
                "checkpoint_seq": 0,
                "checkpoint_every": _CHECKPOINT_EVERY,
            }
        ],
    )
    op.create_table(
        "journal_checkpoints",
        sa.Column("seq", _SEQ, autoincrement=False, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("previous_seq", _SEQ, nullable=False),
        sa.Column("master_version", sa.Integer(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_journal_checkpoints"),
    )
    op.create_table(
        "journal_tenant_keys",
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=True),
        sa.Column("master_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("shredded_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("tenant", "version", name="pk_journal_tenant_keys"),
    )
    op.create_table(
        "journal_transactions",
        sa.Column("transaction_id", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("reason_code", sa.String(35), nullable=True),
        sa.Column("amount", sa.String(40), nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("destination", sa.String(128), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("end_to_end_id", sa.String(64), nullable=True),
        sa.Column("stan", sa.String(64), nullable=True),
        sa.Column("terminal_id", sa.String(64), nullable=True),
        sa.Column("uetr", sa.String(64), nullable=True),
        sa.Column("first_seq", _SEQ, nullable=False),
        sa.Column("last_seq", _SEQ, nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("transaction_id", name="pk_journal_transactions"),
    )
    op.create_index(
        "ix_journal_transactions_tenant_status", "journal_transactions", ["tenant", "status"]
    )


def downgrade() -> None:
    op.drop_index("ix_journal_transactions_tenant_status", table_name="journal_transactions")
    op.drop_table("journal_transactions")
    op.drop_table("journal_tenant_keys")
    op.drop_table("journal_checkpoints")
    op.drop_table("journal_head")
    op.drop_index("ix_journal_events_uetr", table_name="journal_events")
    op.drop_index("ix_journal_events_stan_terminal_id", table_name="journal_events")
    op.drop_index("ix_journal_events_end_to_end_id", table_name="journal_events")
    op.drop_index("ix_journal_events_transaction_id", table_name="journal_events")
    op.drop_table("journal_events")
