"""The ledger's invariant checker, and concurrent writers on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import QueuePool, create_engine, text, update

from mainframe_sim.ledger import Ledger, accounts
from mainframe_sim.seed import SEED_ACCOUNTS, seed_ledger
from mainframe_sim.transactions import process_batch
from tests.mainframe_sim.samples import ANNA, request

NOW = dt.datetime(2026, 11, 27, 9, tzinfo=dt.UTC)


def test_check_finds_a_drifted_running_balance(ledger: Ledger) -> None:
    assert ledger.check().balanced
    with ledger.engine.begin() as connection:
        connection.execute(
            update(accounts).where(accounts.c.number == ANNA).values(ledger_balance=1)
        )
    check = ledger.check()
    assert not check.balanced
    assert check.drifted == (ANNA,)


def test_an_unbalanced_posting_is_refused(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="legs do not balance"), ledger.transaction() as book:
        book.add_posting("X1", "DEBT", [(ANNA, -100), ("GL-CLEARING-EUR", 99)], booked_at=NOW)
    assert ledger.check().postings == sum(1 for s in SEED_ACCOUNTS if s.opening)


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], Ledger]]:
    """Opens ledgers on one database, as separate processes would (a schema per test on
    PostgreSQL, from ``ISOBRIDGE_TEST_POSTGRES_URL``; skipped without it, failed under CI)."""
    opened: list[Ledger] = []
    if request.param == "sqlite":
        url, options = f"sqlite:///{tmp_path / 'shared.db'}", {}
        cleanups: list[Callable[[], None]] = []
    else:
        url = os.environ.get("ISOBRIDGE_TEST_POSTGRES_URL", "")
        if not url:
            if os.environ.get("CI"):
                pytest.fail("ISOBRIDGE_TEST_POSTGRES_URL is not set")
            pytest.skip("ISOBRIDGE_TEST_POSTGRES_URL is not set (./scripts/test sets it)")
        schema = f"mf_{secrets.token_hex(6)}"
        admin = create_engine(url)
        with admin.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA {schema}"))
        options = {"connect_args": {"options": f"-csearch_path={schema}"}}

        def drop_schema() -> None:
            with admin.begin() as connection:
                connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()

        cleanups = [drop_schema]

    def open_ledger() -> Ledger:
        ledger = Ledger.open(url, clock=lambda: NOW, **options)
        opened.append(ledger)
        return ledger

    try:
        yield open_ledger
    finally:
        for ledger in opened:
            ledger.close()
        for cleanup in cleanups:
            cleanup()


def test_two_ledgers_on_one_database_stay_balanced(shared_database: Callable[[], Ledger]) -> None:
    first, second = shared_database(), shared_database()
    seed_ledger(first)
    numbers = [seed.number for seed in SEED_ACCOUNTS[:11]]
    errors: list[BaseException] = []

    def worker(ledger: Ledger, n: int) -> None:
        try:
            for i in range(25):
                source = (n + i) % 11
                ref = f"S{n}-{i}"
                transfer = request(
                    "XFER", ref, numbers[source], "1", contra=numbers[(source + 3) % 11]
                )
                # The same reference from both "processes": applied once.
                for replies in (
                    process_batch(ledger, [transfer]),
                    process_batch(second, [transfer]),
                ):
                    assert replies[0].result_code == "00", replies
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=worker, args=(first if n % 2 else second, n)) for n in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    check = first.check()
    assert check.balanced, check
    assert check.postings == sum(1 for s in SEED_ACCOUNTS if s.opening) + 6 * 25


def test_transactions_keep_their_connection_unless_one_fails(ledger: Ledger) -> None:
    pool = ledger.engine.pool
    assert isinstance(pool, QueuePool)
    with ledger.transaction() as book:
        book.add_account("DE00KEPT", "Kept", "EUR")
    assert pool.checkedout() == 1  # kept for the next transaction

    def failing_batch() -> None:
        with ledger.transaction() as book:
            book.add_account("DE00GONE", "Gone", "EUR")
            raise RuntimeError("a failed batch")

    with pytest.raises(RuntimeError):
        failing_batch()
    assert pool.checkedout() == 0  # back to the pool, which checks it before handing it out
    assert ledger.account("DE00GONE") is None
    with ledger.transaction() as book:
        assert book.account("DE00KEPT") is not None
    ledger.close()
    assert pool.checkedout() == 0


def test_a_file_ledger_is_checkpointed_by_its_thread_not_by_its_commits(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    before = _checkpoint_threads()
    ledger = Ledger.open(f"sqlite:///{path}")
    try:
        with ledger.engine.connect() as connection:
            pragma = connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one()
        assert pragma == 0  # no commit of the request path stops to checkpoint
        assert _checkpoint_threads() == before + 1
        seed_ledger(ledger)
        for number in range(300):
            with ledger.transaction() as book:
                book.add_posting(
                    f"CKPT{number:06d}",
                    "DEBT",
                    [(ANNA, -1), ("GL-CLEARING-EUR", 1)],
                    booked_at=NOW,
                )
        db_size = path.stat().st_size
        deadline = time.monotonic() + 30
        while path.stat().st_size == db_size and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.stat().st_size > db_size  # the thread copied the log into the database
        assert ledger.check().balanced
    finally:
        ledger.close()
    assert _checkpoint_threads() == before
    reopened = Ledger.open(f"sqlite:///{path}")
    try:
        assert reopened.check().postings >= 300
    finally:
        reopened.close()


def test_an_in_memory_ledger_has_no_checkpoint_thread() -> None:
    before = _checkpoint_threads()
    ledger = Ledger.open("sqlite://")
    try:
        assert _checkpoint_threads() == before
    finally:
        ledger.close()


def _checkpoint_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == "ledger-checkpoint")
