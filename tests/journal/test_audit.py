"""``verify`` catches each kind of tampering and names the first bad event; it repairs nothing.

Each test tampers with the tables directly, as someone with write access to the database but
without the master keys would, then checks the report.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from journal.audit import Problem, ProblemKind, checkpoint_message, verify
from journal.events import TransactionIds, canonical_bytes, chain_hash
from journal.keys import StaticMasterKeys, signing_key
from journal.schema import CHECKPOINTS, EVENTS, HEAD
from journal.store import Journal
from tests.journal.conftest import JournalFactory, master_keys
from tests.journal.factories import mixed_run

EVENT_COUNT = 18  # mixed_run(4): two card purchases (5 events) and two transfers (4)


@pytest.fixture
def filled(journal: Journal) -> Journal:
    """A journal of 18 events with checkpoints at 4, 8, 12 and 16, intact."""
    journal.record(list(mixed_run(4)))
    report = journal.verify()
    assert report.ok, report.problems
    assert (report.events_checked, report.checkpoints_checked) == (EVENT_COUNT, 4)
    return journal


def tamper(journal: Journal, change: Callable[[Connection], Any]) -> None:
    """Run ``change`` on the journal's tables in a transaction of its own."""
    with journal.engine.begin() as connection:
        change(connection)


def row_hash(row: Any, prev_hash: str) -> str:
    """What an event row's hash is when chained after ``prev_hash``."""

    class Hashed:
        kind, tenant, at = row.kind, row.tenant, row.at
        ids = TransactionIds(
            row.transaction_id, row.end_to_end_id, row.stan, row.terminal_id, row.uetr
        )

    return chain_hash(
        prev_hash, canonical_bytes(row.seq, Hashed, row.body, row.personal, row.key_version)
    )


def rehash(connection: Connection, first: int, last: int) -> None:
    """Recompute the hashes of events ``first``..``last`` and the head, as a forger would."""
    prev = connection.execute(select(EVENTS.c.hash).where(EVENTS.c.seq == first - 1)).scalar_one()
    rows = connection.execute(
        select(EVENTS).where(EVENTS.c.seq.between(first, last)).order_by(EVENTS.c.seq)
    ).all()
    for row in rows:
        new = row_hash(row, prev)
        connection.execute(
            update(EVENTS).where(EVENTS.c.seq == row.seq).values(prev_hash=prev, hash=new)
        )
        prev = new
    if last == EVENT_COUNT:
        connection.execute(update(HEAD).values(hash=prev))


def edit_body(seq: int, body: str = '{"status":"approved"}') -> Callable[[Connection], Any]:
    return lambda c: c.execute(update(EVENTS).where(EVENTS.c.seq == seq).values(body=body))


def problems(journal: Journal) -> list[tuple[int, str, int | None]]:
    report = journal.verify()
    assert not report.ok
    return [(p.seq, p.kind.value, p.last_seq) for p in report.problems]


def test_an_edited_event_is_named(filled: Journal) -> None:
    with filled.engine.connect() as connection:
        before = connection.execute(select(EVENTS).where(EVENTS.c.seq == 6)).one()
    tamper(filled, edit_body(6))
    report = filled.verify()
    assert report.first_problem == Problem(
        6, ProblemKind.EDITED, "its columns no longer match its hash"
    )
    assert len(report.problems) == 1
    assert str(report.first_problem) == "event 6: edited: its columns no longer match its hash"
    with filled.engine.connect() as connection:  # reported, not repaired
        assert connection.execute(select(EVENTS.c.body).where(EVENTS.c.seq == 6)).scalar() == (
            '{"status":"approved"}'
        )
        assert connection.execute(select(EVENTS.c.hash).where(EVENTS.c.seq == 6)).scalar() == (
            before.hash
        )


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("at", dt.datetime(2026, 11, 29, 5, 0, 0, 1, tzinfo=dt.UTC)),
        ("kind", "reversed"),
        ("tenant", "globex"),
        ("transaction_id", "hub-9999"),
        ("end_to_end_id", "633309999999"),
        ("terminal_id", "TERM0002"),
        ("personal", b"\x00" * 40),
        ("key_version", 2),
    ],
)
def test_every_column_is_covered_by_the_hash(filled: Journal, column: str, value: Any) -> None:
    tamper(
        filled,
        lambda c: c.execute(update(EVENTS).where(EVENTS.c.seq == 10).values({column: value})),
    )
    assert problems(filled) == [(10, "edited", None)]


def test_an_edited_event_with_its_hash_recomputed_is_named(filled: Journal) -> None:
    def change(connection: Connection) -> None:
        edit_body(6)(connection)
        row = connection.execute(select(EVENTS).where(EVENTS.c.seq == 6)).one()
        connection.execute(
            update(EVENTS).where(EVENTS.c.seq == 6).values(hash=row_hash(row, row.prev_hash))
        )

    tamper(filled, change)
    report = filled.verify()
    assert [(p.seq, p.kind) for p in report.problems] == [(6, ProblemKind.EDITED)]
    assert "hash recomputed" in report.problems[0].detail


