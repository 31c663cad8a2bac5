"""The vault's Alembic migrations on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import UniqueConstraint, inspect

from vault.migrate import HEAD, current_revision, downgrade, upgrade
from vault.schema import Base
from vault.sql import SqlVault

TABLES = {"vault_tenants", "vault_data_keys", "vault_tokens", "vault_audit"}


def test_migrations_go_down_and_up_again(database: tuple[str, dict[str, Any]]) -> None:
    url, options = database
    engine = SqlVault.create_engine(url, **options)
    try:
        assert current_revision(engine) == HEAD
        assert set(inspect(engine).get_table_names()) >= TABLES
        downgrade(engine, "base")
        assert current_revision(engine) is None
        assert not TABLES & set(inspect(engine).get_table_names())
        upgrade(engine)
        upgrade(engine)  # idempotent
        assert current_revision(engine) == HEAD
    finally:
        engine.dispose()


def test_the_migrated_schema_matches_the_models(database: tuple[str, dict[str, Any]]) -> None:
    url, options = database
    engine = SqlVault.create_engine(url, **options)
    try:
        found = inspect(engine)
        for table in Base.metadata.sorted_tables:
            columns = {c["name"]: c for c in found.get_columns(table.name)}
            assert set(columns) == set(table.columns.keys()), table.name
            for column in table.columns:
                assert columns[column.name]["nullable"] == column.nullable, (
                    table.name,
                    column.name,
                )
            uniques = {tuple(u["column_names"]) for u in found.get_unique_constraints(table.name)}
            expected = {
                tuple(c.name for c in constraint.columns)
                for constraint in table.constraints
                if isinstance(constraint, UniqueConstraint)
            }
            assert expected <= uniques, table.name
    finally:
        engine.dispose()
