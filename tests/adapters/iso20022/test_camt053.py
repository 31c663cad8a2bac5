"""camt.053 / camt.054 statements (adapters.iso20022.camt053): streaming decode and encode.

Every VALID camt.053 / camt.054 sample of shared/iso20022/samples decodes the same streamed
(:func:`iter_statement`) and in memory (:func:`decode_statements`), is written again with
:func:`write_statement` (camt.053.001.08 for statements; camt.054.001.08 for notifications,
which have no balances and so cannot be camt.053), validates against that XSD and reads back
to the same headers and entries. A 200,000-entry statement is written from a generator and
streamed back under tracemalloc: the peak stays far below the file's size.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import itertools
import json
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from adapters.iso20022 import camt053
from adapters.iso20022.camt053 import (
    CAMT053_NAMESPACE,
    CAMT054_NAMESPACE,
    MESSAGE_EXTENSION,
    decode_statements,
    encode_document,
    entry_message,
    iter_statement,
    statement_message,
    write_statement,
)
from adapters.iso20022.catalog import MESSAGE_TYPES
from adapters.iso20022.components import ComponentError
from adapters.iso20022.head import decode_header
from adapters.iso20022.safexml import XmlInputError, parse_xml
from adapters.iso20022.validation import SchemaValidator, split_envelope
from canonical_model.messages import (
    Account,
    Balance,
    CanonicalMessage,
    MessageFunction,
    MessageKind,
    Party,
    Statement,
    StatementEntry,
)
from canonical_model.money import Money

SAMPLES = Path(__file__).resolve().parents[4] / "shared" / "iso20022" / "samples"
NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
CAMT053 = MESSAGE_TYPES["camt.053.001.08"]
CAMT054 = MESSAGE_TYPES["camt.054.001.08"]
LITHUANIAN = "camt.053.001.02/moov-testdata_statement_1.xml"


def _manifest() -> list[dict[str, Any]]:
    path = SAMPLES / "MANIFEST.json"
    if not path.is_file():
        return []
    entries: list[dict[str, Any]] = json.loads(path.read_text())
    return [
        entry
        for entry in entries
        if entry["status"] == "VALID" and entry["msgid"][:8] in ("camt.053", "camt.054")
    ]


STATEMENT_SAMPLES = _manifest()
needs_samples = pytest.mark.skipif(not STATEMENT_SAMPLES, reason=f"no samples at {SAMPLES}")


def _ids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"m-{next(counter)}"


def _now() -> dt.datetime:
    return NOW


def _stream(source: Any, chunk_size: int = 65536) -> list[CanonicalMessage]:
    return list(iter_statement(source, tenant="t", new_message_id=_ids(), chunk_size=chunk_size))


def _in_memory(data: bytes) -> list[CanonicalMessage]:
    app_hdr, document = split_envelope(parse_xml(data))
    return decode_statements(
        document,
        etree.QName(document).namespace or "",
        tenant="t",
        new_message_id=_ids(),
        header=decode_header(app_hdr) if app_hdr is not None else None,
    )


def _written(messages: list[CanonicalMessage], namespace: str) -> tuple[bytes, int]:
    sink = io.BytesIO()
    count = write_statement(messages, sink, message_id="MSG-1", now=_now, namespace=namespace)
    return sink.getvalue(), count


def _shape(messages: list[CanonicalMessage]) -> list[tuple[Statement | None, Any]]:
    return [(m.statement, m.statement_entry) for m in messages]


# -- the samples ------------------------------------------------------------------------


@needs_samples
@pytest.mark.parametrize(
    "sample", STATEMENT_SAMPLES, ids=[entry["file"].split("/")[-1] for entry in STATEMENT_SAMPLES]
)
def test_sample_round_trip(sample: dict[str, Any]) -> None:
    path = SAMPLES / sample["file"]
    data = path.read_bytes()
    streamed = _stream(path)
    assert streamed == _in_memory(data)
    assert streamed == _stream(io.BytesIO(data), chunk_size=97)  # tree ahead of the events
    headers = [m for m in streamed if m.statement_entry is None]
    entries = [m for m in streamed if m.statement_entry is not None]
    assert headers
    assert entries
    assert data.count(b"Ntry>") // 2 == len(entries)  # <Ntry> and </Ntry>, any prefix
    for message in streamed:
        assert message.kind is MessageKind.STATEMENT
        assert message.function is MessageFunction.ADVICE
        assert message.extensions[0].key == MESSAGE_EXTENSION
        assert message.extensions[0].value == sample["msgid"]
    notification = sample["msgid"].startswith("camt.054")
    namespace, message_type = (
        (CAMT054_NAMESPACE, CAMT054) if notification else (CAMT053_NAMESPACE, CAMT053)
    )
    written, count = _written(streamed, namespace)
    assert count == len(entries)
    assert SchemaValidator().validate(parse_xml(written), message_type) == []
    again = _stream(io.BytesIO(written))
    assert _shape(again) == _shape(streamed)
    assert [m.ids.uetr for m in again] == [m.ids.uetr for m in streamed]


@needs_samples
def test_rule_breaking_sample_still_decodes() -> None:
    """Its IBANs are LT00... (check digits 00): rules are not applied when decoding."""
    messages = _stream(SAMPLES / LITHUANIAN)
    header = messages[0].statement
    assert header is not None
    assert header.account == Account(iban="LT007180000000000000", currency="EUR")
    assert header.statement_id == "201509302599406883"
    assert header.sequence_number == "44"
    assert header.from_date == dt.datetime(2015, 5, 1, tzinfo=dt.UTC)
    assert [(b.type_code, b.amount, b.credit) for b in header.balances] == [
        ("OPAV", Money.of("2768.08", "EUR"), True),
        ("CLAV", Money.of("0.00", "EUR"), True),
    ]
    first = messages[1].statement_entry
    assert first == StatementEntry(
        amount=Money.of("1.64", "EUR"),
        credit=False,
        booking_date=dt.date(2015, 5, 11),
        value_date=dt.date(2015, 5, 11),
        end_to_end_id="NOTPROVIDED",
        bank_transaction_code="PMNT/MDOP/FEES",
        counterparty=Party(name='UAB "TESTAVIMAS"', identification="111111111"),
        counterparty_account=Account(iban="LT007180000000000001"),
        remittance=(
            "Mokestis už į kliento sąskaitą pervestų lėšų, gautų iš kitų bankų, įskaitymą "
            "2015.04.01, 2015.04.30 dienoje",
        ),
    )
    assert messages[1].ids.transaction_id == "514026627"
    assert messages[1].amount == first.amount


@needs_samples
def test_notification_in_envelope_keeps_header_and_uetr() -> None:
    path = SAMPLES / "camt.054.001.08/cbprstyle2025_camt054_credit_notification_sample.xml"
    header, entry = _stream(path)
    assert header.business_header is not None
    assert header.business_header.business_message_id == "CAMT054-NTFCTN-20260413-7391"
    assert header.ids.source_message_id == "CAMT054-NTFCTN-20260413-7391"
    assert entry.ids.uetr == "3e7b91d4-af28-4c53-b6e1-92d4a7c83f52"
    assert entry.statement_entry is not None
    assert entry.statement_entry.bank_transaction_code == "PMNT/RCDT/XBCT"
    assert entry.statement_entry.amount == Money.of("1843750", "MXN")


@needs_samples
def test_notification_cannot_be_a_camt053() -> None:
    path = SAMPLES / "camt.054.001.08/cbprstyle2025_camt054_credit_notification_sample.xml"
    with pytest.raises(ComponentError, match="needs a balance") as caught:
        _written(_stream(path), CAMT053_NAMESPACE)
    assert caught.value.path == "/Document/BkToCstmrStmt/Stmt[1]/Bal"


# -- synthetic statements ---------------------------------------------------------------

ACCOUNT = Account(iban="CH9300762011623852957", currency="CHF")


def _header(statement_id: str = "S-1", count: int | None = None) -> Statement:
    return Statement(
        statement_id,
        ACCOUNT,
        sequence_number="7",
        created_at=NOW,
        from_date=dt.datetime(2026, 11, 27, tzinfo=dt.UTC),
        to_date=dt.datetime(2026, 11, 27, 23, 59, 59, tzinfo=dt.UTC),
        balances=(
            Balance("OPBD", Money.of("100.00", "CHF"), True, dt.date(2026, 11, 27)),
            Balance("CLBD", Money.of("5.00", "CHF"), False, dt.date(2026, 11, 27)),
        ),
        entry_count=count,
    )


def _entry(number: int) -> StatementEntry:
    credit = number % 2 == 0
    return StatementEntry(
        amount=Money.of(f"{number % 1000}.{number % 100:02d}", "CHF"),
        credit=credit,
        status="BOOK",
        booking_date=dt.date(2026, 11, 27),
        value_date=dt.date(2026, 11, 28),
        account_servicer_reference=f"ASR{number:010d}",
        end_to_end_id=f"E2E-{number}",
        bank_transaction_code="PMNT/RCDT/ESCT" if credit else "PMNT/ICDT/DMCT",
        counterparty=Party(name=f"Counterparty {number}"),
        counterparty_account=Account(iban="DE89370400440532013000"),
        remittance=(f"Invoice {number}",),
        additional_info="SEPA credit transfer" if credit else None,
    )


def _statement(
    entries: int, statement_id: str = "S-1", count: int | None = None
) -> Iterator[CanonicalMessage]:
    header = _header(statement_id, count)
    yield statement_message(header, tenant="t", message_id=f"{statement_id}-h")
    for number in range(entries):
        yield entry_message(header, _entry(number), tenant="t", message_id=f"e{number}")


def test_synthetic_statement_round_trip() -> None:
    messages = [*_statement(5, count=5), *_statement(0, "S-2"), *_statement(2, "S-3")]
    written, count = _written(messages, CAMT053_NAMESPACE)
    assert count == 7
    document = parse_xml(written)
    assert SchemaValidator().validate(document, CAMT053) == []
    back = _stream(io.BytesIO(written))
    assert _shape(back) == _shape(messages)
    assert back[0].transmitted_at == NOW
    assert back[0].ids.source_message_id == "MSG-1"
    in_memory = encode_document(messages, CAMT053_NAMESPACE, now=_now)
    assert SchemaValidator().validate(in_memory, CAMT053) == []
    assert _shape(_in_memory(etree.tostring(in_memory))) == _shape(messages)


def test_entries_without_header_open_their_statement() -> None:
    """An entry naming another statement starts one, its header made from the entry."""
    header = dataclasses.replace(_header(), balances=())
    other = Statement("S-9", Account(other_id="12345", scheme="BBAN"))
    messages = [
        statement_message(header, tenant="t", message_id="h"),
        entry_message(header, _entry(1), tenant="t", message_id="e1"),
        entry_message(other, _entry(2), tenant="t", message_id="e2"),
    ]
    written, _ = _written(messages, CAMT054_NAMESPACE)
    with_balances = statement_message(_header(), tenant="t", message_id="h")
    with pytest.raises(ComponentError, match="carries no balances"):
        _written([with_balances], CAMT054_NAMESPACE)
    notification = parse_xml(written)
    assert SchemaValidator().validate(notification, CAMT054) == []
    back = _stream(io.BytesIO(written))
    assert [m.statement.statement_id for m in back if m.statement] == ["S-1"] * 2 + ["S-9"] * 2


def test_write_refuses_what_is_not_a_statement() -> None:
    with pytest.raises(ComponentError, match="no statement"):
        _written([], CAMT053_NAMESPACE)
    stray = statement_message(_header(), tenant="t", message_id="x")
    wrong = CanonicalMessage(
        kind=MessageKind.FINANCIAL, function=MessageFunction.REQUEST, tenant="t", ids=stray.ids
    )
    with pytest.raises(ComponentError, match="not part of a statement"):
        _written([stray, wrong], CAMT053_NAMESPACE)
    with pytest.raises(ComponentError, match="written as"):
        _written([stray], "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02")


# -- bad input --------------------------------------------------------------------------

STMT = CAMT053_NAMESPACE
BAD_ENTRY = (
    '<Document xmlns="{ns}"><BkToCstmrStmt><GrpHdr><MsgId>M</MsgId>'
    "<CreDtTm>2026-01-01T00:00:00Z</CreDtTm></GrpHdr><Stmt><Id>S</Id>"
    "<Acct><Id><IBAN>CH9300762011623852957</IBAN></Id></Acct>"
    '<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="CHF">1.00</Amt>'
    "<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-01-01</Dt></Dt></Bal>"
    '<Ntry><Amt Ccy="CHF">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>'
    "<BkTxCd/></Ntry>{entry}</Stmt></BkToCstmrStmt></Document>"
)


@pytest.mark.parametrize(
    ("entry", "path", "reason"),
    [
        (
            "<Ntry><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts></Ntry>",
            "/Document/BkToCstmrStmt/Stmt[1]/Ntry[2]/Amt",
            "is missing",
        ),
        (
            '<Ntry><Amt Ccy="CHF">1.00</Amt><CdtDbtInd>UP</CdtDbtInd></Ntry>',
            "/Document/BkToCstmrStmt/Stmt[1]/Ntry[2]/CdtDbtInd",
            "not CRDT or DBIT",
        ),
        (
            '<Ntry><Amt Ccy="XXY">1.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>'
            "</Ntry>",
            "/Document/BkToCstmrStmt/Stmt[1]/Ntry[2]/Amt",
            "unknown currency code",
        ),
        (
            '<Ntry><Amt Ccy="CHF">1.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>'
            "<BookgDt><Dt>2026-13-01</Dt></BookgDt></Ntry>",
            "/Document/BkToCstmrStmt/Stmt[1]/Ntry[2]/BookgDt/Dt",
            "not an ISO 8601 date",
        ),
    ],
)
def test_bad_entry_names_its_path(entry: str, path: str, reason: str) -> None:
    data = BAD_ENTRY.format(ns=STMT, entry=entry).encode()
    streamed = iter_statement(io.BytesIO(data), tenant="t", new_message_id=_ids())
    assert next(streamed).statement is not None
    assert next(streamed).statement_entry is not None  # the good entry comes first
    with pytest.raises(ComponentError) as caught:
        next(streamed)
    assert (caught.value.path, caught.value.reason) == (path, reason)
    with pytest.raises(ComponentError) as again:
        _in_memory(data)
    assert (again.value.path, again.value.reason) == (path, reason)


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        (f'<Document xmlns="{STMT}"><Stmt>'.encode(), XmlInputError, "."),
        (b'<!DOCTYPE d [<!ENTITY x "y">]><Document>&x;</Document>', XmlInputError, "entity"),
        (b"<Other/>", ComponentError, "no camt.053 or camt.054 Document"),
        (
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"/>',
            ComponentError,
            "not a camt.053 statement",
        ),
        (
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.99"/>',
            ComponentError,
            "not supported",
        ),
        (
            f'<Document xmlns="{STMT}"><BkToCstmrStmt><Stmt><Id>S</Id></Stmt>'
            "</BkToCstmrStmt></Document>".encode(),
            ComponentError,
            "Stmt\\[1\\]/Acct: is missing",
        ),
    ],
)
def test_bad_documents(data: bytes, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        _stream(io.BytesIO(data))


# -- memory -----------------------------------------------------------------------------

MEMORY_ENTRIES = 100_000
MEMORY_LIMIT = 50 * 1024 * 1024


def _lean_entry(number: int) -> StatementEntry:
    """Few elements, so that 200,000 of them write and read in seconds."""
    return StatementEntry(
        amount=Money.of(f"{number % 1000}.{number % 100:02d}", "EUR"),
        credit=number % 3 != 0,
        account_servicer_reference=f"R{number}",
        bank_transaction_code="PMNT/RCDT/ESCT",
    )


def _lean_statement(entries: int) -> Iterator[CanonicalMessage]:
    header = _header(count=entries)
    yield statement_message(header, tenant="t", message_id="h")
    for number in range(entries):
        yield entry_message(header, _lean_entry(number), tenant="t", message_id="e")


TRACED_WINDOW = 2_000


def test_streaming_memory_is_bounded(tmp_path: Path) -> None:
    """100,000 entries (~28 MB) written from a generator, then streamed back: the peak traced memory
    stays under 50 MB and does not grow from the first entries to the last.

    tracemalloc slows the safe parser's per-element checks ~10x, so it traces two windows
    (the first and the last 2,000 entries) rather than the whole file; and it sees only
    Python objects, not libxml2's tree: that the tree stays small is the next test.
    """
    path = tmp_path / "big.camt053.xml"
    with path.open("wb") as sink:
        written = write_statement(_lean_statement(MEMORY_ENTRIES), sink, message_id="BIG", now=_now)
    entries = 0
    last: CanonicalMessage | None = None
    peaks: list[int] = []
    tracemalloc.start()
    try:
        for message in iter_statement(path, tenant="t", new_message_id=lambda: "m"):
            if message.statement_entry is not None:
                entries += 1
                last = message
                if entries in (TRACED_WINDOW, MEMORY_ENTRIES - TRACED_WINDOW):
                    if tracemalloc.is_tracing():
                        peaks.append(tracemalloc.get_traced_memory()[1])
                        tracemalloc.stop()
                    else:
                        tracemalloc.start()
        peaks.append(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()
    assert written == entries == MEMORY_ENTRIES
    assert last is not None
    assert last.statement_entry == _lean_entry(MEMORY_ENTRIES - 1)
    assert path.stat().st_size > 200 * MEMORY_ENTRIES
    assert len(peaks) == 2
    assert max(peaks) < MEMORY_LIMIT
    assert peaks[1] < peaks[0] + 5 * 1024 * 1024


def test_streaming_keeps_the_tree_small(monkeypatch: pytest.MonkeyPatch) -> None:
    """After each entry is mapped, its statement holds that entry and those the parser has
    already read ahead (one 64 KiB chunk, ~300 of these entries): never all 3,000."""
    sink = io.BytesIO()
    write_statement(_lean_statement(3_000), sink, message_id="M", now=_now)
    entry_size = len(sink.getvalue()) // 3_000  # bytes per entry, a little over
    sink.seek(0)
    sizes: list[int] = []
    release = camt053._release

    def spy(element: etree._Element) -> None:
        release(element)
        parent = element.getparent()
        sizes.append(len(parent) if parent is not None else 0)

    monkeypatch.setattr(camt053, "_release", spy)
    count = sum(1 for _ in iter_statement(sink, tenant="t", new_message_id=lambda: "m"))
    assert count == 3_001
    assert len(sizes) == 3_001  # every entry, then the statement
    assert max(sizes) <= 65536 // entry_size + 2
