"""Journals for the saga tests (SQLite file and PostgreSQL schema) and a clock they move."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.sagas.store import SagaStore
from journal.keys import StaticMasterKeys
from journal.migrate import upgrade
from journal.store import Journal
from tests.support import migrated_database

KEYS = StaticMasterKeys({1: bytes(range(32))})


class Clock:
    """UTC time that a test moves forward (``advance``); starts at 2026-11-29 10:00."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 29, 10, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sqlite", "postgresql"])
def journal_database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(url, engine options) of an empty journal database."""
    with migrated_database(
        request.param, tmp_path, "sagas", Journal.create_engine, upgrade
    ) as database:
        yield database


StoreFactory = Callable[[], SagaStore]


@pytest.fixture
def make_store(
    journal_database: tuple[str, dict[str, Any]], clock: Clock
) -> Iterator[StoreFactory]:
    """Saga stores on the test's database, each on a journal of its own (like hub
    processes sharing one database), all on the test's clock."""
    url, options = journal_database
    opened: list[Journal] = []

    def build() -> SagaStore:
        journal = Journal.open(url, KEYS, **options)
        opened.append(journal)
        return SagaStore(journal, now=clock)

    yield build
    for journal in opened:
        journal.close()
