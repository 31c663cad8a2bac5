"""pacs.004 (PaymentReturn) <-> canonical returns.

Versions 001.09 (CBPR+) and 001.10 (FedNow). One canonical message per ``TxInf``, kind
``RETURN``, function ``REQUEST``; a return of a whole group with no ``TxInf`` gives one
message for the group (its amount is ``TtlRtrdIntrBkSttlmAmt``).

**The canonical return (ours).** A return is a payment of its own, back from the original
creditor to the original debtor: its ``amount`` is the returned amount, its
``settlement_date`` the return's, and its ``debtor`` / ``creditor`` are those of the return
(``RtrChain``: the original creditor pays back the original debtor). It refers to the
original through ``original`` and, so that correlation works, carries the original's ids as
its own ``ids`` (``end_to_end_id`` = ``OrgnlEndToEndId``, ``instruction_id`` =
``OrgnlInstrId``, ``uetr`` = ``OrgnlUETR``), with ``ids.correlation_key`` computed as for the
pacs.008 it returns (:func:`~adapters.iso20022.pacs008.correlation_key`). Its ``status`` is
``Status(RJCT, reason=<return reason>, original=<source protocol code>,
additional_info=<AddtlInf>)``: the original payment is undone, for that reason. Values with
no canonical field travel as extensions ``iso20022:<element>``.

======================================  ===========================================================
pacs.004                                canonical
======================================  ===========================================================
``GrpHdr/MsgId``, ``CreDtTm``           ``ids.source_message_id`` (encode: the hub message id),
                                        ``transmitted_at``
``GrpHdr/SttlmInf/SttlmMtd``, ClrSys    ``payment_terms.settlement_method`` / ``clearing_system``
``RtrId``                               extension ``iso20022:RtrId``; encoding an ISO 8583
                                        reversal: its own STAN (``ids.instruction_id``)
``OrgnlGrpInf/OrgnlMsgId``,             ``original.message_id``, ``original.message_type``,
``OrgnlMsgNmId``, ``OrgnlCreDtTm``      ``original.transmitted_at`` (the group's ``OrgnlGrpInf``
                                        when the transaction has none)
``OrgnlInstrId``                        ``original.instruction_id`` and ``ids.instruction_id``
``OrgnlEndToEndId``                     ``original.end_to_end_id`` and ``ids.end_to_end_id``
``OrgnlUETR``                           ``original.uetr`` and ``ids.uetr``
``OrgnlTxId``                           ``ids.transaction_id`` (as pacs.002 does)
``OrgnlClrSysRef``, ``ClrSysRef``       extension ``iso20022:OrgnlClrSysRef``,
                                        ``ids.clearing_reference``
``OrgnlIntrBkSttlmAmt`` / ``Dt``        extensions ``iso20022:OrgnlIntrBkSttlmAmt`` (``"USD
                                        51.74"``) / ``iso20022:OrgnlIntrBkSttlmDt`` (from
                                        ``OrgnlTxRef/IntrBkSttlmAmt`` / ``Dt`` when absent)
``RtrdIntrBkSttlmAmt``                  ``amount``
``IntrBkSttlmDt`` (or the group's)      ``settlement_date``
``RtrdInstdAmt``, ``ChrgBr``            ``instructed_amount``, ``payment_terms.charge_bearer``
``InstgAgt``, ``InstdAgt``              ``agents.instructing`` / ``instructed`` (or the group's)
``RtrChain/Dbtr``, ``Cdtr``,            ``debtor``, ``creditor``, ``ultimate_debtor``,
``UltmtDbtr``, ``UltmtCdtr``            ``ultimate_creditor`` (a party given as ``Agt``: see
                                        :func:`~adapters.iso20022.pacs009.read_party_choice`)
``RtrChain/DbtrAcct``, ``CdtrAcct``     ``debtor_account``, ``creditor_account`` (001.10 only)
``RtrChain/DbtrAgt``, ``CdtrAgt``       ``agents.debtor_agent`` / ``creditor_agent``
``OrgnlTxRef/Cdtr``, ``Dbtr``,          what ``RtrChain`` does not give, the other way round: the
``CdtrAcct``, ``CdtrAgt``...            original creditor is the return's debtor, and so on
``RtrRsnInf/Rsn/Cd`` (or ``Prtry``)     ``status.reason``; ``status.code`` is ``RJCT``
``RtrRsnInf/AddtlInf``                  ``status.additional_info``; one line ``ORGNL <scheme>
                                        <code>`` is ``status.original`` (the source protocol's
                                        code, ISO 8583 field 39, as pacs.002 carries it)
``OrgnlTxRef/PmtTpInf``, ``Purp``       ``payment_terms`` (service level, local instrument,
                                        category purpose, priority, purpose)
``OrgnlTxRef/RmtInf/Ustrd``             ``remittance``
======================================  ===========================================================

Encoding writes the parties in ``RtrChain`` when the message has both a debtor and a
creditor (in 001.09, whose ``RtrChain`` has no accounts, the accounts go to ``OrgnlTxRef``,
the other way round), else in ``OrgnlTxRef``, the other way round. The return reason is
``status.reason`` when it is an ExternalReturnReason1Code, else ``NARR`` with a line
``reason <code>`` in ``AddtlInf`` (so ``NARR`` is always explained); a status with no reason
but a source protocol code gives ``NARR`` too.

**ISO 8583 reversals after settlement** (``design/CANONICAL.md``: an 0420 after settlement
is a pacs.004; see :func:`adapters.iso20022.camt056.reversal_message_type`) encode as a
return: ``original`` comes from field 90 (``OrgnlInstrId`` = the original STAN,
``OrgnlCreDtTm`` = the original transmission time, ``OrgnlMsgNmId`` = ``pacs.008.001.08``
for an original MTI such as 0200, ``OrgnlMsgId`` ``NOTPROVIDED`` as the 0200 had none), the
RRN is ``OrgnlEndToEndId``, the reversal's own STAN is ``RtrId``, and field 39 rides as
``ORGNL iso8583 <code>`` (an 0420's 68, late response, is ``AB05`` in ``status``, which is no
return reason: ``NARR``). Card-rail data (card token, acceptor, processing code) is not
written: a return refers to the original by its ids.

>>> import datetime as dt
>>> from canonical_model.codes import OriginalCode, TransactionStatus
>>> from canonical_model.messages import Identifiers, MessageFunction, MessageKind
>>> from canonical_model.money import Money
>>> ns = "urn:iso:std:iso:20022:tech:xsd:pacs.004.001.10"
>>> returned = CanonicalMessage(
...     kind=MessageKind.RETURN, function=MessageFunction.REQUEST, tenant="acme",
...     ids=Identifiers(message_id="m-1", end_to_end_id="E2E-1", instruction_id="000002"),
...     amount=Money.of("25.50", "EUR"), settlement_date=dt.date(2026, 11, 28),
...     original=OriginalTransaction(message_type="0200", instruction_id="000002"),
...     status=Status(TransactionStatus.RJCT, "AB05", OriginalCode("iso8583", "68")),
... )
>>> now = lambda: dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC)
>>> document = encode_document([returned], ns, now=now)
>>> back = decode_returns(document, ns, tenant="acme", new_message_id=lambda: "m-2", header=None)
>>> status = back[0].status
>>> status.code, status.reason, status.original, status.additional_info
(<TransactionStatus.RJCT: 'RJCT'>, 'NARR', OriginalCode(scheme='iso8583', code='68'), 'reason AB05')
>>> back[0].original.message_type, back[0].ids.instruction_id, str(back[0].amount)
('pacs.008.001.08', '000002', '25.50 EUR')
"""

