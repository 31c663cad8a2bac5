"""routing's Alembic migrations on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Engine, UniqueConstraint, inspect

from routing.store import HEAD, VERSION_TABLE, current_revision, downgrade, metadata, upgrade

TABLES = {"routing_inbox", "routing_outbox"}


def test_migrations_go_down_and_up_again(engine: Engine) -> None:
    assert current_revision(engine) == HEAD
    assert set(inspect(engine).get_table_names()) >= TABLES | {VERSION_TABLE}
    downgrade(engine, "base")
    assert current_revision(engine) is None
    assert not TABLES & set(inspect(engine).get_table_names())
    upgrade(engine)
    upgrade(engine)  # idempotent
    assert current_revision(engine) == HEAD


def test_the_migrated_schema_matches_the_tables(engine: Engine) -> None:
    found = inspect(engine)
    for table in metadata.sorted_tables:
        columns = {c["name"]: c for c in found.get_columns(table.name)}
        assert set(columns) == set(table.columns.keys()), table.name
        for column in table.columns:
            assert columns[column.name]["nullable"] == column.nullable, (table.name, column.name)
        primary = found.get_pk_constraint(table.name)["constrained_columns"]
        assert primary == [c.name for c in table.primary_key.columns], table.name
        uniques = {tuple(u["column_names"]) for u in found.get_unique_constraints(table.name)}
        expected = {
            tuple(c.name for c in constraint.columns)
            for constraint in table.constraints
            if isinstance(constraint, UniqueConstraint)
        }
        assert expected <= uniques, table.name
        indexes = {tuple(i["column_names"]) for i in found.get_indexes(table.name)}
        assert {tuple(c.name for c in i.columns) for i in table.indexes} <= indexes, table.name


def test_the_version_table_is_routings_own(engine: Engine) -> None:
    # The vault's version table is untouched: both can share one database.
    assert "vault_alembic_version" not in inspect(engine).get_table_names()
