"""pacs.008 (FIToFICustomerCreditTransfer) <-> canonical financial requests.

Versions 001.08 (CBPR+, FedNow, SEPA) and 001.13 (2025). One canonical message per
``CdtTrfTxInf``; the group header's values (settlement method, clearing system, settlement
date, agents) apply to each transaction unless the transaction has its own.

==================================  ===========================================================
pacs.008                             canonical
==================================  ===========================================================
``GrpHdr/MsgId``                     ``ids.source_message_id`` (encode: the hub message id)
``GrpHdr/CreDtTm``                   ``transmitted_at``
``GrpHdr/SttlmInf/SttlmMtd``, ClrSys ``payment_terms.settlement_method`` / ``clearing_system``
``PmtId/InstrId``, ``EndToEndId``    ``ids.instruction_id`` (ISO 8583 STAN), ``ids.end_to_end_id``
                                     (ISO 8583 RRN)
``PmtId/TxId``, ``UETR``, ClrSysRef  ``ids.transaction_id``, ``ids.uetr``, ``clearing_reference``
``PmtTpInf``                         ``payment_terms`` (service level, local instrument,
                                     category purpose, priority)
``IntrBkSttlmAmt`` / ``InstdAmt``    ``amount`` / ``instructed_amount``
``IntrBkSttlmDt``                    ``settlement_date``
``ChrgBr``, ``Purp/Cd``              ``payment_terms.charge_bearer`` / ``purpose``
``InstgAgt``, ``InstdAgt``           ``agents.instructing`` / ``instructed``
``DbtrAgt``, ``CdtrAgt``             ``agents.debtor_agent`` / ``creditor_agent``
``Dbtr``/``Cdtr``, ``Ultmt...``      ``debtor``/``creditor``, ``ultimate_debtor``/``_creditor``
``DbtrAcct``, ``CdtrAcct``           ``debtor_account``, ``creditor_account``; a ``DbtrAcct``
                                     whose ``SchmeNm/Prtry`` is ``TOKEN`` is ``card.token``
``RmtInf/Ustrd``                     ``remittance``
``SplmtryData`` (``urn:isobridge``)  card-rail data with no ISO 20022 home: acceptor, processing
                                     code, approval code, local date and time (ours)
==================================  ===========================================================

From a card-rail message (ISO 8583 0200), the encoder fills what pacs.008 requires: the
settlement method ``CLRG`` unless given, ``ChrgBr`` ``SLEV``, the debtor agent from the
receiving institution (field 100) or ``NOTPROVIDED``, the creditor agent from the acquirer
(field 32), the creditor from the card acceptor (field 43 name, field 42 id), the debtor
account from the card token, and a UETR derived from the tenant and message id (a UUID v4
shape, the same for the same message, so a retried translation does not mint a second
one).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence

from lxml import etree

from adapters.iso20022.components import (
    TOKEN_SCHEME,
    Builder,
    ComponentError,
    Reader,
    default_namespace,
    element_path,
    identity_and_time,
    max35,
    message_body,
    parse_date,
    read_account,
    read_agent,
    read_amount,
    read_party,
    start_document,
    write_account,
    write_agent,
    write_amount,
    write_party,
)
from canonical_model.messages import (
    Acceptor,
    Account,
    Agent,
    Agents,
    BusinessHeader,
    CanonicalMessage,
    Card,
    Identifiers,
    MessageFunction,
    MessageKind,
    Party,
    PaymentTerms,
    ProcessingCode,
)

__all__ = [
    "CARD_DATA_NAMESPACE",
    "correlation_key",
    "decode_transactions",
    "encode_document",
    "max35",
    "uetr_for",
]

CARD_DATA_NAMESPACE = "urn:isobridge:xsd:carddata.001"
"""Namespace of the card-rail data the hub puts in ``SplmtryData/Envlp`` (ours)."""

NOT_PROVIDED = "NOTPROVIDED"


def uetr_for(tenant: str, message_id: str, end_to_end_id: str | None) -> str:
    """A UETR (UUID v4 form) that is the same for the same tenant and message."""
    digest = bytearray(
        hashlib.sha256(f"{tenant}\0{message_id}\0{end_to_end_id or ''}".encode()).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x40
    digest[8] = (digest[8] & 0x3F) | 0x80
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def correlation_key(uetr: str | None, message_id: str | None, end_to_end_id: str | None) -> str:
    """What matches a pacs.002 / pacs.004 / camt.056 to its pacs.008 (``CANONICAL.md``)."""
    if uetr:
        return f"uetr:{uetr}"
    return f"e2e:{message_id or ''}:{end_to_end_id or ''}"


def _first(*elements: etree._Element | None) -> etree._Element | None:
    # Never `a or b` on lxml elements: their truth value is "has children".
    return next((e for e in elements if e is not None), None)


def _payment_terms(r: Reader, tx: etree._Element, group: etree._Element | None) -> PaymentTerms:
    def pick(path: str) -> str | None:
        return r.text(tx, path) or r.text(group, path)

    return PaymentTerms(
        settlement_method=r.text(group, "SttlmInf/SttlmMtd"),
        clearing_system=r.text(group, "SttlmInf/ClrSys/Cd")
        or r.text(group, "SttlmInf/ClrSys/Prtry"),
        charge_bearer=r.text(tx, "ChrgBr"),
        service_level=pick("PmtTpInf/SvcLvl/Cd") or pick("PmtTpInf/SvcLvl/Prtry"),
        local_instrument=pick("PmtTpInf/LclInstrm/Cd") or pick("PmtTpInf/LclInstrm/Prtry"),
        category_purpose=pick("PmtTpInf/CtgyPurp/Cd") or pick("PmtTpInf/CtgyPurp/Prtry"),
        purpose=r.text(tx, "Purp/Cd") or r.text(tx, "Purp/Prtry"),
        instruction_priority=pick("PmtTpInf/InstrPrty"),
    )


def _card_data(tx: etree._Element) -> dict[str, str]:
    found: dict[str, str] = {}
    for data in tx.iter(f"{{{CARD_DATA_NAMESPACE}}}CardData"):
        for child in data:
            if isinstance(child.tag, str) and child.text:
                found[etree.QName(child).localname] = child.text
    return found


def decode_transactions(
    document: etree._Element,
    namespace: str,
    *,
    tenant: str,
    new_message_id: Callable[[], str],
    header: BusinessHeader | None,
    tokenize_account: Callable[[Account, str], Card | None],
) -> list[CanonicalMessage]:
    """Every ``CdtTrfTxInf`` of a pacs.008 ``Document`` as a canonical financial request.

    ``tokenize_account(account, path)`` turns a debtor account that carries a card token
    (or a clear card number) into a :class:`Card`; it returns ``None`` for other accounts.
    """
    r = Reader(namespace)
    body = message_body(r, document, "FIToFICstmrCdtTrf")
    group = r.find(body, "GrpHdr")
    message_id, transmitted_at = identity_and_time(r, group, "/Document/FIToFICstmrCdtTrf/GrpHdr")
    group_date = r.text(group, "IntrBkSttlmDt")
    messages = []
    for tx in r.findall(body, "CdtTrfTxInf"):
        path = element_path(tx)
        uetr = r.text(tx, "PmtId/UETR")
        end_to_end = r.text(tx, "PmtId/EndToEndId")
        settlement = r.text(tx, "IntrBkSttlmDt") or group_date
        debtor_account = read_account(r, r.find(tx, "DbtrAcct"))
        card = None
        if debtor_account is not None:
            card = tokenize_account(debtor_account, f"{path}/DbtrAcct")
            if card is not None:
                debtor_account = None
        extra = _card_data(tx)
        if card is not None and "DbtrAcctId" in extra:
            debtor_account = Account(other_id=extra["DbtrAcctId"])
        acceptor = None
        if any(
            k in extra
            for k in ("TermnlId", "MrchntId", "NmAndLctn", "MrchntCtgyCd", "PosNtryMd", "PosCondCd")
        ):
            acceptor = Acceptor(
                terminal_id=extra.get("TermnlId"),
                merchant_id=extra.get("MrchntId"),
                name_location=extra.get("NmAndLctn"),
                category_code=extra.get("MrchntCtgyCd"),
                pos_entry_mode=extra.get("PosNtryMd"),
                pos_condition_code=extra.get("PosCondCd"),
            )
        processing = None
        if "PrcgCd" in extra and len(extra["PrcgCd"]) == 6:
            code = extra["PrcgCd"]
            processing = ProcessingCode(code[0:2], code[2:4], code[4:6])
        if card is not None and "CardSeqNb" in extra:
            card = Card(
                card.token,
                card.expiry,
                extra["CardSeqNb"],
                card.service_code,
                card.emv,
                card.dropped,
            )
        local_date = parse_date(extra["LclDt"], path) if "LclDt" in extra else None
        local_time = dt.time.fromisoformat(extra["LclTm"]) if "LclTm" in extra else None
        messages.append(
            CanonicalMessage(
                kind=MessageKind.BALANCE_ENQUIRY
                if processing and processing.transaction_type == "31"
                else MessageKind.FINANCIAL,
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
                local_time=local_time,
                local_date=local_date,
                settlement_date=parse_date(settlement, f"{path}/IntrBkSttlmDt")
                if settlement
                else None,
                processing=processing,
                amount=read_amount(r.find(tx, "IntrBkSttlmAmt"), f"{path}/IntrBkSttlmAmt"),
                instructed_amount=read_amount(r.find(tx, "InstdAmt"), f"{path}/InstdAmt"),
                card=card,
                acceptor=acceptor,
                debtor=read_party(r, r.find(tx, "Dbtr")),
                debtor_account=debtor_account,
                creditor=read_party(r, r.find(tx, "Cdtr")),
                creditor_account=read_account(r, r.find(tx, "CdtrAcct")),
                ultimate_debtor=read_party(r, r.find(tx, "UltmtDbtr")),
                ultimate_creditor=read_party(r, r.find(tx, "UltmtCdtr")),
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
                approval_code=extra.get("ApprvlCd"),
                remittance=r.texts(tx, "RmtInf/Ustrd"),
                payment_terms=_payment_terms(r, tx, group),
                business_header=header,
            )
        )
    return messages


def _debtor_account(message: CanonicalMessage) -> Account | None:
    if message.card is not None and message.card.token is not None:
        # The token travels, never the card number: the account-rail side is tokenized.
        # A card-rail debtor account (ISO 8583 field 102) then rides in the card data.
        return Account(other_id=message.card.token.value, scheme=TOKEN_SCHEME)
    return message.debtor_account


def _creditor(message: CanonicalMessage) -> Party:
    if message.creditor is not None:
        return message.creditor
    acceptor = message.acceptor
    if acceptor is not None and (acceptor.name_location or acceptor.merchant_id):
        name = (acceptor.name_location or "").strip() or None
        return Party(name=name, identification=acceptor.merchant_id)
    return Party(name=NOT_PROVIDED)


def _write_card_data(b: Builder, tx: etree._Element, message: CanonicalMessage) -> None:
    values: list[tuple[str, str | None]] = []
    acceptor = message.acceptor
    if acceptor is not None:
        values += [
            ("TermnlId", acceptor.terminal_id),
            ("MrchntId", acceptor.merchant_id),
            ("NmAndLctn", acceptor.name_location),
            ("MrchntCtgyCd", acceptor.category_code),
            ("PosNtryMd", acceptor.pos_entry_mode),
            ("PosCondCd", acceptor.pos_condition_code),
        ]
    if message.processing is not None:
        p = message.processing
        values.append(("PrcgCd", f"{p.transaction_type}{p.from_account_type}{p.to_account_type}"))
    values.append(("ApprvlCd", message.approval_code))
    if message.card is not None and message.card.token is not None and message.debtor_account:
        values.append(
            ("DbtrAcctId", message.debtor_account.iban or message.debtor_account.other_id)
        )
    if message.card is not None:
        values.append(("CardSeqNb", message.card.sequence_number))
    values.append(("LclDt", message.local_date.isoformat() if message.local_date else None))
    values.append(("LclTm", message.local_time.isoformat() if message.local_time else None))
    present = [(k, v) for k, v in values if v is not None]
    if not present:
        return
    envelope = b.path(b.child(tx, "SplmtryData"), "Envlp")
    data = etree.SubElement(
        envelope, f"{{{CARD_DATA_NAMESPACE}}}CardData", nsmap=default_namespace(CARD_DATA_NAMESPACE)
    )
    for key, value in present:
        etree.SubElement(data, f"{{{CARD_DATA_NAMESPACE}}}{key}").text = value


def encode_document(
    messages: Sequence[CanonicalMessage],
    namespace: str,
    *,
    now: Callable[[], dt.datetime],
) -> etree._Element:
    """A pacs.008 ``Document`` (children not yet in schema order) for ``messages``."""
    b = Builder(namespace)
    first = messages[0]
    document, body, group = start_document(b, "FIToFICstmrCdtTrf", first, now)
    b.child(group, "NbOfTxs", str(len(messages)))
    terms = first.payment_terms or PaymentTerms()
    b.path(group, "SttlmInf/SttlmMtd", terms.settlement_method or "CLRG")
    if terms.clearing_system is not None:
        b.path(group, "SttlmInf/ClrSys/Cd", terms.clearing_system)
    for message in messages:
        _encode_transaction(b, body, message, now)
    return document


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
    b.optional(tx, "PmtTpInf/InstrPrty", terms.instruction_priority)
    b.optional(tx, "PmtTpInf/SvcLvl/Cd", terms.service_level)
    b.optional(tx, "PmtTpInf/LclInstrm/Cd", terms.local_instrument)
    b.optional(tx, "PmtTpInf/CtgyPurp/Cd", terms.category_purpose)
    if message.amount is None:
        raise ComponentError(
            "/Document/FIToFICstmrCdtTrf/CdtTrfTxInf/IntrBkSttlmAmt",
            "a credit transfer needs an amount",
        )
    write_amount(b, tx, "IntrBkSttlmAmt", message.amount)
    settlement = message.settlement_date or (message.transmitted_at or now()).date()
    b.child(tx, "IntrBkSttlmDt", settlement.isoformat())
    if message.instructed_amount is not None:
        write_amount(b, tx, "InstdAmt", message.instructed_amount)
    b.child(tx, "ChrgBr", terms.charge_bearer or "SLEV")
    agents = message.agents or Agents()
    instructing = agents.instructing or agents.acquirer
    instructed = agents.instructed or agents.receiver
    if instructing is not None:
        write_agent(b, b.child(tx, "InstgAgt"), instructing)
    if instructed is not None:
        write_agent(b, b.child(tx, "InstdAgt"), instructed)
    if message.ultimate_debtor is not None:
        write_party(b, b.child(tx, "UltmtDbtr"), message.ultimate_debtor)
    write_party(b, b.child(tx, "Dbtr"), message.debtor or Party(name=NOT_PROVIDED))
    account = _debtor_account(message)
    if account is not None:
        write_account(b, b.child(tx, "DbtrAcct"), account)
    write_agent(b, b.child(tx, "DbtrAgt"), agents.debtor_agent or agents.receiver or Agent())
    write_agent(b, b.child(tx, "CdtrAgt"), agents.creditor_agent or agents.acquirer or Agent())
    write_party(b, b.child(tx, "Cdtr"), _creditor(message))
    if message.creditor_account is not None:
        write_account(b, b.child(tx, "CdtrAcct"), message.creditor_account)
    if message.ultimate_creditor is not None:
        write_party(b, b.child(tx, "UltmtCdtr"), message.ultimate_creditor)
    b.optional(tx, "Purp/Cd", terms.purpose)
    for line in message.remittance:
        b.child(b.path(tx, "RmtInf"), "Ustrd", line)
    _write_card_data(b, tx, message)
