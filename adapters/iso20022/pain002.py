"""pain.002 (CustomerPaymentStatusReport) <-> canonical credit transfer responses.

Versions 001.10 and 001.03 (legacy SEPA). A pain.002 answers a customer's pain.001 (or,
from a creditor bank, a pain.008): a group status, then per original payment information
block (``OrgnlPmtInfAndSts``) a status and the statuses of its transactions
(``TxInfAndSts``). One canonical message per ``TxInfAndSts``, kind ``CREDIT_TRANSFER``,
function ``RESPONSE``; a block without transactions gives one message for the block, a
report with no block one message for the group. The status of a message is its
transaction's ``TxSts``, else its block's ``PmtInfSts``, else the ``GrpSts``.

==================================  ===========================================================
pain.002                             canonical
==================================  ===========================================================
``GrpHdr/MsgId``, ``CreDtTm``        ``ids.source_message_id``, ``transmitted_at``
``OrgnlGrpInfAndSts/OrgnlMsgId``,    ``original.message_id``, ``original.message_type`` (as
``OrgnlMsgNmId``, ``OrgnlCreDtTm``   written), ``original.transmitted_at``
``GrpSts`` + ``StsRsnInf``           ``status`` of a group-only message (and the fallback)
``OrgnlPmtInfId``                    ``ids.batch_id`` (``NOTPROVIDED``: none)
``PmtInfSts`` + ``StsRsnInf``        ``status`` of a block-only message (and the fallback)
``StsId``, ``AcctSvcrRef``           extensions ``iso20022:StsId``, ``iso20022:AcctSvcrRef``
``OrgnlInstrId``, ``OrgnlEndToEndId``  ``original.instruction_id`` and ``ids.instruction_id``,
                                     ``original.end_to_end_id`` and ``ids.end_to_end_id``
``OrgnlUETR`` (001.10)               ``original.uetr`` / ``ids.uetr``
``TxSts``                            ``status.code``
``StsRsnInf/Rsn/Cd`` (or ``Prtry``)  ``status.reason``
``StsRsnInf/AddtlInf``               ``status.additional_info`` (the lines joined by a space;
                                     encode: broken at spaces into lines of 105); one line
                                     ``ORGNL <scheme> <code>`` carries the source protocol's
                                     code, as in pacs.002
``ClrSysRef``                        ``ids.clearing_reference``
``OrgnlTxRef/Amt/InstdAmt``          ``amount`` (``EqvtAmt`` as in :mod:`.pain001`; else
                                     ``IntrBkSttlmAmt``)
``OrgnlTxRef/ReqdExctnDt``,          ``payment_terms`` (requested execution date, priority,
``PmtTpInf``, ``Purp`` (001.10)      service level, local instrument, category purpose,
                                     purpose)
``OrgnlTxRef/Dbtr``, ``DbtrAcct``,   ``debtor``, ``debtor_account``, ``agents.debtor_agent``,
``DbtrAgt``, ``CdtrAgt``, ``Cdtr``,  ``agents.creditor_agent``, ``creditor``,
``CdtrAcct``, ``UltmtDbtr``,         ``creditor_account``, ``ultimate_debtor``,
``UltmtCdtr``                        ``ultimate_creditor`` (001.10: the ``Pty`` of each party)
``OrgnlTxRef/RmtInf/Ustrd``          ``remittance``
==================================  ===========================================================

**Encoding.** :func:`encode_document` writes the group header from the first message and
``OrgnlGrpInfAndSts`` from its ``original`` (``OrgnlMsgNmId``: ``pain.001.001.09`` for
001.10, ``pain.001.001.03`` for 001.03, when the message does not say). A message with no
batch id and nothing that names a transaction is the group's status (``GrpSts``); one with a
batch id and nothing that names a transaction is its block's status (``PmtInfSts``); the
others are ``TxInfAndSts``, grouped into ``OrgnlPmtInfAndSts`` blocks by batch id (a
transaction without one goes into a block ``NOTPROVIDED``: 001.03 and 001.10 keep
transactions in blocks only). :func:`encode_reject` writes the answer to a pain.001 the hub
cannot process: group status ``RJCT`` with a reason code and where and why.

**Dropped.** A group or block status that is no transaction status (``PART``: partly
accepted; ``RCVC``, ``RVCM``, ``RVNC``): the canonical model has no such code, and the
transactions' own statuses are kept. ``GrpHdr/InitgPty``, ``FwdgAgt``, ``DbtrAgt``,
``CdtrAgt``, the original counts and sums (``OrgnlNbOfTxs``, ``OrgnlCtrlSum``,
``NbOfTxsPerSts``), the reason's originator (``StsRsnInf/Orgtr``), the reason code of every
``StsRsnInf`` after the first (their ``AddtlInf`` lines are kept), ``ChrgsInf``,
``TrckrData``, ``AccptncDtTm``, and from ``OrgnlTxRef``: the settlement data, direct debit
data (``ReqdColltnDt``, ``CdtrSchmeId``, ``MndtRltdInf``, ``PmtTpInf/SeqTp``), a party that
is an agent (001.10 ``Dbtr/Agt``), agent accounts and structured remittance. 001.03 has no
``TxInfAndSts`` statuses ``ACCC``, ``ACFC``... (its code list is closed): such a status does
not validate there.

>>> import datetime as dt
>>> from adapters.iso20022.catalog import MESSAGE_TYPES
>>> from adapters.iso20022.validation import SchemaValidator
>>> now = lambda: dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)
>>> report = MESSAGE_TYPES["pain.002.001.10"]
>>> answer = encode_reject("PAY-2026-11-30", "pain.001.001.09", "AM10", "CtrlSum", now=now)
>>> SchemaValidator().validate(answer, report)
[]
>>> [back] = decode_reports(
...     answer, report.namespace, tenant="acme", new_message_id=lambda: "m-1", header=None
... )
>>> back.status.code.value, back.status.reason, back.original.message_id
('RJCT', 'AM10', 'PAY-2026-11-30')
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import textwrap
from collections.abc import Callable, Sequence
from typing import Final

from lxml import etree

from adapters.iso20022.catalog import MESSAGE_TYPES
from adapters.iso20022.components import (
    Builder,
    ComponentError,
    Reader,
    element_path,
    format_datetime,
    parse_datetime,
    read_account,
    read_amount,
    start_document,
    write_account,
    write_agent,
    write_party,
)
from adapters.iso20022.ordering import SchemaOrder
from adapters.iso20022.pacs002 import _status
from adapters.iso20022.pacs008 import correlation_key, max35
from adapters.iso20022.pain001 import (
    Dialect,
    debtor_account,
    read_instructed_amount,
    read_payment_type,
    write_code,
    write_instructed_amount,
    write_payment_type,
)
from canonical_model.codes import Status, TransactionStatus
from canonical_model.messages import (
    Account,
    Agents,
    BusinessHeader,
    CanonicalMessage,
    Card,
    Extension,
    Identifiers,
    MessageFunction,
    MessageKind,
    OriginalTransaction,
    Party,
    PaymentTerms,
)

__all__ = [
    "ACCOUNT_SERVICER_REFERENCE",
    "STATUS_ID",
    "decode_reports",
    "encode_document",
    "encode_reject",
]

STATUS_ID: Final = "iso20022:StsId"
"""Extension key: the ``StsId`` the reporting bank gave a transaction status."""

ACCOUNT_SERVICER_REFERENCE: Final = "iso20022:AcctSvcrRef"
"""Extension key: the account servicer's reference of the transaction (``AcctSvcrRef``)."""