def test_a_rewritten_chain_is_caught_by_the_checkpoint_that_signed_it(filled: Journal) -> None:
    def change(connection: Connection) -> None:
        edit_body(6)(connection)
        rehash(connection, 6, EVENT_COUNT)

    tamper(filled, change)
    # Every link is consistent now: only the signed checkpoints at 8, 12, 16 disagree.
    assert problems(filled) == [(5, "edited", 8), (9, "edited", 12), (13, "edited", 16)]


def test_a_deleted_event_is_named(filled: Journal) -> None:
    tamper(filled, lambda c: c.execute(delete(EVENTS).where(EVENTS.c.seq == 6)))
    report = filled.verify()
    assert report.first_problem == Problem(6, ProblemKind.DELETED, "missing from the journal")
    assert len(report.problems) == 1


def test_deleted_events_renumbered_to_close_the_gap_are_caught(filled: Journal) -> None:
    def change(connection: Connection) -> None:
        connection.execute(delete(EVENTS).where(EVENTS.c.seq == 6))
        for seq in range(7, EVENT_COUNT + 1):
            connection.execute(update(EVENTS).where(EVENTS.c.seq == seq).values(seq=seq - 1))
        connection.execute(update(HEAD).values(seq=EVENT_COUNT - 1))

    tamper(filled, change)
    found = problems(filled)
    assert found[0][:2] == (6, "edited")  # event 7, now at 6, no longer hashes with its seq


def test_a_deleted_stretch_is_named(filled: Journal) -> None:
    tamper(filled, lambda c: c.execute(delete(EVENTS).where(EVENTS.c.seq.between(6, 9))))
    assert problems(filled) == [(6, "deleted", 9)]


def test_a_deleted_tail_is_caught_by_the_chain_head(filled: Journal) -> None:
    tamper(filled, lambda c: c.execute(delete(EVENTS).where(EVENTS.c.seq > 16)))
    report = filled.verify()
    assert [(p.seq, p.kind, p.last_seq) for p in report.problems] == [(17, ProblemKind.DELETED, 18)]
    assert "the chain head says it reaches 18" in report.problems[0].detail


def test_a_deleted_tail_with_the_head_moved_back_is_caught_by_a_checkpoint(
    filled: Journal,
) -> None:
    def change(connection: Connection) -> None:
        connection.execute(delete(EVENTS).where(EVENTS.c.seq > 14))
        last = connection.execute(select(EVENTS.c.hash).where(EVENTS.c.seq == 14)).scalar_one()
        connection.execute(update(HEAD).values(seq=14, hash=last, checkpoint_seq=12))

    tamper(filled, change)
    report = filled.verify()
    assert [(p.seq, p.kind, p.last_seq) for p in report.problems] == [(15, ProblemKind.DELETED, 16)]
    assert "a checkpoint says it reaches 16" in report.problems[0].detail


def test_swapped_events_are_named_as_reordered(filled: Journal) -> None:
    def change(connection: Connection) -> None:
        connection.execute(update(EVENTS).where(EVENTS.c.seq == 6).values(seq=-6))
        connection.execute(update(EVENTS).where(EVENTS.c.seq == 7).values(seq=6))
        connection.execute(update(EVENTS).where(EVENTS.c.seq == -6).values(seq=7))

    tamper(filled, change)
    report = filled.verify()
    assert [(p.seq, p.kind) for p in report.problems] == [
        (6, ProblemKind.REORDERED),
        (7, ProblemKind.REORDERED),
    ]
    assert report.problems[0].detail == "stored at 6, but the chain puts it after event 7"


def test_an_event_moved_far_away_is_named_as_reordered(filled: Journal) -> None:
    def change(connection: Connection) -> None:
        connection.execute(update(EVENTS).where(EVENTS.c.seq == 3).values(seq=-3))
        for seq in (4, 5):
            connection.execute(update(EVENTS).where(EVENTS.c.seq == seq).values(seq=seq - 1))
        connection.execute(update(EVENTS).where(EVENTS.c.seq == -3).values(seq=5))

    tamper(filled, change)
    first = filled.verify().first_problem
    assert first is not None
    assert (first.seq, first.kind) == (3, ProblemKind.REORDERED)


def test_an_event_inserted_beyond_the_head_is_named(filled: Journal) -> None:
    def change(connection: Connection) -> None:
        last = connection.execute(select(EVENTS).where(EVENTS.c.seq == EVENT_COUNT)).one()
        forged = {**last._asdict(), "seq": EVENT_COUNT + 1, "prev_hash": last.hash}
        forged["hash"] = row_hash(type("Row", (), forged), last.hash)
        connection.execute(insert(EVENTS).values(forged))

    tamper(filled, change)
    assert problems(filled) == [(EVENT_COUNT + 1, "inserted", None)]


def test_an_altered_chain_head_is_caught(filled: Journal) -> None:
    tamper(filled, lambda c: c.execute(update(HEAD).values(hash="ab" * 32)))
    assert problems(filled) == [(EVENT_COUNT, "edited", None)]


