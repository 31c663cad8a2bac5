"""The vault's first schema: tenants, data keys, tokens, audit.

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
        "vault_tenants",
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("index_key", sa.LargeBinary(), nullable=False),
        sa.Column("index_key_version", sa.Integer(), nullable=False),
        sa.Column("index_master_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", name="pk_vault_tenants"),
    )
    op.create_table(
        "vault_data_keys",
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("master_version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "version", name="pk_vault_data_keys"),
    )
    op.create_table(
        "vault_tokens",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("token", sa.String(19), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_vault_tokens"),
        sa.UniqueConstraint("tenant", "fingerprint", name="uq_vault_tokens_tenant_fingerprint"),
        sa.UniqueConstraint("tenant", "token", name="uq_vault_tokens_tenant_token"),
    )
    op.create_index("ix_vault_tokens_tenant_key_version", "vault_tokens", ["tenant", "key_version"])
    op.create_table(
        "vault_audit",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("caller", sa.String(128), nullable=False),
        sa.Column("purpose", sa.String(256), nullable=False),
        sa.Column("token_masked", sa.String(19), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_vault_audit"),
    )
    op.create_index("ix_vault_audit_tenant_at", "vault_audit", ["tenant", "at"])


def downgrade() -> None:
    op.drop_index("ix_vault_audit_tenant_at", table_name="vault_audit")
    op.drop_table("vault_audit")
    op.drop_index("ix_vault_tokens_tenant_key_version", table_name="vault_tokens")
    op.drop_table("vault_tokens")
    op.drop_table("vault_data_keys")
    op.drop_table("vault_tenants")
