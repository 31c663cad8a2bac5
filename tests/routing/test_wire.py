"""The wire form: headers, round trip, refusals, scrubbing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canonical_model.messages import MessageKind
from routing.wire import (
    CONTENT_TYPE,
    KIND,
    SCHEMA,
    TENANT,
    TRACEPARENT,
    BadMessageError,
    Envelope,
    decode,
    encode,
    forget,
    header_int,
    header_str,
    scrub,
    unwritten,
)
from tests.routing.conftest import message

TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_encode_sets_the_properties_the_hub_relies_on() -> None:
    envelope = encode(message(3), correlation_id="c-1", reply_to="q.reply", traceparent=TRACE)
    assert envelope.message_id == "m-3"
    assert envelope.correlation_id == "c-1"
    assert envelope.reply_to == "q.reply"
    assert envelope.content_type == CONTENT_TYPE
    assert dict(envelope.headers) == {
        SCHEMA: 1,
        KIND: "financial",
        TENANT: "acme",
        TRACEPARENT: TRACE,
    }
    assert decode(envelope) == message(3)
    assert TRACEPARENT not in encode(message(3)).headers


@pytest.mark.parametrize("kind", list(MessageKind))
def test_every_kind_round_trips(kind: MessageKind) -> None:
    assert decode(encode(message(1, kind))) == message(1, kind)


def test_headers_may_come_back_as_bytes() -> None:
    envelope = encode(message(1))
    as_bytes = envelope.updated({KIND: b"financial", TENANT: b"acme", SCHEMA: b"1"})
    assert decode(as_bytes) == message(1)
    assert header_str({"a": b"x"}, "a") == "x"
    assert header_int({"a": "7", "b": "x", "c": True}, "a") == 7
    assert header_int({"b": "x"}, "b", -1) == -1
    assert header_int({"c": True}, "c", -1) == -1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"content_type": "text/plain"}, "content type 'text/plain'"),
        ({"body": b"\xff\xfe"}, "body is not JSON"),
        ({"body": b"[]"}, "body is not a canonical message: $: expected an object, got list"),
    ],
)
def test_refusals_say_why(change: dict[str, object], reason: str) -> None:
    good = encode(message(1))
    fields: dict[str, object] = {
        "body": good.body,
        "message_id": good.message_id,
        "headers": good.headers,
        "content_type": good.content_type,
    }
    fields.update(change)
    with pytest.raises(BadMessageError) as caught:
        decode(Envelope(**fields))  # type: ignore[arg-type]
    assert str(caught.value).startswith(reason)


def test_a_refusal_never_echoes_a_card_number() -> None:
    envelope = encode(message(1)).updated({SCHEMA: "4111111111111111"})
    with pytest.raises(BadMessageError) as caught:
        decode(envelope)
    assert str(caught.value) == "unknown schema version '411111******1111' (this hub reads 1)"


def test_tenant_contradiction() -> None:
    with pytest.raises(BadMessageError, match="contradicts the body's tenant"):
        decode(encode(message(1)).updated({TENANT: "other"}))


@given(st.text(max_size=300))
def test_scrub_leaves_no_clear_pan_and_bounds_the_length(text: str) -> None:
    from canonical_model.pan import contains_clear_pan

    cleaned = scrub(text + " 5555555555554444")
    assert not contains_clear_pan(cleaned)
    assert len(scrub("x" * 2000)) == 500


def test_a_body_encoded_here_is_taken_back_once_without_a_parse() -> None:
    sent = message(4)
    envelope = encode(sent)
    assert decode(envelope) is sent
    # A second delivery of the same bytes (a redelivery) is parsed: equal, a new object.
    again = decode(Envelope(bytes(bytearray(envelope.body)), "m-4", envelope.headers))
    assert again == sent
    assert again is not sent


def test_a_forgotten_body_is_parsed_when_it_comes_after_all() -> None:
    sent = message(6)
    envelope = encode(sent)
    forget(envelope)
    forget(envelope)  # twice, or a body never encoded here: nothing to drop
    forget(Envelope(b"{}", "m-x"))
    again = decode(envelope)
    assert again == sent
    assert again is not sent


def test_an_unwritten_envelope_is_the_encoded_one_without_its_body() -> None:
    sent = message(7)
    written = encode(sent, correlation_id="c-7", reply_to="q", traceparent=TRACE)
    bare = unwritten(sent, correlation_id="c-7", reply_to="q", traceparent=TRACE)
    assert bare == Envelope(b"", "m-7", written.headers, "c-7", "q", CONTENT_TYPE)
    assert unwritten(sent).headers == encode(sent).headers
    with pytest.raises(BadMessageError, match="body is not JSON"):
        decode(bare)


def test_a_body_encoded_here_is_still_checked_against_its_headers() -> None:
    envelope = encode(message(5))
    with pytest.raises(BadMessageError, match="contradicts the body"):
        decode(envelope.updated({KIND: "credit_transfer"}))
    with pytest.raises(BadMessageError, match="content type"):
        decode(Envelope(envelope.body, "m-5", envelope.headers, content_type="text/plain"))
