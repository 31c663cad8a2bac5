"""pain.001 and pain.002 <-> canonical: every shared sample, batches, rejects, sepaxml files.

The shared samples (shared/iso20022/samples, MANIFEST.json) are decoded, re-encoded, checked
against the XSD and the business rules, and decoded again to the same transactions. A few
public samples break a rule (test_rules.KNOWN_BAD_SAMPLES says which and why): their
violations are asserted instead, before and after the round trip. Files written by sepaxml,
an independent SEPA implementation, are decoded with every amount, IBAN and id as written.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import string
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from adapters.iso20022 import pain001, pain002
from adapters.iso20022.catalog import MESSAGE_TYPES, MessageType, by_namespace
from adapters.iso20022.components import TOKEN_SCHEME, ComponentError
from adapters.iso20022.head import decode_header
from adapters.iso20022.ordering import SchemaOrder
from adapters.iso20022.pacs008 import correlation_key
from adapters.iso20022.rules import check_document
from adapters.iso20022.safexml import parse_xml
from adapters.iso20022.validation import SchemaValidator, split_envelope
from canonical_model import (
    Account,
    Agent,
    Agents,
    BusinessHeader,
    CanonicalMessage,
    Card,
    Extension,
    Identifiers,
    MessageFunction,
    MessageKind,
    Money,
    OriginalCode,
    OriginalTransaction,
    PanToken,
    Party,
    PaymentTerms,
    PostalAddress,
    Status,
    TransactionStatus,
    currency,
)

SHARED = Path(__file__).resolve().parents[4] / "shared" / "iso20022" / "samples"
VALIDATOR = SchemaValidator()

# The samples were collected on 2026-11-28: their dates are judged as of that day (as in
# test_rules).
TODAY = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 23, 59, 59, tzinfo=dt.UTC)
TENANT = "test-bank"

PAIN001_03 = MESSAGE_TYPES["pain.001.001.03"]
PAIN001_08 = MESSAGE_TYPES["pain.001.001.08"]
PAIN001_09 = MESSAGE_TYPES["pain.001.001.09"]
PAIN002_03 = MESSAGE_TYPES["pain.002.001.03"]
PAIN002_10 = MESSAGE_TYPES["pain.002.001.10"]

Found = set[tuple[str, str]]

_LT00_DEBTOR: Found = {("/Document/CstmrCdtTrfInitn/PmtInf/DbtrAcct/Id/IBAN", "AC01")}
_IE_UNPAID: Found = {
    (
        f"/Document/CstmrPmtStsRpt/OrgnlPmtInfAndSts[{group}]/TxInfAndSts[{tx}]/OrgnlTxRef"
        "/DbtrAcct/Id/IBAN",
        "AC01",
    )
    for group, tx in ((1, 1), (1, 2), (2, 2))
}

# file -> (violations in the sample, violations in the re-encoded document). The same list
# as test_rules.KNOWN_BAD_SAMPLES for these files: placeholder Lithuanian IBANs (LT00...),
# invented Irish IBANs, and the purpose code CINV (a document type, not an
# ExternalPurpose1Code), which the hub writes back as Prtry: an unknown code is proprietary.
KNOWN_BAD: dict[str, tuple[Found, Found]] = {
    "pain.001.001.03/moov-testdata_International_payment_RUB_naujas_1.xml": (
        _LT00_DEBTOR,
        _LT00_DEBTOR,
    ),
    "pain.001.001.03/moov-testdata_International_payment_USD_naujas_1.xml": (
        _LT00_DEBTOR,
        _LT00_DEBTOR,
    ),
    "pain.001.001.03/moov-testdata_sepa_payment_naujas_1.xml": (
        _LT00_DEBTOR | {("/Document/CstmrCdtTrfInitn/PmtInf/CdtTrfTxInf/CdtrAcct/Id/IBAN", "AC01")},
        _LT00_DEBTOR | {("/Document/CstmrCdtTrfInitn/PmtInf/CdtTrfTxInf/CdtrAcct/Id/IBAN", "AC01")},
    ),
    "pain.001.001.03/moov-testdata_gistfile1.xml": (
        {("/Document/CstmrCdtTrfInitn/PmtInf/CdtTrfTxInf[1]/Purp/Cd", "CH16")},
        set(),
    ),
    "pain.002.001.03/oca_test-sepa-pain-unpaid.xml": (_IE_UNPAID, _IE_UNPAID),
}

GISTFILE = "pain.001.001.03/moov-testdata_gistfile1.xml"
CBPR_2025 = "pain.001.001.09/cbprstyle2025_pain001_credit_initiation_sample.xml"
UNPAID = "pain.002.001.03/oca_test-sepa-pain-unpaid.xml"


def _manifest() -> list[dict[str, Any]]:
    if not (SHARED / "MANIFEST.json").is_file():
        return []
    entries: list[dict[str, Any]] = json.loads((SHARED / "MANIFEST.json").read_text())
    return [
        entry
        for entry in entries
        if entry["status"] == "VALID" and entry["msgid"].startswith(("pain.001", "pain.002"))
    ]


SAMPLES = _manifest()
needs_samples = pytest.mark.skipif(not SAMPLES, reason=f"shared samples not found at {SHARED}")


# -- helpers ------------------------------------------------------------------------------


def sequential_ids(prefix: str = "msg-") -> Callable[[], str]:
    counter = iter(range(1, 1_000_000))
    return lambda: f"{prefix}{next(counter)}"


def load(file: str) -> tuple[etree._Element | None, etree._Element, MessageType]:
    """``(app_hdr, document, message type)`` of a shared sample, parsed as the adapter does."""
    app_hdr, document = split_envelope(parse_xml((SHARED / file).read_bytes()))
    return app_hdr, document, by_namespace(etree.QName(document).namespace or "")


def token_card(account: Account, path: str) -> Card | None:
    """The adapter's rule for a debtor account: scheme TOKEN is a card token."""
    if account.scheme == TOKEN_SCHEME and account.other_id is not None:
        return Card(token=PanToken(account.other_id))
    return None