from __future__ import annotations

import datetime as dt
import re
import textwrap
from collections.abc import Callable, Sequence

from lxml import etree

from adapters.iso20022.codesets import code_set
from adapters.iso20022.components import (
    Builder,
    ComponentError,
    Reader,
    element_path,
    format_datetime,
    identity_and_time,
    message_body,
    parse_date,
    parse_datetime,
    read_account,
    read_agent,
    read_amount,
    start_document,
    write_account,
    write_agent,
    write_amount,
)
from adapters.iso20022.pacs008 import correlation_key, max35
from adapters.iso20022.pacs009 import (
    EXTENSION_PREFIX,
    extension_value,
    read_party_choice,
    read_payment_terms,
    write_code,
    write_party_choice,
    write_payment_type,
    write_settlement,
)
from canonical_model.codes import OriginalCode, Status, TransactionStatus
from canonical_model.currency import UnknownCurrencyError
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
)
from canonical_model.money import AmountError, Money

__all__ = [
    "DEFAULT_ORIGINAL_MESSAGE",
    "NARRATIVE",
    "decode_returns",
    "encode_document",
    "money_text",
    "original_message_type",
    "own_reference",
    "parse_money",
    "read_original",
    "read_reasons",
    "reason_lines",
    "write_original_group",
    "write_reasons",
]

