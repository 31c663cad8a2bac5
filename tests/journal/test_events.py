"""Events: what the journal refuses, and the canonical bytes that the chain hashes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canonical_model.pan import contains_clear_pan
from journal.events import (
    GENESIS_HASH,
    Event,
    EventKind,
    TransactionIds,
    body_text,
    canonical_bytes,
    chain_hash,
    check_event,
    checked_event,
    format_time,
)
from tests.journal.factories import START, event
from tests.journal.reference import reference_body, reference_canonical, reference_time

PAN = "4111111111111111"


def test_the_event_kinds_are_the_issues_list() -> None:
    assert [k.value for k in EventKind] == [
        "received", "tokenized", "routed", "sent", "answered", "timed_out", "reversed",
        "dead_lettered", "replayed", "status_changed",
        # issue 10: the saga runner's transitions
        "saga_started", "saga_step", "saga_signal", "saga_attention", "saga_retried",
        "saga_finished",
        # issue 12: the gateway's second-factor attempts
        "sca_attempt",
        # issue 12: key rotations (hub.rotation)
        "key_rotation",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"body": {"note": f"card {PAN}"}}, "its body holds a clear card number"),
        ({"personal": {"name": "A", "card": PAN}}, "its personal part holds a clear card number"),
        ({"ids": TransactionIds(PAN)}, "its ids hold a clear card number"),
        ({"ids": TransactionIds("m-1", end_to_end_id=PAN)}, "its ids hold a clear card number"),
        ({"at": dt.datetime(2026, 11, 29, 5, 0)}, "time must be timezone-aware"),
        ({"tenant": ""}, "tenant must be 1 to 64 characters"),
        ({"tenant": "t" * 65}, "tenant must be 1 to 64 characters"),
        ({"ids": TransactionIds("m" * 65)}, "transaction_id must be 1 to 64"),
        ({"ids": TransactionIds("m-1", stan="")}, "stan must be 1 to 64"),
        ({"body": {"latency": float("nan")}}, "body.latency is not a finite number"),
        ({"body": {"amount": dt.date(2026, 1, 1)}}, "body.amount is a date, not a JSON value"),
        ({"body": {"legs": [1, {2: "x"}]}}, "body.legs[1] has a key that is not a string"),
        ({"personal": {"when": {1, 2}}}, "personal.when is a set"),
        # A flat body is accepted without the recursive walk only when nothing in it is wrong.
        ({"body": {1: "x"}}, "body has a key that is not a string: 1"),
        ({"body": {"latency": float("inf")}}, "body.latency is not a finite number"),
        ({"personal": {"score": float("-inf")}}, "personal.score is not a finite number"),
        ({"body": {"legs": [float("nan")]}}, "body.legs[0] is not a finite number"),
        # The ids are checked first: no other message may name a card number.
        ({"ids": TransactionIds(PAN), "tenant": ""}, "its ids hold a clear card number"),
    ],
)
def test_refused_events_are_named_without_their_values(
    change: dict[str, Any], message: str
) -> None:
    refused = dataclasses.replace(event(1, EventKind.RECEIVED), **change)
    with pytest.raises(ValueError, match=re.escape(message)) as raised:
        check_event(refused)
    assert PAN not in str(raised.value)


def test_a_kind_must_be_an_event_kind() -> None:
    refused = dataclasses.replace(event(1, EventKind.RECEIVED), kind="received")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind must be an EventKind"):
        check_event(refused)


def test_an_iban_is_not_taken_for_a_card_number() -> None:
    check_event(event(1, EventKind.RECEIVED, personal={"iban": "GB14BARC20325340846481"}))


def test_times_are_hashed_in_utc() -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    assert format_time(START.astimezone(plus_two)) == "2026-11-29T05:00:00.000000Z"
    assert format_time(START.replace(tzinfo=None)) == "2026-11-29T05:00:00.000000Z"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


FLAT_VALUES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False)
)


@given(st.dictionaries(st.text(max_size=8), FLAT_VALUES | JSON, max_size=5))
def test_checked_events_give_the_body_as_it_reads_back_from_its_text(
    body: dict[str, Any],
) -> None:
    try:
        texts = check_event(event(1, EventKind.RECEIVED, body=body))
    except ValueError:  # a float whose digits pass for a card number: refused by both
        with pytest.raises(ValueError, match="clear card number"):
            checked_event(event(1, EventKind.RECEIVED, body=body))
        return
    text, personal, value = checked_event(event(1, EventKind.RECEIVED, body=body))
    assert (text, personal) == texts
    parsed = json.loads(text)
    assert value == parsed
    assert [type(value[key]) for key in sorted(value)] == [
        type(parsed[key]) for key in sorted(parsed)
    ]
    assert value is not body  # a copy: the caller's dict may change afterwards


@given(
    st.dictionaries(st.text(max_size=8), FLAT_VALUES, max_size=6),
    st.none() | st.dictionaries(st.text(max_size=8), FLAT_VALUES | JSON, max_size=4),
)
def test_checked_texts_are_the_bodies_as_they_always_have_been(
    body: dict[str, Any], personal: dict[str, Any] | None
) -> None:
    try:
        text, personal_text, _ = checked_event(
            event(1, EventKind.RECEIVED, body=body, personal=personal)
        )
    except ValueError as exc:  # a float whose digits pass for a card number
        assert "clear card number" in str(exc)
        assert contains_clear_pan(reference_body(body) + " " + reference_body(personal))
        return
    assert text == reference_body(body)
    assert personal_text == (None if personal is None else reference_body(personal))


def test_a_float_that_is_not_finite_is_refused_by_the_checked_event_too() -> None:
    with pytest.raises(ValueError, match="not a finite number"):
        checked_event(event(1, EventKind.RECEIVED, body={"latency_ms": math.inf}))


@given(st.dictionaries(st.text(max_size=8), JSON, max_size=5))
def test_body_text_is_canonical(body: dict[str, Any]) -> None:
    reordered = dict(reversed(list(body.items())))
    assert body_text(body) == body_text(reordered)


@given(
    seq=st.integers(1, 10**9),
    field=st.sampled_from(
        ["seq", "kind", "tenant", "at", "stan", "uetr", "body", "personal", "key"]
    ),
)
def test_every_field_changes_the_hash(seq: int, field: str) -> None:
    base = Event(EventKind.SENT, "acme", TransactionIds("m-1", stan="1"), START)
    args: dict[str, Any] = {
        "seq": seq,
        "event": base,
        "body": "{}",
        "personal_ciphertext": b"x",
        "key_version": 1,
    }
    original = chain_hash(GENESIS_HASH, canonical_bytes(**args))
    if field == "seq":
        args["seq"] = seq + 1
    elif field == "kind":
        args["event"] = dataclasses.replace(base, kind=EventKind.ANSWERED)
    elif field == "tenant":
        args["event"] = dataclasses.replace(base, tenant="acmf")
    elif field == "at":
        args["event"] = dataclasses.replace(base, at=START + dt.timedelta(microseconds=1))
    elif field in ("stan", "uetr"):
        args["event"] = dataclasses.replace(base, ids=dataclasses.replace(base.ids, **{field: "2"}))
    elif field == "body":
        args["body"] = "{} "
    elif field == "personal":
        args["personal_ciphertext"] = b"y"
    else:
        args["key_version"] = 2
    assert chain_hash(GENESIS_HASH, canonical_bytes(**args)) != original
    assert chain_hash("11" * 32, canonical_bytes(**args)) != chain_hash(
        GENESIS_HASH, canonical_bytes(**args)
    )


def test_a_missing_id_and_an_empty_one_hash_differently() -> None:
    missing = canonical_bytes(
        1, Event(EventKind.SENT, "a", TransactionIds("m"), START), "{}", None, None
    )
    assert b'"m",null,null,null,null,"{}",null,null]' in missing


def test_known_events_hash_as_they_always_have() -> None:
    at = dt.datetime(2026, 11, 29, 5, 0, 0, 4321, tzinfo=dt.UTC)
    card = Event(
        EventKind.RECEIVED,
        "acme",
        TransactionIds(
            "hub-0001", "633300000001", "000001", "TERM0001", "1b4e28ba-2fa1-41d2-883f-000000000001"
        ),
        at,
        {"amount": "12.50", "currency": "EUR"},
    )
    odd = Event(
        EventKind.STATUS_CHANGED,
        'zoë "quoted"',
        TransactionIds("hub-0002"),
        at.astimezone(dt.timezone(dt.timedelta(hours=-5))),
        {"note": "Grüße\n\t\\ \u2028 \U0001f600", "n": [1, 2.5, None, True]},
    )
    first = chain_hash(GENESIS_HASH, canonical_bytes(1, card, body_text(card.body), None, None))
    second = chain_hash(first, canonical_bytes(2, odd, body_text(odd.body), bytes(range(40)), 3))
    # Computed by the journal's first version, which wrote the journals in the field.
    assert first == "523c1e2ab1be99d5ddeb046827e81e0366110709162e349f292b37fc79cda80d"
    assert second == "7db293331387fe58f408c1f43338d27329804eb2cacaab8ae9e8934c1c90251c"


OFFSETS = st.sampled_from([None, dt.UTC, dt.timezone(dt.timedelta(hours=2)),
                           dt.timezone(dt.timedelta(hours=-9, minutes=-30))])  # fmt: skip
TIMES = st.builds(
    lambda naive, tz: naive.replace(tzinfo=tz),
    st.datetimes(min_value=dt.datetime(2, 1, 1), max_value=dt.datetime(9998, 12, 31)),
    OFFSETS,
)
OPTIONAL_TEXT = st.none() | st.text(max_size=12)
IDS = st.builds(
    TransactionIds, st.text(max_size=12), OPTIONAL_TEXT, OPTIONAL_TEXT, OPTIONAL_TEXT, OPTIONAL_TEXT
)


@given(TIMES)
def test_times_are_formatted_as_they_always_have_been(at: dt.datetime) -> None:
    assert format_time(at) == reference_time(at)


@given(st.dictionaries(st.text(max_size=8), JSON, max_size=5))
def test_bodies_are_written_as_they_always_have_been(body: dict[str, Any]) -> None:
    assert body_text(body) == reference_body(body)


@given(
    seq=st.integers(1, 2**62),
    kind=st.sampled_from(EventKind),
    tenant=st.text(min_size=1, max_size=12),
    at=TIMES,
    ids=IDS,
    body=st.text(max_size=40),
    ciphertext=st.none() | st.binary(max_size=40),
    key_version=st.none() | st.integers(1, 10**6),
)
def test_canonical_bytes_are_the_reference_bytes(
    seq: int,
    kind: EventKind,
    tenant: str,
    at: dt.datetime,
    ids: TransactionIds,
    body: str,
    ciphertext: bytes | None,
    key_version: int | None,
) -> None:
    event = Event(kind, tenant, ids, at)
    canonical = canonical_bytes(seq, event, body, ciphertext, key_version)
    assert canonical == reference_canonical(seq, event, body, ciphertext, key_version)
    assert chain_hash(GENESIS_HASH, canonical) == hashlib.sha256(bytes(32) + canonical).hexdigest()


@dataclasses.dataclass(frozen=True)
class AlteredRow:
    """A stored row as an altered SQLite database can hand it back: any type in any column."""

    kind: Any
    tenant: Any
    ids: TransactionIds
    at: dt.datetime


@pytest.mark.parametrize(
    ("seq", "row", "body", "key_version"),
    [
        (7, AlteredRow("sent", 42, TransactionIds("m-1"), START), "{}", None),
        (7, AlteredRow(3.5, "acme", TransactionIds("m-1"), START), "{}", None),
        (7, AlteredRow("sent", "acme", TransactionIds(12, stan=None), START), "{}", None),  # type: ignore[arg-type]
        (7, AlteredRow("sent", "acme", TransactionIds("m-1"), START), 17, None),
        (True, AlteredRow("sent", "acme", TransactionIds("m-1"), START), "{}", None),
        (7, AlteredRow("sent", "acme", TransactionIds("m-1"), START), "{}", "1"),
        (7, AlteredRow("sent", "acme", TransactionIds("m-1"), START), "{}", False),
    ],
)
def test_altered_column_types_hash_as_they_always_have(
    seq: Any, row: AlteredRow, body: Any, key_version: Any
) -> None:
    assert canonical_bytes(seq, row, body, None, key_version) == reference_canonical(
        seq, row, body, None, key_version
    )
