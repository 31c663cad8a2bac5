"""The gateway's first schema: consents, idempotency keys, payments, the built-in
authorization server's codes and signing keys, the DPoP proofs seen.

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


def upgrade() -> None:
    op.create_table(
        "gateway_consents",
        sa.Column("consent_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("status", sa.String(4), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("risk", sa.JSON(), nullable=False),
        sa.Column("psu", sa.String(128), nullable=True),
        sa.Column("account_ids", sa.JSON(), nullable=False),
        sa.Column("consumed_by", sa.String(40), nullable=True),
        sa.PrimaryKeyConstraint("consent_id", name="pk_gateway_consents"),
    )
    op.create_table(
        "gateway_idempotency",
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("key", sa.String(40), nullable=False),
        sa.Column("body_digest", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(32), nullable=True),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=True),
        sa.Column("stored_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "endpoint", "key", name="pk_gateway_idempotency"),
    )
    op.create_index("ix_gateway_idempotency_stored_at", "gateway_idempotency", ["stored_at"])
    op.create_table(
        "gateway_payments",
        sa.Column("payment_id", sa.String(40), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("consent_id", sa.String(40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("debtor_iban", sa.String(34), nullable=False),
        sa.Column("uetr", sa.String(36), nullable=False),
        sa.Column("initiation", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("payment_id", name="pk_gateway_payments"),
    )
    op.create_index("ix_gateway_payments_debtor_iban", "gateway_payments", ["debtor_iban"])
    op.create_index("ix_gateway_payments_uetr", "gateway_payments", ["uetr"])
    op.create_table(
        "gateway_authorization_codes",
        sa.Column("code_sha256", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("challenge", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("consent_id", sa.String(40), nullable=False),
        sa.Column("psu", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("code_sha256", name="pk_gateway_authorization_codes"),
    )
    op.create_index(
        "ix_gateway_authorization_codes_expires_at", "gateway_authorization_codes", ["expires_at"]
    )
    op.create_table(
        "gateway_signing_keys",
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("alg", sa.String(8), nullable=False),
        sa.Column("private_pem", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("kid", name="pk_gateway_signing_keys"),
    )
    op.create_table(
        "gateway_dpop_proofs",
        sa.Column("proof_sha256", sa.String(64), nullable=False),
        sa.Column("seen_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("proof_sha256", name="pk_gateway_dpop_proofs"),
    )
    op.create_index("ix_gateway_dpop_proofs_seen_at", "gateway_dpop_proofs", ["seen_at"])


def downgrade() -> None:
    op.drop_index("ix_gateway_dpop_proofs_seen_at", "gateway_dpop_proofs")
    op.drop_table("gateway_dpop_proofs")
    op.drop_table("gateway_signing_keys")
    op.drop_index("ix_gateway_authorization_codes_expires_at", "gateway_authorization_codes")
    op.drop_table("gateway_authorization_codes")
    op.drop_index("ix_gateway_payments_uetr", "gateway_payments")
    op.drop_index("ix_gateway_payments_debtor_iban", "gateway_payments")
    op.drop_table("gateway_payments")
    op.drop_index("ix_gateway_idempotency_stored_at", "gateway_idempotency")
    op.drop_table("gateway_idempotency")
    op.drop_table("gateway_consents")
