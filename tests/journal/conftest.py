"""Databases for the journal's tests: SQLite (a file) and PostgreSQL (a schema each).

PostgreSQL comes from ``ISOBRIDGE_TEST_POSTGRES_URL`` as for the vault's tests
(:mod:`tests.vault.conftest`): skipped without it on a developer's machine, a failure under
CI. Every table the journal creates is named ``journal_*``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from journal.keys import StaticMasterKeys
from journal.migrate import upgrade
from journal.store import Journal
from tests.support import migrated_database

MASTER_KEY_1 = bytes(range(32))
MASTER_KEY_2 = bytes(range(32, 64))
CHECKPOINT_EVERY = 4

JournalFactory = Callable[..., Journal]


def master_keys(*versions: int) -> StaticMasterKeys:
    """Test master keys of ``versions`` (1 and/or 2); the highest is current."""
    keys = {1: MASTER_KEY_1, 2: MASTER_KEY_2}
    return StaticMasterKeys({v: keys[v] for v in versions or (1,)})


@pytest.fixture(params=["sqlite", "postgresql"])
def database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(url, engine options) of an empty database with the journal's schema."""
    with migrated_database(
        request.param, tmp_path, "journal", Journal.create_engine, upgrade
    ) as db:
        yield db


@pytest.fixture
def make_journal(database: tuple[str, dict[str, Any]]) -> Iterator[JournalFactory]:
    """Builds journals on the test's database (several may share it, like hub processes).

    The checkpoint interval is ``CHECKPOINT_EVERY`` unless ``checkpoint_every`` says other.
    """
    url, options = database
    opened: list[Journal] = []

    def build(
        keys: StaticMasterKeys | None = None, checkpoint_every: int = CHECKPOINT_EVERY
    ) -> Journal:
        journal = Journal.open(
            url, keys or master_keys(1), checkpoint_every=checkpoint_every, **options
        )
        opened.append(journal)
        return journal

    yield build
    for journal in opened:
        journal.close()


@pytest.fixture
def journal(make_journal: JournalFactory) -> Journal:
    """A journal on the test's database, checkpointing every ``CHECKPOINT_EVERY`` events."""
    return make_journal()
