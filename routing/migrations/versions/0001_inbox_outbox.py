"""routing's first schema: the consumers' inbox and the publishers' outbox.

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

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "routing_inbox",
        sa.Column("consumer", sa.String(128), nullable=False),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "message_id", name="pk_routing_inbox"),
    )
    op.create_index("ix_routing_inbox_received_at", "routing_inbox", ["received_at"])
    op.create_table(
        "routing_outbox",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("destination", sa.String(255), nullable=False),
        sa.Column("routing_key", sa.String(255), nullable=False),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_routing_outbox"),
        sa.UniqueConstraint(
            "message_id", "destination", name="uq_routing_outbox_message_id_destination"
        ),
    )
    op.create_index("ix_routing_outbox_sent_at_id", "routing_outbox", ["sent_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_routing_outbox_sent_at_id", table_name="routing_outbox")
    op.drop_table("routing_outbox")
    op.drop_index("ix_routing_inbox_received_at", table_name="routing_inbox")
    op.drop_table("routing_inbox")