DEFAULT_ORIGINAL_MESSAGE = "pacs.008.001.08"
"""``OrgnlMsgNmId`` when the original is no ISO 20022 message (an ISO 8583 0200) or unknown."""

NARRATIVE = "NARR"
"""The reason code that says "see the additional information"."""

NOT_PROVIDED = "NOTPROVIDED"
_ORIGINAL_CODE = re.compile(r"^ORGNL (\S+) (\S+)$")
_ISO20022_ID = re.compile(r"[a-z]{4}\.\d{3}\.\d{3}\.\d{2}")
_MAX105 = 105
_BODY = "/Document/PmtRtr"

# pacs.004 element <-> (return role, field), when read from OrgnlTxRef: the other way round.
_SWAPPED_PARTIES = (
    ("Cdtr", "debtor"),
    ("Dbtr", "creditor"),
    ("UltmtCdtr", "ultimate_debtor"),
    ("UltmtDbtr", "ultimate_creditor"),
)
_CHAIN_PARTIES = (
    ("Dbtr", "debtor"),
    ("Cdtr", "creditor"),
    ("UltmtDbtr", "ultimate_debtor"),
    ("UltmtCdtr", "ultimate_creditor"),
)


# -- shared with camt.056 ---------------------------------------------------------------


def original_message_type(original: OriginalTransaction) -> str:
    """``OrgnlMsgNmId`` for ``original``: its message type when that is an ISO 20022 id, else
    :data:`DEFAULT_ORIGINAL_MESSAGE` (an ISO 8583 original, 0200, became a pacs.008)."""
    value = original.message_type
    if value is not None and _ISO20022_ID.fullmatch(value):
        return value
    return DEFAULT_ORIGINAL_MESSAGE


def own_reference(message: CanonicalMessage, key: str) -> str | None:
    """The message's own id for ``RtrId`` / ``CxlId`` (``key``): the extension
    ``iso20022:<key>``, else, for an ISO 8583 reversal that names its original's STAN, its
    own STAN."""
    value = extension_value(message.extensions, EXTENSION_PREFIX + key)
    if value is not None:
        return value
    original = message.original
    if (
        message.kind is MessageKind.REVERSAL
        and original is not None
        and original.instruction_id is not None
        and message.ids.instruction_id is not None
    ):
        return max35(message.ids.instruction_id)
    return None


