"""camt.053 (BankToCustomerStatement) and camt.054 (BankToCustomerDebitCreditNotification)
<-> canonical statements, streamed: a statement file of any size in bounded memory.

Read: camt.053 and camt.054 001.02, 001.04 and 001.08. Written: 001.08 (camt.053 by
default, camt.054 on request). A statement is a *stream* of canonical messages, kind
``STATEMENT``, function ``ADVICE``:

1. a **header** message per ``Stmt`` (camt.054: ``Ntfctn``): ``statement`` is the full
   :class:`~canonical_model.messages.Statement` (balances included), ``statement_entry``
   is ``None``;
2. then one **entry** message per ``Ntry``: ``statement`` is ``Statement(id, account)``
   (no balances, so that it stays small) and ``statement_entry`` the entry.

The header comes first because the schema puts balances before entries: a decoder emits it
when the first ``Ntry`` starts (or the statement ends); an encoder writes a new ``Stmt``
when a header message arrives, or when an entry names another statement id than the
current one (its header is then made from the entry's ``Statement``).

Which message it came from is on every message as the extension ``iso20022:message`` =
the message id (``camt.053.001.08``, ``camt.054.001.04``...): a camt.054 notification has
the same kind and function as a camt.053 statement, this extension tells them apart.

==================================  ===========================================================
camt.053 / camt.054                  canonical
==================================  ===========================================================
``GrpHdr/MsgId``, ``CreDtTm``        ``ids.source_message_id``, ``transmitted_at`` (every
                                     message; encode: the writer's ``message_id`` and ``now``)
``Stmt/Id`` (``Ntfctn/Id``)          ``statement.statement_id``
``ElctrncSeqNb``, ``CreDtTm``        ``statement.sequence_number``, ``statement.created_at``
``FrToDt/FrDtTm``, ``ToDtTm``        ``statement.from_date``, ``statement.to_date``
``Acct``                             ``statement.account`` (IBAN or ``Othr/Id``, ``Ccy``, ``Nm``)
``Bal``                              ``statement.balances``: ``Tp/CdOrPrtry/Cd`` (or ``Prtry``),
                                     ``Amt``, ``CdtDbtInd`` (``credit``), ``Dt/Dt`` (or ``DtTm``)
``TxsSummry/TtlNtries/NbOfNtries``   ``statement.entry_count``: what the statement *says*
                                     (``None`` when absent), carried as it is, not checked
                                     against the entries (a streaming writer cannot know the
                                     count before the entries; real files get it wrong)
``Ntry/Amt``, ``CdtDbtInd``          ``statement_entry.amount`` (also ``amount``), ``credit``
``Ntry/Sts`` (``Cd``/``Prtry``/text) ``statement_entry.status``
``BookgDt``, ``ValDt`` (Dt or DtTm)  ``statement_entry.booking_date``, ``value_date``
``Ntry/AcctSvcrRef``                 ``statement_entry.account_servicer_reference``
``Ntry/BkTxCd``                      ``statement_entry.bank_transaction_code``: ``PMNT/RCDT/ESCT``
                                     (``Domn/Cd``, ``Fmly/Cd``, ``SubFmlyCd``) or ``Prtry/Cd``
``Ntry/AddtlNtryInf``                ``statement_entry.additional_info``
first ``NtryDtls/TxDtls``:
``Refs/EndToEndId``                  ``statement_entry.end_to_end_id`` (and ``ids.end_to_end_id``)
``Refs/InstrId``, ``TxId``, ``UETR``  ``ids.instruction_id``, ``transaction_id``, ``uetr``
``RltdPties/Dbtr`` (a credit),       ``statement_entry.counterparty`` (``Pty`` or the party
``Cdtr`` (a debit)                   itself; an ``Agt`` as name + BIC), and ``DbtrAcct`` /
                                     ``CdtrAcct`` as ``counterparty_account``
``RmtInf/Ustrd``                     ``statement_entry.remittance``
==================================  ===========================================================

Not carried: pagination, other ``TxDtls`` than the first, charges, interest, availability,
``NtryRef``, ``RvslInd``, ``AddtlStmtInf``. Free text (``AddtlNtryInf``, ``Ustrd``) that
holds a Luhn-valid 13-19 digit run has it masked at decode, like every adapter's free text:
no clear card number gets past the edge, at the price of masking the odd reference that
passes the Luhn check by chance. camt.053.001.08 requires a balance and an
entry status and bank transaction code: a statement header without balances cannot be
written as camt.053 (write it as camt.054); an entry without a code gets an empty
``BkTxCd`` (valid, read back as no code); a balance without a date gets the statement's
creation date (else today's).

>>> import io, datetime as dt
>>> from canonical_model.money import Money
>>> from canonical_model.messages import Account, Balance, StatementEntry
>>> ids = iter(f"m-{n}" for n in range(100))
>>> header = Statement("S-1", Account(iban="CH9300762011623852957"),
...                    balances=(Balance("OPBD", Money.of("10.00", "CHF"), True,
...                                      dt.date(2026, 1, 2)),))
>>> entry = StatementEntry(Money.of("2.50", "CHF"), credit=False,
...                        bank_transaction_code="PMNT/ICDT/DMCT")
>>> messages = [statement_message(header, tenant="t", message_id="h"),
...             entry_message(header, entry, tenant="t", message_id="e")]
>>> sink = io.BytesIO()
>>> write_statement(messages, sink, message_id="MSG-1",
...                 now=lambda: dt.datetime(2026, 1, 2, tzinfo=dt.UTC))
1
>>> sink.seek(0)
0
>>> decoded = list(iter_statement(sink, tenant="t", new_message_id=lambda: next(ids)))
>>> decoded[0].statement == header, decoded[1].statement_entry == entry
(True, True)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import IO, Any, BinaryIO, Final, TypeAlias, cast, overload

from lxml import etree

from adapters.base import scrub
from adapters.iso20022.catalog import (
    ISO20022_NAMESPACE_PREFIX,
    MessageType,
    UnsupportedMessageError,
    by_namespace,
)
from adapters.iso20022.components import (
    Builder,
    ComponentError,
    Reader,
    default_namespace,
    format_datetime,
    parse_date,
    parse_datetime,
    read_account,
    read_amount,
    read_party,
    write_account,
    write_amount,
    write_party,
)
from adapters.iso20022.head import decode_header
from adapters.iso20022.ordering import SchemaOrder
from adapters.iso20022.pacs008 import max35
from adapters.iso20022.safexml import iterparse_safe
from canonical_model.messages import (
    Balance,
    BusinessHeader,
    CanonicalMessage,
    Extension,
    Identifiers,
    MessageFunction,
    MessageKind,
    Party,
    Statement,
    StatementEntry,
)
from canonical_model.money import Money
from canonical_model.pan import contains_clear_pan

__all__ = [
    "CAMT053_NAMESPACE",
    "CAMT054_NAMESPACE",
    "MESSAGE_EXTENSION",
    "decode_statements",
    "encode_document",
    "entry_message",
    "iter_statement",
    "statement_message",
    "write_statement",
]

CAMT053_NAMESPACE: Final = f"{ISO20022_NAMESPACE_PREFIX}camt.053.001.08"
"""What :func:`write_statement` writes by default."""

CAMT054_NAMESPACE: Final = f"{ISO20022_NAMESPACE_PREFIX}camt.054.001.08"
"""The notification :func:`write_statement` can write instead (no balances needed)."""

MESSAGE_EXTENSION: Final = "iso20022:message"
"""Extension key holding the message id a statement message was read from (ours)."""

_FAMILIES: Final = {
    "camt.053": ("BkToCstmrStmt", "Stmt"),
    "camt.054": ("BkToCstmrDbtCdtNtfctn", "Ntfctn"),
}
_WRITABLE: Final = (CAMT053_NAMESPACE, CAMT054_NAMESPACE)
_REFERENCES: Final = ("InstrId", "EndToEndId", "UETR", "TxId")
_CODE4 = re.compile(r"[A-Z0-9]{1,4}")
_STATUS_CODE = re.compile(r"[A-Z]{4}")

Source: TypeAlias = "str | os.PathLike[str] | IO[bytes]"


# -- canonical messages -----------------------------------------------------------------


def _extensions(message_type: str | None) -> tuple[Extension, ...]:
    return (Extension(MESSAGE_EXTENSION, message_type),) if message_type else ()


def statement_message(
    statement: Statement,
    *,
    tenant: str,
    message_id: str,
    source_message_id: str | None = None,
    transmitted_at: dt.datetime | None = None,
    message_type: str | None = None,
    header: BusinessHeader | None = None,
) -> CanonicalMessage:
    """The header message of a statement (``statement_entry`` is ``None``)."""
    return CanonicalMessage(
        kind=MessageKind.STATEMENT,
        function=MessageFunction.ADVICE,
        tenant=tenant,
        ids=Identifiers(message_id=message_id, source_message_id=source_message_id),
        transmitted_at=transmitted_at,
        statement=statement,
        business_header=header,
        extensions=_extensions(message_type),
    )


def entry_message(
    statement: Statement,
    entry: StatementEntry,
    *,
    tenant: str,
    message_id: str,
    source_message_id: str | None = None,
    transmitted_at: dt.datetime | None = None,
    message_type: str | None = None,
    header: BusinessHeader | None = None,
    instruction_id: str | None = None,
    transaction_id: str | None = None,
    uetr: str | None = None,
) -> CanonicalMessage:
    """An entry message: ``statement`` reduced to its id and account, the entry itself."""
    return CanonicalMessage(
        kind=MessageKind.STATEMENT,
        function=MessageFunction.ADVICE,
        tenant=tenant,
        ids=Identifiers(
            message_id=message_id,
            end_to_end_id=entry.end_to_end_id,
            instruction_id=instruction_id,
            uetr=uetr,
            transaction_id=transaction_id,
            source_message_id=source_message_id,
        ),
        transmitted_at=transmitted_at,
        amount=entry.amount,
        statement=Statement(statement.statement_id, statement.account),
        statement_entry=entry,
        business_header=header,
        extensions=_extensions(message_type),
    )


# -- reading ----------------------------------------------------------------------------


def _required(r: Reader, element: etree._Element, name: str, path: str) -> str:
    text = r.text(element, name)
    if text is None:
        raise ComponentError(f"{path}/{name}", "is missing")
    return text


def _date(r: Reader, element: etree._Element | None, path: str) -> dt.date | None:
    """A DateAndDateTime2Choice (``Dt`` or ``DtTm``) as a date."""
    if element is None:
        return None
    text = r.text(element, "Dt")
    if text is not None:
        return parse_date(text, f"{path}/Dt")
    text = r.text(element, "DtTm")
    if text is not None:
        return parse_datetime(text, f"{path}/DtTm").date()
    raise ComponentError(path, "neither Dt nor DtTm")


def _credit(r: Reader, element: etree._Element, path: str) -> bool:
    indicator = _required(r, element, "CdtDbtInd", path)
    if indicator not in ("CRDT", "DBIT"):
        raise ComponentError(f"{path}/CdtDbtInd", "not CRDT or DBIT")
    return indicator == "CRDT"


def _money(r: Reader, element: etree._Element, path: str) -> Money:
    amount = read_amount(r.find(element, "Amt"), f"{path}/Amt")
    if amount is None:
        raise ComponentError(f"{path}/Amt", "is missing")
    return amount


def _read_statement(r: Reader, stmt: etree._Element, path: str) -> Statement:
    account = read_account(r, r.find(stmt, "Acct"))
    if account is None:
        raise ComponentError(f"{path}/Acct", "is missing")
    created = r.text(stmt, "CreDtTm")
    start, end = r.text(stmt, "FrToDt/FrDtTm"), r.text(stmt, "FrToDt/ToDtTm")
    balances = []
    for index, bal in enumerate(r.findall(stmt, "Bal"), 1):
        where = f"{path}/Bal[{index}]"
        code = r.text(bal, "Tp/CdOrPrtry/Cd") or r.text(bal, "Tp/CdOrPrtry/Prtry")
        if code is None:
            raise ComponentError(f"{where}/Tp/CdOrPrtry", "no balance type")
        balances.append(
            Balance(
                type_code=code,
                amount=_money(r, bal, where),
                credit=_credit(r, bal, where),
                date=_date(r, r.find(bal, "Dt"), f"{where}/Dt"),
            )
        )
    count = r.text(stmt, "TxsSummry/TtlNtries/NbOfNtries")
    if count is not None and not count.isdigit():
        raise ComponentError(f"{path}/TxsSummry/TtlNtries/NbOfNtries", "not a number")
    return Statement(
        statement_id=_required(r, stmt, "Id", path),
        account=account,
        sequence_number=r.text(stmt, "ElctrncSeqNb"),
        created_at=parse_datetime(created, f"{path}/CreDtTm") if created else None,
        from_date=parse_datetime(start, f"{path}/FrToDt/FrDtTm") if start else None,
        to_date=parse_datetime(end, f"{path}/FrToDt/ToDtTm") if end else None,
        balances=tuple(balances),
        entry_count=int(count) if count is not None else None,
    )


def _counterparty(r: Reader, element: etree._Element | None) -> Party | None:
    """A Party40Choice (``Pty`` or ``Agt``, 001.08) or a party identification (001.02/.04)."""
    if element is None:
        return None
    party = r.find(element, "Pty")
    if party is not None:
        return read_party(r, party)
    agent = r.find(element, "Agt")
    if agent is not None:
        return Party(
            name=r.text(agent, "FinInstnId/Nm"),
            identification=r.text(agent, "FinInstnId/BICFI") or r.text(agent, "FinInstnId/BIC"),
        )
    return read_party(r, element)


@dataclass(frozen=True, slots=True)
class _Refs:
    instruction_id: str | None = None
    transaction_id: str | None = None
    uetr: str | None = None


def _read_entry(r: Reader, ntry: etree._Element, path: str) -> tuple[StatementEntry, _Refs]:
    credit = _credit(r, ntry, path)
    status = r.text(ntry, "Sts/Cd") or r.text(ntry, "Sts/Prtry") or r.text(ntry, "Sts")
    if status is None:
        raise ComponentError(f"{path}/Sts", "is missing")
    code = None
    domain = r.find(ntry, "BkTxCd/Domn")
    if domain is not None:
        parts = (r.text(domain, "Cd"), r.text(domain, "Fmly/Cd"), r.text(domain, "Fmly/SubFmlyCd"))
        code = "/".join(part or "" for part in parts)
    else:
        code = r.text(ntry, "BkTxCd/Prtry/Cd")
    tx = r.find(ntry, "NtryDtls/TxDtls")
    parties = r.find(tx, "RltdPties")
    side = "Dbtr" if credit else "Cdtr"
    entry = StatementEntry(
        amount=_money(r, ntry, path),
        credit=credit,
        status=status,
        booking_date=_date(r, r.find(ntry, "BookgDt"), f"{path}/BookgDt"),
        value_date=_date(r, r.find(ntry, "ValDt"), f"{path}/ValDt"),
        account_servicer_reference=r.text(ntry, "AcctSvcrRef"),
        end_to_end_id=r.text(tx, "Refs/EndToEndId"),
        bank_transaction_code=code,
        counterparty=_counterparty(r, r.find(parties, side)),
        counterparty_account=read_account(r, r.find(parties, f"{side}Acct")),
        remittance=tuple(_free_text(line) for line in r.texts(tx, "RmtInf/Ustrd")),
        additional_info=_free_text(r.text(ntry, "AddtlNtryInf")),
    )
    refs = _Refs(r.text(tx, "Refs/InstrId"), r.text(tx, "Refs/TxId"), r.text(tx, "Refs/UETR"))
    return entry, refs


@overload
def _free_text(text: str) -> str: ...
@overload
def _free_text(text: None) -> None: ...
def _free_text(text: str | None) -> str | None:
    """Free text with what looks like a card number masked (statements of card accounts
    print them): first six and last four digits kept."""
    return scrub(text) if text is not None and contains_clear_pan(text) else text


@dataclass(slots=True)
class _Context:
    """What every message of one document shares."""

    tenant: str
    new_message_id: Callable[[], str]
    message_type: str
    header: BusinessHeader | None = None
    source_message_id: str | None = None
    transmitted_at: dt.datetime | None = None

    def read_group(self, r: Reader, group: etree._Element | None, path: str) -> None:
        self.source_message_id = r.text(group, "MsgId")
        created = r.text(group, "CreDtTm")
        self.transmitted_at = parse_datetime(created, f"{path}/CreDtTm") if created else None

    def statement(self, stmt: etree._Element, path: str) -> tuple[Statement, CanonicalMessage]:
        statement = _read_statement(Reader(self.message_namespace), stmt, path)
        return statement, statement_message(
            statement,
            tenant=self.tenant,
            message_id=self.new_message_id(),
            source_message_id=self.source_message_id,
            transmitted_at=self.transmitted_at,
            message_type=self.message_type,
            header=self.header,
        )

    def entry(self, statement: Statement, ntry: etree._Element, path: str) -> CanonicalMessage:
        entry, refs = _read_entry(Reader(self.message_namespace), ntry, path)
        return entry_message(
            statement,
            entry,
            tenant=self.tenant,
            message_id=self.new_message_id(),
            source_message_id=self.source_message_id,
            transmitted_at=self.transmitted_at,
            message_type=self.message_type,
            header=self.header,
            instruction_id=refs.instruction_id,
            transaction_id=refs.transaction_id,
            uetr=refs.uetr,
        )

    @property
    def message_namespace(self) -> str:
        return ISO20022_NAMESPACE_PREFIX + self.message_type


def _statement_type(namespace: str) -> tuple[MessageType, str, str]:
    """The message type of ``namespace`` and its body and statement element names."""
    try:
        message_type = by_namespace(namespace)
    except UnsupportedMessageError as exc:
        raise ComponentError("/Document", str(exc)) from None
    names = _FAMILIES.get(message_type.family)
    if names is None:
        raise ComponentError(
            "/Document", f"{message_type.id} is not a camt.053 statement or camt.054 notification"
        )
    return message_type, *names


def decode_statements(
    document: etree._Element,
    namespace: str,
    *,
    tenant: str,
    new_message_id: Callable[[], str],
    header: BusinessHeader | None,
) -> list[CanonicalMessage]:
    """Every statement of a camt.053 / camt.054 ``Document`` (in memory) as canonical
    messages: for each statement its header message, then one message per entry."""
    message_type, body_name, statement_name = _statement_type(namespace)
    r = Reader(namespace)
    body = r.find(document, body_name)
    body_path = f"/Document/{body_name}"
    if body is None:
        raise ComponentError(body_path, "is missing")
    context = _Context(tenant, new_message_id, message_type.id, header)
    context.read_group(r, r.find(body, "GrpHdr"), f"{body_path}/GrpHdr")
    messages = []
    for index, stmt in enumerate(r.findall(body, statement_name), 1):
        path = f"{body_path}/{statement_name}[{index}]"
        statement, message = context.statement(stmt, path)
        messages.append(message)
        for number, ntry in enumerate(r.findall(stmt, "Ntry"), 1):
            messages.append(context.entry(statement, ntry, f"{path}/Ntry[{number}]"))
    return messages


def _release(element: etree._Element) -> None:
    """Clear a consumed element and drop the siblings before it: the tree stays small."""
    element.clear()
    parent = element.getparent()
    if parent is not None:
        while element.getprevious() is not None:
            del parent[0]


def iter_statement(
    source: Source,
    *,
    tenant: str,
    new_message_id: Callable[[], str],
    chunk_size: int = 65536,
) -> Iterator[CanonicalMessage]:
    """Stream a camt.053 / camt.054 (a path or a binary file) as canonical messages.

    The same messages as :func:`decode_statements`, in the same order, in memory bounded
    by one entry (each ``Ntry`` is cleared once mapped). The document may be bare or in
    an envelope with a Business Application Header (``AppHdr``, read as
    ``business_header``). Raises :class:`~adapters.iso20022.safexml.XmlInputError` for
    input that is not acceptable XML, :class:`~adapters.iso20022.components.ComponentError`
    (with the element path) for XML that is not a statement that maps.
    """
    context: _Context | None = None
    header: BusinessHeader | None = None
    tags: dict[str, str] = {}
    body_path = statement_path = statement_name = ""
    statement_index = entry_index = 0
    statement: Statement | None = None
    for event, element in iterparse_safe(
        source, None, events=("start", "end"), chunk_size=chunk_size
    ):
        tag = element.tag
        if context is None:
            qname = etree.QName(element)
            if qname.localname == "AppHdr" and event == "end":
                header = decode_header(element)
                _release(element)
            elif qname.localname == "Document" and event == "start":
                namespace = qname.namespace or ""
                message_type, body_name, statement_name = _statement_type(namespace)
                context = _Context(tenant, new_message_id, message_type.id, header)
                body_path = f"/Document/{body_name}"
                tags = {
                    f"{{{namespace}}}{name}": name for name in ("GrpHdr", statement_name, "Ntry")
                }
            continue
        name = tags.get(tag) if isinstance(tag, str) else None
        if name is None:
            continue
        if name == "Ntry":
            if event == "start":
                entry_index += 1
                if statement is None:
                    parent = element.getparent()
                    if parent is None or tags.get(str(parent.tag)) != statement_name:
                        raise ComponentError(f"{body_path}/Ntry", "an entry outside a statement")
                    statement, message = context.statement(parent, statement_path)
                    yield message
            elif statement is not None:
                path = f"{statement_path}/Ntry[{entry_index}]"
                yield context.entry(statement, element, path)
                _release(element)
        elif name == "GrpHdr":
            if event == "end":
                context.read_group(
                    Reader(context.message_namespace), element, f"{body_path}/GrpHdr"
                )
        elif event == "start":  # Stmt / Ntfctn
            statement_index += 1
            entry_index = 0
            statement = None
            statement_path = f"{body_path}/{name}[{statement_index}]"
        else:
            if statement is None:
                _, message = context.statement(element, statement_path)
                yield message
            statement = None
            _release(element)
    if context is None:
        raise ComponentError("/Document", "no camt.053 or camt.054 Document found")
    if statement_index == 0:
        raise ComponentError(body_path, "holds no statement")


# -- writing ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Layout:
    """Element names and XSD types of the message written."""

    message_type: MessageType
    order: SchemaOrder
    body: str
    statement: str
    group_type: str
    statement_type: str
    entry_type: str


def _layout(namespace: str) -> _Layout:
    if namespace not in _WRITABLE:
        raise ComponentError(
            "/Document", f"statements are written as {' or '.join(_WRITABLE)}, not {namespace}"
        )
    message_type, body, statement = _statement_type(namespace)
    order = SchemaOrder.for_message(message_type)
    body_type = dict(order.children[order.root_type])[body]
    body_children = dict(order.children[body_type])
    statement_type = body_children[statement]
    entry_type = dict(order.children[statement_type])["Ntry"]
    return _Layout(
        message_type,
        order,
        body,
        statement,
        body_children["GrpHdr"],
        statement_type,
        entry_type,
    )


def _date_choice(b: Builder, parent: etree._Element, name: str, value: dt.date | None) -> None:
    if value is not None:
        b.path(parent, f"{name}/Dt", value.isoformat())


def _statement_children(
    b: Builder, layout: _Layout, statement: Statement, path: str, now: Callable[[], dt.datetime]
) -> etree._Element:
    """A detached ``Stmt`` holding the header elements, in schema order."""
    stmt = b.element(layout.statement)
    b.child(stmt, "Id", statement.statement_id)
    b.optional(stmt, "ElctrncSeqNb", statement.sequence_number)
    if statement.created_at is not None:
        b.child(stmt, "CreDtTm", format_datetime(statement.created_at))
    if statement.from_date is not None or statement.to_date is not None:
        if statement.from_date is None or statement.to_date is None:
            raise ComponentError(f"{path}/FrToDt", "a period needs both ends")
        b.path(stmt, "FrToDt/FrDtTm", format_datetime(statement.from_date))
        b.path(stmt, "FrToDt/ToDtTm", format_datetime(statement.to_date))
    write_account(b, b.child(stmt, "Acct"), statement.account)
    balance_type = dict(layout.order.children[layout.statement_type]).get("Bal")
    if balance_type is None:
        if statement.balances:
            raise ComponentError(
                f"{path}/Bal", f"{layout.message_type.id} carries no balances: write a camt.053"
            )
    elif not statement.balances:
        raise ComponentError(f"{path}/Bal", f"{layout.message_type.id} needs a balance")
    for balance in statement.balances:
        bal = b.child(stmt, "Bal")
        kind = "Cd" if _CODE4.fullmatch(balance.type_code) else "Prtry"
        b.path(bal, f"Tp/CdOrPrtry/{kind}", balance.type_code)
        write_amount(b, bal, "Amt", balance.amount)
        b.child(bal, "CdtDbtInd", "CRDT" if balance.credit else "DBIT")
        date = balance.date or (statement.created_at or now()).date()
        _date_choice(b, bal, "Dt", date)
    if statement.entry_count is not None:
        b.path(stmt, "TxsSummry/TtlNtries/NbOfNtries", str(statement.entry_count))
    layout.order.arrange(stmt, layout.statement_type)
    return stmt


def _entry_element(
    b: Builder, layout: _Layout, message: CanonicalMessage, entry: StatementEntry
) -> etree._Element:
    """One ``Ntry``, in schema order (children created in order, then arranged: a check)."""
    child = b.child
    ntry = b.element("Ntry")
    write_amount(b, ntry, "Amt", entry.amount)
    child(ntry, "CdtDbtInd", "CRDT" if entry.credit else "DBIT")
    status = "Cd" if _STATUS_CODE.fullmatch(entry.status) else "Prtry"
    child(child(ntry, "Sts"), status, entry.status)
    if entry.booking_date is not None:
        child(child(ntry, "BookgDt"), "Dt", entry.booking_date.isoformat())
    if entry.value_date is not None:
        child(child(ntry, "ValDt"), "Dt", entry.value_date.isoformat())
    if entry.account_servicer_reference is not None:
        child(ntry, "AcctSvcrRef", entry.account_servicer_reference)
    code = child(ntry, "BkTxCd")
    if entry.bank_transaction_code is not None:
        parts = entry.bank_transaction_code.split("/")
        if len(parts) == 3 and all(_CODE4.fullmatch(part) for part in parts):
            domain = child(code, "Domn")
            child(domain, "Cd", parts[0])
            family = child(domain, "Fmly")
            child(family, "Cd", parts[1])
            child(family, "SubFmlyCd", parts[2])
        else:
            child(child(code, "Prtry"), "Cd", entry.bank_transaction_code)
    ids = message.ids
    refs = (ids.instruction_id, entry.end_to_end_id, ids.uetr, ids.transaction_id)
    if any(refs) or entry.counterparty or entry.counterparty_account or entry.remittance:
        tx = child(child(ntry, "NtryDtls"), "TxDtls")
        if any(refs):
            references = child(tx, "Refs")
            for name, value in zip(_REFERENCES, refs, strict=True):
                if value is not None:
                    child(references, name, value)
        if entry.counterparty is not None or entry.counterparty_account is not None:
            side = "Dbtr" if entry.credit else "Cdtr"
            parties = child(tx, "RltdPties")
            if entry.counterparty is not None:
                write_party(b, child(child(parties, side), "Pty"), entry.counterparty)
            if entry.counterparty_account is not None:
                write_account(b, child(parties, f"{side}Acct"), entry.counterparty_account)
        if entry.remittance:
            remittance = child(tx, "RmtInf")
            for line in entry.remittance:
                child(remittance, "Ustrd", line)
    if entry.additional_info is not None:
        child(ntry, "AddtlNtryInf", entry.additional_info)
    layout.order.arrange(ntry, layout.entry_type)
    return ntry


def _statement_of(message: CanonicalMessage, path: str) -> Statement:
    if message.kind is not MessageKind.STATEMENT or message.statement is None:
        raise ComponentError(path, f"a {message.kind.value} message is not part of a statement")
    return message.statement


def write_statement(
    messages: Iterable[CanonicalMessage],
    sink: BinaryIO,
    *,
    message_id: str,
    now: Callable[[], dt.datetime],
    namespace: str = CAMT053_NAMESPACE,
) -> int:
    """Write ``messages`` (header and entry messages, see the module docstring) to
    ``sink`` as one camt.053.001.08 (or camt.054.001.08) document, streaming: one ``Ntry``
    in memory at a time. ``message_id`` is ``GrpHdr/MsgId``, ``now()`` its ``CreDtTm``.
    Returns the number of entries written. Raises
    :class:`~adapters.iso20022.components.ComponentError` for messages that do not make a
    valid statement (what was written until then is incomplete).
    """
    layout = _layout(namespace)
    b = Builder(namespace, unqualified=True)
    stream = iter(messages)
    first = next(stream, None)
    body_path = f"/Document/{layout.body}"
    if first is None:
        raise ComponentError(f"{body_path}/{layout.statement}", "no statement to write")
    xmlfile = cast(Any, etree).xmlfile
    total = 0
    with xmlfile(sink, encoding="UTF-8") as xf:
        xf.write_declaration()
        with (
            xf.element(f"{{{namespace}}}Document", nsmap=default_namespace(namespace)),
            xf.element(f"{{{namespace}}}{layout.body}"),
        ):
            group = b.element("GrpHdr")
            b.child(group, "MsgId", max35(message_id))
            b.child(group, "CreDtTm", format_datetime(now()))
            xf.write(group)
            current: Statement | None = None
            index = 0
            with contextlib.ExitStack() as open_statement:
                for message in _chain(first, stream):
                    statement = _statement_of(message, f"{body_path}/{layout.statement}")
                    entry = message.statement_entry
                    if (
                        entry is None
                        or current is None
                        or statement.statement_id != current.statement_id
                    ):
                        open_statement.close()
                        index, current = index + 1, statement
                        path = f"{body_path}/{layout.statement}[{index}]"
                        open_statement.enter_context(
                            xf.element(f"{{{namespace}}}{layout.statement}")
                        )
                        for child in _statement_children(b, layout, statement, path, now):
                            xf.write(child)
                    if entry is not None:
                        xf.write(_entry_element(b, layout, message, entry))
                        total += 1
    return total


def _chain(first: CanonicalMessage, rest: Iterator[CanonicalMessage]) -> Iterator[CanonicalMessage]:
    yield first
    yield from rest


def encode_document(
    messages: Sequence[CanonicalMessage], namespace: str, *, now: Callable[[], dt.datetime]
) -> etree._Element:
    """A camt.053 / camt.054 ``Document`` (in schema order) for ``messages``, in memory.

    ``GrpHdr/MsgId`` is the first message's ``ids.source_message_id`` or its hub id.
    """
    if not messages:
        raise ComponentError("/Document", "no statement to write")
    first = messages[0]
    sink = BytesIO()
    write_statement(
        messages,
        sink,
        message_id=first.ids.source_message_id or first.ids.message_id,
        # GrpHdr/CreDtTm is the decoded one when there is one: a round trip is exact.
        now=lambda: first.transmitted_at or now(),
        namespace=namespace,
    )
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    return etree.fromstring(sink.getvalue(), parser)
