"""The read model: live projection in the append's transaction, and rebuild from the events.

The property: after any mixed sequence of events appended in any batches, rebuilding the
read model from scratch gives the same rows as the live table, and both equal a fold of
the events in plain Python (the reference).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, update

from journal import read_model
from journal.events import Event, EventKind, StoredEvent, TransactionIds
from journal.read_model import TransactionView, project
from journal.schema import TRANSACTIONS
from journal.store import Journal
from tests.journal.conftest import master_keys
from tests.journal.factories import START, card_purchase, credit_transfer, mixed_run


def reference(events: list[StoredEvent]) -> list[TransactionView]:
    """The read model as a plain fold of the events in sequence order."""
    views: dict[str, TransactionView] = {}
    for stored in sorted(events, key=lambda e: e.seq):
        key = stored.ids.transaction_id
        views[key] = project(views.get(key), stored)
    return [views[key] for key in sorted(views)]


def test_the_live_read_model_follows_each_append(journal: Journal) -> None:
    journal.record(card_purchase(1)[:3])
    view = journal.status("hub-0001")
    assert view is not None
    assert (view.status, view.amount, view.currency, view.destination, view.attempts) == (
        "routed", "1.50", "EUR", "core.cards", 0,
    )  # fmt: skip
    journal.record(card_purchase(1)[3:])
    view = journal.status("hub-0001")
    assert view is not None
    assert (view.status, view.reason_code, view.attempts, view.event_count) == (
        "approved", "00", 1, 5,
    )  # fmt: skip
    assert (view.first_seq, view.last_seq) == (1, 5)
    assert view.last_at - view.first_at == dt.timedelta(microseconds=13_700)
    assert (view.end_to_end_id, view.stan, view.terminal_id) == (
        "633300000001",
        "000001",
        "TERM0001",
    )


def test_rebuild_after_a_mixed_run_equals_the_live_table(journal: Journal) -> None:
    events = list(mixed_run(9))
    stored = []
    for size in (1, 7, 3, 20, 2, 100):  # batches of every size, transactions split across
        stored += journal.record(events[:size])
        events = events[size:]
    live = journal.transactions()
    assert live == reference(stored)
    assert journal.rebuild() == 9
    assert journal.transactions() == live
    assert journal.rebuild(chunk=4) == 9  # chunks that split transactions
    assert journal.transactions() == live


def test_rebuild_restores_a_damaged_or_dropped_read_model(journal: Journal) -> None:
    journal.record(list(mixed_run(4)))
    live = journal.transactions()
    with journal.engine.begin() as connection:
        connection.execute(update(TRANSACTIONS).values(status="forged"))
        connection.execute(delete(TRANSACTIONS).where(TRANSACTIONS.c.transaction_id == "hub-0001"))
    assert journal.transactions() != live
    journal.rebuild()
    assert journal.transactions() == live


def test_personal_parts_never_reach_the_read_model(journal: Journal) -> None:
    journal.record(credit_transfer(1))
    (view,) = journal.transactions()
    assert "Erika" not in repr(view)
    assert (view.status, view.reason_code) == ("reversed", "TECH")


def test_body_values_that_do_not_fit_a_column_are_left_to_the_event(journal: Journal) -> None:
    ids = TransactionIds("hub-odd")
    journal.record(
        [
            Event(EventKind.RECEIVED, "acme", ids, START, {"amount": 12, "currency": "EURO"}),
            Event(EventKind.STATUS_CHANGED, "acme", ids, START, {"status": "x" * 33}),
        ]
    )
    view = journal.status("hub-odd")
    assert view is not None
    assert (view.amount, view.currency, view.status) == (None, None, "status_changed")
    assert journal.rebuild() == 1
    assert journal.status("hub-odd") == view


KINDS = list(EventKind)
BODIES = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(["ACSC", "RJCT", "approved", "declined", "x" * 40]),
        "reason_code": st.sampled_from(["AM04", "00", "51", "TECH"]),
        "amount": st.decimals(min_value=0, max_value=10**6, places=2).map(str),
        "currency": st.sampled_from(["EUR", "USD", "JPY", "EURO"]),
        "destination": st.sampled_from(["core.cards", "clearing", "mainframe"]),
        "attempt": st.integers(1, 5),
        # A float's digits could form a Luhn-valid run, which check_event refuses as a card
        # number (tested in test_events); latencies come with one decimal.
        "latency_ms": st.integers(0, 10**6).map(lambda tenths: tenths / 10),
    },
)
EVENTS = st.builds(
    lambda number, kind, ms, body, tenant, uetr: Event(
        kind,
        tenant,
        TransactionIds(
            f"hub-{number}",
            end_to_end_id=f"e2e-{number}" if number % 2 else None,
            stan=f"{number:06d}" if ms % 3 else None,
            terminal_id="T1",
            uetr=uetr,
        ),
        START + dt.timedelta(milliseconds=ms),
        body,
    ),
    st.integers(0, 6),
    st.sampled_from(KINDS),
    st.integers(0, 60_000),
    BODIES,
    st.sampled_from(["acme", "globex"]),
    st.none() | st.uuids().map(str),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=st.lists(st.lists(EVENTS, min_size=1, max_size=8), min_size=1, max_size=8),
    chunk=st.integers(1, 10),
)
def test_rebuild_equals_live_after_any_mixed_sequence(
    batches: list[list[Event]], chunk: int
) -> None:
    journal = Journal.open("sqlite://", master_keys(1), create=True, checkpoint_every=3)
    stored: list[StoredEvent] = []
    for batch in batches:
        stored += journal.record(batch)
    live = journal.transactions()
    assert live == reference(stored)
    journal.rebuild(chunk=chunk)
    assert journal.transactions() == live
    assert journal.verify().ok
    journal.close()


# -- one upsert per batch: the row and the batch's fold merged in SQL ----------------------

FEW_IDS = st.sampled_from([None, "", "id-1", "id-2"])  # "" cannot be appended, but is folded
STORED_BODIES = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(["ACSC", "RJCT", "x" * 33]),
        "reason_code": st.sampled_from(["AM04", "TECH"]),
        "amount": st.sampled_from(["1.00", "2.50", ""]),
        "currency": st.sampled_from(["EUR", "USD", "EURO"]),
        "destination": st.sampled_from(["core", "clearing"]),
    },
)
STORED = st.builds(
    lambda number, kind, ms, body, e2e, stan, terminal, uetr: (
        number,
        kind,
        START + dt.timedelta(milliseconds=ms),
        body,
        TransactionIds(f"hub-{number}", e2e, stan, terminal, uetr),
    ),
    st.integers(0, 3),
    st.sampled_from(KINDS),
    st.integers(0, 60_000),
    STORED_BODIES,
    FEW_IDS,
    FEW_IDS,
    FEW_IDS,
    FEW_IDS,
)


def numbered(drafts: list[list[Any]]) -> list[list[StoredEvent]]:
    """Batches of stored events, numbered from 1 across batches (no chain: not verified)."""
    seq = 0
    batches = []
    for batch in drafts:
        stored = []
        for _number, kind, at, body, ids in batch:
            seq += 1
            stored.append(StoredEvent(seq, kind, "acme", ids, at, body, None, "", ""))
        batches.append(stored)
    return batches


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(STORED, min_size=1, max_size=6), min_size=1, max_size=6))
def test_each_batch_upserted_equals_the_fold_of_every_event(drafts: list[list[Any]]) -> None:
    batches = numbered(drafts)
    journal = Journal.open("sqlite://", master_keys(1), create=True)
    for batch in batches:
        with journal.engine.begin() as connection:
            assert read_model.apply(connection, batch) == len(
                {event.ids.transaction_id for event in batch}
            )
    assert journal.transactions() == reference([e for batch in batches for e in batch])
    journal.close()


def test_the_upsert_keeps_what_a_batch_does_not_name(journal: Journal) -> None:
    drafts = [
        [(1, EventKind.RECEIVED, START, {"amount": "5.00", "currency": "EUR"},
          TransactionIds("hub-1", None, "000123", "T1", None)),
         (2, EventKind.RECEIVED, START, {"reason_code": "TECH"}, TransactionIds("hub-2", stan=""))],
        [(1, EventKind.SENT, START, {"destination": "core"},
          TransactionIds("hub-1", "e2e-1", "", None, "")),
         (2, EventKind.SENT, START, {}, TransactionIds("hub-2"))],
        [(1, EventKind.SENT, START, {}, TransactionIds("hub-1", "")),
         (1, EventKind.ANSWERED, START + dt.timedelta(seconds=1),
          {"status": "RJCT", "reason_code": "AM04"}, TransactionIds("hub-1"))],
    ]  # fmt: skip
    batches = numbered(drafts)
    for batch in batches:
        with journal.engine.begin() as connection:
            read_model.apply(connection, batch)
    live = journal.transactions()
    assert live == reference([e for batch in batches for e in batch])
    first, second = live
    assert (first.status, first.reason_code, first.amount, first.currency) == (
        "RJCT", "AM04", "5.00", "EUR",
    )  # fmt: skip
    assert (first.end_to_end_id, first.stan, first.terminal_id, first.uetr) == (
        "e2e-1", "000123", "T1", None,
    )  # fmt: skip
    assert (first.attempts, first.first_seq, first.last_seq, first.event_count) == (2, 1, 6, 4)
    assert (second.stan, second.status, second.reason_code, second.attempts) == (
        "",
        "sent",
        None,
        1,
    )


@given(st.lists(EVENTS, min_size=1, max_size=12))
def test_folding_events_together_equals_projecting_them_one_by_one(events: list[Event]) -> None:
    stored = [
        StoredEvent(seq, e.kind, e.tenant, e.ids, e.at, e.body, None, "", "")
        for seq, e in enumerate(events, start=1)
    ]
    one_by_one: TransactionView | None = None
    for event in stored:
        one_by_one = project(one_by_one, event)
    assert read_model._fold(None, stored) == one_by_one
    split = len(stored) // 2
    if split:
        assert (
            read_model._fold(read_model._fold(None, stored[:split]), stored[split:]) == one_by_one
        )


def late_test_event(kind: EventKind, ms: int, body: dict[str, Any]) -> Event:
    """An event of transaction ``hub-late``, ``ms`` milliseconds after START."""
    return Event(
        kind, "acme", TransactionIds("hub-late"), START + dt.timedelta(milliseconds=ms), body
    )


def test_an_event_appended_late_does_not_take_the_status_back(journal: Journal) -> None:
    # The hub's journal writer appends "answered RCVD" in batches; a saga settling in the
    # meantime commits "ACSC" at once, so the earlier event can come second.
    journal.record([late_test_event(EventKind.STATUS_CHANGED, 40, {"status": "ACSC"})])
    journal.record(
        [
            late_test_event(EventKind.RECEIVED, 0, {}),
            late_test_event(EventKind.ANSWERED, 3, {"status": "RCVD", "reason_code": "TECH"}),
        ]
    )
    view = journal.status("hub-late")
    assert view is not None
    assert (view.status, view.reason_code, view.event_count, view.last_seq) == ("ACSC", None, 3, 3)
    assert (view.first_at, view.last_at) == (START, START + dt.timedelta(milliseconds=40))
    # the same microsecond: the one appended later wins
    journal.record(
        [late_test_event(EventKind.STATUS_CHANGED, 40, {"status": "RJCT", "reason_code": "AM04"})]
    )
    view = journal.status("hub-late")
    assert view is not None and (view.status, view.reason_code) == ("RJCT", "AM04")
    live = journal.transactions()
    journal.rebuild()
    assert journal.transactions() == live