def read_reasons(r: Reader, infos: Sequence[etree._Element]) -> Status:
    """``Status(RJCT, ...)`` from ``RtrRsnInf`` / ``CxlRsnInf`` elements: the first reason
    code (or proprietary reason), the ``ORGNL`` line, the other lines joined."""
    reason: str | None = None
    original: OriginalCode | None = None
    notes: list[str] = []
    for info in infos:
        reason = reason or r.text(info, "Rsn/Cd") or r.text(info, "Rsn/Prtry")
        for line in r.texts(info, "AddtlInf"):
            match = _ORIGINAL_CODE.match(line)
            if match and original is None:
                original = OriginalCode(match.group(1), match.group(2))
            else:
                notes.append(line)
    return Status(TransactionStatus.RJCT, reason, original, " ".join(notes) or None)


def reason_lines(
    status: Status | None, code_set_name: str, *, mapped: str | None = None
) -> tuple[str | None, list[str]]:
    """``(Rsn/Cd, AddtlInf lines)`` for ``status`` in a message whose reasons come from the
    code set ``code_set_name``.

    The code is ``mapped`` when given, else ``status.reason`` when it is in the set, else
    ``NARR`` (when there is a reason or a source protocol code to explain). The lines: the
    ``ORGNL <scheme> <code>`` line, ``reason <code>`` when the status reason was not the
    code written, and the additional information, cut into 105-character lines.
    """
    if status is None:
        return None, []
    lines: list[str] = []
    if status.original is not None:
        lines.append(f"ORGNL {status.original.scheme} {status.original.code}")
    reason = status.reason
    code: str | None
    if mapped is not None:
        code = mapped
    elif reason is not None and reason in code_set(code_set_name):
        code = reason
    elif reason is not None or lines:
        code = NARRATIVE
    else:
        code = None
    if reason is not None and reason != code:
        lines.append(f"reason {reason}")
    if status.additional_info:
        lines.extend(
            textwrap.wrap(status.additional_info, _MAX105, break_on_hyphens=False)
            or [status.additional_info[:_MAX105]]
        )
    return code, lines


def write_reasons(
    b: Builder, parent: etree._Element, name: str, code: str | None, lines: Sequence[str]
) -> None:
    """``name`` (``RtrRsnInf``, ``CxlRsnInf``) with ``Rsn/Cd`` and ``AddtlInf``, if any."""
    if code is None and not lines:
        return
    info = b.child(parent, name)
    b.optional(info, "Rsn/Cd", code)
    for line in lines:
        b.child(info, "AddtlInf", line)


def read_original(
    r: Reader, group: etree._Element | None, path: str
) -> tuple[str | None, str | None, dt.datetime | None]:
    """``(OrgnlMsgId, OrgnlMsgNmId, OrgnlCreDtTm)`` of an original group element."""
    created = r.text(group, "OrgnlCreDtTm")
    return (
        r.text(group, "OrgnlMsgId"),
        r.text(group, "OrgnlMsgNmId"),
        parse_datetime(created, f"{path}/OrgnlCreDtTm") if created else None,
    )


def write_original_group(
    b: Builder, parent: etree._Element, name: str, original: OriginalTransaction | None
) -> None:
    """``name`` (``OrgnlGrpInf``) with the original message id, type and creation time, when
    the original message is known at all."""
    if original is None or (original.message_id is None and original.message_type is None):
        return
    group = b.child(parent, name)
    b.child(group, "OrgnlMsgId", max35(original.message_id or NOT_PROVIDED))
    b.child(group, "OrgnlMsgNmId", original_message_type(original))
    if original.transmitted_at is not None:
        b.child(group, "OrgnlCreDtTm", format_datetime(original.transmitted_at))


def money_text(money: Money) -> str:
    """``"USD 51.74"``: an amount as an extension value."""
    return f"{money.currency.alpha} {format(money.amount, 'f')}"


def parse_money(text: str, path: str) -> Money:
    """An amount written by :func:`money_text`."""
    code, _, amount = text.partition(" ")
    try:
        return Money.of(amount, code)
    except (AmountError, UnknownCurrencyError):
        raise ComponentError(path, f"not an amount with its currency: {text!r}") from None