def decode(
    document: etree._Element, message_type: MessageType, header: BusinessHeader | None = None
) -> list[CanonicalMessage]:
    decoder = (
        pain001.decode_initiations if message_type.family == "pain.001" else pain002.decode_reports
    )
    return decoder(
        document,
        message_type.namespace,
        tenant=TENANT,
        new_message_id=sequential_ids(),
        header=header,
        tokenize_account=token_card,
    )


def encode(messages: Sequence[CanonicalMessage], message_type: MessageType) -> etree._Element:
    """The document for ``messages``, in schema order; it must pass the XSD."""
    encoder = (
        pain001.encode_document if message_type.family == "pain.001" else pain002.encode_document
    )
    document = encoder(messages, message_type.namespace, now=lambda: NOW)
    SchemaOrder.for_message(message_type).arrange(document)
    problems = VALIDATOR.validate(document, message_type)
    assert problems == [], [str(p) for p in problems]
    return document


def violations(
    document: etree._Element, message_type: MessageType, *, today: dt.date | None = TODAY
) -> Found:
    now = NOW if today == TODAY else None
    found = check_document(document, message_type.id, today=today, now=now)
    return {(v.path, v.reason_code) for v in found}


def texts(document: etree._Element, path: str) -> list[str]:
    """The texts at ``path`` (local names, ``/``-separated, from under ``Document``)."""
    steps = "/".join(f"{{*}}{step}" for step in path.split("/"))
    return [element.text or "" for element in document.iterfind(steps)]


def assert_round_trip(
    messages: Sequence[CanonicalMessage], again: Sequence[CanonicalMessage]
) -> None:
    assert len(again) == len(messages)
    for second, first in zip(again, messages, strict=True):
        assert second.same_transaction(first), (second, first)


ALPHANUMERIC = string.digits + string.ascii_uppercase


