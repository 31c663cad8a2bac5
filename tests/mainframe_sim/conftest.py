"""A seeded ledger on a fresh SQLite file for each test, with a settable clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from mainframe_sim.ledger import Ledger
from mainframe_sim.seed import seed_ledger


class Clock:
    """A clock the test moves: starts 2026-11-27 09:00 UTC, each call returns ``now``."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(tmp_path: Path, clock: Clock) -> Iterator[Ledger]:
    opened = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}", clock=clock)
    seed_ledger(opened)
    yield opened
    opened.close()
