"""pain.001 (CustomerCreditTransferInitiation) <-> canonical credit transfer requests.

Versions 001.09 (CBPR+, current SEPA rulebooks), 001.03 (the 2009 version legacy SEPA
files still use) and 001.08, decoded and encoded alike. A pain.001 is a customer's batch:
a group header, then payment information blocks (``PmtInf``: one debtor, one debtor
account, one requested execution date), each holding its transactions (``CdtTrfTxInf``).
One canonical message per ``CdtTrfTxInf``, kind ``CREDIT_TRANSFER``, function ``REQUEST``;
the block's values apply to each of its transactions, and the batch identity is kept in
``ids.source_message_id`` and ``ids.batch_id``.

==================================  ===========================================================
pain.001                             canonical
==================================  ===========================================================
``GrpHdr/MsgId``, ``CreDtTm``        ``ids.source_message_id``, ``transmitted_at``
``GrpHdr/NbOfTxs``, ``CtrlSum``      (encode: counted and summed from the messages)
``GrpHdr/InitgPty``                  dropped at decode; encode: ``Nm`` is the first debtor's
                                     name, or ``NOTPROVIDED``
``PmtInf/PmtInfId``                  ``ids.batch_id``
``PmtInf/PmtMtd``                    ``TRF`` only (a cheque, ``CHK`` / ``TRA``, is refused)
``PmtInf/NbOfTxs``, ``CtrlSum``      (encode: per block)
``PmtInf/ReqdExctnDt``               ``payment_terms.requested_execution_date`` (001.03: an
                                     ISODate; 001.08/09: ``Dt``, or the date of ``DtTm``)
``PmtInf/Dbtr``, ``DbtrAcct``,       ``debtor``, ``debtor_account``, ``agents.debtor_agent``; a
``DbtrAgt``                          ``DbtrAcct`` whose ``SchmeNm/Prtry`` is ``TOKEN`` is
                                     ``card.token`` (through ``tokenize_account``)
``PmtInf`` or ``CdtTrfTxInf``:       ``payment_terms`` (service level, local instrument,
``PmtTpInf``, ``ChrgBr``,            category purpose, priority; charge bearer),
``UltmtDbtr``                        ``ultimate_debtor`` (the transaction's own value first)
``PmtId/InstrId``, ``EndToEndId``    ``ids.instruction_id``, ``ids.end_to_end_id``
``PmtId/UETR`` (001.09)              ``ids.uetr`` (and ``ids.correlation_key``, as pacs.008)
``Amt/InstdAmt``                     ``amount``
``Amt/EqvtAmt/Amt``, ``CcyOfTrf``    ``amount``, and extension ``iso20022:CcyOfTrf``
``CdtrAgt``, ``Cdtr``, ``CdtrAcct``  ``agents.creditor_agent``, ``creditor``,
                                     ``creditor_account``
``UltmtCdtr``, ``Purp``              ``ultimate_creditor``, ``payment_terms.purpose``
``RmtInf/Ustrd``                     ``remittance``
==================================  ===========================================================

What differs between the versions (:class:`Dialect`, shared with :mod:`.pain002`)::

    version          agent BIC          party BIC           ReqdExctnDt      UETR
    pain.001.001.03  FinInstnId/BIC     OrgId/BICOrBEI      ISODate          no
    pain.001.001.08  FinInstnId/BICFI   OrgId/AnyBIC        Dt or DtTm       no
    pain.001.001.09  FinInstnId/BICFI   OrgId/AnyBIC        Dt or DtTm       PmtId/UETR

**Encoding.** :func:`encode_document` groups the messages into ``PmtInf`` blocks by
``ids.batch_id``, in the order batches first appear; the messages of one batch must agree on
the block's values (debtor, debtor account, debtor agent, requested execution date), or a
:class:`~.components.ComponentError` says which batch does not. Messages without a batch id
get one block per distinct (debtor, debtor account, debtor agent, requested execution date),
named ``<MsgId>-<n>``. Counts and control sums (the amounts' sum whatever their currency, as
ISO defines ``CtrlSum``) are written for the group and for each block. A missing requested
execution date is the settlement date, else the creation date. Payment type information
shared by every transaction of a block is written once, in the block. A service level or
local instrument of 1 to 4 letters or digits is written as ``Cd``, anything else as
``Prtry``; a purpose or category purpose as ``Cd`` only when it is in its ISO external code
set (or a market practice code, :data:`~.rules.MARKET_PRACTICE_CODES`), else as ``Prtry``.
A card-rail debtor (``card.token``) is written as pacs.008 writes it: ``DbtrAcct/Id/Othr/Id``
with ``SchmeNm/Prtry`` ``TOKEN``.

**Dropped.** At decode: ``InitgPty``, ``FwdgAgt``, ``Authstn``, ``BtchBookg``,
``PoolgAdjstmntDt``, ``InstrForDbtrAgt``, ``DbtrAgtAcct``, ``ChrgsAcct``, ``XchgRateInf``,
``ChqInstr``, intermediary agents, ``CdtrAgtAcct``, ``InstrForCdtrAgt``, regulatory
reporting, tax, related and structured remittance (``RmtInf/Strd``), supplementary data, a
second service level (001.09 allows several), the time of a ``ReqdExctnDt/DtTm``. At encode:
the card-rail data pacs.008 carries in ``SplmtryData`` (acceptor, processing code, approval
code, a card-rail debtor account), settlement method and date, clearing system, instructing
and instructed agents, the instructed amount, the UETR for 001.03 and 001.08 (which have no
place for it). An element a version lacks (a 001.03 postal address has no ``BldgNm``,
``Flr``, ``PstBx``, ``Room``, ``TwnLctnNm``, ``DstrctNm``) is refused by
:meth:`.ordering.SchemaOrder.arrange`, not dropped.

>>> from adapters.iso20022.catalog import MESSAGE_TYPES
>>> from adapters.iso20022.ordering import SchemaOrder
>>> from adapters.iso20022.validation import SchemaValidator
>>> from canonical_model.money import Money
>>> sepa = MESSAGE_TYPES["pain.001.001.03"]
>>> message = CanonicalMessage(
...     kind=MessageKind.CREDIT_TRANSFER,
...     function=MessageFunction.REQUEST,
...     tenant="acme",
...     ids=Identifiers("m-1", end_to_end_id="E2E-1", batch_id="SALARIES-11"),
...     amount=Money.of("1250.00", "EUR"),
...     debtor=Party(name="ACME"),
...     debtor_account=Account(iban="DE89370400440532013000"),
...     creditor=Party(name="J. Doe"),
...     creditor_account=Account(iban="GB82WEST12345698765432"),
...     payment_terms=PaymentTerms(requested_execution_date=dt.date(2026, 12, 1)),
... )
>>> now = lambda: dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)
>>> document = encode_document([message], sepa.namespace, now=now)
>>> SchemaOrder.for_message(sepa).arrange(document)
>>> SchemaValidator().validate(document, sepa)
[]
>>> [back] = decode_initiations(
...     document, sepa.namespace, tenant="acme", new_message_id=lambda: "m-2", header=None
... )
>>> back.ids.batch_id, str(back.amount), back.payment_terms.requested_execution_date
('SALARIES-11', '1250.00 EUR', datetime.date(2026, 12, 1))
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from lxml import etree

from adapters.iso20022.catalog import ISO20022_NAMESPACE_PREFIX
from adapters.iso20022.codesets import code_set
from adapters.iso20022.components import (
    TOKEN_SCHEME,
    Builder,
    ComponentError,
    Reader,
    element_path,
    format_datetime,
    parse_date,
    parse_datetime,
    read_account,
    read_agent,
    read_amount,
    read_party,
    write_account,
    write_agent,
    write_amount,
    write_party,
)
from adapters.iso20022.pacs008 import correlation_key, max35
from adapters.iso20022.rules import MARKET_PRACTICE_CODES
from canonical_model.messages import (
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
    Party,
    PaymentTerms,
)
from canonical_model.money import Money

__all__ = [
    "CURRENCY_OF_TRANSFER",
    "Dialect",
    "debtor_account",
    "decode_initiations",
    "encode_document",
    "read_instructed_amount",
    "read_payment_type",
    "write_code",
    "write_instructed_amount",
    "write_payment_type",
]

NOT_PROVIDED: Final = "NOTPROVIDED"

CURRENCY_OF_TRANSFER: Final = "iso20022:CcyOfTrf"
"""Extension key: the ``CcyOfTrf`` of an ``Amt/EqvtAmt`` (the amount is then ``EqvtAmt/Amt``,
in the debtor account's currency, to be moved in this currency)."""

_SHORT_CODE = re.compile(r"[A-Z0-9]{1,4}")


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the pain.001 / pain.002 versions the hub maps.

    ``legacy_bic``: agents' ``FinInstnId/BIC`` and parties' ``OrgId/BICOrBEI`` (the 2009
    versions) instead of ``BICFI`` / ``AnyBIC``; ``dated_choice``: ``ReqdExctnDt`` holds
    ``Dt`` or ``DtTm`` (else it is an ISODate itself); ``uetr``: the transaction carries a
    UETR (``PmtId/UETR``, ``OrgnlUETR``); ``party_choice``: the parties of a pain.002
    ``OrgnlTxRef`` sit in a ``Pty`` (``Party40Choice``).
    """

    message_id: str
    legacy_bic: bool
    dated_choice: bool
    uetr: bool
    party_choice: bool = False

    @staticmethod
    def of(namespace: str) -> Dialect:
        """The dialect of ``namespace``; a :class:`ComponentError` for another message."""
        message_id = namespace.removeprefix(ISO20022_NAMESPACE_PREFIX)
        found = _DIALECTS.get(message_id)
        if found is None:
            raise ComponentError(
                "/Document",
                f"{message_id} is not a pain.001 / pain.002 version this hub maps"
                f" (mapped: {', '.join(_DIALECTS)})",
            )
        return found

    @property
    def family(self) -> str:
        """``pain.001`` or ``pain.002``."""
        return self.message_id[:8]

    def read_agent(self, r: Reader, element: etree._Element | None) -> Agent | None:
        """An agent, its BIC from ``BICFI`` or (001.03) ``BIC``."""
        agent = read_agent(r, element)
        if agent is not None and agent.bic is None and self.legacy_bic:
            bic = r.text(element, "FinInstnId/BIC")
            if bic is not None:
                agent = dataclasses.replace(agent, bic=bic)
        return agent

    def read_party(self, r: Reader, element: etree._Element | None) -> Party | None:
        """A party; in 001.03 its ``OrgId/BICOrBEI`` is its identification too."""
        party = read_party(r, element)
        if party is not None and party.identification is None and self.legacy_bic:
            bic = r.text(element, "Id/OrgId/BICOrBEI")
            if bic is not None:
                party = dataclasses.replace(party, identification=bic)
        return party

    def read_execution_date(
        self, r: Reader, parent: etree._Element | None, path: str
    ) -> dt.date | None:
        """``parent``'s ``ReqdExctnDt``: an ISODate, or the date of its ``Dt`` / ``DtTm``."""
        text = (
            r.text(parent, "ReqdExctnDt/Dt")
            or r.text(parent, "ReqdExctnDt/DtTm")
            or r.text(parent, "ReqdExctnDt")
        )
        return parse_date(text, f"{path}/ReqdExctnDt") if text else None

    def write_execution_date(self, b: Builder, parent: etree._Element, day: dt.date) -> None:
        """``ReqdExctnDt`` in this version's form."""
        b.path(parent, "ReqdExctnDt/Dt" if self.dated_choice else "ReqdExctnDt", day.isoformat())

    def finish(self, document: etree._Element) -> None:
        """Rename what the shared component writers wrote in the current form: in 001.03,
        ``BICFI`` becomes ``BIC``."""
        if self.legacy_bic:
            for element in list(document.iter(f"{{{_namespace(document)}}}BICFI")):
                element.tag = f"{{{_namespace(document)}}}BIC"


_DIALECTS: Final = {
    dialect.message_id: dialect
    for dialect in (
        Dialect("pain.001.001.03", legacy_bic=True, dated_choice=False, uetr=False),
        Dialect("pain.001.001.08", legacy_bic=False, dated_choice=True, uetr=False),
        Dialect("pain.001.001.09", legacy_bic=False, dated_choice=True, uetr=True),
        Dialect("pain.002.001.03", legacy_bic=True, dated_choice=False, uetr=False),
        Dialect(
            "pain.002.001.10", legacy_bic=False, dated_choice=True, uetr=True, party_choice=True
        ),
    )
}


def _namespace(element: etree._Element) -> str:
    return etree.QName(element).namespace or ""


def _code(r: Reader, element: etree._Element | None, path: str) -> str | None:
    return r.text(element, f"{path}/Cd") or r.text(element, f"{path}/Prtry")


def read_payment_type(
    r: Reader, *holders: etree._Element | None
) -> tuple[str | None, str | None, str | None, str | None]:
    """``(priority, service level, local instrument, category purpose)`` from the first of
    ``holders`` (a transaction, then its block) whose ``PmtTpInf`` has each."""

    def pick(path: str) -> str | None:
        return next((v for h in holders if (v := _code(r, h, f"PmtTpInf/{path}"))), None)

    priority = next((v for h in holders if (v := r.text(h, "PmtTpInf/InstrPrty"))), None)
    return priority, pick("SvcLvl"), pick("LclInstrm"), pick("CtgyPurp")


def _code_kind(value: str, set_name: str | None) -> str:
    if set_name is None:
        return "Cd" if _SHORT_CODE.fullmatch(value) else "Prtry"
    if len(value) > 4:
        return "Prtry"
    pattern = MARKET_PRACTICE_CODES.get(set_name)
    known = value in code_set(set_name) or (pattern is not None and pattern.fullmatch(value))
    return "Cd" if known else "Prtry"


def write_code(
    b: Builder, parent: etree._Element, path: str, value: str | None, set_name: str | None
) -> None:
    """``path/Cd`` or ``path/Prtry`` with ``value`` (see the module docstring for which)."""
    if value is not None:
        b.path(parent, f"{path}/{_code_kind(value, set_name)}", value)


def write_payment_type(b: Builder, parent: etree._Element, terms: PaymentTerms) -> None:
    """``PmtTpInf`` under ``parent`` from ``terms`` (nothing when it has none of its values)."""
    b.optional(parent, "PmtTpInf/InstrPrty", terms.instruction_priority)
    write_code(b, parent, "PmtTpInf/SvcLvl", terms.service_level, None)
    write_code(b, parent, "PmtTpInf/LclInstrm", terms.local_instrument, None)
    write_code(b, parent, "PmtTpInf/CtgyPurp", terms.category_purpose, "category_purpose")


def read_instructed_amount(
    r: Reader, holder: etree._Element | None, path: str
) -> tuple[Money | None, tuple[Extension, ...]]:
    """``Amt/InstdAmt``, or ``Amt/EqvtAmt/Amt`` with its ``CcyOfTrf`` as an extension."""
    amount = read_amount(r.find(holder, "Amt/InstdAmt"), f"{path}/Amt/InstdAmt")
    if amount is not None:
        return amount, ()
    amount = read_amount(r.find(holder, "Amt/EqvtAmt/Amt"), f"{path}/Amt/EqvtAmt/Amt")
    transfer = r.text(holder, "Amt/EqvtAmt/CcyOfTrf")
    return amount, (Extension(CURRENCY_OF_TRANSFER, transfer),) if transfer else ()


def write_instructed_amount(b: Builder, parent: etree._Element, message: CanonicalMessage) -> None:
    """``Amt/InstdAmt``, or ``Amt/EqvtAmt`` when the message names a currency of transfer."""
    if message.amount is None:
        raise ComponentError(f"{element_path(parent)}/Amt", "a credit transfer needs an amount")
    transfer = next((e.value for e in message.extensions if e.key == CURRENCY_OF_TRANSFER), None)
    if transfer is None:
        write_amount(b, b.path(parent, "Amt"), "InstdAmt", message.amount)
    else:
        equivalent = b.path(parent, "Amt/EqvtAmt")
        write_amount(b, equivalent, "Amt", message.amount)
        b.child(equivalent, "CcyOfTrf", transfer)


def debtor_account(message: CanonicalMessage) -> Account | None:
    """The account written as ``DbtrAcct``: the card token of a card-rail debtor (``Othr/Id``
    with scheme ``TOKEN``), else the debtor account."""
    if message.card is not None and message.card.token is not None:
        return Account(other_id=message.card.token.value, scheme=TOKEN_SCHEME)
    return message.debtor_account


def _first(*elements: etree._Element | None) -> etree._Element | None:
    # Never `a or b` on lxml elements: their truth value is "has children".
    return next((e for e in elements if e is not None), None)


def decode_initiations(
    document: etree._Element,
    namespace: str,
    *,
    tenant: str,
    new_message_id: Callable[[], str],
    header: BusinessHeader | None,
    tokenize_account: Callable[[Account, str], Card | None] | None = None,
) -> list[CanonicalMessage]:
    """Every ``CdtTrfTxInf`` of a pain.001 ``Document`` as a canonical credit transfer request.

    ``tokenize_account(account, path)`` turns a debtor account that carries a card token
    (or a clear card number) into a :class:`Card`, as for pacs.008; without it, every
    debtor account stays an account.
    """
    dialect = Dialect.of(namespace)
    if dialect.family != "pain.001":
        raise ComponentError("/Document", f"{dialect.message_id} is not a pain.001")
    r = Reader(namespace)
    body = r.find(document, "CstmrCdtTrfInitn")
    if body is None:
        raise ComponentError("/Document", "CstmrCdtTrfInitn is missing")
    group = r.find(body, "GrpHdr")
    message_id = r.text(group, "MsgId")
    created = r.text(group, "CreDtTm")
    transmitted_at = (
        parse_datetime(created, "/Document/CstmrCdtTrfInitn/GrpHdr/CreDtTm") if created else None
    )
    messages = []
    for payment in r.findall(body, "PmtInf"):
        block = element_path(payment)
        method = r.text(payment, "PmtMtd")
        if method is not None and method != "TRF":
            raise ComponentError(
                f"{block}/PmtMtd",
                f"payment method {method} is not a credit transfer; the hub maps TRF only",
            )
        execution = dialect.read_execution_date(r, payment, block)
        debtor = dialect.read_party(r, r.find(payment, "Dbtr"))
        account = read_account(r, r.find(payment, "DbtrAcct"))
        card = None
        if account is not None and tokenize_account is not None:
            card = tokenize_account(account, f"{block}/DbtrAcct")
            if card is not None:
                account = None
        debtor_agent = dialect.read_agent(r, r.find(payment, "DbtrAgt"))
        for tx in r.findall(payment, "CdtTrfTxInf"):
            path = element_path(tx)
            uetr = r.text(tx, "PmtId/UETR") if dialect.uetr else None
            end_to_end = r.text(tx, "PmtId/EndToEndId")
            priority, service, local, category = read_payment_type(r, tx, payment)
            amount, extensions = read_instructed_amount(r, tx, path)
            messages.append(
                CanonicalMessage(
                    kind=MessageKind.CREDIT_TRANSFER,
                    function=MessageFunction.REQUEST,
                    tenant=tenant,
                    ids=Identifiers(
                        message_id=new_message_id(),
                        end_to_end_id=end_to_end,
                        instruction_id=r.text(tx, "PmtId/InstrId"),
                        uetr=uetr,
                        correlation_key=correlation_key(uetr, message_id, end_to_end),
                        source_message_id=message_id,
                        batch_id=r.text(payment, "PmtInfId"),
                    ),
                    transmitted_at=transmitted_at,
                    amount=amount,
                    card=card,
                    debtor=debtor,
                    debtor_account=account,
                    creditor=dialect.read_party(r, r.find(tx, "Cdtr")),
                    creditor_account=read_account(r, r.find(tx, "CdtrAcct")),
                    ultimate_debtor=dialect.read_party(
                        r, _first(r.find(tx, "UltmtDbtr"), r.find(payment, "UltmtDbtr"))
                    ),
                    ultimate_creditor=dialect.read_party(r, r.find(tx, "UltmtCdtr")),
                    agents=Agents(
                        debtor_agent=debtor_agent,
                        creditor_agent=dialect.read_agent(r, r.find(tx, "CdtrAgt")),
                    ),
                    remittance=r.texts(tx, "RmtInf/Ustrd"),
                    extensions=extensions,
                    payment_terms=PaymentTerms(
                        charge_bearer=r.text(tx, "ChrgBr") or r.text(payment, "ChrgBr"),
                        service_level=service,
                        local_instrument=local,
                        category_purpose=category,
                        purpose=_code(r, tx, "Purp"),
                        instruction_priority=priority,
                        requested_execution_date=execution,
                    ),
                    business_header=header,
                )
            )
    return messages


# -- encode -------------------------------------------------------------------------------

_PaymentKey = tuple[Party | None, Account | None, Agent, dt.date]


def _debtor_agent(message: CanonicalMessage) -> Agent:
    agents = message.agents or Agents()
    return agents.debtor_agent or agents.receiver or Agent()


def _payment_key(message: CanonicalMessage, default_day: dt.date) -> _PaymentKey:
    terms = message.payment_terms or PaymentTerms()
    day = terms.requested_execution_date or message.settlement_date or default_day
    return message.debtor, debtor_account(message), _debtor_agent(message), day


def _payment_type(message: CanonicalMessage) -> tuple[str | None, ...]:
    terms = message.payment_terms or PaymentTerms()
    return (
        terms.instruction_priority,
        terms.service_level,
        terms.local_instrument,
        terms.category_purpose,
    )


def _blocks(
    messages: Sequence[CanonicalMessage], message_id: str, default_day: dt.date
) -> list[tuple[str, _PaymentKey, list[CanonicalMessage]]]:
    """``(PmtInfId, block values, messages)`` per ``PmtInf``, in order of first appearance."""
    blocks: dict[tuple[str | None, _PaymentKey | None], list[CanonicalMessage]] = {}
    keys: dict[str, _PaymentKey] = {}
    for message in messages:
        key = _payment_key(message, default_day)
        batch = message.ids.batch_id
        if batch is not None:
            if keys.setdefault(batch, key) != key:
                raise ComponentError(
                    "/Document/CstmrCdtTrfInitn/PmtInf",
                    f"the transactions of batch {batch!r} differ in debtor, debtor account,"
                    " debtor agent or requested execution date; a PmtInf has one of each",
                )
            blocks.setdefault((batch, None), []).append(message)
        else:
            blocks.setdefault((None, key), []).append(message)
    result = []
    unnamed = 0
    for (batch, own), members in blocks.items():
        if batch is None:
            unnamed += 1
            suffix = f"-{unnamed}"
            batch = max35(message_id)[: 35 - len(suffix)] + suffix
        result.append((batch, own or keys[batch], members))
    return result


def _total(messages: Sequence[CanonicalMessage]) -> str:
    total = sum((m.amount.amount for m in messages if m.amount is not None), Decimal(0))
    return format(total, "f")


def encode_document(
    messages: Sequence[CanonicalMessage],
    namespace: str,
    *,
    now: Callable[[], dt.datetime],
) -> etree._Element:
    """A pain.001 ``Document`` (children not yet in schema order) for ``messages``."""
    dialect = Dialect.of(namespace)
    if dialect.family != "pain.001":
        raise ComponentError("/Document", f"{dialect.message_id} is not a pain.001")
    if not messages:
        raise ComponentError("/Document/CstmrCdtTrfInitn", "a pain.001 needs a transaction")
    b = Builder(namespace)
    document = b.element("Document")
    body = b.child(document, "CstmrCdtTrfInitn")
    first = messages[0]
    created = first.transmitted_at or now()
    message_id = max35(first.ids.source_message_id or first.ids.message_id)
    group = b.child(body, "GrpHdr")
    b.child(group, "MsgId", message_id)
    b.child(group, "CreDtTm", format_datetime(created))
    b.child(group, "NbOfTxs", str(len(messages)))
    b.child(group, "CtrlSum", _total(messages))
    initiator = next((m.debtor.name for m in messages if m.debtor and m.debtor.name), None)
    b.path(group, "InitgPty/Nm", initiator or NOT_PROVIDED)
    for batch, (debtor, account, agent, day), members in _blocks(
        messages, message_id, created.date()
    ):
        payment = b.child(body, "PmtInf")
        b.child(payment, "PmtInfId", max35(batch))
        b.child(payment, "PmtMtd", "TRF")
        b.child(payment, "NbOfTxs", str(len(members)))
        b.child(payment, "CtrlSum", _total(members))
        kinds = {_payment_type(m) for m in members}
        shared = len(kinds) == 1 and any(next(iter(kinds)))
        if shared:
            write_payment_type(b, payment, members[0].payment_terms or PaymentTerms())
        dialect.write_execution_date(b, payment, day)
        write_party(b, b.child(payment, "Dbtr"), debtor or Party(name=NOT_PROVIDED))
        if account is None:
            raise ComponentError(
                f"{element_path(payment)}/DbtrAcct", "a pain.001 needs a debtor account"
            )
        write_account(b, b.child(payment, "DbtrAcct"), account)
        write_agent(b, b.child(payment, "DbtrAgt"), agent)
        for message in members:
            _encode_transaction(b, dialect, payment, message, shared_type=shared)
    dialect.finish(document)
    return document


def _encode_transaction(
    b: Builder,
    dialect: Dialect,
    payment: etree._Element,
    message: CanonicalMessage,
    *,
    shared_type: bool,
) -> None:
    tx = b.child(payment, "CdtTrfTxInf")
    ids = message.ids
    terms = message.payment_terms or PaymentTerms()
    b.optional(tx, "PmtId/InstrId", ids.instruction_id)
    b.path(tx, "PmtId/EndToEndId", ids.end_to_end_id or NOT_PROVIDED)
    if dialect.uetr:
        b.optional(tx, "PmtId/UETR", ids.uetr)
    if not shared_type:
        write_payment_type(b, tx, terms)
    write_instructed_amount(b, tx, message)
    b.optional(tx, "ChrgBr", terms.charge_bearer)
    if message.ultimate_debtor is not None:
        write_party(b, b.child(tx, "UltmtDbtr"), message.ultimate_debtor)
    agents = message.agents or Agents()
    if agents.creditor_agent is not None:
        write_agent(b, b.child(tx, "CdtrAgt"), agents.creditor_agent)
    if message.creditor is not None:
        write_party(b, b.child(tx, "Cdtr"), message.creditor)
    if message.creditor_account is not None:
        write_account(b, b.child(tx, "CdtrAcct"), message.creditor_account)
    if message.ultimate_creditor is not None:
        write_party(b, b.child(tx, "UltmtCdtr"), message.ultimate_creditor)
    write_code(b, tx, "Purp", terms.purpose, "purpose")
    for line in message.remittance:
        b.child(b.path(tx, "RmtInf"), "Ustrd", line)