# -- decode -------------------------------------------------------------------------------


def _first(*elements: etree._Element | None) -> etree._Element | None:
    # Never `a or b` on lxml elements: their truth value is "has children".
    return next((e for e in elements if e is not None), None)


def _ext(name: str, value: str | None) -> list[Extension]:
    return [] if value is None else [Extension(EXTENSION_PREFIX + name, value)]


def decode_returns(
    document: etree._Element,
    namespace: str,
    *,
    tenant: str,
    new_message_id: Callable[[], str],
    header: BusinessHeader | None,
) -> list[CanonicalMessage]:
    """Every ``TxInf`` of a pacs.004 ``Document`` as a canonical return."""
    r = Reader(namespace)
    body = message_body(r, document, "PmtRtr")
    group = r.find(body, "GrpHdr")
    message_id, transmitted_at = identity_and_time(r, group, "/Document/PmtRtr/GrpHdr")
    group_date = r.text(group, "IntrBkSttlmDt")
    settlement = r.find(group, "SttlmInf")
    group_original = r.find(body, "OrgnlGrpInf")
    transactions = r.findall(body, "TxInf")
    targets: list[etree._Element | None] = [*transactions] or [None]
    messages = []
    for tx in targets:
        path = element_path(tx) if tx is not None else _BODY
        original_group = _first(r.find(tx, "OrgnlGrpInf"), group_original)
        original_id, original_type, original_created = read_original(
            r, original_group, element_path(original_group) if original_group is not None else path
        )
        uetr = r.text(tx, "OrgnlUETR")
        end_to_end = r.text(tx, "OrgnlEndToEndId")
        instruction = r.text(tx, "OrgnlInstrId")
        chain = r.find(tx, "RtrChain")
        reference = r.find(tx, "OrgnlTxRef")
        extensions: list[Extension] = []
        parties: dict[str, Party | None] = {}
        for (chain_name, role), (reference_name, _) in zip(
            _CHAIN_PARTIES, _SWAPPED_PARTIES, strict=True
        ):
            element = _first(r.find(chain, chain_name), r.find(reference, reference_name))
            parties[role], found = read_party_choice(r, element, role)
            extensions.extend(found)
        date = r.text(tx, "IntrBkSttlmDt") or group_date
        original_amount = read_amount(
            _first(r.find(tx, "OrgnlIntrBkSttlmAmt"), r.find(reference, "IntrBkSttlmAmt")),
            f"{path}/OrgnlIntrBkSttlmAmt",
        )
        amount_element = (
            r.find(tx, "RtrdIntrBkSttlmAmt")
            if tx is not None
            else r.find(group, "TtlRtrdIntrBkSttlmAmt")
        )
        extensions += _ext("RtrId", r.text(tx, "RtrId"))
        extensions += _ext("OrgnlClrSysRef", r.text(tx, "OrgnlClrSysRef"))
        extensions += _ext(
            "OrgnlIntrBkSttlmAmt", money_text(original_amount) if original_amount else None
        )
        extensions += _ext(
            "OrgnlIntrBkSttlmDt",
            r.text(tx, "OrgnlIntrBkSttlmDt") or r.text(reference, "IntrBkSttlmDt"),
        )
        terms = read_payment_terms(
            r, settlement, (reference,), charge_bearer=r.text(tx, "ChrgBr"), purpose=reference
        )
        messages.append(
            CanonicalMessage(
                kind=MessageKind.RETURN,
                function=MessageFunction.REQUEST,
                tenant=tenant,
                ids=Identifiers(
                    message_id=new_message_id(),
                    end_to_end_id=end_to_end,
                    instruction_id=instruction,
                    uetr=uetr,
                    transaction_id=r.text(tx, "OrgnlTxId"),
                    correlation_key=correlation_key(uetr, original_id, end_to_end),
                    source_message_id=message_id,
                    clearing_reference=r.text(tx, "ClrSysRef"),
                ),
                transmitted_at=transmitted_at,
                settlement_date=parse_date(date, f"{path}/IntrBkSttlmDt") if date else None,
                amount=read_amount(amount_element, f"{path}/RtrdIntrBkSttlmAmt"),
                instructed_amount=read_amount(r.find(tx, "RtrdInstdAmt"), f"{path}/RtrdInstdAmt"),
                debtor=parties["debtor"],
                debtor_account=read_account(
                    r, _first(r.find(chain, "DbtrAcct"), r.find(reference, "CdtrAcct"))
                ),
                creditor=parties["creditor"],
                creditor_account=read_account(
                    r, _first(r.find(chain, "CdtrAcct"), r.find(reference, "DbtrAcct"))
                ),
                ultimate_debtor=parties["ultimate_debtor"],
                ultimate_creditor=parties["ultimate_creditor"],
                agents=Agents(
                    instructing=read_agent(
                        r, _first(r.find(tx, "InstgAgt"), r.find(group, "InstgAgt"))
                    ),
                    instructed=read_agent(
                        r, _first(r.find(tx, "InstdAgt"), r.find(group, "InstdAgt"))
                    ),
                    debtor_agent=read_agent(
                        r, _first(r.find(chain, "DbtrAgt"), r.find(reference, "CdtrAgt"))
                    ),
                    creditor_agent=read_agent(
                        r, _first(r.find(chain, "CdtrAgt"), r.find(reference, "DbtrAgt"))
                    ),
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
                    r, r.findall(tx, "RtrRsnInf") or r.findall(group_original, "RtrRsnInf")
                ),
                remittance=r.texts(reference, "RmtInf/Ustrd"),
                payment_terms=terms,
                extensions=tuple(extensions),
                business_header=header,
            )
        )
    return messages


