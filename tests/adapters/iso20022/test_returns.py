"""pacs.004 returns, camt.056 cancellation requests, pacs.009 FI transfers, and ISO 8583
reversals translated to them.

Every shared sample of the three families decodes, re-encodes to a document that validates
(XSD and business rules) and decodes back to the same transactions. The two FedNow pacs.004
samples that spell the return reason ``RRO4`` (KNOWN_BAD_SAMPLES in test_rules.py) are checked
for that violation, and for what the encoder makes of a code that is in no code set.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from adapters.iso8583.adapter import Iso8583Adapter
from adapters.iso8583.samples import sample_bytes
from adapters.iso20022 import camt056, pacs004, pacs008, pacs009
from adapters.iso20022.catalog import MESSAGE_TYPES, MessageType, by_namespace
from adapters.iso20022.codesets import code_set
from adapters.iso20022.components import ComponentError
from adapters.iso20022.head import decode_header
from adapters.iso20022.ordering import SchemaOrder
from adapters.iso20022.rules import check_document
from adapters.iso20022.safexml import parse_xml
from adapters.iso20022.validation import SchemaValidator, split_envelope
from canonical_model.codes import (
    OriginalCode,
    Status,
    TransactionStatus,
    iso8583_response_code,
    status_from_iso8583,
)
from canonical_model.messages import (
    Account,
    Agent,
    Agents,
    BusinessHeader,
    CanonicalMessage,
    Extension,
    Identifiers,
    MessageFunction,
    MessageKind,
    OriginalTransaction,
    Party,
    PaymentTerms,
    PostalAddress,
)
from canonical_model.money import Money
from tests.adapters.iso20022.test_rules import KNOWN_BAD_SAMPLES
from tests.support import decode_context, fixed_vault

SAMPLES = Path(__file__).resolve().parents[4] / "shared" / "iso20022" / "samples"
TODAY = dt.date(2026, 11, 28)  # the samples' collection date, as in test_rules.py
NOW = dt.datetime(2026, 11, 28, 16, 30, tzinfo=dt.UTC)
VALIDATOR = SchemaValidator()
TENANT = "test-bank"

Decoder = Callable[..., list[CanonicalMessage]]
Encoder = Callable[..., etree._Element]

FAMILIES: dict[str, tuple[Decoder, Encoder, str, MessageKind]] = {
    "pacs.004": (pacs004.decode_returns, pacs004.encode_document, "TxInf", MessageKind.RETURN),
    "camt.056": (
        camt056.decode_cancellations,
        camt056.encode_document,
        "Undrlyg/{*}TxInf",
        MessageKind.CANCELLATION,
    ),
    "pacs.009": (
        pacs009.decode_transfers,
        pacs009.encode_document,
        "CdtTrfTxInf",
        MessageKind.FINANCIAL,
    ),
}

RRO4 = ("/Document/PmtRtr/TxInf/RtrRsnInf/Rsn/Cd", "CH16")
# The manifest's rule breakers in these families: the return reason "RRO4" (letter O).
RULE_BREAKERS: dict[str, set[tuple[str, str]]] = {
    "pacs.004.001.10/fednow_InformationRequest_Scenario3_Step6_pacs.004.xml": {RRO4},
    "pacs.004.001.10/fednow_PaymentReturn_Scenario4_Step7_pacs.004.xml": {RRO4},
}


def _manifest() -> list[dict[str, Any]]:
    if not (SAMPLES / "MANIFEST.json").is_file():
        return []
    entries: list[dict[str, Any]] = json.loads((SAMPLES / "MANIFEST.json").read_text())
    return [entry for entry in entries if entry["msgid"][:8] in FAMILIES]


ENTRIES = _manifest()
needs_samples = pytest.mark.skipif(not ENTRIES, reason=f"shared samples not found at {SAMPLES}")


def _ids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"msg-{next(counter)}"


def _now() -> dt.datetime:
    return NOW


def _load(file: str) -> tuple[MessageType, etree._Element, BusinessHeader | None]:
    root = parse_xml((SAMPLES / file).read_bytes())
    app_hdr, document = split_envelope(root)
    message_type = by_namespace(etree.QName(document).namespace or "")
    return message_type, document, decode_header(app_hdr) if app_hdr is not None else None


def _decode(
    message_type: MessageType, document: etree._Element, header: BusinessHeader | None = None
) -> list[CanonicalMessage]:
    decode = FAMILIES[message_type.family][0]
    return decode(
        document, message_type.namespace, tenant=TENANT, new_message_id=_ids(), header=header
    )


def _encode(message_type: MessageType, messages: list[CanonicalMessage]) -> etree._Element:
    """Encode, put in schema order, and check XSD and rules: the document the hub would send."""
    encode = FAMILIES[message_type.family][1]
    document = encode(messages, message_type.namespace, now=_now)
    SchemaOrder.for_message(message_type).arrange(document)
    assert VALIDATOR.validate(document, message_type) == []
    assert check_document(document, message_type.id, today=TODAY) == []
    return document


def _round_trip(message_type: MessageType, messages: list[CanonicalMessage]) -> CanonicalMessage:
    """The one message, encoded and decoded again."""
    again = _decode(message_type, _encode(message_type, messages))
    assert len(again) == len(messages)
    return again[0]


def _apart_from_minted_uetr(first: CanonicalMessage, again: CanonicalMessage) -> CanonicalMessage:
    # A transfer without a UETR gets one when it leaves as ISO 20022 (CANONICAL.md).
    if first.ids.uetr is None and again.ids.uetr is not None:
        ids = dataclasses.replace(
            first.ids, uetr=again.ids.uetr, correlation_key=again.ids.correlation_key
        )
        return dataclasses.replace(first, ids=ids)
    return first


def _texts(document: etree._Element, path: str) -> list[str]:
    return [element.text or "" for element in document.iterfind(path)]


# -- every shared sample ------------------------------------------------------------------


def test_the_rule_breakers_are_the_ones_test_rules_knows() -> None:
    known = {
        file: violations
        for file, violations in KNOWN_BAD_SAMPLES.items()
        if file.split("/")[0][:8] in FAMILIES
    }
    assert known == RULE_BREAKERS


@needs_samples
def test_the_manifest_has_samples_of_every_family() -> None:
    found = dict.fromkeys(FAMILIES, 0)
    for entry in ENTRIES:
        found[entry["msgid"][:8]] += 1
    assert found == {"pacs.004": 8, "camt.056": 5, "pacs.009": 9}
    versions = {entry["msgid"] for entry in ENTRIES}
    assert versions == {"pacs.004.001.09", "pacs.004.001.10", "camt.056.001.08", "pacs.009.001.08"}


@needs_samples
@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"].split("/")[-1] for e in ENTRIES])
def test_every_sample_decodes_re_encodes_and_decodes_back(entry: dict[str, Any]) -> None:
    message_type, document, header = _load(entry["file"])
    assert message_type.id == entry["msgid"]
    problems = VALIDATOR.validate(document, message_type)
    if entry["status"] != "VALID":
        assert problems, "the manifest says the sample does not validate"
        return
    assert problems == []
    found = check_document(document, message_type.id, today=TODAY)
    violations = {(violation.path, violation.reason_code) for violation in found}
    expected = RULE_BREAKERS.get(entry["file"], set())
    assert violations == expected

    _, _, transactions, kind = FAMILIES[message_type.family]
    messages = _decode(message_type, document, header)
    assert len(messages) == len(
        list(document.iterfind(f"{{*}}{message_type.root}/{{*}}{transactions}"))
    )
    for message in messages:
        assert (message.kind, message.function) == (kind, MessageFunction.REQUEST)
        assert message.tenant == TENANT
        assert message.business_header == header
        assert message.amount is not None
        if kind is not MessageKind.FINANCIAL:
            assert message.status is not None
            assert message.status.code is TransactionStatus.RJCT
            assert message.original is not None
            assert message.original.message_id is not None
            assert message.ids.end_to_end_id == message.original.end_to_end_id
            assert message.ids.instruction_id == message.original.instruction_id
            assert message.ids.correlation_key == pacs008.correlation_key(
                message.ids.uetr, message.original.message_id, message.ids.end_to_end_id
            )

    encoded = _encode(message_type, messages)
    again = _decode(message_type, encoded, header)
    assert len(again) == len(messages)
    for first, second in zip(messages, again, strict=True):
        if expected:
            # "RRO4" is no ExternalReturnReason1Code: it leaves as NARR, explained.
            assert first.status == Status(TransactionStatus.RJCT, "RRO4")
            assert second.status == Status(TransactionStatus.RJCT, "NARR", None, "reason RRO4")
            assert _texts(encoded, ".//{*}RtrRsnInf/{*}Rsn/{*}Cd") == ["NARR"]
            first = dataclasses.replace(first, status=second.status)
        assert second.same_transaction(_apart_from_minted_uetr(first, second))


# -- what the samples map to ----------------------------------------------------------------


@needs_samples
def test_a_return_and_a_cancellation_correlate_with_the_credit_transfer_they_undo() -> None:
    pacs008_type, credit_document, _ = _load(
        "pacs.008.001.08/fednow_PaymentReturn_Scenario1_Step1_pacs.008.xml"
    )
    [credit] = pacs008.decode_transactions(
        credit_document,
        pacs008_type.namespace,
        tenant=TENANT,
        new_message_id=_ids(),
        header=None,
        tokenize_account=lambda account, path: None,
    )
    [cancellation] = _decode(
        *_load("camt.056.001.08/fednow_PaymentReturn_Scenario1_Step2_camt.056.xml")[:2]
    )
    [returned] = _decode(
        *_load("pacs.004.001.10/fednow_PaymentReturn_Scenario1_Step4_pacs.004.xml")[:2]
    )
    assert credit.ids.correlation_key == "uetr:8a562c67-ca16-48ba-b074-65581be6f011"
    assert cancellation.ids.correlation_key == credit.ids.correlation_key
    assert returned.ids.correlation_key == credit.ids.correlation_key
    for undo in (cancellation, returned):
        assert undo.original is not None
        assert undo.original.message_id == credit.ids.source_message_id
        assert undo.original.message_type == "pacs.008.001.08"
        assert undo.original.instruction_id == credit.ids.instruction_id
        assert undo.original.transmitted_at == credit.transmitted_at
        assert undo.ids.end_to_end_id == credit.ids.end_to_end_id
        assert undo.amount == credit.amount
    # The cancellation names the original's parties; the return pays back the other way.
    assert returned.debtor is not None and credit.creditor is not None
    assert returned.debtor.name == credit.creditor.name == "Corporation B"
    assert returned.creditor is not None and credit.debtor is not None
    assert returned.creditor.name == credit.debtor.name == "Individual A"
    assert returned.debtor_account == credit.creditor_account
    assert returned.creditor_account == credit.debtor_account
    assert cancellation.status == Status(
        TransactionStatus.RJCT, "DUPL", None, "Already Paid. Ref 20230603011104238MsgIdFirstPayment"
    )
    assert returned.status is not None and returned.status.reason == "DUPL"
    assert cancellation.agents == Agents(
        instructing=Agent(member_id="011104238", clearing_system="USABA"),
        instructed=Agent(member_id="021040078", clearing_system="USABA"),
    )
    assert cancellation.ids.source_message_id == "20230604011104238Sc01RTStep2MsgId"
    assert cancellation.transmitted_at == dt.datetime(
        2023, 6, 4, 13, 55, 26, tzinfo=dt.timezone(dt.timedelta(hours=-4))
    )


@needs_samples
def test_a_partial_return_keeps_the_original_amount() -> None:
    message_type, document, _ = _load(
        "pacs.004.001.10/fednow_PaymentReturn_Scenario3_Step4_pacs.004.xml"
    )
    [returned] = _decode(message_type, document)
    assert returned.amount == Money.of("9004.35", "USD")
    assert returned.settlement_date == dt.date(2023, 7, 21)
    assert Extension("iso20022:OrgnlIntrBkSttlmAmt", "USD 45021.75") in returned.extensions
    assert Extension("iso20022:OrgnlIntrBkSttlmDt", "2023-06-20") in returned.extensions
    assert returned.payment_terms == PaymentTerms(
        settlement_method="CLRG", clearing_system="FDN", charge_bearer="SLEV",
        local_instrument="FDNA",
    )  # fmt: skip
    assert returned.status is not None
    assert (returned.status.reason, returned.status.additional_info) == (
        "FOCR",
        "As per agreed resolution. Ref: ReturnRequestSc3Step2",
    )
    encoded = _encode(message_type, [returned])
    assert _texts(encoded, ".//{*}OrgnlIntrBkSttlmAmt") == ["45021.75"]


@needs_samples
def test_a_cbpr_return_keeps_its_return_id_and_header() -> None:
    message_type, document, header = _load(
        "pacs.004.001.09/cbprstyle2025_pacs004_payment_return_sample.xml"
    )
    [returned] = _decode(message_type, document, header)
    assert header is not None and header.business_message_id == "P004-20260413-3390"
    assert returned.business_header == header
    assert Extension("iso20022:RtrId", "RTR20260413-3390") in returned.extensions
    assert returned.amount == Money.of("125000", "GBP")
    assert returned.instructed_amount is None
    assert returned.agents is not None
    assert returned.agents.instructing == Agent(bic="RVNTGB2L")
    assert returned.status == Status(TransactionStatus.RJCT, "AC04")
    # The original amount and date come from OrgnlTxRef when TxInf does not repeat them.
    assert Extension("iso20022:OrgnlIntrBkSttlmAmt", "GBP 125000.00") in returned.extensions
    assert Extension("iso20022:OrgnlIntrBkSttlmDt", "2026-04-12") in returned.extensions
    encoded = _encode(message_type, [returned])
    assert _texts(encoded, ".//{*}RtrId") == ["RTR20260413-3390"]


@needs_samples
def test_a_return_party_given_as_an_agent_stays_an_agent() -> None:
    message_type, document, _ = _load(
        "pacs.004.001.10/fednow_InformationRequest_Scenario3_Step6_pacs.004.xml"
    )
    [returned] = _decode(message_type, document)
    assert returned.debtor == Party(name="BankA", identification="021040078")
    assert returned.extensions[:3] == (
        Extension("iso20022:debtor.kind", "institution"),
        Extension("iso20022:debtor.clearing_system", "USABA"),
        Extension("iso20022:debtor.member_id", "021040078"),
    )
    encoded = _encode(message_type, [returned])
    assert _texts(encoded, ".//{*}RtrChain/{*}Dbtr/{*}Agt/{*}FinInstnId/{*}Nm") == ["BankA"]
    assert _texts(encoded, ".//{*}RtrChain/{*}Dbtr/{*}Agt//{*}ClrSysId/{*}Cd") == ["USABA"]
    assert _texts(encoded, ".//{*}RtrChain/{*}Cdtr/{*}Pty/{*}Nm") == ["Individual A"]


@needs_samples
@pytest.mark.parametrize(
    ("file", "debtor", "creditor", "kept"),
    [
        (
            "pacs.009.001.08/fednow_FICreditTransfer_Scenario1_Step1_pacs.009.xml",
            Party(name="Bank C", identification="021307481"),
            Party(name="BANK D", identification="231981435"),
            ".//{*}Dbtr/{*}FinInstnId/{*}ClrSysMmbId/{*}MmbId",
        ),
        (
            "pacs.009.001.08/cbprstyle2025_pacs009_fi_transfer_sample.xml",
            Party(identification="KRMTJP2X"),
            Party(identification="PLNFSGSX"),
            ".//{*}Dbtr/{*}FinInstnId/{*}BICFI",
        ),
    ],
)
def test_pacs009_institutions_are_parties(
    file: str, debtor: Party, creditor: Party, kept: str
) -> None:
    message_type, document, _ = _load(file)
    [transfer] = _decode(message_type, document)
    assert (transfer.debtor, transfer.creditor) == (debtor, creditor)
    assert Extension("iso20022:debtor.kind", "institution") in transfer.extensions
    assert Extension("iso20022:creditor.kind", "institution") in transfer.extensions
    assert _texts(_encode(message_type, [transfer]), kept) == [debtor.identification]


# -- ISO 8583 reversals -------------------------------------------------------------------


def _reversal(name: str) -> CanonicalMessage:
    iso8583 = Iso8583Adapter("ascii")
    message = iso8583.decode(sample_bytes(name, "ascii"), decode_context(fixed_vault()))
    assert message.kind is MessageKind.REVERSAL
    assert message.original is not None and message.original.message_type == "0200"
    return message


def _check_back(back: CanonicalMessage, reversal: CanonicalMessage, kind: MessageKind) -> None:
    original = reversal.original
    assert original is not None
    assert back.kind is kind
    assert back.ids.instruction_id == original.instruction_id == "000002"  # original STAN
    assert back.ids.end_to_end_id == reversal.ids.end_to_end_id == "633216000002"  # RRN
    assert back.amount == reversal.amount == Money.of("25.50", "EUR")
    assert back.original is not None
    assert back.original.instruction_id == original.instruction_id
    assert back.original.transmitted_at == original.transmitted_at
    assert back.original.message_type == "pacs.008.001.08"
    assert back.transmitted_at == reversal.transmitted_at
    assert back.agents is not None and back.agents.instructing is not None
    assert back.agents.instructing.member_id == "123456"  # the acquirer (field 32)
    assert back.status is not None
    assert back.status.original == OriginalCode("iso8583", "68")
    assert iso8583_response_code(back.status) == "68"


@pytest.mark.parametrize("name", ["0420-reversal-advice", "0421-reversal-repeat"])
def test_an_iso8583_reversal_before_settlement_is_a_camt056(name: str) -> None:
    reversal = _reversal(name)
    assert reversal.settlement_date is None
    assert reversal.status == status_from_iso8583("68")
    assert camt056.reversal_message_type(reversal) == "camt.056.001.08"
    message_type = MESSAGE_TYPES[camt056.reversal_message_type(reversal)]
    encoded = _encode(message_type, [reversal])
    assert _texts(encoded, ".//{*}CxlRsnInf/{*}Rsn/{*}Cd") == ["TECH"]
    assert _texts(encoded, ".//{*}CxlRsnInf/{*}AddtlInf") == ["ORGNL iso8583 68", "reason AB05"]
    assert _texts(encoded, ".//{*}CxlId") == ["000004"]  # the reversal's own STAN
    [back] = _decode(message_type, encoded)
    _check_back(back, reversal, MessageKind.CANCELLATION)
    assert back.settlement_date is None
    assert back.status == Status(
        TransactionStatus.RJCT, "TECH", OriginalCode("iso8583", "68"), "reason AB05"
    )
    assert back.extensions == (Extension("iso20022:CxlId", "000004"),)
    # A decoded cancellation is stable from there on.
    assert _round_trip(message_type, [back]).same_transaction(back)


@pytest.mark.parametrize("name", ["0420-reversal-advice", "0421-reversal-repeat"])
def test_an_iso8583_reversal_after_settlement_is_a_pacs004(name: str) -> None:
    reversal = dataclasses.replace(_reversal(name), settlement_date=dt.date(2026, 11, 28))
    assert camt056.reversal_message_type(reversal) == "pacs.004.001.09"
    message_type = MESSAGE_TYPES[camt056.reversal_message_type(reversal)]
    encoded = _encode(message_type, [reversal])
    assert _texts(encoded, ".//{*}RtrRsnInf/{*}Rsn/{*}Cd") == ["NARR"]
    assert _texts(encoded, ".//{*}RtrRsnInf/{*}AddtlInf") == ["ORGNL iso8583 68", "reason AB05"]
    assert _texts(encoded, ".//{*}RtrId") == ["000004"]
    assert _texts(encoded, ".//{*}OrgnlGrpInf/{*}OrgnlMsgNmId") == ["pacs.008.001.08"]
    [back] = _decode(message_type, encoded)
    _check_back(back, reversal, MessageKind.RETURN)
    assert back.settlement_date == dt.date(2026, 11, 28)
    assert back.status == Status(
        TransactionStatus.RJCT, "NARR", OriginalCode("iso8583", "68"), "reason AB05"
    )
    # The 2025 version too.
    again = _round_trip(MESSAGE_TYPES["pacs.004.001.10"], [back])
    assert again.same_transaction(back)


def test_an_approved_reversal_counts_as_settled() -> None:
    reversal = dataclasses.replace(
        _reversal("0420-reversal-advice"), status=status_from_iso8583("00")
    )
    assert reversal.status is not None and reversal.status.code is TransactionStatus.ACSC
    assert camt056.is_after_settlement(reversal)
    message_type = MESSAGE_TYPES[camt056.reversal_message_type(reversal)]
    assert message_type.id == "pacs.004.001.09"
    encoded = _encode(message_type, [reversal])
    assert _texts(encoded, ".//{*}RtrRsnInf/{*}Rsn/{*}Cd") == ["NARR"]
    assert _texts(encoded, ".//{*}RtrRsnInf/{*}AddtlInf") == ["ORGNL iso8583 00"]
    [back] = _decode(message_type, encoded)
    assert back.status is not None and iso8583_response_code(back.status) == "00"


def test_the_message_type_of_returns_and_cancellations() -> None:
    base = CanonicalMessage(
        kind=MessageKind.RETURN,
        function=MessageFunction.REQUEST,
        tenant=TENANT,
        ids=Identifiers(message_id="m-1"),
        settlement_date=None,
    )
    assert camt056.reversal_message_type(base) == camt056.PACS004
    cancellation = dataclasses.replace(
        base, kind=MessageKind.CANCELLATION, settlement_date=dt.date(2026, 11, 28)
    )
    assert camt056.reversal_message_type(cancellation) == camt056.CAMT056
    with pytest.raises(ValueError, match="neither a reversal nor a return"):
        camt056.reversal_message_type(dataclasses.replace(base, kind=MessageKind.FINANCIAL))


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (status_from_iso8583("17"), "CUST"),
        (status_from_iso8583("94"), "DUPL"),
        (status_from_iso8583("68"), "TECH"),
        (status_from_iso8583("96"), "TECH"),
        (status_from_iso8583("13"), "AM09"),
        (status_from_iso8583("59"), "FRAD"),
        (status_from_iso8583("N7"), "NARR"),
        (status_from_iso8583("00"), "NARR"),
        (Status(TransactionStatus.RJCT, "AB05"), "TECH"),
        (Status(TransactionStatus.RJCT, "AM05"), "DUPL"),
        (Status(TransactionStatus.RJCT, "FRAD"), "FRAD"),
        (Status(TransactionStatus.RJCT, "AC01"), "NARR"),
        (Status(TransactionStatus.RJCT), None),
        (None, None),
    ],
)
def test_cancellation_reasons(status: Status | None, expected: str | None) -> None:
    assert camt056.cancellation_reason(status) == expected


def test_every_mapped_cancellation_reason_is_a_cancellation_reason() -> None:
    codes = code_set("cancellation_reason")
    mapped = {
        *camt056.ISO8583_CANCELLATION_REASONS.values(),
        *camt056.STATUS_CANCELLATION_REASONS.values(),
    }
    assert mapped <= set(codes)
    assert all(reason not in codes for reason in camt056.STATUS_CANCELLATION_REASONS)


# -- synthetic messages: what the samples do not show --------------------------------------


PACS004_09 = MESSAGE_TYPES["pacs.004.001.09"]
PACS004_10 = MESSAGE_TYPES["pacs.004.001.10"]
CAMT056 = MESSAGE_TYPES["camt.056.001.08"]
PACS009 = MESSAGE_TYPES["pacs.009.001.08"]
UETR = "c3d4e5f6-a7b8-4012-9def-123456789012"
ADDRESS = PostalAddress(street_name="Gasse", building_number="1", town_name="Bern", country="CH")


def _message(kind: MessageKind, **changes: Any) -> CanonicalMessage:
    message = CanonicalMessage(
        kind=kind,
        function=MessageFunction.REQUEST,
        tenant=TENANT,
        ids=Identifiers(
            message_id="m-1",
            end_to_end_id="E2E-1",
            instruction_id="INSTR-1",
            uetr=UETR,
            transaction_id="TX-1",
            correlation_key=pacs008.correlation_key(UETR, "P008-1", "E2E-1"),
            source_message_id="SRC-1",
            clearing_reference="CLR-1",
        ),
        transmitted_at=NOW,
        settlement_date=dt.date(2026, 11, 27),
        amount=Money.of("100.00", "EUR"),
        agents=Agents(
            instructing=Agent(bic="DEUTDEFFXXX"),
            instructed=Agent(bic="BNPAFRPPXXX"),
            debtor_agent=Agent(bic="BNPAFRPPXXX", name="BNP"),
            creditor_agent=Agent(member_id="37040044", clearing_system="DEBLZ"),
        ),
        original=OriginalTransaction(
            message_type="pacs.008.001.08",
            message_id="P008-1",
            instruction_id="INSTR-1",
            end_to_end_id="E2E-1",
            uetr=UETR,
            transmitted_at=NOW - dt.timedelta(days=1),
        ),
        status=Status(TransactionStatus.RJCT, "AC04", None, "closed"),
        debtor=Party(name="Creditor of the original", postal_address=ADDRESS),
        debtor_account=Account(iban="DE89370400440532013000"),
        creditor=Party(name="Debtor of the original", identification="CUST-7"),
        creditor_account=Account(other_id="0031234567", scheme="BBAN"),
        remittance=("invoice 42",),
        payment_terms=PaymentTerms(
            settlement_method="CLRG",
            clearing_system="STG",
            charge_bearer="SLEV",
            service_level="SEPA",
            local_instrument="INST",
            category_purpose="XYZW",  # no ExternalCategoryPurpose1Code: written as Prtry
            purpose="CASH",
        ),
    )
    return dataclasses.replace(message, **changes)


@pytest.mark.parametrize("message_type", [PACS004_09, PACS004_10], ids=lambda t: t.id)
def test_a_full_return_round_trips(message_type: MessageType) -> None:
    returned = _message(
        MessageKind.RETURN,
        instructed_amount=Money.of("100.00", "EUR"),
        extensions=(
            Extension("iso20022:RtrId", "RTR-1"),
            Extension("iso20022:OrgnlClrSysRef", "OCLR-1"),
            Extension("iso20022:OrgnlIntrBkSttlmAmt", "EUR 150.00"),
            Extension("iso20022:OrgnlIntrBkSttlmDt", "2026-11-20"),
        ),
    )
    encoded = _encode(message_type, [returned])
    assert _texts(encoded, ".//{*}OrgnlTxRef/{*}PmtTpInf/{*}CtgyPurp/{*}Prtry") == ["XYZW"]
    assert _texts(encoded, ".//{*}OrgnlTxRef/{*}Purp/{*}Cd") == ["CASH"]
    # 001.09's RtrChain has no accounts: they go to OrgnlTxRef, the other way round.
    chain_accounts = _texts(encoded, ".//{*}RtrChain/{*}DbtrAcct//{*}IBAN")
    reference_accounts = _texts(encoded, ".//{*}OrgnlTxRef/{*}CdtrAcct//{*}IBAN")
    if message_type is PACS004_09:
        assert (chain_accounts, reference_accounts) == ([], ["DE89370400440532013000"])
    else:
        assert (chain_accounts, reference_accounts) == (["DE89370400440532013000"], [])
    [back] = _decode(message_type, encoded)
    assert back.same_transaction(returned)


def test_a_return_with_one_party_names_it_in_the_original_reference() -> None:
    returned = _message(MessageKind.RETURN, debtor=None, debtor_account=None)
    encoded = _encode(PACS004_10, [returned])
    assert _texts(encoded, ".//{*}RtrChain") == []
    # The return's creditor is the original's debtor.
    assert _texts(encoded, ".//{*}OrgnlTxRef/{*}Dbtr/{*}Pty/{*}Nm") == ["Debtor of the original"]
    assert _texts(encoded, ".//{*}OrgnlTxRef/{*}CdtrAgt//{*}BICFI") == ["BNPAFRPPXXX"]
    [back] = _decode(PACS004_10, encoded)
    assert back.same_transaction(returned)


def test_a_return_needs_an_amount() -> None:
    with pytest.raises(ComponentError, match="a return needs an amount"):
        pacs004.encode_document(
            [_message(MessageKind.RETURN, amount=None)], PACS004_10.namespace, now=_now
        )


def test_long_additional_information_is_cut_at_words_and_comes_back_whole() -> None:
    info = " ".join(f"word{i}" for i in range(60))
    returned = _message(
        MessageKind.RETURN, status=Status(TransactionStatus.RJCT, "AC04", None, info)
    )
    encoded = _encode(PACS004_10, [returned])
    lines = _texts(encoded, ".//{*}RtrRsnInf/{*}AddtlInf")
    assert len(lines) > 1 and all(len(line) <= 105 for line in lines)
    [back] = _decode(PACS004_10, encoded)
    assert back.status == returned.status


def test_a_full_cancellation_round_trips() -> None:
    cancellation = _message(
        MessageKind.CANCELLATION,
        status=Status(TransactionStatus.RJCT, "FRAD", None, "customer called"),
        instructed_amount=Money.of("100.00", "EUR"),
        extensions=(Extension("iso20022:CxlId", "CXL-1"),),
    )
    # camt.056's OrgnlTxRef has no ChrgBr: the charge bearer is not carried.
    terms = dataclasses.replace(cancellation.payment_terms or PaymentTerms(), charge_bearer=None)
    cancellation = dataclasses.replace(cancellation, payment_terms=terms)
    second = dataclasses.replace(
        cancellation,
        ids=dataclasses.replace(cancellation.ids, end_to_end_id="E2E-2"),
        original=dataclasses.replace(
            cancellation.original or OriginalTransaction(), end_to_end_id="E2E-2"
        ),
        agents=Agents(instructing=Agent(bic="COBADEFFXXX"), instructed=Agent(bic="BNPAFRPPXXX")),
    )
    encoded = _encode(CAMT056, [cancellation, second])
    assert _texts(encoded, ".//{*}CtrlData/{*}NbOfTxs") == ["2"]
    assert _texts(encoded, ".//{*}Assgnmt/{*}Assgnr//{*}BICFI") == ["DEUTDEFFXXX"]
    # Only the second transaction's assigner differs from the assignment's.
    assert _texts(encoded, ".//{*}TxInf/{*}Assgnr//{*}BICFI") == ["COBADEFFXXX"]
    back = _decode(CAMT056, encoded)
    assert [b.same_transaction(m) for b, m in zip(back, [cancellation, second], strict=True)] == [
        True,
        True,
    ]


def test_a_cancellation_of_a_whole_group_and_a_party_assigner() -> None:
    namespace = CAMT056.namespace
    document = etree.fromstring(
        f'<Document xmlns="{namespace}"><FIToFIPmtCxlReq>'
        "<Assgnmt><Id>A-1</Id><Assgnr><Pty><Nm>Corporation B</Nm>"
        "<Id><OrgId><Othr><Id>CORP-B</Id></Othr></OrgId></Id></Pty></Assgnr>"
        "<Assgne><Agt><FinInstnId><BICFI>BNPAFRPPXXX</BICFI></FinInstnId></Agt></Assgne>"
        "<CreDtTm>2026-11-28T10:00:00Z</CreDtTm></Assgnmt>"
        "<Undrlyg><OrgnlGrpInfAndCxl><OrgnlMsgId>P008-1</OrgnlMsgId>"
        "<OrgnlMsgNmId>pacs.008.001.08</OrgnlMsgNmId>"
        "<CxlRsnInf><Rsn><Prtry>OWN CODE</Prtry></Rsn></CxlRsnInf>"
        "</OrgnlGrpInfAndCxl></Undrlyg></FIToFIPmtCxlReq></Document>"
    )
    assert VALIDATOR.validate(document, CAMT056) == []
    [group] = _decode(CAMT056, document)
    assert group.amount is None and group.ids.end_to_end_id is None
    assert group.original == OriginalTransaction(
        message_type="pacs.008.001.08", message_id="P008-1"
    )
    assert group.status == Status(TransactionStatus.RJCT, "OWN CODE")
    assert group.agents == Agents(
        instructing=Agent(member_id="CORP-B", clearing_system="OTHER", name="Corporation B"),
        instructed=Agent(bic="BNPAFRPPXXX"),
    )
    # Re-encoded as one transaction; a proprietary reason leaves as NARR, explained.
    encoded = _encode(CAMT056, [group])
    assert _texts(encoded, ".//{*}CxlRsnInf/{*}AddtlInf") == ["reason OWN CODE"]
    again = _decode(CAMT056, encoded)[0]
    assert again.original == group.original and again.agents == group.agents


def test_a_return_of_a_whole_group() -> None:
    namespace = PACS004_10.namespace
    document = etree.fromstring(
        f'<Document xmlns="{namespace}"><PmtRtr><GrpHdr><MsgId>R-1</MsgId>'
        "<CreDtTm>2026-11-28T10:00:00Z</CreDtTm><NbOfTxs>1</NbOfTxs><GrpRtr>true</GrpRtr>"
        '<TtlRtrdIntrBkSttlmAmt Ccy="EUR">300.00</TtlRtrdIntrBkSttlmAmt>'
        "<IntrBkSttlmDt>2026-11-28</IntrBkSttlmDt><SttlmInf><SttlmMtd>CLRG</SttlmMtd>"
        "</SttlmInf></GrpHdr><OrgnlGrpInf><OrgnlMsgId>P008-9</OrgnlMsgId>"
        "<OrgnlMsgNmId>pacs.008.001.08</OrgnlMsgNmId><RtrRsnInf><Rsn><Cd>AC04</Cd></Rsn>"
        "</RtrRsnInf></OrgnlGrpInf></PmtRtr></Document>"
    )
    assert VALIDATOR.validate(document, PACS004_10) == []
    [group] = _decode(PACS004_10, document)
    assert group.amount == Money.of("300.00", "EUR")
    assert group.settlement_date == dt.date(2026, 11, 28)
    assert group.original is not None and group.original.message_id == "P008-9"
    assert group.status == Status(TransactionStatus.RJCT, "AC04")
    assert _round_trip(PACS004_10, [group]).same_transaction(group)


def test_a_pacs009_with_every_kind_of_institution_round_trips() -> None:
    lei = "5493001KJTIIGC8Y1R12"
    transfer = _message(
        MessageKind.FINANCIAL,
        original=None,
        status=None,
        debtor=Party(name="Bank C", identification="021307481", postal_address=ADDRESS),
        creditor=Party(name="Bank D", identification=lei),
        ultimate_debtor=Party(identification="DEUTDEFFXXX"),
        ultimate_creditor=Party(name="Bank E", identification="OWN-ID-1"),
        extensions=(
            Extension("iso20022:debtor.kind", "institution"),
            Extension("iso20022:debtor.clearing_system", "USABA"),
            Extension("iso20022:debtor.member_id", "021307481"),
            Extension("iso20022:creditor.kind", "institution"),
            Extension("iso20022:ultimate_debtor.kind", "institution"),
            Extension("iso20022:ultimate_debtor.clearing_system", "A-LONG-CLEARING"),
            Extension("iso20022:ultimate_debtor.member_id", "M-9"),
            Extension("iso20022:ultimate_creditor.kind", "institution"),
        ),
        payment_terms=dataclasses.replace(
            _message(MessageKind.FINANCIAL).payment_terms or PaymentTerms(),
            charge_bearer=None,
            service_level="PRIORITY",  # longer than a code: Prtry
            instruction_priority="HIGH",
        ),
    )
    encoded = _encode(PACS009, [transfer])
    assert _texts(encoded, ".//{*}Cdtr/{*}FinInstnId/{*}LEI") == [lei]
    assert _texts(encoded, ".//{*}UltmtCdtr/{*}FinInstnId/{*}Othr/{*}Id") == ["OWN-ID-1"]
    assert _texts(encoded, ".//{*}UltmtDbtr//{*}ClrSysId/{*}Prtry") == ["A-LONG-CLEARING"]
    assert _texts(encoded, ".//{*}UltmtDbtr//{*}BICFI") == ["DEUTDEFFXXX"]
    assert _texts(encoded, ".//{*}SvcLvl/{*}Prtry") == ["PRIORITY"]
    [back] = _decode(PACS009, encoded)
    assert back.same_transaction(transfer)
    assert back.payment_terms is not None and back.payment_terms.purpose == "CASH"


def test_a_pacs009_without_parties_names_its_agents() -> None:
    transfer = _message(
        MessageKind.FINANCIAL, original=None, status=None, debtor=None, creditor=None,
        debtor_account=None, creditor_account=None,
        agents=Agents(instructing=Agent(bic="DEUTDEFFXXX"), instructed=Agent(bic="BNPAFRPPXXX")),
    )  # fmt: skip
    encoded = _encode(PACS009, [transfer])
    assert _texts(encoded, ".//{*}Dbtr/{*}FinInstnId/{*}BICFI") == ["DEUTDEFFXXX"]
    assert _texts(encoded, ".//{*}Cdtr/{*}FinInstnId/{*}BICFI") == ["BNPAFRPPXXX"]
    [back] = _decode(PACS009, encoded)
    assert back.debtor == Party(identification="DEUTDEFFXXX")
    assert back.amount == transfer.amount
    assert back.ids.uetr == UETR


def test_decoders_refuse_another_message() -> None:
    document = etree.fromstring(f'<Document xmlns="{PACS009.namespace}"><Other/></Document>')
    for decode, _, _, _ in FAMILIES.values():
        with pytest.raises(ComponentError, match="is missing"):
            decode(document, PACS009.namespace, tenant=TENANT, new_message_id=_ids(), header=None)


def test_an_original_amount_extension_must_be_an_amount() -> None:
    returned = _message(
        MessageKind.RETURN, extensions=(Extension("iso20022:OrgnlIntrBkSttlmAmt", "XXX 1"),)
    )
    with pytest.raises(ComponentError, match="not an amount with its currency"):
        pacs004.encode_document([returned], PACS004_10.namespace, now=_now)
    assert pacs004.parse_money("JPY 5", "/x") == Money.of("5", "JPY")
    assert pacs004.money_text(Money.of("5", "JPY")) == "JPY 5"