def iban(country: str, bban: str) -> str:
    """An IBAN with correct check digits (ISO 7064 MOD 97-10)."""
    numeric = "".join(str(ALPHANUMERIC.index(c)) for c in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


# -- the shared samples -------------------------------------------------------------------


@needs_samples
def test_every_pain_version_has_samples() -> None:
    assert {entry["msgid"] for entry in SAMPLES} == {
        "pain.001.001.03",
        "pain.001.001.08",
        "pain.001.001.09",
        "pain.002.001.03",
    }
    assert set(KNOWN_BAD) <= {entry["file"] for entry in SAMPLES}


@needs_samples
@pytest.mark.parametrize("entry", SAMPLES, ids=[e["file"].split("/")[-1] for e in SAMPLES])
def test_every_valid_sample_decodes_re_encodes_and_decodes_to_the_same_transactions(
    entry: dict[str, Any],
) -> None:
    app_hdr, document, message_type = load(entry["file"])
    before, after = KNOWN_BAD.get(entry["file"], (set(), set()))
    assert violations(document, message_type) == before
    header = decode_header(app_hdr) if app_hdr is not None else None
    messages = decode(document, message_type, header)
    assert messages
    assert all(m.kind is MessageKind.CREDIT_TRANSFER for m in messages)
    assert all(m.business_header == header for m in messages)
    source_id = texts(document, "*/GrpHdr/MsgId")[0]
    assert {m.ids.source_message_id for m in messages} == {source_id}
    if message_type.family == "pain.001":
        assert all(m.function is MessageFunction.REQUEST for m in messages)
        count = len(texts(document, "CstmrCdtTrfInitn/PmtInf/CdtTrfTxInf"))
        assert len(messages) == count
        batches = texts(document, "CstmrCdtTrfInitn/PmtInf/PmtInfId")
        assert [m.ids.batch_id for m in messages if m.ids.batch_id not in batches] == []
    else:
        assert all(m.function is MessageFunction.RESPONSE for m in messages)
    encoded = encode(messages, message_type)
    assert violations(encoded, message_type) == after
    assert_round_trip(messages, decode(encoded, message_type, header))


@needs_samples
def test_a_legacy_sepa_file_keeps_its_batch_agents_amounts_and_codes() -> None:
    _, document, message_type = load(GISTFILE)
    messages = decode(document, message_type)
    assert [m.ids.end_to_end_id for m in messages] == [
        "ABC/4562/2009-09-08",
        "ABC/ABC-13679/2009-09-15",
        "ABC/987-AC/2009-09-27",
    ]
    assert {m.ids.batch_id for m in messages} == {"ABC/086"}
    assert {m.ids.source_message_id for m in messages} == {"ABC/090928/CCT001"}
    assert [str(m.amount) for m in messages] == ["10000000 JPY", "500000.00 EUR", "1000000.00 USD"]
    first = messages[0]
    assert first.ids.instruction_id == "ABC/090928/CCT001/01"
    assert first.payment_terms is not None
    assert first.payment_terms.requested_execution_date == dt.date(2009, 9, 29)
    assert first.debtor_account == Account(other_id="00125574999")
    assert first.debtor is not None and first.debtor.name == "ABC Corporation"
    assert [m.agents.debtor_agent for m in messages if m.agents] == [Agent(bic="BBBBUS33")] * 3
    assert [
        m.agents.creditor_agent.bic for m in messages if m.agents and m.agents.creditor_agent
    ] == [
        "AAAAGB2L",
        "DDDDBEBB",
        "BBBBUS66",
    ]
    assert [m.payment_terms.charge_bearer for m in messages if m.payment_terms] == [
        "SHAR",
        "CRED",
        "SHAR",
    ]
    assert [m.payment_terms.purpose for m in messages if m.payment_terms] == [
        "CINV",
        "GDDS",
        "INTC",
    ]
    assert all(m.remittance == () for m in messages)  # structured remittance only: dropped
    encoded = encode(messages, message_type)
    # 001.03 names a BIC "BIC", not "BICFI"; the unknown purpose code goes back as Prtry.
    assert texts(encoded, "CstmrCdtTrfInitn/PmtInf/DbtrAgt/FinInstnId/BIC") == ["BBBBUS33"]
    assert texts(encoded, "CstmrCdtTrfInitn/PmtInf/CdtTrfTxInf/CdtrAgt/FinInstnId/BICFI") == []
    assert texts(encoded, "CstmrCdtTrfInitn/PmtInf/CdtTrfTxInf/Purp/Prtry") == ["CINV"]
    assert texts(encoded, "CstmrCdtTrfInitn/PmtInf/CdtTrfTxInf/Purp/Cd") == ["GDDS", "INTC"]
    assert texts(encoded, "CstmrCdtTrfInitn/PmtInf/ReqdExctnDt") == ["2009-09-29"]
    assert texts(encoded, "CstmrCdtTrfInitn/GrpHdr/CtrlSum") == ["11500000.00"]
    assert texts(encoded, "CstmrCdtTrfInitn/GrpHdr/InitgPty/Nm") == ["ABC Corporation"]


@needs_samples
def test_a_cbpr_initiation_keeps_its_uetr_equivalent_amount_and_header() -> None:
    app_hdr, document, message_type = load(CBPR_2025)
    assert app_hdr is not None
    header = decode_header(app_hdr)
    [message] = decode(document, message_type, header)
    assert message.business_header == header
    assert message.ids.uetr == "e5f6a7b8-c9d0-4234-ab12-345678901234"
    assert message.ids.correlation_key == "uetr:e5f6a7b8-c9d0-4234-ab12-345678901234"
    assert message.ids.instruction_id == "IN20260413-2150"
    assert message.ids.batch_id == "PMTINF-0413-01"
    assert message.amount == Money.of("320000", "AUD")
    assert message.extensions == (Extension(pain001.CURRENCY_OF_TRANSFER, "AUD"),)
    assert message.debtor_account == Account(other_id="60438291", currency="AUD")
    assert message.creditor_account == Account(iban="GB29NWBK60161331926819")
    assert message.payment_terms is not None
    assert message.payment_terms.requested_execution_date == dt.date(2026, 4, 14)
    encoded = encode([message], message_type)
    path = "CstmrCdtTrfInitn/PmtInf/CdtTrfTxInf/Amt/EqvtAmt"
    assert texts(encoded, f"{path}/Amt") == ["320000.00"]
    assert texts(encoded, f"{path}/CcyOfTrf") == ["AUD"]
    assert texts(encoded, "CstmrCdtTrfInitn/PmtInf/ReqdExctnDt/Dt") == ["2026-04-14"]


@needs_samples
def test_the_sepa_unpaid_report_gives_one_response_per_transaction() -> None:
    _, document, message_type = load(UNPAID)
    messages = decode(document, message_type)
    assert [m.ids.batch_id for m in messages] == ["PMTINFID1"] * 2 + ["PMTINFID2"] * 2
    assert [m.ids.end_to_end_id for m in messages] == ["E2EID1", "E2EID2", "E2EID3", "E2EID4"]
    assert [(m.status.code, m.status.reason) for m in messages if m.status] == [
        (TransactionStatus.RJCT, "AC01"),
        (TransactionStatus.RJCT, "MS02"),
        (TransactionStatus.RJCT, "MD06"),
        (TransactionStatus.RJCT, "AM04"),
    ]
    first = messages[0]
    assert first.status is not None and first.status.additional_info == "ACC NUMBER INVALID"
    assert first.original == OriginalTransaction(
        message_type="PAIN.008.001.02", message_id="MSGID12345678912", end_to_end_id="E2EID1"
    )
    assert first.ids.correlation_key == "e2e:MSGID12345678912:E2EID1"
    assert first.extensions == (Extension(pain002.STATUS_ID, "IDREJ1"),)
    assert first.amount == Money.of("100", "EUR")
    assert first.debtor == Party(name="DEBTOR1")
    assert first.debtor_account == Account(iban="IE98BOFI90393912121212")
    assert first.creditor_account == Account(iban="NL77ABNA0574908765", currency="EUR")
    assert first.agents == Agents(
        debtor_agent=Agent(bic="BOFIIE2D"), creditor_agent=Agent(bic="BOFIIE2D")
    )
    assert first.payment_terms == PaymentTerms(service_level="SEPA", local_instrument="CORE")


@needs_samples
def test_a_partly_accepted_group_keeps_the_transaction_statuses() -> None:
    _, document, message_type = load(UNPAID)
    namespace = message_type.namespace
    [control_sum] = document.iterfind("{*}CstmrPmtStsRpt/{*}OrgnlGrpInfAndSts/{*}OrgnlCtrlSum")
    partly = etree.Element(f"{{{namespace}}}GrpSts")
    partly.text = "PART"
    control_sum.addnext(partly)
    assert VALIDATOR.validate(document, message_type) == []
    messages = decode(document, message_type)
    assert [m.status.reason for m in messages if m.status] == ["AC01", "MS02", "MD06", "AM04"]


@needs_samples
def test_a_cheque_is_refused_naming_the_payment_method() -> None:
    _, document, message_type = load(GISTFILE)
    [method] = document.iterfind("{*}CstmrCdtTrfInitn/{*}PmtInf/{*}PmtMtd")
    method.text = "CHK"
    with pytest.raises(ComponentError) as info:
        decode(document, message_type)
    assert info.value.path == "/Document/CstmrCdtTrfInitn/PmtInf/PmtMtd"
    assert "CHK" in info.value.reason


# -- batches ------------------------------------------------------------------------------

SOURCE_ID = "SALARIES-2026-11"
CREATED = dt.datetime(2026, 11, 28, 8, 30, tzinfo=dt.UTC)


def initiation(
    number: int,
    *,
    batch: str | None,
    debtor: int,
    day: dt.date,
    uetr: bool,
    currency_code: str = "EUR",
) -> CanonicalMessage:
    """One transaction as :func:`pain001.decode_initiations` gives it."""
    end_to_end = f"E2E-{number:05d}"
    unique = f"7d3b1c2e-{number:04d}-4aaa-8bbb-{number:012d}" if uetr else None
    return CanonicalMessage(
        kind=MessageKind.CREDIT_TRANSFER,
        function=MessageFunction.REQUEST,
        tenant=TENANT,
        ids=Identifiers(
            message_id=f"hub-{number}",
            end_to_end_id=end_to_end,
            instruction_id=f"INSTR-{number}",
            uetr=unique,
            correlation_key=correlation_key(unique, SOURCE_ID, end_to_end),
            source_message_id=SOURCE_ID,
            batch_id=batch,
        ),
        transmitted_at=CREATED,
        amount=Money.of(f"{number}.{number % 100:02d}", currency_code),
        debtor=Party(
            name=f"Debtor {debtor} GmbH",
            postal_address=PostalAddress(town_name="Berlin", country="DE"),
        ),
        debtor_account=Account(iban=iban("DE", f"37040044{debtor:010d}")),
        creditor=Party(name=f"Creditor {number}"),
        creditor_account=Account(iban=iban("FR", f"2004101005{number:011d}00")),
        agents=Agents(debtor_agent=Agent(bic="COBADEFFXXX"), creditor_agent=Agent(bic="BNPAFRPP")),
        remittance=(f"Invoice {number}",),
        payment_terms=PaymentTerms(
            charge_bearer="SLEV",
            service_level="SEPA",
            category_purpose="SALA",
            purpose="SALA",
            requested_execution_date=day,
        ),
    )


@pytest.mark.parametrize("message_type", [PAIN001_03, PAIN001_08, PAIN001_09], ids=lambda m: m.id)
def test_three_batches_of_fifty_keep_their_ids_and_totals(message_type: MessageType) -> None:
    days = [dt.date(2026, 12, 1), dt.date(2026, 12, 2), dt.date(2026, 12, 15)]
    messages = [
        initiation(
            block * 50 + n + 1,
            batch=f"BATCH-{block + 1}",
            debtor=block,
            day=days[block],
            uetr=message_type is PAIN001_09,
        )
        for block in range(3)
        for n in range(50)
    ]
    document = encode(messages, message_type)
    assert violations(document, message_type) == set()
    total = sum(m.amount.amount for m in messages if m.amount is not None)
    assert texts(document, "CstmrCdtTrfInitn/GrpHdr/NbOfTxs") == ["150"]
    assert texts(document, "CstmrCdtTrfInitn/GrpHdr/CtrlSum") == [format(total, "f")]
    assert texts(document, "CstmrCdtTrfInitn/PmtInf/PmtInfId") == ["BATCH-1", "BATCH-2", "BATCH-3"]
    assert texts(document, "CstmrCdtTrfInitn/PmtInf/NbOfTxs") == ["50", "50", "50"]
    assert texts(document, "CstmrCdtTrfInitn/PmtInf/CtrlSum") == [
        format(sum(m.amount.amount for m in messages[i : i + 50] if m.amount), "f")
        for i in (0, 50, 100)
    ]
    # Payment type information the transactions of a block share is written once.
    assert texts(document, "CstmrCdtTrfInitn/PmtInf/PmtTpInf/SvcLvl/Cd") == ["SEPA"] * 3
    assert texts(document, "CstmrCdtTrfInitn/PmtInf/CdtTrfTxInf/PmtTpInf/SvcLvl/Cd") == []
    again = decode(document, message_type)
    assert_round_trip(messages, again)
    assert [m.ids.batch_id for m in again] == [m.ids.batch_id for m in messages]


def test_transactions_without_a_batch_id_are_grouped_by_debtor_account_and_date() -> None:
    first_day, second_day = dt.date(2026, 12, 1), dt.date(2026, 12, 2)
    plan = [(0, first_day), (1, first_day), (0, first_day), (0, second_day), (1, first_day)]
    messages = [
        initiation(n + 1, batch=None, debtor=debtor, day=day, uetr=True)
        for n, (debtor, day) in enumerate(plan)
    ]
    document = encode(messages, PAIN001_09)
    assert violations(document, PAIN001_09) == set()
    names = [f"{SOURCE_ID}-{n}" for n in (1, 2, 3)]
    assert texts(document, "CstmrCdtTrfInitn/PmtInf/PmtInfId") == names
    assert texts(document, "CstmrCdtTrfInitn/PmtInf/NbOfTxs") == ["2", "2", "1"]
    assert texts(document, "CstmrCdtTrfInitn/PmtInf/ReqdExctnDt/Dt") == [
        "2026-12-01",
        "2026-12-01",
        "2026-12-02",
    ]
    again = decode(document, PAIN001_09)
    assert [m.ids.end_to_end_id for m in again] == [f"E2E-{n:05d}" for n in (1, 3, 2, 5, 4)]
    assert [m.ids.batch_id for m in again] == [names[0], names[0], names[1], names[1], names[2]]


def test_a_batch_whose_transactions_have_different_debtors_is_refused() -> None:
    day = dt.date(2026, 12, 1)
    messages = [
        initiation(1, batch="MIXED", debtor=1, day=day, uetr=False),
        initiation(2, batch="MIXED", debtor=2, day=day, uetr=False),
    ]
    with pytest.raises(ComponentError, match="'MIXED' differ in debtor"):
        pain001.encode_document(messages, PAIN001_03.namespace, now=lambda: NOW)


def test_a_transaction_without_an_execution_date_is_executed_on_its_creation_day() -> None:
    message = initiation(1, batch="B", debtor=1, day=dt.date(2026, 12, 1), uetr=False)
    message = dataclasses.replace(message, payment_terms=PaymentTerms(service_level="SEPA"))
    document = encode([message], PAIN001_03)
    assert texts(document, "CstmrCdtTrfInitn/PmtInf/ReqdExctnDt") == ["2026-11-28"]


def test_a_card_token_debtor_travels_as_a_token_account() -> None:
    token = PanToken("4111111111111112")
    message = initiation(7, batch="CARD", debtor=1, day=dt.date(2026, 12, 1), uetr=True)
    message = dataclasses.replace(message, card=Card(token=token), debtor_account=None)
    document = encode([message], PAIN001_09)
    account = "CstmrCdtTrfInitn/PmtInf/DbtrAcct/Id/Othr"
    assert texts(document, f"{account}/Id") == [token.value]
    assert texts(document, f"{account}/SchmeNm/Prtry") == [TOKEN_SCHEME]
    [back] = decode(document, PAIN001_09)
    assert back.card == Card(token=token)
    assert back.same_transaction(message)


def test_codes_are_written_as_cd_when_they_are_codes_and_as_prtry_otherwise() -> None:
    message = initiation(3, batch="CODES", debtor=1, day=dt.date(2026, 12, 1), uetr=False)
    terms = PaymentTerms(
        service_level="SEPA",
        local_instrument="Same day in house",
        category_purpose="CONS",  # FedNow market practice, accepted by the rules
        purpose="XYZW",  # four letters, not an ExternalPurpose1Code
        instruction_priority="HIGH",
        requested_execution_date=dt.date(2026, 12, 1),
    )
    message = dataclasses.replace(message, payment_terms=terms)
    document = encode([message], PAIN001_08)
    assert violations(document, PAIN001_08) == set()
    kind = "CstmrCdtTrfInitn/PmtInf/PmtTpInf"
    assert texts(document, f"{kind}/SvcLvl/Cd") == ["SEPA"]
    assert texts(document, f"{kind}/LclInstrm/Prtry") == ["Same day in house"]
    assert texts(document, f"{kind}/CtgyPurp/Cd") == ["CONS"]
    assert texts(document, f"{kind}/InstrPrty") == ["HIGH"]
    assert texts(document, "CstmrCdtTrfInitn/PmtInf/CdtTrfTxInf/Purp/Prtry") == ["XYZW"]
    [back] = decode(document, PAIN001_08)
    assert back.same_transaction(message)


def test_the_wrong_message_or_version_is_refused() -> None:
    with pytest.raises(ComponentError, match=r"pacs\.008\.001\.08 is not a pain\.001 / pain\.002"):
        pain001.Dialect.of(MESSAGE_TYPES["pacs.008.001.08"].namespace)
    message = initiation(1, batch="B", debtor=1, day=dt.date(2026, 12, 1), uetr=False)
    with pytest.raises(ComponentError, match=r"is not a pain\.001"):
        pain001.encode_document([message], PAIN002_10.namespace, now=lambda: NOW)
    with pytest.raises(ComponentError, match=r"is not a pain\.002"):
        pain002.encode_document([message], PAIN001_09.namespace, now=lambda: NOW)


# -- pain.002 -----------------------------------------------------------------------------


def report(
    number: int,
    status: Status | None,
    *,
    batch: str | None,
    transaction: bool = True,
    uetr: bool = False,
) -> CanonicalMessage:
    """One status as :func:`pain002.decode_reports` gives it."""
    end_to_end = f"E2E-{number}" if transaction else None
    instruction = f"INSTR-{number}" if transaction else None
    unique = f"0f8e3a4b-5c6d-4e7f-8a9b-{number:012d}" if transaction and uetr else None
    original = OriginalTransaction(
        message_type="pain.001.001.09",
        message_id=SOURCE_ID,
        instruction_id=instruction,
        end_to_end_id=end_to_end,
        uetr=unique,
        transmitted_at=CREATED,
    )
    terms = PaymentTerms(service_level="SEPA", requested_execution_date=dt.date(2026, 12, 1))
    return CanonicalMessage(
        kind=MessageKind.CREDIT_TRANSFER,
        function=MessageFunction.RESPONSE,
        tenant=TENANT,
        ids=Identifiers(
            message_id=f"hub-{number}",
            end_to_end_id=end_to_end,
            instruction_id=instruction,
            uetr=unique,
            correlation_key=correlation_key(unique, SOURCE_ID, end_to_end),
            source_message_id="STATUS-2026-11-28",
            batch_id=batch,
        ),
        transmitted_at=NOW,
        amount=Money.of(f"{number}.25", "EUR") if transaction else None,
        debtor=Party(name="ACME") if transaction else None,
        debtor_account=Account(iban="DE89370400440532013000") if transaction else None,
        creditor=Party(name=f"Creditor {number}") if transaction else None,
        creditor_account=Account(iban="GB82WEST12345698765432") if transaction else None,
        agents=Agents(debtor_agent=Agent(bic="COBADEFFXXX")) if transaction else None,
        original=original,
        status=status,
        extensions=(Extension(pain002.STATUS_ID, f"STS-{number}"),) if transaction else (),
        remittance=(f"Invoice {number}",) if transaction else (),
        payment_terms=terms if transaction else None,
    )


@pytest.mark.parametrize("message_type", [PAIN002_03, PAIN002_10], ids=lambda m: m.id)
def test_transaction_and_batch_statuses_round_trip(message_type: MessageType) -> None:
    rejected = Status(
        TransactionStatus.RJCT, "AM04", OriginalCode("iso8583", "51"), "Insufficient funds"
    )
    accepted = Status(TransactionStatus.ACSC)
    uetr = message_type is PAIN002_10
    messages = [
        report(1, accepted, batch="BATCH-1", uetr=uetr),
        report(2, rejected, batch="BATCH-1", uetr=uetr),
        report(3, Status(TransactionStatus.PDNG), batch="BATCH-2", transaction=False),
        report(4, Status(TransactionStatus.ACCP), batch="BATCH-3", uetr=uetr),
    ]
    document = encode(messages, message_type)
    assert violations(document, message_type) == set()
    assert texts(document, "CstmrPmtStsRpt/OrgnlPmtInfAndSts/OrgnlPmtInfId") == [
        "BATCH-1",
        "BATCH-2",
        "BATCH-3",
    ]
    assert texts(document, "CstmrPmtStsRpt/OrgnlPmtInfAndSts/PmtInfSts") == ["PDNG"]
    assert texts(document, "CstmrPmtStsRpt/OrgnlPmtInfAndSts/TxInfAndSts/TxSts") == [
        "ACSC",
        "RJCT",
        "ACCP",
    ]
    assert texts(document, "CstmrPmtStsRpt/OrgnlPmtInfAndSts/TxInfAndSts/StsRsnInf/AddtlInf") == [
        "ORGNL iso8583 51",
        "Insufficient funds",
    ]
    again = decode(document, message_type)
    assert_round_trip(messages, again)


@pytest.mark.parametrize(
    ("original_type", "written"),
    [("pain.001.001.09", PAIN002_10), ("pain.001.001.03", PAIN002_03), (None, PAIN002_10)],
)
def test_an_unprocessable_initiation_is_rejected_as_a_group(
    original_type: str | None, written: MessageType
) -> None:
    where = "/Document/CstmrCdtTrfInitn/GrpHdr/CtrlSum: CtrlSum is 10.00 but the amounts add up"
    text = f"{where} to 12.00 " + "x" * 400
    document = pain002.encode_reject("PAY-1", original_type, "AM10", text, now=lambda: NOW)
    assert etree.QName(document).namespace == written.namespace
    assert VALIDATOR.validate(document, written) == []
    assert violations(document, written) == set()
    group = "CstmrPmtStsRpt/OrgnlGrpInfAndSts"
    assert texts(document, f"{group}/GrpSts") == ["RJCT"]
    assert texts(document, f"{group}/OrgnlMsgNmId") == [original_type or "pain.001.001.09"]
    assert len(texts(document, f"{group}/StsRsnInf/AddtlInf")) == 3
    assert texts(document, "CstmrPmtStsRpt/GrpHdr/MsgId") == ["RJCT20261128235959000000"]
    [back] = decode(document, written)
    assert back.status is not None
    assert (back.status.code, back.status.reason) == (TransactionStatus.RJCT, "AM10")
    assert back.status.additional_info is not None
    assert back.status.additional_info.startswith(where)
    assert back.original is not None and back.original.message_id == "PAY-1"
    assert back.ids.batch_id is None and back.ids.end_to_end_id is None
    again = decode(encode([back], written), written)
    assert_round_trip([back], again)


# -- an independent generator: sepaxml ----------------------------------------------------


@pytest.mark.parametrize("message_type", [PAIN001_03, PAIN001_09], ids=lambda m: m.id)
def test_files_written_by_sepaxml_decode_as_written(message_type: MessageType) -> None:
    sepaxml = pytest.importorskip("sepaxml")
    today = dt.datetime.now(dt.UTC).date()
    config = {
        "name": "Muster Holding AG",
        "IBAN": "DE89370400440532013000",
        "BIC": "COBADEFFXXX",
        "batch": True,
        "currency": "EUR",
    }
    payments = [
        ("Alice Dupont", "FR1420041010050500013M02606", "BNPAFRPP", 123456, 1, "Rent December"),
        ("Bob de Vries", "NL91ABNA0417164300", "ABNANL2A", 99, 1, "Refund 4711"),
        ("Carla Rossi", "IT60X0542811101000000123456", "BPMOIT22XXX", 1_000_000, 2, "Loan"),
        ("Dieter Maier", "DE44500105175407324931", "INGDDEFFXXX", 5050, 2, "Invoice 2026-118"),
        ("Eve Smith", "GB82WEST12345698765432", "WESTGB2L", 7, 3, "Fees"),
    ]
    writer = sepaxml.SepaTransfer(config, schema=message_type.id, clean=True)
    expected = {}
    for index, (name, account, bic, cents, days, text) in enumerate(payments):
        end_to_end = f"SEPAXML-E2E-{index}"
        writer.add_payment(
            {
                "name": name,
                "IBAN": account,
                "BIC": bic,
                "amount": cents,
                "execution_date": today + dt.timedelta(days=days),
                "description": text,
                "endtoend_id": end_to_end,
            }
        )
        amount = Money.from_minor_units(cents, currency("EUR"))
        expected[end_to_end] = (name, account, bic, amount, text, today + dt.timedelta(days=days))
    payload: bytes = writer.export(validate=True)

    _, document = split_envelope(parse_xml(payload))
    assert by_namespace(etree.QName(document).namespace or "") is message_type
    assert VALIDATOR.validate(document, message_type) == []
    assert violations(document, message_type, today=None) == set()
    messages = decode(document, message_type)
    assert len(messages) == len(payments)
    for message in messages:
        assert message.ids.end_to_end_id is not None
        name, account, bic, amount, text, day = expected.pop(message.ids.end_to_end_id)
        assert message.creditor is not None and message.creditor.name == name
        assert message.creditor_account == Account(iban=account)
        assert message.agents is not None and message.agents.creditor_agent == Agent(bic=bic)
        assert message.agents.debtor_agent == Agent(bic="COBADEFFXXX")
        assert message.amount == amount
        assert message.remittance == (text,)
        assert message.debtor is not None and message.debtor.name == "Muster Holding AG"
        assert message.debtor_account == Account(iban="DE89370400440532013000")
        assert message.payment_terms is not None
        assert message.payment_terms.requested_execution_date == day
        assert message.payment_terms.service_level == "SEPA"
        assert message.payment_terms.charge_bearer == "SLEV"
    assert expected == {}
    # One PmtInf per execution date (sepaxml's batching), and the batch ids say so.
    by_day: dict[dt.date | None, set[str | None]] = {}
    for message in messages:
        terms = message.payment_terms or PaymentTerms()
        by_day.setdefault(terms.requested_execution_date, set()).add(message.ids.batch_id)
    assert len(by_day) == 3 and all(len(batches) == 1 for batches in by_day.values())
    assert len({m.ids.batch_id for m in messages}) == 3
    encoded = encode(messages, message_type)
    assert violations(encoded, message_type, today=None) == set()
    assert_round_trip(messages, decode(encoded, message_type))