NOT_PROVIDED: Final = "NOTPROVIDED"
_TRANSACTION_STATUSES: Final = frozenset(status.value for status in TransactionStatus)
_MAX105: Final = 105
_MAX_REJECT_LINES: Final = 3

_ORIGINAL_MESSAGE: Final = {"pain.002.001.03": "pain.001.001.03"}
_DEFAULT_ORIGINAL_MESSAGE: Final = "pain.001.001.09"
_PARTIES: Final = ("UltmtDbtr", "Dbtr", "Cdtr", "UltmtCdtr")


def _level_status(
    r: Reader, element: etree._Element | None, code_path: str, path: str
) -> Status | None:
    """A group or block status; one with no canonical transaction status (``PART``,
    ``RCVC``...) gives none."""
    if element is None or r.text(element, code_path) not in _TRANSACTION_STATUSES:
        return None
    return _status(r, element, code_path, path)


def _empty(value: Agents | PaymentTerms) -> bool:
    return all(getattr(value, field.name) is None for field in dataclasses.fields(value))


def decode_reports(
    document: etree._Element,
    namespace: str,
    *,
    tenant: str,
    new_message_id: Callable[[], str],
    header: BusinessHeader | None,
    tokenize_account: Callable[[Account, str], Card | None] | None = None,
) -> list[CanonicalMessage]:
    """Every status of a pain.002 ``Document`` as a canonical credit transfer response.

    ``tokenize_account`` is as for :func:`.pain001.decode_initiations` (the original
    transaction's debtor account).
    """
    dialect = Dialect.of(namespace)
    if dialect.family != "pain.002":
        raise ComponentError("/Document", f"{dialect.message_id} is not a pain.002")
    r = Reader(namespace)
    body = r.find(document, "CstmrPmtStsRpt")
    if body is None:
        raise ComponentError("/Document", "CstmrPmtStsRpt is missing")
    group = r.find(body, "GrpHdr")
    message_id = r.text(group, "MsgId")
    created = r.text(group, "CreDtTm")
    transmitted_at = (
        parse_datetime(created, "/Document/CstmrPmtStsRpt/GrpHdr/CreDtTm") if created else None
    )
    original_group = r.find(body, "OrgnlGrpInfAndSts")
    original_path = "/Document/CstmrPmtStsRpt/OrgnlGrpInfAndSts"
    original_created = r.text(original_group, "OrgnlCreDtTm")
    original = OriginalTransaction(
        message_type=r.text(original_group, "OrgnlMsgNmId"),
        message_id=r.text(original_group, "OrgnlMsgId"),
        transmitted_at=parse_datetime(original_created, f"{original_path}/OrgnlCreDtTm")
        if original_created
        else None,
    )
    group_status = _level_status(r, original_group, "GrpSts", original_path)
    targets: list[tuple[etree._Element | None, etree._Element | None]] = []
    for block in r.findall(body, "OrgnlPmtInfAndSts"):
        targets += [(block, tx) for tx in r.findall(block, "TxInfAndSts")] or [(block, None)]
    messages = []
    for payment, tx in targets or [(None, None)]:
        payment_status = (
            _level_status(r, payment, "PmtInfSts", element_path(payment))
            if payment is not None
            else None
        )
        path = element_path(tx) if tx is not None else original_path
        status = (_status(r, tx, "TxSts", path) if tx is not None else None) or (
            payment_status or group_status
        )
        batch = r.text(payment, "OrgnlPmtInfId")
        uetr = r.text(tx, "OrgnlUETR") if dialect.uetr else None
        end_to_end = r.text(tx, "OrgnlEndToEndId")
        instruction = r.text(tx, "OrgnlInstrId")
        reference = _decode_reference(dialect, r, r.find(tx, "OrgnlTxRef"), path, tokenize_account)
        extensions = tuple(
            Extension(key, value)
            for key, value in (
                (STATUS_ID, r.text(tx, "StsId")),
                (ACCOUNT_SERVICER_REFERENCE, r.text(tx, "AcctSvcrRef")),
            )
            if value is not None
        )
        messages.append(
            dataclasses.replace(
                reference,
                tenant=tenant,
                ids=Identifiers(
                    message_id=new_message_id(),
                    end_to_end_id=end_to_end,
                    instruction_id=instruction,
                    uetr=uetr,
                    correlation_key=correlation_key(uetr, original.message_id, end_to_end),
                    source_message_id=message_id,
                    batch_id=None if batch == NOT_PROVIDED else batch,
                    clearing_reference=r.text(tx, "ClrSysRef"),
                ),
                transmitted_at=transmitted_at,
                original=dataclasses.replace(
                    original, instruction_id=instruction, end_to_end_id=end_to_end, uetr=uetr
                ),
                status=status,
                extensions=extensions + reference.extensions,
                business_header=header,
            )
        )
    return messages


