"""pacs.002 (FIToFIPaymentStatusReport) <-> canonical status reports (financial responses).

Version 001.10 (CBPR+, FedNow). One canonical message per ``TxInfAndSts``; a report with
group status only (no transaction) gives one message for the group.

==================================  ===========================================================
pacs.002                             canonical
==================================  ===========================================================
``GrpHdr/MsgId``, ``CreDtTm``        ``ids.source_message_id``, ``transmitted_at``
``OrgnlGrpInfAndSts/OrgnlMsgId``,    ``original.message_id``, ``original.message_type``
``OrgnlMsgNmId``
``OrgnlInstrId``, ``OrgnlEndToEndId``  ``original.instruction_id`` and ``ids.instruction_id``,
                                     ``original.end_to_end_id`` and ``ids.end_to_end_id`` (so a
                                     0210 built from it carries the request's STAN and RRN)
``OrgnlUETR``, ``OrgnlTxId``         ``original.uetr`` / ``ids.uetr``, ``ids.transaction_id``
``TxSts`` (or ``GrpSts``)            ``status.code``
``StsRsnInf/Rsn/Cd``                 ``status.reason``
``StsRsnInf/AddtlInf``               ``status.additional_info``; one line ``ORGNL <scheme>
                                     <code>`` carries the source protocol's code (ISO 8583 field
                                     39), so a round trip keeps it (``CANONICAL.md``)
``OrgnlTxRef/IntrBkSttlmAmt``        ``amount``
``InstgAgt``, ``InstdAgt``           ``agents.instructing`` / ``instructed``
==================================  ===========================================================
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence

from lxml import etree

from adapters.iso20022.components import (
    Builder,
    ComponentError,
    Reader,
    element_path,
    identity_and_time,
    message_body,
    read_agent,
    read_amount,
    start_document,
    write_agent,
    write_amount,
)
from adapters.iso20022.pacs008 import correlation_key
from canonical_model.codes import OriginalCode, Status, TransactionStatus
from canonical_model.messages import (
    Agents,
    BusinessHeader,
    CanonicalMessage,
    Identifiers,
    MessageFunction,
    MessageKind,
    OriginalTransaction,
)

__all__ = ["DEFAULT_ORIGINAL_MESSAGE", "decode_reports", "encode_document"]

DEFAULT_ORIGINAL_MESSAGE = "pacs.008.001.08"
"""``OrgnlMsgNmId`` when the canonical message does not say what it answers."""

_ORIGINAL_CODE = re.compile(r"^ORGNL (\S+) (\S+)$")
_MAX105 = 105


def _status(r: Reader, element: etree._Element, code_path: str, path: str) -> Status | None:
    text = r.text(element, code_path)
    if text is None:
        return None
    try:
        code = TransactionStatus(text)
    except ValueError:
        raise ComponentError(f"{path}/{code_path}", "not a transaction status code") from None
    reason = r.text(element, "StsRsnInf/Rsn/Cd") or r.text(element, "StsRsnInf/Rsn/Prtry")
    original = None
    notes = []
    for line in r.texts(element, "StsRsnInf/AddtlInf"):
        match = _ORIGINAL_CODE.match(line)
        if match and original is None:
            original = OriginalCode(match.group(1), match.group(2))
        else:
            notes.append(line)
    return Status(code, reason, original, " ".join(notes) or None)


def decode_reports(
    document: etree._Element,
    namespace: str,
    *,
    tenant: str,
    new_message_id: Callable[[], str],
    header: BusinessHeader | None,
) -> list[CanonicalMessage]:
    """Every transaction status of a pacs.002 ``Document`` as a canonical response."""
    r = Reader(namespace)
    body = message_body(r, document, "FIToFIPmtStsRpt")
    group = r.find(body, "GrpHdr")
    message_id, transmitted_at = identity_and_time(r, group, "/Document/FIToFIPmtStsRpt/GrpHdr")
    original_group = r.find(body, "OrgnlGrpInfAndSts")
    original_message_id = r.text(original_group, "OrgnlMsgId")
    original_type = r.text(original_group, "OrgnlMsgNmId")
    group_status = None
    if original_group is not None:
        group_status = _status(r, original_group, "GrpSts", element_path(original_group))
    transactions = r.findall(body, "TxInfAndSts")
    messages = []
    targets: list[etree._Element | None] = [*transactions] or [None]
    for tx in targets:
        path = element_path(tx) if tx is not None else "/Document/FIToFIPmtStsRpt"
        status = (_status(r, tx, "TxSts", path) if tx is not None else None) or group_status
        uetr = r.text(tx, "OrgnlUETR")
        end_to_end = r.text(tx, "OrgnlEndToEndId")
        instruction = r.text(tx, "OrgnlInstrId")
        instructing = r.find(tx, "InstgAgt")
        instructed = r.find(tx, "InstdAgt")
        messages.append(
            CanonicalMessage(
                kind=MessageKind.FINANCIAL,
                function=MessageFunction.RESPONSE,
                tenant=tenant,
                ids=Identifiers(
                    message_id=new_message_id(),
                    end_to_end_id=end_to_end,
                    instruction_id=instruction,
                    uetr=uetr,
                    transaction_id=r.text(tx, "OrgnlTxId"),
                    correlation_key=correlation_key(uetr, original_message_id, end_to_end),
                    source_message_id=message_id,
                    clearing_reference=r.text(tx, "ClrSysRef"),
                ),
                transmitted_at=transmitted_at,
                amount=read_amount(
                    r.find(tx, "OrgnlTxRef/IntrBkSttlmAmt"), f"{path}/OrgnlTxRef/IntrBkSttlmAmt"
                ),
                agents=Agents(
                    instructing=read_agent(
                        r, instructing if instructing is not None else r.find(group, "InstgAgt")
                    ),
                    instructed=read_agent(
                        r, instructed if instructed is not None else r.find(group, "InstdAgt")
                    ),
                ),
                original=OriginalTransaction(
                    message_type=original_type,
                    message_id=original_message_id,
                    instruction_id=instruction,
                    end_to_end_id=end_to_end,
                    uetr=uetr,
                ),
                status=status,
                business_header=header,
            )
        )
    return messages


def _notes(status: Status) -> list[str]:
    notes = []
    if status.original is not None:
        notes.append(f"ORGNL {status.original.scheme} {status.original.code}")
    if status.additional_info:
        text = status.additional_info
        notes.extend(text[i : i + _MAX105] for i in range(0, len(text), _MAX105))
    return notes


def encode_document(
    messages: Sequence[CanonicalMessage], namespace: str, *, now: Callable[[], dt.datetime]
) -> etree._Element:
    """A pacs.002 ``Document`` (children not yet in schema order) for ``messages``."""
    b = Builder(namespace)
    first = messages[0]
    document, body, _group = start_document(b, "FIToFIPmtStsRpt", first, now)
    original = first.original or OriginalTransaction()
    if original.message_id is not None or _is_iso20022_id(original.message_type):
        # Optional in pacs.002.001.10: written only when the original message is known.
        original_group = b.child(body, "OrgnlGrpInfAndSts")
        b.child(original_group, "OrgnlMsgId", original.message_id or "NOTPROVIDED")
        b.child(
            original_group,
            "OrgnlMsgNmId",
            original.message_type
            if _is_iso20022_id(original.message_type)
            else DEFAULT_ORIGINAL_MESSAGE,
        )
    for message in messages:
        if message.status is None:
            raise ComponentError(
                "/Document/FIToFIPmtStsRpt/TxInfAndSts/TxSts", "a status report needs a status"
            )
        tx = b.child(body, "TxInfAndSts")
        ids, original = message.ids, message.original or OriginalTransaction()
        b.optional(tx, "OrgnlInstrId", original.instruction_id or ids.instruction_id)
        b.optional(tx, "OrgnlEndToEndId", original.end_to_end_id or ids.end_to_end_id)
        b.optional(tx, "OrgnlTxId", ids.transaction_id)
        b.optional(tx, "OrgnlUETR", original.uetr or ids.uetr)
        b.child(tx, "TxSts", message.status.code.value)
        reason, notes = message.status.reason, _notes(message.status)
        if reason is not None or notes:
            info = b.child(tx, "StsRsnInf")
            b.optional(info, "Rsn/Cd", reason)
            for note in notes:
                b.child(info, "AddtlInf", note)
        b.optional(tx, "ClrSysRef", ids.clearing_reference)
        agents = message.agents or Agents()
        instructing = agents.instructing or agents.acquirer
        instructed = agents.instructed or agents.receiver
        if instructing is not None:
            write_agent(b, b.child(tx, "InstgAgt"), instructing)
        if instructed is not None:
            write_agent(b, b.child(tx, "InstdAgt"), instructed)
        if message.amount is not None:
            write_amount(b, b.path(tx, "OrgnlTxRef"), "IntrBkSttlmAmt", message.amount)
    return document


def _is_iso20022_id(value: str | None) -> bool:
    return value is not None and re.fullmatch(r"[a-z]{4}\.\d{3}\.\d{3}\.\d{2}", value) is not None