def test_an_altered_checkpoint_fails_its_signature(filled: Journal) -> None:
    with filled.engine.connect() as connection:
        seven = connection.execute(select(EVENTS.c.hash).where(EVENTS.c.seq == 7)).scalar_one()
    tamper(
        filled,
        lambda c: c.execute(update(CHECKPOINTS).where(CHECKPOINTS.c.seq == 8).values(hash=seven)),
    )
    report = filled.verify()
    assert [(p.seq, p.kind) for p in report.problems] == [(8, ProblemKind.BAD_SIGNATURE)]
    assert "does not verify" in report.problems[0].detail


def test_a_checkpoint_signed_with_another_key_fails(filled: Journal) -> None:
    def change(connection: Connection) -> None:
        row = connection.execute(select(CHECKPOINTS).where(CHECKPOINTS.c.seq == 12)).one()
        forger = signing_key(StaticMasterKeys({1: bytes(32)}), 1)
        message = checkpoint_message(row.seq, row.hash, row.at, row.previous_seq, 1)
        connection.execute(
            update(CHECKPOINTS)
            .where(CHECKPOINTS.c.seq == 12)
            .values(signature=forger.sign(message))
        )

    tamper(filled, change)
    assert problems(filled) == [(12, "bad signature", None)]


def test_a_deleted_checkpoint_is_named(filled: Journal) -> None:
    tamper(filled, lambda c: c.execute(delete(CHECKPOINTS).where(CHECKPOINTS.c.seq == 8)))
    assert problems(filled) == [(8, "deleted", None), (12, "deleted", None)]


def test_a_rewritten_chain_with_forged_checkpoints_fails_the_signatures(
    filled: Journal,
) -> None:
    forger = signing_key(master_keys(2), 2)

    def change(connection: Connection) -> None:
        edit_body(2)(connection)
        rehash(connection, 2, EVENT_COUNT)
        for row in connection.execute(select(CHECKPOINTS)).all():
            new = connection.execute(
                select(EVENTS.c.hash).where(EVENTS.c.seq == row.seq)
            ).scalar_one()
            message = checkpoint_message(row.seq, new, row.at, row.previous_seq, 1)
            connection.execute(
                update(CHECKPOINTS)
                .where(CHECKPOINTS.c.seq == row.seq)
                .values(hash=new, signature=forger.sign(message))
            )

    tamper(filled, change)
    # The chain itself is consistent again; the forged signatures give it away.
    assert problems(filled) == [(seq, "bad signature", None) for seq in (4, 8, 12, 16)]


def test_verify_checks_an_empty_journal(journal: Journal) -> None:
    report = journal.verify()
    assert report.ok
    assert (report.events_checked, report.checkpoints_checked, report.head_seq) == (0, 0, 0)
    assert report.first_problem is None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    count=st.integers(min_value=1, max_value=6),
    data=st.data(),
    tampering=st.sampled_from(["edit", "edit+rehash", "delete", "swap"]),
)
def test_any_single_tampering_is_named_at_its_event(
    count: int, data: st.DataObject, tampering: str
) -> None:
    journal = Journal.open("sqlite://", master_keys(1), create=True, checkpoint_every=5)
    events = journal.record(list(mixed_run(count)))
    last = len(events)
    top = last - 1 if tampering == "swap" else last
    seq = data.draw(st.integers(min_value=1, max_value=max(top, 1)), label="seq")
    if tampering == "swap" and last < 2:
        return
    with journal.engine.begin() as connection:
        if tampering.startswith("edit"):
            edit_body(seq, '{"forged":true}')(connection)
            if tampering == "edit+rehash":
                row = connection.execute(select(EVENTS).where(EVENTS.c.seq == seq)).one()
                connection.execute(
                    update(EVENTS)
                    .where(EVENTS.c.seq == seq)
                    .values(hash=row_hash(row, row.prev_hash))
                )
        elif tampering == "delete":
            connection.execute(delete(EVENTS).where(EVENTS.c.seq == seq))
        else:
            connection.execute(update(EVENTS).where(EVENTS.c.seq == seq).values(seq=-1))
            connection.execute(update(EVENTS).where(EVENTS.c.seq == seq + 1).values(seq=seq))
            connection.execute(update(EVENTS).where(EVENTS.c.seq == -1).values(seq=seq + 1))
    report = journal.verify()
    journal.close()
    expected = {
        "edit": ProblemKind.EDITED,
        "edit+rehash": ProblemKind.EDITED,
        "delete": ProblemKind.DELETED,
        "swap": ProblemKind.REORDERED,
    }[tampering]
    first = report.first_problem
    assert first is not None
    assert (first.seq, first.kind) == (seq, expected), report.problems


def test_verify_reads_one_snapshot_while_others_append(
    filled: Journal, make_journal: JournalFactory
) -> None:
    appender = make_journal()
    calls: list[int] = []

    def append_meanwhile(done: int, _total: int) -> None:
        calls.append(done)
        if len(calls) <= 4:
            appender.record(list(mixed_run(2)))

    report = verify(filled.engine, master_keys(1), progress=append_meanwhile, chunk=5)
    assert report.ok, report.problems
    assert report.events_checked == EVENT_COUNT
    assert calls == [5, 10, 15, 18]
    assert filled.verify().events_checked == EVENT_COUNT + 4 * 9
