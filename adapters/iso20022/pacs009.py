"""pacs.009 (FinancialInstitutionCreditTransfer) <-> canonical financial requests.

Version 001.08 (CBPR+, FedNow). One canonical message per ``CdtTrfTxInf``, kind
``FINANCIAL``, function ``REQUEST``; the group header's values (settlement method, clearing
system, settlement date, payment type, agents) apply to each transaction unless the
transaction has its own.

In a pacs.009 the debtor and the creditor are themselves financial institutions
(``BranchAndFinancialInstitutionIdentification6``). The canonical model has no such party,
so (ours) an institution that is a party is a :class:`~canonical_model.messages.Party`,
with what the Party cannot hold in :class:`~canonical_model.messages.Extension` values
keyed by its role (``debtor``, ``creditor``, ``ultimate_debtor``, ``ultimate_creditor``):

===================================  ========================================================
``FinInstnId``                       canonical
===================================  ========================================================
``Nm``, ``PstlAdr``                  ``Party.name``, ``Party.postal_address``
``BICFI``, else ``LEI``, else        ``Party.identification`` (the first one present)
``ClrSysMmbId/MmbId``, else
``Othr/Id``
(the element is an institution)      extension ``iso20022:<role>.kind`` = ``institution``
``ClrSysMmbId/ClrSysId/Cd|Prtry``    extension ``iso20022:<role>.clearing_system``
``ClrSysMmbId/MmbId``                extension ``iso20022:<role>.member_id``
===================================  ========================================================

Encoding writes ``BICFI`` when the identification has the shape of a BIC, ``ClrSysMmbId``
from the two extensions, ``LEI`` when the identification has the shape of an LEI (and is not
the member id), and ``Othr/Id`` for any other identification; so a FedNow institution
(``USABA`` routing number and name) and a CBPR+ one (BIC) come back as they were. A Party
with no extensions (from a pacs.008, say) is written the same way. A branch id, and a
second identifier beside the first (an LEI next to a BIC), are not carried.

The same convention serves the ``Party40Choice`` of pacs.004 and camt.056 (a party given
as ``Pty`` or as ``Agt``): :func:`read_party_choice` and :func:`write_party_choice`.

======================================  ===========================================================
pacs.009                                canonical
======================================  ===========================================================
``GrpHdr/MsgId``, ``CreDtTm``           ``ids.source_message_id`` (encode: the hub message id),
                                        ``transmitted_at``
``GrpHdr/SttlmInf/SttlmMtd``, ClrSys    ``payment_terms.settlement_method`` / ``clearing_system``
``PmtId/InstrId``, ``EndToEndId``       ``ids.instruction_id``, ``ids.end_to_end_id``
``PmtId/TxId``, ``UETR``, ClrSysRef     ``ids.transaction_id``, ``ids.uetr`` (encode: minted when
                                        absent, as for pacs.008), ``ids.clearing_reference``
``PmtTpInf`` (or the group's)           ``payment_terms`` (service level, local instrument,
                                        category purpose, priority)
``IntrBkSttlmAmt``                      ``amount``
``IntrBkSttlmDt`` (or the group's)      ``settlement_date``
``InstgAgt``, ``InstdAgt``              ``agents.instructing`` / ``instructed``
``DbtrAgt``, ``CdtrAgt``                ``agents.debtor_agent`` / ``creditor_agent``
``Dbtr``, ``Cdtr`` (institutions)       ``debtor``, ``creditor``: Party + extensions (above); a
                                        message with no debtor (creditor) is written with its
                                        debtor agent, else its instructing (instructed) agent
``UltmtDbtr``, ``UltmtCdtr``            ``ultimate_debtor``, ``ultimate_creditor`` (likewise)
``DbtrAcct``, ``CdtrAcct``              ``debtor_account``, ``creditor_account``
``Purp/Cd|Prtry``                       ``payment_terms.purpose``
``RmtInf/Ustrd``                        ``remittance``
======================================  ===========================================================

Codes that the rules check against an external code set (category purpose, purpose) are
written as ``Cd`` when they are in it (or in the hub's accepted market practice), else as
``Prtry``; a service level of more than 4 characters and a clearing system of more than 3 are
written as ``Prtry`` too.

>>> import datetime as dt
>>> from canonical_model.messages import Identifiers, MessageFunction, MessageKind
>>> from canonical_model.money import Money
>>> ns = "urn:iso:std:iso:20022:tech:xsd:pacs.009.001.08"
>>> bank_c = Party(name="Bank C", identification="021307481")
>>> transfer = CanonicalMessage(
...     kind=MessageKind.FINANCIAL, function=MessageFunction.REQUEST, tenant="acme",
...     ids=Identifiers(message_id="m-1", end_to_end_id="E2E-1"),
...     settlement_date=dt.date(2026, 11, 28), amount=Money.of("500000", "USD"),
...     debtor=bank_c, creditor=Party(identification="BANKUS33XXX"),
...     extensions=(Extension("iso20022:debtor.clearing_system", "USABA"),
...                 Extension("iso20022:debtor.member_id", "021307481")),
... )
>>> now = lambda: dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC)
>>> document = encode_document([transfer], ns, now=now)
>>> def texts(name):
...     return [element.text for element in document.iter(f"{{{ns}}}{name}")]
>>> texts("MmbId"), texts("Cd"), texts("BICFI")
(['021307481'], ['USABA'], ['BANKUS33XXX'])
>>> back = decode_transfers(document, ns, tenant="acme", new_message_id=lambda: "m-2", header=None)
>>> back[0].debtor == bank_c, back[0].creditor.identification
(True, 'BANKUS33XXX')
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence

from lxml import etree

from adapters.iso20022.codesets import code_set
from adapters.iso20022.components import (
    Builder,
    ComponentError,
    Reader,
    element_path,
    identity_and_time,
    message_body,
    parse_date,
    read_account,
    read_agent,
    read_amount,
    read_party,
    read_postal_address,
    start_document,
    write_account,
    write_agent,
    write_amount,
    write_party,
    write_postal_address,
)
from adapters.iso20022.pacs008 import correlation_key, uetr_for
from adapters.iso20022.rules import MARKET_PRACTICE_CODES
from canonical_model.messages import (
    Agent,
    Agents,
    BusinessHeader,
    CanonicalMessage,
    Extension,
    Identifiers,
    MessageFunction,
    MessageKind,
    Party,
    PaymentTerms,
)

__all__ = [
    "EXTENSION_PREFIX",
    "INSTITUTION",
    "ROLES",
    "decode_transfers",
    "encode_document",
    "extension_value",
    "read_institution",
    "read_party_choice",
    "read_payment_terms",
    "write_code",
    "write_institution",
    "write_party_choice",
    "write_payment_type",
    "write_settlement",
]

EXTENSION_PREFIX = "iso20022:"
"""Key prefix of the extensions the ISO 20022 mappings write (ours)."""

INSTITUTION = "institution"
"""Value of ``iso20022:<role>.kind`` for a party that is a financial institution."""

NOT_PROVIDED = "NOTPROVIDED"
_BIC = re.compile(r"[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?")
_LEI = re.compile(r"[A-Z0-9]{18}[0-9]{2}")
_MAX_CLEARING_CODE = 5  # ExternalClearingSystemIdentification1Code
_MAX_CASH_CLEARING_CODE = 3  # ExternalCashClearingSystem1Code
_MAX_SERVICE_LEVEL_CODE = 4  # ExternalServiceLevel1Code
_MAX_PURPOSE_CODE = 4

ROLES = ("debtor", "creditor", "ultimate_debtor", "ultimate_creditor")
"""The roles an institution or ``Party40Choice`` party has in extension keys: the names of
the :class:`~canonical_model.messages.CanonicalMessage` fields that hold it."""


# -- extensions ---------------------------------------------------------------------------


def extension_value(extensions: Sequence[Extension], key: str) -> str | None:
    """The value of the first extension ``key`` (the full key, ``iso20022:...``), or None."""
    return next((e.value for e in extensions if e.key == key), None)


def _key(role: str, name: str) -> str:
    return f"{EXTENSION_PREFIX}{role}.{name}"


# -- institutions as parties ------------------------------------------------------------


def read_institution(
    r: Reader, element: etree._Element | None, role: str
) -> tuple[Party | None, tuple[Extension, ...]]:
    """A ``BranchAndFinancialInstitutionIdentification`` as a Party and its extensions."""
    if element is None:
        return None, ()
    institution = r.find(element, "FinInstnId")
    member = r.text(institution, "ClrSysMmbId/MmbId")
    clearing = r.text(institution, "ClrSysMmbId/ClrSysId/Cd") or r.text(
        institution, "ClrSysMmbId/ClrSysId/Prtry"
    )
    identification = (
        r.text(institution, "BICFI")
        or r.text(institution, "LEI")
        or member
        or r.text(institution, "Othr/Id")
    )
    party = Party(
        name=r.text(institution, "Nm"),
        postal_address=read_postal_address(r, r.find(institution, "PstlAdr")),
        identification=identification,
    )
    extensions = [Extension(_key(role, "kind"), INSTITUTION)]
    if clearing is not None:
        extensions.append(Extension(_key(role, "clearing_system"), clearing))
    if member is not None:
        extensions.append(Extension(_key(role, "member_id"), member))
    return party, tuple(extensions)


def write_institution(
    b: Builder,
    element: etree._Element,
    party: Party,
    role: str,
    extensions: Sequence[Extension] = (),
) -> None:
    """Fill a ``BranchAndFinancialInstitutionIdentification`` element from a Party."""
    institution = b.child(element, "FinInstnId")
    identification = party.identification
    member = extension_value(extensions, _key(role, "member_id"))
    clearing = extension_value(extensions, _key(role, "clearing_system"))
    is_bic = identification is not None and _BIC.fullmatch(identification) is not None
    if is_bic:
        b.child(institution, "BICFI", identification)
    if member is not None:
        if clearing is not None:
            kind = "Cd" if len(clearing) <= _MAX_CLEARING_CODE else "Prtry"
            b.path(institution, f"ClrSysMmbId/ClrSysId/{kind}", clearing)
        b.path(institution, "ClrSysMmbId/MmbId", member)
    other = identification if not is_bic and identification != member else None
    if other is not None and _LEI.fullmatch(other):
        b.child(institution, "LEI", other)
        other = None
    b.optional(institution, "Nm", party.name)
    if party.postal_address is not None:
        write_postal_address(b, institution, party.postal_address)
    if other is not None:
        b.path(institution, "Othr/Id", other)
    if len(institution) == 0:
        b.path(institution, "Othr/Id", NOT_PROVIDED)


def read_party_choice(
    r: Reader, element: etree._Element | None, role: str
) -> tuple[Party | None, tuple[Extension, ...]]:
    """A ``Party40Choice`` (``Pty`` or ``Agt``) as a Party and its extensions."""
    if element is None:
        return None, ()
    agent = r.find(element, "Agt")
    if agent is not None:
        return read_institution(r, agent, role)
    return read_party(r, r.find(element, "Pty")), ()


def write_party_choice(
    b: Builder,
    element: etree._Element,
    party: Party,
    role: str,
    extensions: Sequence[Extension] = (),
) -> None:
    """Fill a ``Party40Choice``: ``Agt`` for an institution (``iso20022:<role>.kind``),
    else ``Pty``."""
    if extension_value(extensions, _key(role, "kind")) == INSTITUTION:
        write_institution(b, b.child(element, "Agt"), party, role, extensions)
    else:
        write_party(b, b.child(element, "Pty"), party)


# -- payment type and codes ---------------------------------------------------------------


def read_payment_terms(
    r: Reader,
    settlement: etree._Element | None,
    holders: Sequence[etree._Element | None],
    *,
    charge_bearer: str | None = None,
    purpose: etree._Element | None = None,
) -> PaymentTerms:
    """Payment terms from a ``SttlmInf``, the ``PmtTpInf`` of the first of ``holders`` that
    has the value, a ``ChrgBr`` and the ``Purp`` of ``purpose``."""

    def pick(path: str) -> str | None:
        for holder in holders:
            for kind in ("Cd", "Prtry"):
                value = r.text(holder, f"PmtTpInf/{path}/{kind}")
                if value is not None:
                    return value
        return None

    return PaymentTerms(
        settlement_method=r.text(settlement, "SttlmMtd"),
        clearing_system=r.text(settlement, "ClrSys/Cd") or r.text(settlement, "ClrSys/Prtry"),
        charge_bearer=charge_bearer,
        service_level=pick("SvcLvl"),
        local_instrument=pick("LclInstrm"),
        category_purpose=pick("CtgyPurp"),
        purpose=r.text(purpose, "Purp/Cd") or r.text(purpose, "Purp/Prtry"),
        instruction_priority=next(
            (p for p in (r.text(h, "PmtTpInf/InstrPrty") for h in holders) if p is not None),
            None,
        ),
    )


def write_code(
    b: Builder,
    parent: etree._Element,
    path: str,
    value: str | None,
    *,
    code_set_name: str | None = None,
    max_code: int = _MAX_PURPOSE_CODE,
) -> None:
    """``path/Cd`` with ``value``, or ``path/Prtry`` when it is no code: not in the code set
    ``code_set_name`` (nor the accepted market practice), or longer than ``max_code``."""
    if value is None:
        return
    is_code = len(value) <= max_code
    if is_code and code_set_name is not None:
        practice = MARKET_PRACTICE_CODES.get(code_set_name)
        is_code = value in code_set(code_set_name) or (
            practice is not None and practice.fullmatch(value) is not None
        )
    b.path(parent, f"{path}/{'Cd' if is_code else 'Prtry'}", value)


def write_payment_type(b: Builder, parent: etree._Element, terms: PaymentTerms) -> None:
    """``PmtTpInf`` under ``parent`` (only the parts ``terms`` has), and nothing if none."""
    if not any(
        (
            terms.instruction_priority,
            terms.service_level,
            terms.local_instrument,
            terms.category_purpose,
        )
    ):
        return
    payment_type = b.path(parent, "PmtTpInf")
    b.optional(payment_type, "InstrPrty", terms.instruction_priority)
    write_code(b, payment_type, "SvcLvl", terms.service_level, max_code=_MAX_SERVICE_LEVEL_CODE)
    b.optional(payment_type, "LclInstrm/Cd", terms.local_instrument)
    write_code(
        b, payment_type, "CtgyPurp", terms.category_purpose, code_set_name="category_purpose"
    )


def write_settlement(b: Builder, parent: etree._Element, terms: PaymentTerms) -> None:
    """``SttlmInf`` under ``parent``: the method (``CLRG`` unless given) and clearing system."""
    b.path(parent, "SttlmInf/SttlmMtd", terms.settlement_method or "CLRG")
    write_code(
        b, b.path(parent, "SttlmInf"), "ClrSys", terms.clearing_system,
        max_code=_MAX_CASH_CLEARING_CODE,
    )  # fmt: skip


# -- decode -------------------------------------------------------------------------------


def _first(*elements: etree._Element | None) -> etree._Element | None:
    # Never `a or b` on lxml elements: their truth value is "has children".
    return next((e for e in elements if e is not None), None)


def decode_transfers(
    document: etree._Element,
    namespace: str,
    *,
    tenant: str,
    new_message_id: Callable[[], str],
    header: BusinessHeader | None,
) -> list[CanonicalMessage]:
    """Every ``CdtTrfTxInf`` of a pacs.009 ``Document`` as a canonical financial request."""
    r = Reader(namespace)
    body = message_body(r, document, "FICdtTrf")
    group = r.find(body, "GrpHdr")
    message_id, transmitted_at = identity_and_time(r, group, "/Document/FICdtTrf/GrpHdr")
    group_date = r.text(group, "IntrBkSttlmDt")
    settlement = r.find(group, "SttlmInf")
    messages = []
    for tx in r.findall(body, "CdtTrfTxInf"):
        path = element_path(tx)
        uetr = r.text(tx, "PmtId/UETR")
        end_to_end = r.text(tx, "PmtId/EndToEndId")
        date = r.text(tx, "IntrBkSttlmDt") or group_date
        extensions: list[Extension] = []
        parties: dict[str, Party | None] = {}
        for role, name in zip(ROLES, ("Dbtr", "Cdtr", "UltmtDbtr", "UltmtCdtr"), strict=True):
            parties[role], found = read_institution(r, r.find(tx, name), role)
            extensions.extend(found)
        messages.append(
            CanonicalMessage(
                kind=MessageKind.FINANCIAL,
                function=MessageFunction.REQUEST,
                tenant=tenant,
                ids=Identifiers(
                    message_id=new_message_id(),
                    end_to_end_id=end_to_end,
                    instruction_id=r.text(tx, "PmtId/InstrId"),
                    uetr=uetr,
                    transaction_id=r.text(tx, "PmtId/TxId"),
                    correlation_key=correlation_key(uetr, message_id, end_to_end),
                    source_message_id=message_id,
                    clearing_reference=r.text(tx, "PmtId/ClrSysRef"),
                ),
                transmitted_at=transmitted_at,
                settlement_date=parse_date(date, f"{path}/IntrBkSttlmDt") if date else None,
                amount=read_amount(r.find(tx, "IntrBkSttlmAmt"), f"{path}/IntrBkSttlmAmt"),
                debtor=parties["debtor"],
                debtor_account=read_account(r, r.find(tx, "DbtrAcct")),
                creditor=parties["creditor"],
                creditor_account=read_account(r, r.find(tx, "CdtrAcct")),
                ultimate_debtor=parties["ultimate_debtor"],
                ultimate_creditor=parties["ultimate_creditor"],
                agents=Agents(
                    instructing=read_agent(
                        r, _first(r.find(tx, "InstgAgt"), r.find(group, "InstgAgt"))
                    ),
                    instructed=read_agent(
                        r, _first(r.find(tx, "InstdAgt"), r.find(group, "InstdAgt"))
                    ),
                    debtor_agent=read_agent(r, r.find(tx, "DbtrAgt")),
                    creditor_agent=read_agent(r, r.find(tx, "CdtrAgt")),
                ),
                remittance=r.texts(tx, "RmtInf/Ustrd"),
                payment_terms=read_payment_terms(r, settlement, (tx, group), purpose=tx),
                extensions=tuple(extensions),
                business_header=header,
            )
        )
    return messages


# -- encode -------------------------------------------------------------------------------


def encode_document(
    messages: Sequence[CanonicalMessage],
    namespace: str,
    *,
    now: Callable[[], dt.datetime],
) -> etree._Element:
    """A pacs.009 ``Document`` (children not yet in schema order) for ``messages``."""
    b = Builder(namespace)
    first = messages[0]
    document, body, group = start_document(b, "FICdtTrf", first, now)
    b.child(group, "NbOfTxs", str(len(messages)))
    write_settlement(b, group, first.payment_terms or PaymentTerms())
    for message in messages:
        _encode_transaction(b, body, message, now)
    return document


def _institution(
    b: Builder,
    tx: etree._Element,
    name: str,
    message: CanonicalMessage,
    role: str,
    fallback: Agent | None,
) -> None:
    party = getattr(message, role)
    if party is not None:
        write_institution(b, b.child(tx, name), party, role, message.extensions)
    elif fallback is not None:
        write_agent(b, b.child(tx, name), fallback)


def _encode_transaction(
    b: Builder, body: etree._Element, message: CanonicalMessage, now: Callable[[], dt.datetime]
) -> None:
    tx = b.child(body, "CdtTrfTxInf")
    ids = message.ids
    terms = message.payment_terms or PaymentTerms()
    b.optional(tx, "PmtId/InstrId", ids.instruction_id)
    b.path(tx, "PmtId/EndToEndId", ids.end_to_end_id or NOT_PROVIDED)
    b.optional(tx, "PmtId/TxId", ids.transaction_id)
    b.path(
        tx, "PmtId/UETR", ids.uetr or uetr_for(message.tenant, ids.message_id, ids.end_to_end_id)
    )
    b.optional(tx, "PmtId/ClrSysRef", ids.clearing_reference)
    write_payment_type(b, tx, terms)
    if message.amount is None:
        raise ComponentError(
            "/Document/FICdtTrf/CdtTrfTxInf/IntrBkSttlmAmt",
            "a credit transfer needs an amount",
        )
    write_amount(b, tx, "IntrBkSttlmAmt", message.amount)
    settlement = message.settlement_date or (message.transmitted_at or now()).date()
    b.child(tx, "IntrBkSttlmDt", settlement.isoformat())
    agents = message.agents or Agents()
    instructing = agents.instructing or agents.acquirer
    instructed = agents.instructed or agents.receiver
    if instructing is not None:
        write_agent(b, b.child(tx, "InstgAgt"), instructing)
    if instructed is not None:
        write_agent(b, b.child(tx, "InstdAgt"), instructed)
    _institution(b, tx, "UltmtDbtr", message, "ultimate_debtor", None)
    _institution(b, tx, "Dbtr", message, "debtor", agents.debtor_agent or instructing or Agent())
    if message.debtor_account is not None:
        write_account(b, b.child(tx, "DbtrAcct"), message.debtor_account)
    if agents.debtor_agent is not None:
        write_agent(b, b.child(tx, "DbtrAgt"), agents.debtor_agent)
    if agents.creditor_agent is not None:
        write_agent(b, b.child(tx, "CdtrAgt"), agents.creditor_agent)
    _institution(b, tx, "Cdtr", message, "creditor", agents.creditor_agent or instructed or Agent())
    if message.creditor_account is not None:
        write_account(b, b.child(tx, "CdtrAcct"), message.creditor_account)
    _institution(b, tx, "UltmtCdtr", message, "ultimate_creditor", None)
    write_code(b, tx, "Purp", terms.purpose, code_set_name="purpose")
    for line in message.remittance:
        b.child(b.path(tx, "RmtInf"), "Ustrd", line)
