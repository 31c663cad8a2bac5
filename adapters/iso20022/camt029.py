"""camt.029 (ResolutionOfInvestigation) <-> canonical cancellation responses.

Version 001.09 (CBPR+, SEPA). The answer to a camt.056 recall: the assigned agent says
whether the payment will be returned (the cancellation is accepted: a pacs.004 follows) or
not. One canonical message per ``CxlDtls/TxInfAndSts``, kind ``CANCELLATION``, function
``RESPONSE``, carrying the recalled transaction's ids as its own (as camt.056 and pacs.004
do, :mod:`adapters.iso20022.camt056`), so that ``ids.correlation_key`` matches the
pacs.008 that was recalled. A camt.029 with no ``TxInfAndSts`` (a resolution of the whole
case) gives one message from its group status.

======================================  ===========================================================
camt.029                                canonical
======================================  ===========================================================
``Assgnmt/Id``                          ``ids.source_message_id`` (encode: the hub message id)
``Assgnmt/Assgnr``, ``Assgne``          ``agents.instructing``, ``agents.instructed``
``Assgnmt/CreDtTm``                     ``transmitted_at``
``Sts/Conf``                            extension ``iso20022:Conf`` (``CNCL`` cancelled as
                                        requested, ``RJCR`` cancellation rejected, ``PDCR``
                                        pending...)
``TxInfAndSts/CxlStsId``                extension ``iso20022:CxlStsId``
``OrgnlGrpInf/OrgnlMsgId``,             ``original.message_id``, ``original.message_type``,
``OrgnlMsgNmId``, ``OrgnlCreDtTm``      ``original.transmitted_at`` (from ``OrgnlGrpInfAndSts``
                                        when the transaction has none)
``OrgnlInstrId``, ``OrgnlEndToEndId``,  ``original.*`` and ``ids.*``, as in camt.056
``OrgnlUETR``, ``OrgnlTxId``
``TxCxlSts`` (else ``Sts/Conf``)        ``status.code``: ``RJCR`` -> ``RJCT`` (refused),
                                        ``ACCR`` / ``CNCL`` -> ``CANC`` (will be returned),
                                        ``PDCR`` / ``PECR`` -> ``PDNG``
``CxlStsRsnInf/Rsn/Cd`` (or ``Prtry``)  ``status.reason`` (an ExternalPaymentCancellation-
                                        Rejection1Code: ``LEGL``, ``CUST``, ``NOAS``...)
``CxlStsRsnInf/AddtlInf``               ``status.additional_info``
``OrgnlIntrBkSttlmAmt``                 ``amount``
======================================  ===========================================================

Not carried: ``RslvdCase``, ``ModDtls``, ``ClmNonRctDtls``, ``StmtDtls``, ``CrrctnTx``,
``RsltnRltdInf``, ``OrgnlTxRef`` (the recalled payment is known by its ids).

:func:`encode_resolutions` writes one: ``Sts/Conf`` from the first message's extension (else
``CNCL`` when it is accepted, ``RJCR`` when refused), one ``CxlDtls`` with a
``TxInfAndSts`` per message, validated against the XSD before it is returned.

>>> import datetime as dt
>>> from canonical_model.messages import Identifiers
>>> from canonical_model.money import Money
>>> refusal = CanonicalMessage(
...     MessageKind.CANCELLATION, MessageFunction.RESPONSE, "clearing",
...     Identifiers("r-1", end_to_end_id="E2E-1", uetr="6f1c9a4e-1b2c-4d3e-8f4a-000000000001"),
...     amount=Money.of("25.00", "EUR"),
...     original=OriginalTransaction(message_type="pacs.008.001.08", message_id="pmt-1"),
...     status=Status(TransactionStatus.RJCT, "LEGL"),
... )
>>> now = lambda: dt.datetime(2026, 11, 29, 12, tzinfo=dt.UTC)
>>> document = encode_resolutions([refusal], now=now)
>>> (back,) = decode_resolution_document(document, tenant="bank-a", new_message_id=lambda: "m-2")
>>> back.status.code, back.status.reason, back.original.message_id, back.ids.end_to_end_id
(<TransactionStatus.RJCT: 'RJCT'>, 'LEGL', 'pmt-1', 'E2E-1')
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Final

from lxml import etree

from adapters.iso20022.catalog import MESSAGE_TYPES
from adapters.iso20022.components import (
    Builder,
    ComponentError,
    Reader,
    element_path,
    format_datetime,
    identity_and_time,
    message_body,
    read_agent,
    read_amount,
    write_agent,
    write_amount,
)
from adapters.iso20022.ordering import SchemaOrder
from adapters.iso20022.pacs004 import read_original, write_original_group
from adapters.iso20022.pacs008 import correlation_key, max35
from adapters.iso20022.pacs009 import EXTENSION_PREFIX
from adapters.iso20022.safexml import parse_xml
from adapters.iso20022.validation import SchemaValidator, split_envelope
from canonical_model.codes import Status, TransactionStatus
from canonical_model.messages import (
    Agent,
    Agents,
    BusinessHeader,
    CanonicalMessage,
    Extension,
    Identifiers,
    MessageFunction,
    MessageKind,
    OriginalTransaction,
)

__all__ = [
    "CANCELLATION_STATUS",
    "MESSAGE_ID",
    "decode_resolution_document",
    "decode_resolutions",
    "encode_document",
    "encode_resolutions",
]

MESSAGE_ID: Final = "camt.029.001.09"

CANCELLATION_STATUS: Final[Mapping[str, TransactionStatus]] = MappingProxyType(
    {
        "RJCR": TransactionStatus.RJCT,
        "ACCR": TransactionStatus.CANC,
        "CNCL": TransactionStatus.CANC,
        "PDCR": TransactionStatus.PDNG,
        "PECR": TransactionStatus.PDNG,
    }
)
"""``TxCxlSts`` / ``Sts/Conf`` -> the canonical status of the cancellation."""

_CONF: Final = f"{EXTENSION_PREFIX}Conf"
_STATUS_ID: Final = f"{EXTENSION_PREFIX}CxlStsId"


def _first(*elements: etree._Element | None) -> etree._Element | None:
    # Never `a or b` on lxml elements: their truth value is "has children".
    return next((e for e in elements if e is not None), None)


def _assignment_agent(r: Reader, element: etree._Element | None) -> Agent | None:
    if element is None:
        return None
    agent = r.find(element, "Agt")
    if agent is not None:
        return read_agent(r, agent)
    name = r.text(element, "Pty/Nm")
    return Agent(name=name) if name else None


def _status(r: Reader, code: str | None, infos: Sequence[etree._Element], path: str) -> Status:
    canonical = CANCELLATION_STATUS.get(code or "")
    if canonical is None:
        raise ComponentError(path, f"cancellation status {code!r} is not one the hub knows")
    reason: str | None = None
    notes: list[str] = []
    for info in infos:
        reason = reason or r.text(info, "Rsn/Cd") or r.text(info, "Rsn/Prtry")
        notes.extend(r.texts(info, "AddtlInf"))
    return Status(canonical, reason, None, " ".join(notes) or None)


def decode_resolutions(
    document: etree._Element,
    namespace: str,
    *,
    tenant: str,
    new_message_id: Callable[[], str],
    header: BusinessHeader | None,
) -> list[CanonicalMessage]:
    """Every ``CxlDtls/TxInfAndSts`` of a camt.029 ``Document`` as a canonical cancellation
    response (see the module docstring)."""
    r = Reader(namespace)
    body = message_body(r, document, "RsltnOfInvstgtn")
    root_path = "/Document/RsltnOfInvstgtn"
    assignment = r.find(body, "Assgnmt")
    assignment_id, transmitted_at = identity_and_time(r, assignment, f"{root_path}/Assgnmt", "Id")
    assigner = _assignment_agent(r, r.find(assignment, "Assgnr"))
    assignee = _assignment_agent(r, r.find(assignment, "Assgne"))
    conf = r.text(body, "Sts/Conf")
    targets: list[tuple[etree._Element | None, etree._Element | None]] = []
    for details in r.findall(body, "CxlDtls"):
        group = r.find(details, "OrgnlGrpInfAndSts")
        targets.extend((group, tx) for tx in r.findall(details, "TxInfAndSts"))
        if not r.findall(details, "TxInfAndSts"):
            targets.append((group, None))
    if not targets:
        targets.append((None, None))
    messages = []
    for group, tx in targets:
        path = element_path(tx) if tx is not None else f"{root_path}/Sts"
        original_group = _first(r.find(tx, "OrgnlGrpInf"), group)
        original_id, original_type, original_created = read_original(r, original_group, path)
        uetr = r.text(tx, "OrgnlUETR")
        end_to_end = r.text(tx, "OrgnlEndToEndId")
        instruction = r.text(tx, "OrgnlInstrId")
        code = r.text(tx, "TxCxlSts") or r.text(group, "GrpCxlSts") or conf
        extensions = [Extension(_CONF, conf)] if conf else []
        status_id = r.text(tx, "CxlStsId")
        if status_id is not None:
            extensions.append(Extension(_STATUS_ID, status_id))
        messages.append(
            CanonicalMessage(
                kind=MessageKind.CANCELLATION,
                function=MessageFunction.RESPONSE,
                tenant=tenant,
                ids=Identifiers(
                    message_id=new_message_id(),
                    end_to_end_id=end_to_end,
                    instruction_id=instruction,
                    uetr=uetr,
                    transaction_id=r.text(tx, "OrgnlTxId"),
                    correlation_key=correlation_key(uetr, original_id, end_to_end),
                    source_message_id=assignment_id,
                ),
                transmitted_at=transmitted_at,
                amount=read_amount(
                    r.find(tx, "OrgnlIntrBkSttlmAmt"), f"{path}/OrgnlIntrBkSttlmAmt"
                ),
                agents=Agents(instructing=assigner, instructed=assignee),
                original=OriginalTransaction(
                    message_type=original_type,
                    message_id=original_id,
                    instruction_id=instruction,
                    end_to_end_id=end_to_end,
                    uetr=uetr,
                    transmitted_at=original_created,
                ),
                status=_status(
                    r,
                    code,
                    r.findall(tx, "CxlStsRsnInf") or r.findall(group, "CxlStsRsnInf"),
                    path,
                ),
                extensions=tuple(extensions),
                business_header=header,
            )
        )
    return messages


def decode_resolution_document(
    payload: bytes, *, tenant: str, new_message_id: Callable[[], str]
) -> list[CanonicalMessage]:
    """A camt.029 document (bare or in its envelope), parsed hardened and validated against
    its XSD, as canonical cancellation responses. The adapter
    (:class:`~adapters.iso20022.adapter.Iso20022Adapter`) decodes camt.029 the same way;
    this is for callers that have only the bytes. Raises ``ValueError`` naming the path."""
    root = parse_xml(payload)
    _, document = split_envelope(root)
    message_type = MESSAGE_TYPES[MESSAGE_ID]
    if etree.QName(document).namespace != message_type.namespace:
        raise ValueError(f"/Document: not a {MESSAGE_ID}")
    problems = SchemaValidator().validate(document, message_type)
    if problems:
        raise ValueError(f"{problems[0].path}: {problems[0].reason}")
    return decode_resolutions(
        document,
        message_type.namespace,
        tenant=tenant,
        new_message_id=new_message_id,
        header=None,
    )


# -- encode -------------------------------------------------------------------------------

_CODE_OF: Final = {
    TransactionStatus.RJCT: "RJCR",
    TransactionStatus.CANC: "ACCR",
    TransactionStatus.PDNG: "PDCR",
}


def _extension(message: CanonicalMessage, key: str) -> str | None:
    return next((e.value for e in message.extensions if e.key == key), None)


def encode_document(
    messages: Sequence[CanonicalMessage], namespace: str, *, now: Callable[[], dt.datetime]
) -> etree._Element:
    """A camt.029 ``Document`` (children not yet in schema order) for cancellation
    responses."""
    b = Builder(namespace)
    document = b.element("Document")
    body = b.child(document, "RsltnOfInvstgtn")
    first = messages[0]
    assignment = b.child(body, "Assgnmt")
    b.child(assignment, "Id", max35(first.ids.source_message_id or first.ids.message_id))
    agents = first.agents or Agents()
    write_agent(b, b.path(assignment, "Assgnr/Agt"), agents.instructing or Agent())
    write_agent(b, b.path(assignment, "Assgne/Agt"), agents.instructed or Agent())
    b.child(assignment, "CreDtTm", format_datetime(first.transmitted_at or now()))
    first_status = first.status.code if first.status is not None else TransactionStatus.RJCT
    conf = _extension(first, _CONF) or (
        "RJCR" if first_status is TransactionStatus.RJCT else "CNCL"
    )
    b.path(body, "Sts/Conf", conf)
    details = b.child(body, "CxlDtls")
    for message in messages:
        tx = b.child(details, "TxInfAndSts")
        b.optional(tx, "CxlStsId", _extension(message, _STATUS_ID))
        original = message.original or OriginalTransaction()
        write_original_group(b, tx, "OrgnlGrpInf", message.original)
        ids = message.ids
        b.optional(tx, "OrgnlInstrId", original.instruction_id or ids.instruction_id)
        b.optional(tx, "OrgnlEndToEndId", original.end_to_end_id or ids.end_to_end_id)
        b.optional(tx, "OrgnlTxId", ids.transaction_id)
        b.optional(tx, "OrgnlUETR", original.uetr or ids.uetr)
        status = message.status
        if status is None or status.code not in _CODE_OF:
            raise ComponentError(
                element_path(tx), "a cancellation response needs a status RJCT, CANC or PDNG"
            )
        b.child(tx, "TxCxlSts", _CODE_OF[status.code])
        if status.reason is not None or status.additional_info:
            info = b.child(tx, "CxlStsRsnInf")
            b.optional(info, "Rsn/Cd", status.reason)
            if status.additional_info:
                b.child(info, "AddtlInf", status.additional_info[:105])
        if message.amount is not None:
            write_amount(b, tx, "OrgnlIntrBkSttlmAmt", message.amount)
    return document


def encode_resolutions(
    messages: Sequence[CanonicalMessage], *, now: Callable[[], dt.datetime] | None = None
) -> bytes:
    """A camt.029.001.09 document for ``messages`` (UTF-8 XML), in schema order and
    validated against its XSD (``ValueError`` naming the path if it does not validate)."""
    if not messages:
        raise ValueError("nothing to encode")
    message_type = MESSAGE_TYPES[MESSAGE_ID]
    document = encode_document(
        messages, message_type.namespace, now=now or (lambda: dt.datetime.now(dt.UTC))
    )
    SchemaOrder.for_message(message_type).arrange(document)
    problems = SchemaValidator().validate(document, message_type)
    if problems:
        raise ValueError(f"{problems[0].path}: {problems[0].reason}")
    return bytes(etree.tostring(document, xml_declaration=True, encoding="UTF-8"))
