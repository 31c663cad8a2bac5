"""``trace``: a transaction found by any of its ids, its path with timings; unknown ids."""

from __future__ import annotations

import dataclasses

import pytest

from journal.events import Event
from journal.store import Journal
from journal.trace import MAX_TRANSACTIONS, format_trace
from tests.journal.factories import card_purchase, credit_transfer, mixed_run


@pytest.fixture
def traced(journal: Journal) -> Journal:
    journal.record(list(mixed_run(6)))
    return journal


@pytest.mark.parametrize(
    "identifier",
    [
        "hub-0003",
        "633300000003",
        "000003@TERM0001",
        "3@TERM0001",
        "1b4e28ba-2fa1-41d2-883f-000000000003",
        "1B4E28BA-2FA1-41D2-883F-000000000003",
        " hub-0003 ",
    ],
)
def test_a_transaction_is_found_by_each_of_its_ids(traced: Journal, identifier: str) -> None:
    (found,) = traced.trace(identifier)
    assert found.view is not None
    assert found.view.transaction_id == "hub-0003"
    assert [e.kind.value for e in found.events] == [
        "received", "tokenized", "routed", "sent", "answered",
    ]  # fmt: skip
    assert [e.seq for e in found.events] == sorted(e.seq for e in found.events)
    assert found.duration.total_seconds() == pytest.approx(0.0137)


@pytest.mark.parametrize("identifier", ["hub-9999", "000003@TERM0002", "000003", "", "@"])
def test_an_unknown_id_finds_nothing(traced: Journal, identifier: str) -> None:
    assert traced.trace(identifier) == []


def with_ids(events: list[Event], **changes: str) -> list[Event]:
    """``events`` with some of their ids changed."""
    return [dataclasses.replace(e, ids=dataclasses.replace(e.ids, **changes)) for e in events]


def test_an_id_shared_by_several_transactions_shows_each(journal: Journal) -> None:
    journal.record(card_purchase(1))
    journal.record(with_ids(card_purchase(2), stan="000001"))  # a STAN comes round again
    found = journal.trace("000001@TERM0001")
    assert [t.view.transaction_id for t in found if t.view] == ["hub-0001", "hub-0002"]


def test_at_most_max_transactions_are_traced(journal: Journal) -> None:
    events: list[Event] = []
    for number in range(MAX_TRANSACTIONS + 3):
        events += with_ids(card_purchase(number)[:1], end_to_end_id="SAME")
    journal.record(events)
    found = journal.trace("SAME")
    assert len(found) == MAX_TRANSACTIONS
    assert found[0].events[0].ids.transaction_id == "hub-0000"  # the oldest first


def test_the_printed_path_has_timings_and_hides_personal_data(journal: Journal) -> None:
    journal.record(credit_transfer(7))
    text = format_trace(journal.trace("hub-0007"))
    lines = text.splitlines()
    assert lines[0] == "transaction hub-0007"
    assert lines[1] == "  tenant acme  status reversed (TECH)  amount 250.00 EUR  attempts 1"
    assert lines[2] == (
        "  end-to-end/RRN 633300000007  STAN@terminal 000007@TERM0001  "
        "UETR 1b4e28ba-2fa1-41d2-883f-000000000007"
    )
    assert lines[4].split() == [
        "1", "2026-11-29T05:00:00.000000Z", "0.0", "0.0", "received",
        '{"amount":"250.00","currency":"EUR"}', "personal:", "creditor_iban,", "debtor,",
        "remittance",
    ]  # fmt: skip
    assert lines[6].split()[:5] == ["3", "2026-11-29T05:00:30.002000Z", "30002.0", "30000.0",
                                    "timed_out"]  # fmt: skip
    assert lines[-1] == "  4 events over 30010.0 ms"
    assert "Erika" not in text
    journal.shred_tenant("acme")
    erased = format_trace(journal.trace("hub-0007"))
    assert erased.splitlines()[4].endswith("personal: erased")