def _decode_reference(
    dialect: Dialect,
    r: Reader,
    reference: etree._Element | None,
    path: str,
    tokenize_account: Callable[[Account, str], Card | None] | None,
) -> CanonicalMessage:
    """What ``OrgnlTxRef`` says of the original transaction, as a canonical response."""
    path = f"{path}/OrgnlTxRef"
    amount, extensions = read_instructed_amount(r, reference, path)
    if amount is None:
        amount = read_amount(r.find(reference, "IntrBkSttlmAmt"), f"{path}/IntrBkSttlmAmt")
    parties = {
        name: dialect.read_party(
            r, r.find(reference, f"{name}/Pty" if dialect.party_choice else name)
        )
        for name in _PARTIES
    }
    account = read_account(r, r.find(reference, "DbtrAcct"))
    card = None
    if account is not None and tokenize_account is not None:
        card = tokenize_account(account, f"{path}/DbtrAcct")
        if card is not None:
            account = None
    priority, service, local, category = read_payment_type(r, reference)
    terms = PaymentTerms(
        service_level=service,
        local_instrument=local,
        category_purpose=category,
        purpose=r.text(reference, "Purp/Cd") or r.text(reference, "Purp/Prtry"),
        instruction_priority=priority,
        requested_execution_date=dialect.read_execution_date(r, reference, path),
    )
    agents = Agents(
        debtor_agent=dialect.read_agent(r, r.find(reference, "DbtrAgt")),
        creditor_agent=dialect.read_agent(r, r.find(reference, "CdtrAgt")),
    )
    return CanonicalMessage(
        kind=MessageKind.CREDIT_TRANSFER,
        function=MessageFunction.RESPONSE,
        tenant="",
        ids=Identifiers(message_id=""),
        amount=amount,
        card=card,
        debtor=parties["Dbtr"],
        debtor_account=account,
        creditor=parties["Cdtr"],
        creditor_account=read_account(r, r.find(reference, "CdtrAcct")),
        ultimate_debtor=parties["UltmtDbtr"],
        ultimate_creditor=parties["UltmtCdtr"],
        agents=None if _empty(agents) else agents,
        remittance=r.texts(reference, "RmtInf/Ustrd"),
        extensions=extensions,
        payment_terms=None if _empty(terms) else terms,
    )