# -- encode -------------------------------------------------------------------------------


def encode_document(
    messages: Sequence[CanonicalMessage], namespace: str, *, now: Callable[[], dt.datetime]
) -> etree._Element:
    """A pacs.004 ``Document`` (children not yet in schema order) for ``messages``: returns,
    or ISO 8583 reversals after settlement."""
    b = Builder(namespace)
    first = messages[0]
    document, body, group = start_document(b, "PmtRtr", first, now)
    b.child(group, "NbOfTxs", str(len(messages)))
    write_settlement(b, group, first.payment_terms or PaymentTerms())
    accounts_in_chain = not namespace.endswith(".09")  # 001.09's RtrChain has no accounts
    for message in messages:
        _encode_transaction(b, body, message, accounts_in_chain=accounts_in_chain)
    return document


def _encode_transaction(
    b: Builder, body: etree._Element, message: CanonicalMessage, *, accounts_in_chain: bool
) -> None:
    tx = b.child(body, "TxInf")
    ids, original = message.ids, message.original or OriginalTransaction()
    extensions = message.extensions
    b.optional(tx, "RtrId", own_reference(message, "RtrId"))
    write_original_group(b, tx, "OrgnlGrpInf", message.original)
    b.optional(tx, "OrgnlInstrId", _max35(original.instruction_id or ids.instruction_id))
    b.optional(tx, "OrgnlEndToEndId", _max35(original.end_to_end_id or ids.end_to_end_id))
    b.optional(tx, "OrgnlTxId", ids.transaction_id)
    b.optional(tx, "OrgnlUETR", original.uetr or ids.uetr)
    b.optional(tx, "OrgnlClrSysRef", extension_value(extensions, "iso20022:OrgnlClrSysRef"))
    original_amount = extension_value(extensions, "iso20022:OrgnlIntrBkSttlmAmt")
    if original_amount is not None:
        money = parse_money(original_amount, f"{_BODY}/TxInf/OrgnlIntrBkSttlmAmt")
        write_amount(b, tx, "OrgnlIntrBkSttlmAmt", money)
    b.optional(tx, "OrgnlIntrBkSttlmDt", extension_value(extensions, "iso20022:OrgnlIntrBkSttlmDt"))
    if message.amount is None:
        raise ComponentError(f"{_BODY}/TxInf/RtrdIntrBkSttlmAmt", "a return needs an amount")
    write_amount(b, tx, "RtrdIntrBkSttlmAmt", message.amount)
    if message.settlement_date is not None:
        b.child(tx, "IntrBkSttlmDt", message.settlement_date.isoformat())
    if message.instructed_amount is not None:
        write_amount(b, tx, "RtrdInstdAmt", message.instructed_amount)
    terms = message.payment_terms or PaymentTerms()
    b.optional(tx, "ChrgBr", terms.charge_bearer)
    b.optional(tx, "ClrSysRef", ids.clearing_reference)
    agents = message.agents or Agents()
    instructing = agents.instructing or agents.acquirer
    instructed = agents.instructed or agents.receiver
    if instructing is not None:
        write_agent(b, b.child(tx, "InstgAgt"), instructing)
    if instructed is not None:
        write_agent(b, b.child(tx, "InstdAgt"), instructed)
    _write_parties(b, tx, message, agents, accounts_in_chain=accounts_in_chain)
    code, lines = reason_lines(message.status, "return_reason")
    write_reasons(b, tx, "RtrRsnInf", code, lines)
    write_payment_type(b, b.path(tx, "OrgnlTxRef"), terms)
    write_code(b, b.path(tx, "OrgnlTxRef"), "Purp", terms.purpose, code_set_name="purpose")
    for line in message.remittance:
        b.child(b.path(tx, "OrgnlTxRef/RmtInf"), "Ustrd", line)
    reference = b.path(tx, "OrgnlTxRef")
    if len(reference) == 0:
        tx.remove(reference)


