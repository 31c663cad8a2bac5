"""The journal on SQLite and PostgreSQL: appends in the caller's transaction, the chain,
checkpoints, personal parts under tenant keys, crypto-shredding, concurrent appenders."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest
from sqlalchemy import select, text, update

from canonical_model.pan import find_clear_pans
from journal.events import GENESIS_HASH, EventKind, Sealed, TransactionIds
from journal.keys import JournalKeyError, StaticMasterKeys
from journal.schema import CHECKPOINTS, EVENTS, HEAD, TENANT_KEYS
from journal.store import Journal, JournalError
from tests.journal.conftest import CHECKPOINT_EVERY, JournalFactory, master_keys
from tests.journal.factories import START, card_purchase, credit_transfer, event, mixed_run
from tests.journal.reference import write_reference_chain


def test_append_numbers_and_chains_events_across_batches(journal: Journal) -> None:
    first = journal.record(card_purchase(1))
    second = journal.record(credit_transfer(2))
    stored = first + second
    assert [e.seq for e in stored] == list(range(1, 10))
    assert stored[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(stored))
    assert [e.hash for e in journal.events()] == [e.hash for e in stored]
    assert list(journal.events(after=7)) == [e for e in journal.events() if e.seq > 7]


def test_a_chain_written_by_the_first_version_verifies_and_grows(journal: Journal) -> None:
    first, second, third = credit_transfer(1)[:3]
    with journal.engine.begin() as connection:
        last_hash = write_reference_chain(
            connection, [(first, b"\x01" * 40, 1), (second, None, None), (third, None, None)]
        )
    assert journal.verify().ok
    grown = journal.record(card_purchase(2))  # crosses the checkpoint at 4
    assert (grown[0].seq, grown[0].prev_hash) == (4, last_hash)
    report = journal.verify()
    assert report.ok, report.problems
    assert (report.events_checked, report.checkpoints_checked) == (8, 2)


def test_events_commit_and_roll_back_with_the_change_they_record(journal: Journal) -> None:
    journal.record(card_purchase(1))
    with journal.engine.connect() as connection:
        head_before = connection.execute(select(HEAD)).one()
    with pytest.raises(RuntimeError, match="failed"), journal.engine.begin() as change:  # noqa: PT012
        journal.append(change, card_purchase(2))
        raise RuntimeError("the change failed")
    with journal.engine.connect() as connection:
        assert connection.execute(select(HEAD)).one() == head_before
    assert [e.seq for e in journal.events()] == [1, 2, 3, 4, 5]
    assert journal.status("hub-0002") is None
    # The numbers the rolled-back append reserved are given back: no gap.
    assert journal.record(card_purchase(3))[0].seq == 6
    assert journal.verify().ok


def test_a_refused_event_writes_nothing(journal: Journal) -> None:
    events = card_purchase(1)
    events.append(event(1, EventKind.STATUS_CHANGED, 20, {"note": "card 4111111111111111"}))
    with pytest.raises(ValueError, match="body holds a clear card number") as raised:
        journal.record(events)
    assert "4111111111111111" not in str(raised.value)
    assert list(journal.events()) == []


def test_checkpoints_are_signed_every_n_events_and_on_demand(journal: Journal) -> None:
    journal.record(list(mixed_run(3)))  # 14 events
    with journal.engine.connect() as connection:
        rows = connection.execute(select(CHECKPOINTS).order_by(CHECKPOINTS.c.seq)).all()
    events = {e.seq: e.hash for e in journal.events()}
    assert [r.seq for r in rows] == [4, 8, 12]
    assert [r.previous_seq for r in rows] == [0, 4, 8]
    assert all(r.hash == events[r.seq] for r in rows)
    made = journal.checkpoint()
    assert made is not None
    assert (made.seq, made.hash, made.previous_seq) == (14, events[14], 12)
    assert journal.checkpoint() is None  # the head is checkpointed already
    report = journal.verify()
    assert report.ok, report.problems
    assert report.checkpoints_checked == 4


def test_the_checkpoint_interval_is_fixed_once_events_exist(make_journal: JournalFactory) -> None:
    journal = make_journal(checkpoint_every=CHECKPOINT_EVERY)
    journal.record(card_purchase(1))
    with pytest.raises(JournalError, match="cannot change now"):
        journal.set_checkpoint_interval(10)
    with pytest.raises(JournalError, match="at least 1"):
        journal.set_checkpoint_interval(0)
    journal.set_checkpoint_interval(CHECKPOINT_EVERY)  # the same: fine


def test_personal_parts_are_ciphertext_and_no_clear_pan_is_stored(journal: Journal) -> None:
    journal.record(list(mixed_run(6)))
    with journal.engine.connect() as connection:
        rows = connection.execute(select(EVENTS)).all()
        key_rows = connection.execute(select(TENANT_KEYS)).all()
    dump = "\n".join(repr(tuple(row)) for row in rows)
    assert "Erika" not in dump
    assert "DE89370400440532013000" not in dump
    # The text a person or a program reads; hashes (hex) and ciphertext (bytes) hold digit
    # runs by chance, one in a few thousand of them Luhn-valid: they are not card numbers.
    readable = "\n".join(
        repr([v for k, v in row._mapping.items() if k not in ("hash", "prev_hash", "personal")])
        for row in rows
    )
    assert find_clear_pans(readable) == []
    assert all(row.personal is None or isinstance(row.personal, bytes) for row in rows)
    assert [(k.tenant, k.version) for k in key_rows] == [("acme", 1)]
    received = next(e for e in journal.events() if e.ids.transaction_id == "hub-0002")
    assert received.personal == {
        "debtor": "Erika Mustermann",
        "creditor_iban": "DE89370400440532013000",
        "remittance": "invoice 2",
    }


def test_a_ciphertext_moved_to_another_event_does_not_decrypt(journal: Journal) -> None:
    journal.record(credit_transfer(1) + credit_transfer(2))  # personal parts at 1, 4, 5, 8
    with journal.engine.begin() as connection:
        moved = connection.execute(select(EVENTS.c.personal).where(EVENTS.c.seq == 1)).scalar()
        connection.execute(update(EVENTS).where(EVENTS.c.seq == 5).values(personal=moved))
    personal = {e.seq: e.personal for e in journal.events()}
    assert personal[5] is Sealed.UNREADABLE
    assert isinstance(personal[1], dict)
    first = journal.verify().first_problem
    assert first is not None
    assert (first.seq, first.kind) == (5, "edited")


def test_shredding_erases_one_tenants_personal_data_and_the_chain_verifies(
    make_journal: JournalFactory,
) -> None:
    journal = make_journal()
    journal.record(credit_transfer(1, tenant="acme") + credit_transfer(2, tenant="globex"))
    other_process = make_journal()
    assert journal.shred_tenant("acme") == 1
    assert journal.shred_tenant("acme") == 0
    for reader in (journal, other_process):
        personal = {(e.tenant, e.seq): e.personal for e in reader.events()}
        assert personal[("acme", 1)] is Sealed.ERASED
        assert personal[("acme", 4)] is Sealed.ERASED
        assert isinstance(personal[("globex", 5)], dict)
    assert journal.verify().ok
    # Events after the shredding get a new key version and can be read again.
    later = journal.record(credit_transfer(3, tenant="acme"))
    with journal.engine.connect() as connection:
        versions = connection.execute(
            select(TENANT_KEYS.c.version, TENANT_KEYS.c.wrapped.is_(None))
            .where(TENANT_KEYS.c.tenant == "acme")
            .order_by(TENANT_KEYS.c.version)
        ).all()
    assert [tuple(v) for v in versions] == [(1, True), (2, False)]
    readable = {e.seq: e.personal for e in other_process.events()}
    assert isinstance(readable[later[0].seq], dict)
    assert readable[1] is Sealed.ERASED
    assert journal.verify().ok


def test_a_process_that_cached_a_shredded_key_does_not_use_it(
    make_journal: JournalFactory,
) -> None:
    writer, operator = make_journal(), make_journal()
    writer.record(credit_transfer(1))
    operator.shred_tenant("acme")
    written = writer.record(credit_transfer(2))
    assert {e.seq: e.personal for e in operator.events()}[written[0].seq] != Sealed.ERASED
    assert {e.seq: e.personal for e in operator.events()}[1] is Sealed.ERASED


def test_reading_without_the_master_key_fails_clearly(make_journal: JournalFactory) -> None:
    make_journal(master_keys(1)).record(credit_transfer(1))
    only_two = make_journal(master_keys(2))
    with pytest.raises(JournalKeyError, match="master key version 1 is not available"):
        list(only_two.events())
    with pytest.raises(JournalKeyError, match="does not unwrap"):
        list(make_journal(StaticMasterKeys({1: bytes(32)})).events())
    # Nor can its checkpoint (at 4, signed under version 1) be checked.
    assert [(p.seq, p.kind) for p in only_two.verify().problems] == [(4, "bad signature")]
    assert "master key version 1 is not available" in only_two.verify().problems[0].detail


def test_new_tenant_keys_and_checkpoints_use_the_current_master_version(
    make_journal: JournalFactory,
) -> None:
    make_journal(master_keys(1)).record(credit_transfer(1))
    both = make_journal(master_keys(1, 2))
    both.record(credit_transfer(2, tenant="globex") + card_purchase(3))
    with both.engine.connect() as connection:
        keys = {row.tenant: row.master_version for row in connection.execute(select(TENANT_KEYS))}
        signed = connection.execute(
            select(CHECKPOINTS.c.seq, CHECKPOINTS.c.master_version).order_by(CHECKPOINTS.c.seq)
        ).all()
    assert keys == {"acme": 1, "globex": 2}
    assert [tuple(s) for s in signed] == [(4, 1), (8, 2), (12, 2)]
    assert both.verify().ok
    assert all(e.personal is not Sealed.UNREADABLE for e in both.events())


def test_concurrent_appenders_serialize_on_the_chain_head(make_journal: JournalFactory) -> None:
    journals = [make_journal() for _ in range(4)]
    errors: list[BaseException] = []

    def append(journal: Journal, worker: int) -> None:
        try:
            for batch in range(10):
                number = worker * 100 + batch
                journal.record(card_purchase(number) if batch % 2 else credit_transfer(number))
        except BaseException as exc:  # reported below, with the worker's failure
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(j, w)) for w, j in enumerate(journals)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    seqs = [e.seq for e in journals[0].events()]
    assert seqs == list(range(1, 4 * (5 * 5 + 5 * 4) + 1))
    report = journals[0].verify()
    assert report.ok, report.problems
    assert len(journals[0].transactions()) == 40


def test_open_refuses_a_database_without_the_schema(tmp_path: Any) -> None:
    with pytest.raises(JournalError, match="run `isobridge journal init`"):
        Journal.open(f"sqlite:///{tmp_path / 'empty.db'}", master_keys(1))
    journal = Journal.open(f"sqlite:///{tmp_path / 'new.db'}", master_keys(1), create=True)
    assert journal.record([event(1, EventKind.RECEIVED)])[0].seq == 1
    assert "new.db" in repr(journal)
    journal.close()


def test_an_unreachable_database_is_reported() -> None:
    with pytest.raises(JournalError, match="unreachable"):
        Journal.open(
            "postgresql+psycopg://nobody:nothing@127.0.0.1:1/none",
            master_keys(1),
            connect_args={"connect_timeout": 2},
        )


def test_times_come_back_in_utc_with_microseconds(journal: Journal) -> None:
    journal.record([event(1, EventKind.RECEIVED, 0.001)])
    (stored,) = journal.events()
    assert stored.at == START.replace(microsecond=1)
    assert stored.ids == TransactionIds(
        "hub-0001", "633300000001", "000001", "TERM0001", "1b4e28ba-2fa1-41d2-883f-000000000001"
    )
    with journal.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM journal_events")).scalar() == 1
