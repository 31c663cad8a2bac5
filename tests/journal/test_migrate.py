"""The journal's migrations on SQLite and PostgreSQL: up, down, up again."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect, select

from journal.events import GENESIS_HASH
from journal.migrate import HEAD, current_revision, downgrade, upgrade
from journal.schema import HEAD as HEAD_TABLE
from journal.schema import METADATA
from journal.store import Journal


def test_migrations_match_the_tables_and_go_down_and_up(
    database: tuple[str, dict[str, Any]],
) -> None:
    url, options = database
    engine = Journal.create_engine(url, **options)
    assert current_revision(engine) == HEAD
    tables = {t for t in inspect(engine).get_table_names() if t.startswith("journal_")}
    assert tables == set(METADATA.tables) | {"journal_alembic_version"}
    for table in METADATA.sorted_tables:
        columns = {c["name"] for c in inspect(engine).get_columns(table.name)}
        assert columns == set(table.columns.keys()), table.name
        indexes = {i["name"] for i in inspect(engine).get_indexes(table.name)}
        assert indexes == {i.name for i in table.indexes}, table.name
    with engine.connect() as connection:
        head = connection.execute(select(HEAD_TABLE)).one()
    assert (head.seq, head.hash, head.checkpoint_seq, head.checkpoint_every) == (
        0, GENESIS_HASH, 0, 1000,
    )  # fmt: skip
    downgrade(engine, "base")
    assert not [t for t in inspect(engine).get_table_names() if t != "journal_alembic_version"]
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == HEAD
    engine.dispose()