def _max35(value: str | None) -> str | None:
    return max35(value) if value is not None else None


def _write_parties(
    b: Builder,
    tx: etree._Element,
    message: CanonicalMessage,
    agents: Agents,
    *,
    accounts_in_chain: bool,
) -> None:
    in_chain = message.debtor is not None and message.creditor is not None
    # Each canonical value: (RtrChain element, OrgnlTxRef element: the other way round).
    parties: list[tuple[str, str, str]] = [
        ("Dbtr", "Cdtr", "debtor"),
        ("Cdtr", "Dbtr", "creditor"),
        ("UltmtDbtr", "UltmtCdtr", "ultimate_debtor"),
        ("UltmtCdtr", "UltmtDbtr", "ultimate_creditor"),
    ]
    for chain_name, reference_name, role in parties:
        party: Party | None = getattr(message, role)
        if party is None:
            continue
        where = b.path(tx, "RtrChain") if in_chain else b.path(tx, "OrgnlTxRef")
        element = b.child(where, chain_name if in_chain else reference_name)
        write_party_choice(b, element, party, role, message.extensions)
    accounts: list[tuple[str, str, Account | None]] = [
        ("DbtrAcct", "CdtrAcct", message.debtor_account),
        ("CdtrAcct", "DbtrAcct", message.creditor_account),
    ]
    for chain_name, reference_name, account in accounts:
        if account is None:
            continue
        chain = in_chain and accounts_in_chain
        where = b.path(tx, "RtrChain") if chain else b.path(tx, "OrgnlTxRef")
        write_account(b, b.child(where, chain_name if chain else reference_name), account)
    agent_roles: list[tuple[str, str, Agent | None]] = [
        ("DbtrAgt", "CdtrAgt", agents.debtor_agent),
        ("CdtrAgt", "DbtrAgt", agents.creditor_agent),
    ]
    for chain_name, reference_name, agent in agent_roles:
        if agent is None:
            continue
        where = b.path(tx, "RtrChain") if in_chain else b.path(tx, "OrgnlTxRef")
        write_agent(b, b.child(where, chain_name if in_chain else reference_name), agent)
