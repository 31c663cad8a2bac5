"""Events for the journal's tests: a fixed clock and transactions in a few shapes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from journal.events import Event, EventKind, JsonObject, TransactionIds

TENANT = "acme"
START = dt.datetime(2026, 11, 29, 5, 0, tzinfo=dt.UTC)


def ids(number: int) -> TransactionIds:
    """The ids of test transaction ``number``: hub id, RRN, STAN + terminal, UETR."""
    return TransactionIds(
        transaction_id=f"hub-{number:04d}",
        end_to_end_id=f"63330{number:07d}",
        stan=f"{number % 1_000_000:06d}",
        terminal_id="TERM0001",
        uetr=f"1b4e28ba-2fa1-41d2-883f-{number:012x}",
    )


def event(
    number: int,
    kind: EventKind,
    milliseconds: float = 0.0,
    body: JsonObject | None = None,
    personal: JsonObject | None = None,
    tenant: str = TENANT,
) -> Event:
    """An event of test transaction ``number``, ``milliseconds`` after ``START``."""
    return Event(
        kind,
        tenant,
        ids(number),
        START + dt.timedelta(milliseconds=milliseconds),
        {} if body is None else body,
        personal,
    )


def card_purchase(number: int, tenant: str = TENANT) -> list[Event]:
    """A card purchase answered approved: received .. answered, 5 events."""
    amount = {"amount": f"{number}.50", "currency": "EUR"}
    return [
        event(number, EventKind.RECEIVED, 0, {**amount, "source": "iso8583"}, tenant=tenant),
        event(
            number, EventKind.TOKENIZED, 0.4, {"token_masked": "411111******1111"}, tenant=tenant
        ),
        event(
            number,
            EventKind.ROUTED,
            0.9,
            {"destination": "core.cards", "rule": "on-us"},
            tenant=tenant,
        ),
        event(number, EventKind.SENT, 1.2, {"attempt": 1}, tenant=tenant),
        event(
            number,
            EventKind.ANSWERED,
            13.7,
            {"status": "approved", "reason_code": "00", "latency_ms": 12.5},
            tenant=tenant,
        ),
    ]


def credit_transfer(number: int, tenant: str = TENANT) -> list[Event]:
    """A credit transfer with personal data, timed out, reversed: 4 events."""
    personal = {"debtor": "Erika Mustermann", "creditor_iban": "DE89370400440532013000",
                "remittance": f"invoice {number}"}  # fmt: skip
    return [
        event(
            number, EventKind.RECEIVED, 0, {"amount": "250.00", "currency": "EUR"}, personal, tenant
        ),
        event(number, EventKind.SENT, 2.0, {"destination": "clearing"}, tenant=tenant),
        event(number, EventKind.TIMED_OUT, 30_002.0, {"reason_code": "AB05"}, tenant=tenant),
        event(number, EventKind.REVERSED, 30_010.0, {"reason_code": "TECH"}, personal, tenant),
    ]


def mixed_run(count: int) -> Iterator[Event]:
    """``count`` transactions of both shapes, their events interleaved pairwise."""
    for number in range(1, count + 1, 2):
        first = card_purchase(number)
        second = credit_transfer(number + 1) if number + 1 <= count else []
        for index in range(max(len(first), len(second))):
            if index < len(first):
                yield first[index]
            if index < len(second):
                yield second[index]
