"""The ISO 20022 adapter: every shared pacs sample, rejects, card-rail translation, rules."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from adapters.base import AdapterDecodeError, AdapterEncodeError, EncodeContext
from adapters.iso8583.adapter import Iso8583Adapter
from adapters.iso8583.samples import sample_bytes
from adapters.iso20022.adapter import Iso20022Adapter
from adapters.iso20022.catalog import MESSAGE_TYPES
from adapters.iso20022.validation import SchemaValidator
from canonical_model import (
    CanonicalMessage,
    Party,
    PostalAddress,
    TransactionStatus,
    find_clear_pans,
    iso8583_response_code,
    status_from_iso8583,
)
from tests.support import decode_context, encode_context, fixed_vault

SHARED = Path(__file__).resolve().parents[4] / "shared" / "iso20022" / "samples"
FIXTURES = Path(__file__).parent / "fixtures"
PACS008 = Iso20022Adapter("pacs.008")
PACS002 = Iso20022Adapter("pacs.002")
VALIDATOR = SchemaValidator()

# Samples the manifest marks valid (they pass the XSD) that break a business rule on purpose.
RULE_BREAKERS = {
    "pacs.008.001.08/cbprstyle2025_cbprplus_pacs008_sample_dodgy_IBAN_and_bic_mismatch.xml": "AC01",
}


def _manifest() -> list[dict[str, Any]]:
    if not (SHARED / "MANIFEST.json").is_file():
        return []
    entries: list[dict[str, Any]] = json.loads((SHARED / "MANIFEST.json").read_text())
    return [e for e in entries if e["msgid"].startswith(("pacs.008.001.08", "pacs.002.001.10"))]


SAMPLES = _manifest()
pytestmark = pytest.mark.skipif(not SAMPLES, reason=f"shared samples not found at {SHARED}")


def _same_apart_from_minted_uetr(again: CanonicalMessage, first: CanonicalMessage) -> bool:
    # A transaction without a UETR gets one when it leaves as ISO 20022 (CANONICAL.md).
    if first.ids.uetr is None:
        ids = dataclasses.replace(
            first.ids, uetr=again.ids.uetr, correlation_key=again.ids.correlation_key
        )
        first = dataclasses.replace(first, ids=ids)
    return again.same_transaction(first)


def _validates(payload: bytes, message_id: str) -> bool:
    root = etree.fromstring(payload)
    document = root if etree.QName(root).localname == "Document" else root[-1]
    return not VALIDATOR.validate(document, MESSAGE_TYPES[message_id])


@pytest.mark.parametrize("entry", SAMPLES, ids=[e["file"].split("/")[-1] for e in SAMPLES])
def test_every_shared_sample_decodes_round_trips_or_is_rejected_with_its_reason(
    entry: dict[str, Any],
) -> None:
    payload = (SHARED / entry["file"]).read_bytes()
    vault = fixed_vault()
    expected_code = RULE_BREAKERS.get(entry["file"])
    if entry["status"] != "VALID" or expected_code:
        with pytest.raises(AdapterDecodeError) as info:
            PACS008.decode_batch(payload, decode_context(vault))
        code = info.value.context["reason_code"]
        assert code == (expected_code or "FF01")
        if entry["status"] == "INVALID":
            assert "CdtrAgt" in (info.value.field or "")
            assert "Cdtr" in info.value.reason
        answer = PACS008.reject(info.value, encode_context(PACS008, vault))
        assert answer is not None
        assert _validates(answer, "pacs.002.001.10")
        report = PACS002.decode_batch(answer, decode_context(vault))[0]
        assert report.status is not None
        assert (report.status.code, report.status.reason) == (TransactionStatus.RJCT, code)
        return
    messages = PACS008.decode_batch(payload, decode_context(vault))
    assert messages
    family = entry["msgid"][:8]
    target, written = (
        (PACS008, "pacs.008.001.08") if family == "pacs.008" else (PACS002, "pacs.002.001.10")
    )
    encoded = target.encode_batch(messages, encode_context(target, vault))
    assert _validates(encoded, written)
    again = target.decode_batch(encoded, decode_context(vault))
    assert len(again) == len(messages)
    for second, first in zip(again, messages, strict=True):
        assert _same_apart_from_minted_uetr(second, first)


def test_a_card_purchase_becomes_a_pacs008_and_comes_back() -> None:
    vault = fixed_vault()
    iso8583 = Iso8583Adapter("ascii")
    purchase = iso8583.decode(sample_bytes("0200-purchase", "ascii"), decode_context(vault))
    xml = PACS008.encode(purchase, encode_context(PACS008, vault))
    assert _validates(xml, "pacs.008.001.08")
    assert find_clear_pans(xml.decode()) == []
    back = PACS008.decode(xml, decode_context(vault))
    assert back.amount == purchase.amount
    assert back.ids.end_to_end_id == purchase.ids.end_to_end_id  # RRN
    assert back.ids.instruction_id == purchase.ids.instruction_id  # STAN
    assert back.card is not None and purchase.card is not None
    assert back.card.token == purchase.card.token
    assert back.acceptor == purchase.acceptor
    assert back.debtor_account == purchase.debtor_account
    again = iso8583.encode(back, encode_context(iso8583, vault))
    fields = iso8583.decode(again, decode_context(vault))
    assert fields.card is not None and fields.card.token == purchase.card.token


@pytest.mark.parametrize(("rc", "reason"), [("51", "AM04"), ("14", "AC01"), ("00", None)])
def test_a_card_response_becomes_a_pacs002_keeping_the_original_code(
    rc: str, reason: str | None
) -> None:
    vault = fixed_vault()
    iso8583 = Iso8583Adapter("ascii")
    response = iso8583.decode(sample_bytes("0210-declined", "ascii"), decode_context(vault))
    assert response.status is not None
    response = dataclasses.replace(response, status=status_from_iso8583(rc))
    xml = PACS002.encode(response, encode_context(PACS002, vault))
    assert _validates(xml, "pacs.002.001.10")
    back = PACS002.decode(xml, decode_context(vault))
    assert back.status is not None
    assert back.status.reason == reason
    assert iso8583_response_code(back.status) == rc
    assert back.ids.end_to_end_id == response.ids.end_to_end_id


def test_an_unsupported_version_is_named_with_the_supported_ones() -> None:
    payload = (
        (FIXTURES / "fednow-pacs008.xml")
        .read_bytes()
        .replace(b"pacs.008.001.08", b"pacs.008.001.12")
    )
    with pytest.raises(AdapterDecodeError) as info:
        PACS008.decode(payload, decode_context(fixed_vault()))
    assert "pacs.008.001.12 is not supported" in str(info.value)
    assert "001.08" in str(info.value)
    assert "001.13" in str(info.value)


def test_an_external_entity_is_refused_not_resolved() -> None:
    payload = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08">&x;</Document>'
    )
    with pytest.raises(AdapterDecodeError) as info:
        PACS008.decode(payload, decode_context(fixed_vault()))
    assert "root:" not in str(info.value)
    assert info.value.context["reason_code"] == "FF01"
    answer = PACS008.reject(info.value, EncodeContext("test-bank"))
    assert answer is not None and _validates(answer, "pacs.002.001.10")


def test_a_wrong_control_sum_is_answered_am10_or_a_wrong_count_am19() -> None:
    payload = (FIXTURES / "fednow-pacs008.xml").read_bytes()
    broken = payload.replace(b"<NbOfTxs>1</NbOfTxs>", b"<NbOfTxs>2</NbOfTxs>")
    with pytest.raises(AdapterDecodeError) as info:
        PACS008.decode(broken, decode_context(fixed_vault()))
    assert info.value.context["reason_code"] in {"AM18", "AM19"}
    assert info.value.field is not None and info.value.field.endswith("GrpHdr/NbOfTxs")


def test_several_transactions_need_decode_batch() -> None:
    vault = fixed_vault()
    one = PACS008.decode((FIXTURES / "fednow-pacs008.xml").read_bytes(), decode_context(vault))
    second = dataclasses.replace(one, ids=dataclasses.replace(one.ids, end_to_end_id="E2E-2"))
    xml = PACS008.encode_batch([one, second], encode_context(PACS008, vault))
    with pytest.raises(AdapterDecodeError, match="holds 2 transactions"):
        PACS008.decode(xml, decode_context(vault))
    both = PACS008.decode_batch(xml, decode_context(vault))
    assert [m.ids.end_to_end_id for m in both] == [one.ids.end_to_end_id, "E2E-2"]


def test_the_2025_version_refuses_unstructured_only_addresses() -> None:
    vault = fixed_vault()
    one = PACS008.decode((FIXTURES / "fednow-pacs008.xml").read_bytes(), decode_context(vault))
    lines_only = Party(name="X", postal_address=PostalAddress(address_lines=("1 Main St", "Town")))
    message = dataclasses.replace(one, creditor=lines_only)
    assert PACS008.encode(message, encode_context(PACS008, vault))  # .08: still accepted
    latest = Iso20022Adapter("pacs.008.13")
    with pytest.raises(AdapterEncodeError, match="structured or hybrid") as info:
        latest.encode(message, encode_context(latest, vault))
    assert info.value.field is not None and info.value.field.endswith("Cdtr/PstlAdr")
    address = PostalAddress(town_name="Town", country="US", address_lines=("1 Main St",))
    hybrid = Party(name="X", postal_address=address)
    xml = latest.encode(dataclasses.replace(one, creditor=hybrid), encode_context(latest, vault))
    assert _validates(xml, "pacs.008.001.13")
    report = PACS008.validate(PACS008.encode(message, encode_context(PACS008, vault)))
    assert report.ok
    assert [path for path, _ in report.warnings] == [
        "/Document/FIToFICstmrCdtTrf/CdtTrfTxInf/Cdtr/PstlAdr"
    ]


def test_a_response_cannot_be_written_as_pacs008() -> None:
    vault = fixed_vault()
    report = PACS002.decode((FIXTURES / "fednow-pacs002.xml").read_bytes(), decode_context(vault))
    with pytest.raises(AdapterEncodeError, match="does not carry a financial response"):
        PACS008.encode(report, encode_context(PACS008, vault))
