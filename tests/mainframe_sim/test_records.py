"""The records through the copybook codec: round trips, format errors, garbage."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from adapters.fixedwidth import RecordDecodeError
from mainframe_sim.records import Records
from mainframe_sim.transactions import REQUEST_FIELD_OFFSETS, Reply
from tests.mainframe_sim.samples import ANNA, JONAS, request


@pytest.mark.parametrize("codepage", ["cp037", "cp500", "cp1047"])
def test_requests_and_replies_round_trip(codepage: str) -> None:
    records = Records(codepage)
    fields = request(
        "XFER", "REF-0001", ANNA, "1234567890123.45", contra=JONAS, value_date=20261130
    )
    data = records.encode_request(fields)
    assert len(data) == records.request_length == 200
    assert records.decode_request(data) == fields
    reply = Reply(
        "XFER", "REF-0001", "51", ANNA, -5, -12345, "EUR", "20261129103000", "insufficient funds"
    )
    assert records.decode_reply(records.encode_reply(reply)) == reply


def test_the_offsets_named_in_format_errors_are_the_copybooks() -> None:
    records = Records()
    base = request("CRDT", "R1", amount="1")
    data = records.encode_request(base)
    for field, offset in REQUEST_FIELD_OFFSETS.items():
        if field in {"CB-TRAN-CODE", "CB-POSTING-REF"}:
            continue
        changed = dict(base)
        changed[field] = (
            Decimal("2")
            if field == "CB-AMOUNT"
            else (12345678 if field == "CB-VALUE-DATE" else "X")
        )
        moved = records.encode_request(changed)
        first_difference = next(
            i for i, (a, b) in enumerate(zip(data, moved, strict=True)) if a != b
        )
        assert offset <= first_difference < offset + 35, field


def test_a_zoned_date_with_spaces_is_a_format_error_naming_field_and_offset() -> None:
    records = Records()
    data = bytearray(records.encode_request(request("CRDT", "R1", amount="1")))
    data[131:139] = b"\x40" * 8
    answer = records.decode_request(bytes(data))
    assert isinstance(answer, Reply)
    assert (answer.tran_code, answer.posting_ref, answer.result_code) == ("CRDT", "R1", "30")
    # The codec names the byte inside the field where decoding failed.
    field, offset, _ = re.split(r" @(\d+): ", answer.reason_text)
    assert field == "CB-VALUE-DATE"
    assert 131 <= int(offset) < 139


def test_unreadable_bytes_are_not_echoed() -> None:
    answer = Records().decode_request(b"\x00\x01\x02\x03" * 10)
    assert isinstance(answer, Reply)
    assert (answer.tran_code, answer.result_code) == ("", "30")


def test_a_garbage_reply_never_decodes() -> None:
    records = Records()
    for seed in range(20):
        noise = bytes((seed * 7 + i) % 256 for i in range(200))
        with pytest.raises(RecordDecodeError):
            records.decode_reply(records.garbage_reply(noise))