# -- encode -------------------------------------------------------------------------------


def _names_transaction(message: CanonicalMessage) -> bool:
    ids, original = message.ids, message.original or OriginalTransaction()
    return (
        any(
            value is not None
            for value in (
                ids.end_to_end_id,
                ids.instruction_id,
                ids.uetr,
                ids.clearing_reference,
                original.end_to_end_id,
                original.instruction_id,
                original.uetr,
                message.amount,
            )
        )
        or _extension(message, STATUS_ID) is not None
    )


def _extension(message: CanonicalMessage, key: str) -> str | None:
    return next((e.value for e in message.extensions if e.key == key), None)


def _lines(text: str) -> list[str]:
    """``text`` as ``AddtlInf`` lines (Max105Text), broken at spaces: the decoder joins the
    lines with a space, so a text comes back as it was (a word of more than 105 characters
    is cut)."""
    return textwrap.wrap(text, _MAX105, break_on_hyphens=False) or [text[:_MAX105]]


def _notes(status: Status) -> list[str]:
    notes = []
    if status.original is not None:
        notes.append(f"ORGNL {status.original.scheme} {status.original.code}")
    if status.additional_info:
        notes.extend(_lines(status.additional_info))
    return notes


def _write_status(
    b: Builder, parent: etree._Element, code_name: str, status: Status | None
) -> None:
    if status is None:
        return
    b.child(parent, code_name, status.code.value)
    reason, notes = status.reason, _notes(status)
    if reason is not None or notes:
        info = b.child(parent, "StsRsnInf")
        b.optional(info, "Rsn/Cd", reason)
        for note in notes:
            b.child(info, "AddtlInf", note)


def encode_document(
    messages: Sequence[CanonicalMessage], namespace: str, *, now: Callable[[], dt.datetime]
) -> etree._Element:
    """A pain.002 ``Document`` (children not yet in schema order) for ``messages``."""
    dialect = Dialect.of(namespace)
    if dialect.family != "pain.002":
        raise ComponentError("/Document", f"{dialect.message_id} is not a pain.002")
    if not messages:
        raise ComponentError("/Document/CstmrPmtStsRpt", "a pain.002 needs a status")
    b = Builder(namespace)
    first = messages[0]
    document, body, _group = start_document(b, "CstmrPmtStsRpt", first, now)
    original = first.original or OriginalTransaction()
    original_group = b.child(body, "OrgnlGrpInfAndSts")
    b.child(original_group, "OrgnlMsgId", max35(original.message_id or NOT_PROVIDED))
    default_type = _ORIGINAL_MESSAGE.get(dialect.message_id, _DEFAULT_ORIGINAL_MESSAGE)
    b.child(original_group, "OrgnlMsgNmId", (original.message_type or default_type)[:35])
    if original.transmitted_at is not None:
        b.child(original_group, "OrgnlCreDtTm", format_datetime(original.transmitted_at))
    group_messages = [m for m in messages if m.ids.batch_id is None and not _names_transaction(m)]
    if len(group_messages) > 1:
        raise ComponentError(
            f"{element_path(original_group)}/GrpSts",
            "more than one message holds the group status (no batch id, no transaction)",
        )
    if group_messages:
        _write_status(b, original_group, "GrpSts", group_messages[0].status)
    in_group = {id(m) for m in group_messages}
    blocks: dict[str, etree._Element] = {}
    for message in messages:
        if id(message) in in_group:
            continue
        batch = message.ids.batch_id or NOT_PROVIDED
        payment = blocks.get(batch)
        if payment is None:
            payment = blocks[batch] = b.child(body, "OrgnlPmtInfAndSts")
            b.child(payment, "OrgnlPmtInfId", max35(batch))
        if _names_transaction(message):
            _encode_transaction(b, dialect, payment, message)
        elif payment.find(f"{{{namespace}}}PmtInfSts") is not None:
            raise ComponentError(
                f"{element_path(payment)}/PmtInfSts",
                f"more than one message holds the status of batch {batch!r}",
            )
        else:
            _write_status(b, payment, "PmtInfSts", message.status)
    dialect.finish(document)
    return document


