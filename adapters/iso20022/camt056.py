"""camt.056 (FIToFIPaymentCancellationRequest) <-> canonical cancellation requests.

Version 001.08 (CBPR+, FedNow, SEPA). One canonical message per ``Undrlyg/TxInf``, kind
``CANCELLATION``, function ``REQUEST``; an ``Undrlyg`` that cancels a whole group (no
``TxInf``) gives one message for the group, from ``OrgnlGrpInfAndCxl``.

**The canonical cancellation (ours).** A cancellation request is about the original
transaction, not a payment of its own: its ``amount`` and ``settlement_date`` are the
original's (``OrgnlIntrBkSttlmAmt``, ``OrgnlIntrBkSttlmDt``), and its parties and agents
(from ``OrgnlTxRef``) are the original's, the same way round. It refers to the original
through ``original`` and carries the original's ids as its own ``ids`` (as pacs.002 and
pacs.004 do), so that ``ids.correlation_key`` matches the pacs.008 it cancels. The
assignment (who asks whom) is the message's header. Its ``status`` is ``Status(RJCT,
reason=<cancellation reason>, original=<source protocol code>, additional_info=<AddtlInf>)``,
as for a return (:mod:`adapters.iso20022.pacs004`): the original is to be undone, for that
reason.

======================================  ===========================================================
camt.056                                canonical
======================================  ===========================================================
``Assgnmt/Id``                          ``ids.source_message_id`` (encode: the hub message id)
``Assgnmt/Assgnr``, ``Assgne``          ``agents.instructing``, ``agents.instructed`` (an ``Agt``;
                                        a ``Pty`` is read as an agent of its name and id)
``Assgnmt/CreDtTm``                     ``transmitted_at``
``CtrlData/NbOfTxs``                    (encode: the number of messages)
``TxInf/CxlId``                         extension ``iso20022:CxlId``; encoding an ISO 8583
                                        reversal: its own STAN (``ids.instruction_id``)
``OrgnlGrpInf/OrgnlMsgId``,             ``original.message_id``, ``original.message_type``,
``OrgnlMsgNmId``, ``OrgnlCreDtTm``      ``original.transmitted_at`` (from
                                        ``OrgnlGrpInfAndCxl`` when the transaction has none)
``OrgnlInstrId``                        ``original.instruction_id`` and ``ids.instruction_id``
``OrgnlEndToEndId``                     ``original.end_to_end_id`` and ``ids.end_to_end_id``
``OrgnlUETR``                           ``original.uetr`` and ``ids.uetr``
``OrgnlTxId``, ``OrgnlClrSysRef``       ``ids.transaction_id``, ``ids.clearing_reference``
``OrgnlIntrBkSttlmAmt``                 ``amount`` (or ``OrgnlTxRef/IntrBkSttlmAmt``)
``OrgnlIntrBkSttlmDt``                  ``settlement_date`` (or ``OrgnlTxRef/IntrBkSttlmDt``)
``TxInf/Assgnr``, ``Assgne``            ``agents.instructing`` / ``instructed`` of that message
``CxlRsnInf/Rsn/Cd`` (or ``Prtry``)     ``status.reason``; ``status.code`` is ``RJCT``
``CxlRsnInf/AddtlInf``                  ``status.additional_info``; one line ``ORGNL <scheme>
                                        <code>`` is ``status.original`` (ISO 8583 field 39)
``OrgnlTxRef/Dbtr``, ``Cdtr``,          ``debtor``, ``creditor``, ``ultimate_debtor``,
``UltmtDbtr``, ``UltmtCdtr``            ``ultimate_creditor`` (a party given as ``Agt``: see
                                        :func:`~adapters.iso20022.pacs009.read_party_choice`)
``OrgnlTxRef/DbtrAcct``, ``CdtrAcct``   ``debtor_account``, ``creditor_account``
``OrgnlTxRef/DbtrAgt``, ``CdtrAgt``     ``agents.debtor_agent`` / ``creditor_agent``
``OrgnlTxRef/Amt/InstdAmt``             ``instructed_amount``
``OrgnlTxRef/SttlmInf``,                ``payment_terms`` (settlement method, clearing system,
``PmtTpInf``, ``Purp``                  service level, local instrument, category purpose,
                                        priority, purpose)
``OrgnlTxRef/RmtInf/Ustrd``             ``remittance``
======================================  ===========================================================

Not carried: ``Case`` (the investigation case and its creator), ``CxlRsnInf/Orgtr`` (who
asked), the group totals of ``OrgnlGrpInfAndCxl``; and, the other way,
``payment_terms.charge_bearer`` (``OrgnlTxRef`` has no ``ChrgBr``). Encoding writes one
``Undrlyg`` holding a ``TxInf`` per message, the assignment from the first message (an agent
it lacks is ``NOTPROVIDED``), and a ``TxInf/Assgnr`` / ``Assgne`` only where a message's
agent differs from the assignment's.

**Cancellation reasons.** The reason is ``status.reason`` when it is an
ExternalCancellationReason1Code other than ``NARR``. An ISO 8583 reversal carries field 39
(``ORGNL iso8583 <code>``) and, in ``status.reason``, the ISO 20022 status reason the project
maps it to (``AB05`` for 68, ``NARR`` for a code it does not map), which is no cancellation
reason; such a reversal is given the cancellation reason of this table (ours), first by its
field 39, else by its status reason:

==========  ==========================================  ========  =============================
field 39    meaning on a reversal                       status    ExternalCancellationReason1Code
==========  ==========================================  ========  =============================
17          customer cancellation                                 ``CUST`` requested by debtor
94          duplicate transmission                      AM05      ``DUPL`` duplicate payment
68          response received too late (time-out)       AB05      ``TECH`` technical problems
91          issuer or switch inoperative                AB08      ``TECH``
96          system malfunction                          AB09      ``TECH``
06, 22      error, suspected malfunction                          ``TECH``
30          format error                                FF01      ``TECH``
13, 32      invalid amount, partially completed         AM12      ``AM09`` wrong amount
34, 59      suspected fraud                                       ``FRAD`` fraudulent origin
others                                                            ``NARR``
==========  ==========================================  ========  =============================

The field 39 code stays in ``AddtlInf`` as ``ORGNL iso8583 <code>``, and a status reason that
was replaced as ``reason <code>``, so an ISO 8583 round trip keeps its response code.

**Reversals before and after settlement.** ``design/CANONICAL.md``: an ISO 8583 reversal
(0400 / 0420) is a camt.056 before settlement and a pacs.004 after;
:func:`reversal_message_type` decides. The original ids come from field 90 (the original
STAN is ``OrgnlInstrId``, the original MTI 0200 makes ``OrgnlMsgNmId`` ``pacs.008.001.08``),
the RRN is ``OrgnlEndToEndId``, the reversal's own STAN is ``CxlId``. Card-rail data (card
token, acceptor, processing code) is not written: the request refers to the original by its
ids.

>>> import datetime as dt
>>> from canonical_model.codes import OriginalCode, TransactionStatus
>>> from canonical_model.messages import Identifiers, MessageFunction
>>> from canonical_model.money import Money
>>> ns = "urn:iso:std:iso:20022:tech:xsd:camt.056.001.08"
>>> reversal = CanonicalMessage(
...     kind=MessageKind.REVERSAL, function=MessageFunction.ADVICE, tenant="acme",
...     ids=Identifiers(message_id="m-1", end_to_end_id="633216000002", instruction_id="000004"),
...     amount=Money.of("25.50", "EUR"),
...     original=OriginalTransaction(message_type="0200", instruction_id="000002"),
...     status=Status(TransactionStatus.RJCT, "AB05", OriginalCode("iso8583", "68")),
... )
>>> reversal_message_type(reversal)
'camt.056.001.08'
>>> now = lambda: dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC)
>>> document = encode_document([reversal], ns, now=now)
>>> back = decode_cancellations(
...     document, ns, tenant="acme", new_message_id=lambda: "m-2", header=None
... )[0]
>>> back.kind, back.ids.instruction_id, back.ids.end_to_end_id, str(back.amount)
(<MessageKind.CANCELLATION: 'cancellation'>, '000002', '633216000002', '25.50 EUR')
>>> back.status.reason, back.status.original, back.status.additional_info
('TECH', OriginalCode(scheme='iso8583', code='68'), 'reason AB05')
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Final

from lxml import etree

from adapters.iso20022.codesets import code_set
from adapters.iso20022.components import (
    OTHER_CLEARING,
    Builder,
    Reader,
    element_path,
    format_datetime,
    identity_and_time,
    message_body,
    parse_date,
    read_account,
    read_agent,
    read_amount,
    read_party,
    write_account,
    write_agent,
    write_amount,
)
from adapters.iso20022.pacs004 import (
    own_reference,
    read_original,
    read_reasons,
    reason_lines,
    write_original_group,
    write_reasons,
)
from adapters.iso20022.pacs008 import correlation_key, max35
from adapters.iso20022.pacs009 import (
    EXTENSION_PREFIX,
    read_party_choice,
    read_payment_terms,
    write_code,
    write_party_choice,
    write_payment_type,
    write_settlement,
)
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
    Party,
    PaymentTerms,
)

__all__ = [
    "CAMT056",
    "ISO8583_CANCELLATION_REASONS",
    "PACS004",
    "STATUS_CANCELLATION_REASONS",
    "cancellation_reason",
    "decode_cancellations",
    "encode_document",
    "is_after_settlement",
    "reversal_message_type",
]

CAMT056: Final = "camt.056.001.08"
"""The message a reversal before settlement, and a cancellation, is written as."""

PACS004: Final = "pacs.004.001.09"
"""The message a reversal after settlement, and a return, is written as."""

ISO8583_CANCELLATION_REASONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "17": "CUST",
        "94": "DUPL",
        "68": "TECH",
        "91": "TECH",
        "96": "TECH",
        "06": "TECH",
        "22": "TECH",
        "30": "TECH",
        "13": "AM09",
        "32": "AM09",
        "34": "FRAD",
        "59": "FRAD",
    }
)
"""ISO 8583 field 39 of a reversal -> ExternalCancellationReason1Code (ours; see above)."""

STATUS_CANCELLATION_REASONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "AM05": "DUPL",
        "AB05": "TECH",
        "AB08": "TECH",
        "AB09": "TECH",
        "FF01": "TECH",
        "AM12": "AM09",
    }
)
"""An ISO 20022 status reason that is no cancellation reason -> the cancellation reason."""

_ISO8583 = "iso8583"
_NARRATIVE = "NARR"
_BODY = "/Document/FIToFIPmtCxlReq"


def is_after_settlement(message: CanonicalMessage) -> bool:
    """Whether a reversal comes after settlement: it has a settlement date, or its status
    says the original settled (``ACSC``)."""
    return message.settlement_date is not None or (
        message.status is not None and message.status.code is TransactionStatus.ACSC
    )


def reversal_message_type(message: CanonicalMessage) -> str:
    """The ISO 20022 message that carries ``message`` (``design/CANONICAL.md``, "Message
    kinds": a reversal before settlement is a camt.056, after settlement a pacs.004).

    A ``REVERSAL`` (ISO 8583 0400 / 0420) after settlement (:func:`is_after_settlement`)
    and a ``RETURN``: :data:`PACS004`; a ``REVERSAL`` before settlement and a
    ``CANCELLATION``: :data:`CAMT056`. Any other kind raises ``ValueError``.
    """
    if message.kind is MessageKind.RETURN:
        return PACS004
    if message.kind is MessageKind.CANCELLATION:
        return CAMT056
    if message.kind is MessageKind.REVERSAL:
        return PACS004 if is_after_settlement(message) else CAMT056
    raise ValueError(f"a {message.kind.value} message is neither a reversal nor a return")


def cancellation_reason(status: Status | None) -> str | None:
    """The ExternalCancellationReason1Code for ``status``: its reason when it is one (but
    ``NARR``, the reason of an unmapped ISO 8583 code), else from its ISO 8583 code or its
    status reason (the tables above), else ``NARR``; None when there is nothing to say."""
    if status is None:
        return None
    reason = status.reason
    if reason is not None and reason != _NARRATIVE and reason in code_set("cancellation_reason"):
        return reason
    original = status.original
    if original is not None and original.scheme == _ISO8583:
        mapped = ISO8583_CANCELLATION_REASONS.get(original.code)
        if mapped is not None:
            return mapped
    if reason is not None and reason in STATUS_CANCELLATION_REASONS:
        return STATUS_CANCELLATION_REASONS[reason]
    if reason is not None or original is not None:
        return _NARRATIVE
    return None  # nothing to say: no reason at all


# -- decode -------------------------------------------------------------------------------


def _first(*elements: etree._Element | None) -> etree._Element | None:
    # Never `a or b` on lxml elements: their truth value is "has children".
    return next((e for e in elements if e is not None), None)


def _assignment_agent(r: Reader, element: etree._Element | None) -> Agent | None:
    """A ``Party40Choice`` assigner / assignee as an Agent (a ``Pty``: its name and id)."""
    if element is None:
        return None
    agent = r.find(element, "Agt")
    if agent is not None:
        return read_agent(r, agent)
    party = read_party(r, r.find(element, "Pty")) or Party()
    return Agent(
        member_id=party.identification,
        clearing_system=OTHER_CLEARING if party.identification is not None else None,
        name=party.name,
    )


def decode_cancellations(
    document: etree._Element,
    namespace: str,
    *,
    tenant: str,
    new_message_id: Callable[[], str],
    header: BusinessHeader | None,
) -> list[CanonicalMessage]:
    """Every ``Undrlyg/TxInf`` of a camt.056 ``Document`` as a canonical cancellation."""
    r = Reader(namespace)
    body = message_body(r, document, "FIToFIPmtCxlReq")
    assignment = r.find(body, "Assgnmt")
    assignment_id, transmitted_at = identity_and_time(
        r, assignment, "/Document/FIToFIPmtCxlReq/Assgnmt", "Id"
    )
    assigner = _assignment_agent(r, r.find(assignment, "Assgnr"))
    assignee = _assignment_agent(r, r.find(assignment, "Assgne"))
    messages = []
    for underlying in r.findall(body, "Undrlyg"):
        group = r.find(underlying, "OrgnlGrpInfAndCxl")
        targets: list[etree._Element | None] = [*r.findall(underlying, "TxInf")] or [None]
        for tx in targets:
            path = element_path(tx) if tx is not None else element_path(underlying)
            original_group = _first(r.find(tx, "OrgnlGrpInf"), group)
            original_id, original_type, original_created = read_original(r, original_group, path)
            uetr = r.text(tx, "OrgnlUETR")
            end_to_end = r.text(tx, "OrgnlEndToEndId")
            instruction = r.text(tx, "OrgnlInstrId")
            reference = r.find(tx, "OrgnlTxRef")
            extensions: list[Extension] = []
            parties: dict[str, Party | None] = {}
            for name, role in (
                ("Dbtr", "debtor"),
                ("Cdtr", "creditor"),
                ("UltmtDbtr", "ultimate_debtor"),
                ("UltmtCdtr", "ultimate_creditor"),
            ):
                parties[role], found = read_party_choice(r, r.find(reference, name), role)
                extensions.extend(found)
            cancellation_id = r.text(tx, "CxlId")
            if cancellation_id is not None:
                extensions.append(Extension(f"{EXTENSION_PREFIX}CxlId", cancellation_id))
            date = r.text(tx, "OrgnlIntrBkSttlmDt") or r.text(reference, "IntrBkSttlmDt")
            terms = read_payment_terms(
                r, r.find(reference, "SttlmInf"), (reference,), purpose=reference
            )
            instructing = r.find(tx, "Assgnr")
            instructed = r.find(tx, "Assgne")
            messages.append(
                CanonicalMessage(
                    kind=MessageKind.CANCELLATION,
                    function=MessageFunction.REQUEST,
                    tenant=tenant,
                    ids=Identifiers(
                        message_id=new_message_id(),
                        end_to_end_id=end_to_end,
                        instruction_id=instruction,
                        uetr=uetr,
                        transaction_id=r.text(tx, "OrgnlTxId"),
                        correlation_key=correlation_key(uetr, original_id, end_to_end),
                        source_message_id=assignment_id,
                        clearing_reference=r.text(tx, "OrgnlClrSysRef"),
                    ),
                    transmitted_at=transmitted_at,
                    settlement_date=parse_date(date, f"{path}/OrgnlIntrBkSttlmDt")
                    if date
                    else None,
                    amount=read_amount(
                        _first(
                            r.find(tx, "OrgnlIntrBkSttlmAmt"),
                            r.find(reference, "IntrBkSttlmAmt"),
                        ),
                        f"{path}/OrgnlIntrBkSttlmAmt",
                    ),
                    instructed_amount=read_amount(
                        r.find(reference, "Amt/InstdAmt"), f"{path}/OrgnlTxRef/Amt/InstdAmt"
                    ),
                    debtor=parties["debtor"],
                    debtor_account=read_account(r, r.find(reference, "DbtrAcct")),
                    creditor=parties["creditor"],
                    creditor_account=read_account(r, r.find(reference, "CdtrAcct")),
                    ultimate_debtor=parties["ultimate_debtor"],
                    ultimate_creditor=parties["ultimate_creditor"],
                    agents=Agents(
                        instructing=read_agent(r, instructing)
                        if instructing is not None
                        else assigner,
                        instructed=read_agent(r, instructed)
                        if instructed is not None
                        else assignee,
                        debtor_agent=read_agent(r, r.find(reference, "DbtrAgt")),
                        creditor_agent=read_agent(r, r.find(reference, "CdtrAgt")),
                    ),
                    original=OriginalTransaction(
                        message_type=original_type,
                        message_id=original_id,
                        instruction_id=instruction,
                        end_to_end_id=end_to_end,
                        uetr=uetr,
                        transmitted_at=original_created,
                    ),
                    status=read_reasons(
                        r, r.findall(tx, "CxlRsnInf") or r.findall(group, "CxlRsnInf")
                    ),
                    remittance=r.texts(reference, "RmtInf/Ustrd"),
                    payment_terms=None if terms == PaymentTerms() else terms,
                    extensions=tuple(extensions),
                    business_header=header,
                )
            )
    return messages


# -- encode -------------------------------------------------------------------------------


def _agents(message: CanonicalMessage) -> tuple[Agent | None, Agent | None]:
    agents = message.agents or Agents()
    return agents.instructing or agents.acquirer, agents.instructed or agents.receiver


def encode_document(
    messages: Sequence[CanonicalMessage], namespace: str, *, now: Callable[[], dt.datetime]
) -> etree._Element:
    """A camt.056 ``Document`` (children not yet in schema order) for ``messages``:
    cancellations, or ISO 8583 reversals before settlement."""
    b = Builder(namespace)
    document = b.element("Document")
    body = b.child(document, "FIToFIPmtCxlReq")
    first = messages[0]
    assignment = b.child(body, "Assgnmt")
    b.child(assignment, "Id", max35(first.ids.source_message_id or first.ids.message_id))
    assigner, assignee = _agents(first)
    write_agent(b, b.path(assignment, "Assgnr/Agt"), assigner or Agent())
    write_agent(b, b.path(assignment, "Assgne/Agt"), assignee or Agent())
    b.child(assignment, "CreDtTm", format_datetime(first.transmitted_at or now()))
    b.path(body, "CtrlData/NbOfTxs", str(len(messages)))
    underlying = b.child(body, "Undrlyg")
    for message in messages:
        _encode_transaction(b, underlying, message, (assigner, assignee))
    return document


def _encode_transaction(
    b: Builder,
    underlying: etree._Element,
    message: CanonicalMessage,
    group_agents: tuple[Agent | None, Agent | None],
) -> None:
    tx = b.child(underlying, "TxInf")
    ids, original = message.ids, message.original or OriginalTransaction()
    b.optional(tx, "CxlId", own_reference(message, "CxlId"))
    write_original_group(b, tx, "OrgnlGrpInf", message.original)
    instruction = original.instruction_id or ids.instruction_id
    end_to_end = original.end_to_end_id or ids.end_to_end_id
    b.optional(tx, "OrgnlInstrId", max35(instruction) if instruction else None)
    b.optional(tx, "OrgnlEndToEndId", max35(end_to_end) if end_to_end else None)
    b.optional(tx, "OrgnlTxId", ids.transaction_id)
    b.optional(tx, "OrgnlUETR", original.uetr or ids.uetr)
    b.optional(tx, "OrgnlClrSysRef", ids.clearing_reference)
    if message.amount is not None:
        write_amount(b, tx, "OrgnlIntrBkSttlmAmt", message.amount)
    if message.settlement_date is not None:
        b.child(tx, "OrgnlIntrBkSttlmDt", message.settlement_date.isoformat())
    for name, agent, group_agent in zip(
        ("Assgnr", "Assgne"), _agents(message), group_agents, strict=True
    ):
        if agent is not None and agent != group_agent:
            write_agent(b, b.child(tx, name), agent)
    status = message.status
    code, lines = reason_lines(status, "cancellation_reason", mapped=cancellation_reason(status))
    write_reasons(b, tx, "CxlRsnInf", code, lines)
    _write_reference(b, tx, message)


def _write_reference(b: Builder, tx: etree._Element, message: CanonicalMessage) -> None:
    reference = b.child(tx, "OrgnlTxRef")
    terms = message.payment_terms or PaymentTerms()
    if message.instructed_amount is not None:
        write_amount(b, b.path(reference, "Amt"), "InstdAmt", message.instructed_amount)
    if terms.settlement_method is not None or terms.clearing_system is not None:
        write_settlement(b, reference, terms)
    write_payment_type(b, reference, terms)
    for line in message.remittance:
        b.child(b.path(reference, "RmtInf"), "Ustrd", line)
    for name, role in (
        ("UltmtDbtr", "ultimate_debtor"),
        ("Dbtr", "debtor"),
        ("Cdtr", "creditor"),
        ("UltmtCdtr", "ultimate_creditor"),
    ):
        party: Party | None = getattr(message, role)
        if party is not None:
            write_party_choice(b, b.child(reference, name), party, role, message.extensions)
    if message.debtor_account is not None:
        write_account(b, b.child(reference, "DbtrAcct"), message.debtor_account)
    if message.creditor_account is not None:
        write_account(b, b.child(reference, "CdtrAcct"), message.creditor_account)
    agents = message.agents or Agents()
    if agents.debtor_agent is not None:
        write_agent(b, b.child(reference, "DbtrAgt"), agents.debtor_agent)
    if agents.creditor_agent is not None:
        write_agent(b, b.child(reference, "CdtrAgt"), agents.creditor_agent)
    write_code(b, reference, "Purp", terms.purpose, code_set_name="purpose")
    if len(reference) == 0:
        tx.remove(reference)