def _encode_transaction(
    b: Builder, dialect: Dialect, payment: etree._Element, message: CanonicalMessage
) -> None:
    tx = b.child(payment, "TxInfAndSts")
    ids, original = message.ids, message.original or OriginalTransaction()
    b.optional(tx, "StsId", _extension(message, STATUS_ID))
    b.optional(tx, "OrgnlInstrId", original.instruction_id or ids.instruction_id)
    b.optional(tx, "OrgnlEndToEndId", original.end_to_end_id or ids.end_to_end_id)
    if dialect.uetr:
        b.optional(tx, "OrgnlUETR", original.uetr or ids.uetr)
    _write_status(b, tx, "TxSts", message.status)
    b.optional(tx, "AcctSvcrRef", _extension(message, ACCOUNT_SERVICER_REFERENCE))
    b.optional(tx, "ClrSysRef", ids.clearing_reference)
    reference = b.child(tx, "OrgnlTxRef")
    if message.amount is not None:
        write_instructed_amount(b, reference, message)
    terms = message.payment_terms or PaymentTerms()
    if terms.requested_execution_date is not None:
        dialect.write_execution_date(b, reference, terms.requested_execution_date)
    write_payment_type(b, reference, terms)
    for line in message.remittance:
        b.child(b.path(reference, "RmtInf"), "Ustrd", line)
    parties: dict[str, Party | None] = {
        "UltmtDbtr": message.ultimate_debtor,
        "Dbtr": message.debtor,
        "Cdtr": message.creditor,
        "UltmtCdtr": message.ultimate_creditor,
    }
    for name, party in parties.items():
        if party is not None:
            element = b.child(reference, name)
            write_party(b, b.child(element, "Pty") if dialect.party_choice else element, party)
    account = debtor_account(message)
    if account is not None:
        write_account(b, b.child(reference, "DbtrAcct"), account)
    agents = message.agents or Agents()
    if agents.debtor_agent is not None:
        write_agent(b, b.child(reference, "DbtrAgt"), agents.debtor_agent)
    if agents.creditor_agent is not None:
        write_agent(b, b.child(reference, "CdtrAgt"), agents.creditor_agent)
    if message.creditor_account is not None:
        write_account(b, b.child(reference, "CdtrAcct"), message.creditor_account)
    if dialect.party_choice:  # 001.03's OrgnlTxRef has no Purp
        write_code(b, reference, "Purp", terms.purpose, "purpose")
    if len(reference) == 0:
        tx.remove(reference)


def encode_reject(
    original_message_id: str | None,
    original_message_type: str | None,
    reason_code: str,
    text: str | None,
    *,
    now: Callable[[], dt.datetime],
    namespace: str | None = None,
) -> etree._Element:
    """A pain.002 ``Document`` (in schema order) rejecting a whole pain.001: group status
    ``RJCT``, ``reason_code`` (an ExternalStatusReason1Code such as ``FF01``, ``AM10``) and
    ``text`` (where and why; at most three ``AddtlInf`` of 105 characters).

    ``namespace`` defaults to pain.002.001.03 for a pain.001.001.03, else pain.002.001.10.
    """
    if namespace is None:
        target = "pain.002.001.03" if original_message_type == "pain.001.001.03" else None
        namespace = MESSAGE_TYPES[target or "pain.002.001.10"].namespace
    moment = now()
    lines = _lines(text)[:_MAX_REJECT_LINES] if text else []
    status = Status(TransactionStatus.RJCT, reason_code, None, " ".join(lines) or None)
    message = CanonicalMessage(
        kind=MessageKind.CREDIT_TRANSFER,
        function=MessageFunction.RESPONSE,
        tenant="",
        ids=Identifiers(message_id=f"RJCT{moment:%Y%m%d%H%M%S%f}"),
        transmitted_at=moment,
        original=OriginalTransaction(
            message_type=original_message_type, message_id=original_message_id
        ),
        status=status,
    )
    document = encode_document([message], namespace, now=now)
    message_type = MESSAGE_TYPES[Dialect.of(namespace).message_id]
    SchemaOrder.for_message(message_type).arrange(document)
    return document
