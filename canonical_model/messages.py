"""The canonical message: one frozen envelope that every adapter decodes to and encodes from.

What the model carries, and where each value comes from in ISO 8583, ISO 20022, open banking
and the mainframe records, is fixed by ``design/CANONICAL.md``; this module is its code.
A message is a :class:`CanonicalMessage` with a :class:`MessageKind` (authorization,
financial, reversal, ...) and a :class:`MessageFunction` (request, response, advice, ...),
and optional sections that a kind fills: amounts, card, acceptor, parties, agents, status.

Every value is immutable; a card number appears only as a :class:`~canonical_model.pan.PanToken`.
Track data and PIN blocks have no field here at all: an adapter can only record that it
dropped them (``Card.dropped``).

>>> from canonical_model.money import Money
>>> msg = CanonicalMessage(
...     kind=MessageKind.FINANCIAL,
...     function=MessageFunction.REQUEST,
...     tenant="acme",
...     ids=Identifiers(message_id="m-1", instruction_id="000123"),
...     amount=Money.of("10.50", "EUR"),
... )
>>> msg.amount
Money(amount=Decimal('10.50'), currency=Currency(alpha='EUR', numeric='978', exponent=2))
>>> msg.is_response
False
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from canonical_model.codes import Status
from canonical_model.money import Money
from canonical_model.pan import PanToken

__all__ = [
    "Account",
    "Acceptor",
    "AdditionalAmount",
    "Agent",
    "Agents",
    "Card",
    "CanonicalMessage",
    "EmvTag",
    "Extension",
    "Identifiers",
    "MessageFunction",
    "MessageKind",
    "NetworkAction",
    "NetworkManagement",
    "OriginalTransaction",
    "Party",
    "PostalAddress",
    "ProcessingCode",
]


class MessageKind(StrEnum):
    """What a message is about, independent of its wire format."""

    AUTHORIZATION = "authorization"
    FINANCIAL = "financial"
    REVERSAL = "reversal"
    NETWORK_MANAGEMENT = "network_management"
    CREDIT_TRANSFER = "credit_transfer"
    RETURN = "return"
    CANCELLATION = "cancellation"
    STATUS_REPORT = "status_report"
    BALANCE_ENQUIRY = "balance_enquiry"
    STATEMENT = "statement"


class MessageFunction(StrEnum):
    """The role of a message in its exchange."""

    REQUEST = "request"
    RESPONSE = "response"
    ADVICE = "advice"
    ADVICE_RESPONSE = "advice_response"

    @property
    def is_response(self) -> bool:
        return self in (MessageFunction.RESPONSE, MessageFunction.ADVICE_RESPONSE)


class NetworkAction(StrEnum):
    """Network management actions (ISO 8583 field 70 information codes)."""

    SIGN_ON = "sign_on"
    SIGN_OFF = "sign_off"
    ECHO = "echo"
    KEY_CHANGE = "key_change"
    CUTOVER = "cutover"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Identifiers:
    """Identifiers of a message (``CANONICAL.md``, "Fields").

    ``message_id`` is minted by the hub and unique; ``end_to_end_id`` is ISO 8583's RRN
    (field 37) or ISO 20022's EndToEndId and never changes across later messages;
    ``instruction_id`` is the STAN (field 11) or InstrId. ``correlation_key`` is what
    matches a reply to its request (for ISO 8583: MTI class + field 41 + field 11).
    ``source_message_id`` is the id the sender gave the message it came in
    (``GrpHdr/MsgId``); ``batch_id`` the batch it belongs to (pain.001 ``PmtInfId``);
    ``transaction_id`` the interbank ``TxId``; ``clearing_reference`` the ``ClrSysRef``.
    """

    message_id: str
    end_to_end_id: str | None = None
    instruction_id: str | None = None
    uetr: str | None = None
    transaction_id: str | None = None
    correlation_key: str | None = None
    source_message_id: str | None = None
    batch_id: str | None = None
    clearing_reference: str | None = None


@dataclass(frozen=True, slots=True)
class ProcessingCode:
    """ISO 8583 field 3: transaction type and the from / to account types (two digits each)."""

    transaction_type: str
    from_account_type: str = "00"
    to_account_type: str = "00"


@dataclass(frozen=True, slots=True)
class AdditionalAmount:
    """One additional amount (ISO 8583 field 54): e.g. ledger or available balance."""

    account_type: str
    amount_type: str
    amount: Money


@dataclass(frozen=True, slots=True)
class EmvTag:
    """One BER-TLV data object of the chip data (field 55); tag and value in hex, opaque."""

    tag: str
    value: str


@dataclass(frozen=True, slots=True)
class Card:
    """The card of a card-rail transaction. The PAN is a token; expiry is ``YYMM``.

    ``dropped`` names the sensitive elements that arrived and were discarded at the edge
    (``track2``, ``pin_block``, ...): the fact is kept for risk decisions, the data never.
    """

    token: PanToken | None = None
    expiry: str | None = None
    sequence_number: str | None = None
    service_code: str | None = None
    emv: tuple[EmvTag, ...] = ()
    dropped: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Acceptor:
    """Card acceptor and point of service: fields 41, 42, 43, 18, 22, 25."""

    terminal_id: str | None = None
    merchant_id: str | None = None
    name_location: str | None = None
    category_code: str | None = None
    pos_entry_mode: str | None = None
    pos_condition_code: str | None = None


@dataclass(frozen=True, slots=True)
class PostalAddress:
    """A postal address (ISO 20022 PostalAddress24/27): structured elements, free address
    lines, or both (the "hybrid" form the November 2026 market rule allows: town and
    country structured, at most two address lines)."""

    street_name: str | None = None
    building_number: str | None = None
    post_code: str | None = None
    town_name: str | None = None
    country_sub_division: str | None = None
    country: str | None = None
    address_lines: tuple[str, ...] = ()
    department: str | None = None
    sub_department: str | None = None
    building_name: str | None = None
    floor: str | None = None
    post_box: str | None = None
    room: str | None = None
    town_location_name: str | None = None
    district_name: str | None = None

    @property
    def is_structured(self) -> bool:
        """Whether any structured element is present (town and country at least, by rule)."""
        return any(
            getattr(self, name) is not None
            for name in (
                "street_name", "building_number", "post_code", "town_name",
                "country_sub_division", "country", "department", "sub_department",
                "building_name", "floor", "post_box", "room", "town_location_name",
                "district_name",
            )
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Party:
    """A debtor or creditor."""

    name: str | None = None
    postal_address: PostalAddress | None = None
    identification: str | None = None


@dataclass(frozen=True, slots=True)
class Account:
    """An account: an IBAN, or another identifier with its scheme (e.g. ``TOKEN``, ``BBAN``)."""

    iban: str | None = None
    other_id: str | None = None
    scheme: str | None = None
    name: str | None = None
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class Agent:
    """A financial institution: a BIC, or a clearing-system member id (ISO 8583 field 32)."""

    bic: str | None = None
    member_id: str | None = None
    clearing_system: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Agents:
    """The agents a message names, card-rail and account-rail."""

    acquirer: Agent | None = None
    forwarder: Agent | None = None
    receiver: Agent | None = None
    instructing: Agent | None = None
    instructed: Agent | None = None
    debtor_agent: Agent | None = None
    creditor_agent: Agent | None = None


@dataclass(frozen=True, slots=True)
class OriginalTransaction:
    """What a reversal, return or status report refers to (field 90, ``OrgnlGrpInf``...)."""

    message_type: str | None = None
    message_id: str | None = None
    instruction_id: str | None = None
    end_to_end_id: str | None = None
    uetr: str | None = None
    transmitted_at: dt.datetime | None = None
    acquirer_id: str | None = None
    forwarder_id: str | None = None


@dataclass(frozen=True, slots=True)
class BusinessHeader:
    """The ISO 20022 Business Application Header (head.001, ``AppHdr``) of a message."""

    sender: str | None = None
    receiver: str | None = None
    business_message_id: str | None = None
    message_definition: str | None = None
    business_service: str | None = None
    created_at: dt.datetime | None = None
    duplicate: bool = False
    priority: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentTerms:
    """How an account-rail payment is to be settled and charged (ISO 20022 ``PmtTpInf``,
    ``SttlmInf``, ``ChrgBr``, ``Purp``); all ISO 20022 codes as they stand."""

    settlement_method: str | None = None
    clearing_system: str | None = None
    charge_bearer: str | None = None
    service_level: str | None = None
    local_instrument: str | None = None
    category_purpose: str | None = None
    purpose: str | None = None
    instruction_priority: str | None = None
    requested_execution_date: dt.date | None = None


@dataclass(frozen=True, slots=True)
class Balance:
    """A balance of a statement (ISO 20022 ``Bal``): its type code (``OPBD`` opening
    booked, ``CLBD`` closing booked, ``CLAV`` closing available...), amount, sign, date."""

    type_code: str
    amount: Money
    credit: bool = True
    date: dt.date | None = None


@dataclass(frozen=True, slots=True)
class StatementEntry:
    """One entry of a statement or notification (ISO 20022 ``Ntry``, with its first
    ``TxDtls``): a booked (or pending) credit or debit on the account."""

    amount: Money
    credit: bool
    status: str = "BOOK"
    booking_date: dt.date | None = None
    value_date: dt.date | None = None
    account_servicer_reference: str | None = None
    end_to_end_id: str | None = None
    bank_transaction_code: str | None = None
    counterparty: Party | None = None
    counterparty_account: Account | None = None
    remittance: tuple[str, ...] = ()
    additional_info: str | None = None


@dataclass(frozen=True, slots=True)
class Statement:
    """A statement (camt.053) or notification (camt.054) of one account: its header.

    Entries travel as messages of their own (``statement_entry``, with this header without
    balances), so a statement of any size streams in bounded memory.
    """

    statement_id: str
    account: Account
    sequence_number: str | None = None
    created_at: dt.datetime | None = None
    from_date: dt.datetime | None = None
    to_date: dt.datetime | None = None
    balances: tuple[Balance, ...] = ()
    entry_count: int | None = None


@dataclass(frozen=True, slots=True)
class NetworkManagement:
    """Network management request: the action, and the code the source protocol used."""

    action: NetworkAction
    information_code: str | None = None


@dataclass(frozen=True, slots=True)
class Extension:
    """A value with no canonical field, carried through untouched (``iso8583:48`` ...).

    Adapters never place sensitive data here: values that look like a card number are
    dropped at decode, like track data.
    """

    key: str
    value: str


@dataclass(frozen=True, slots=True)
class CanonicalMessage:
    """One message in the hub's language; see the module docstring."""

    kind: MessageKind
    function: MessageFunction
    tenant: str
    ids: Identifiers
    repeat: bool = False
    transmitted_at: dt.datetime | None = None
    local_time: dt.time | None = None
    local_date: dt.date | None = None
    settlement_date: dt.date | None = None
    processing: ProcessingCode | None = None
    amount: Money | None = None
    additional_amounts: tuple[AdditionalAmount, ...] = ()
    card: Card | None = None
    acceptor: Acceptor | None = None
    debtor: Party | None = None
    debtor_account: Account | None = None
    creditor: Party | None = None
    creditor_account: Account | None = None
    agents: Agents | None = None
    original: OriginalTransaction | None = None
    status: Status | None = None
    approval_code: str | None = None
    network: NetworkManagement | None = None
    remittance: tuple[str, ...] = ()
    extensions: tuple[Extension, ...] = ()
    instructed_amount: Money | None = None
    payment_terms: PaymentTerms | None = None
    business_header: BusinessHeader | None = None
    ultimate_debtor: Party | None = None
    ultimate_creditor: Party | None = None
    statement: Statement | None = None
    statement_entry: StatementEntry | None = None

    def __post_init__(self) -> None:
        if self.transmitted_at is not None and self.transmitted_at.tzinfo is None:
            raise ValueError("transmitted_at must be timezone-aware")

    @property
    def is_response(self) -> bool:
        return self.function.is_response

    def same_transaction(self, other: CanonicalMessage) -> bool:
        """Whether ``other`` carries this transaction, as after a re-encode and a decode.

        The message id (new at every decode) and the record of what an edge dropped
        (``card.dropped``: the data is gone for good) do not count.
        """
        return _without_edge_facts(self) == _without_edge_facts(other)


def _without_edge_facts(message: CanonicalMessage) -> CanonicalMessage:
    card = message.card
    if card is not None and card.dropped:
        card = dataclasses.replace(card, dropped=())
    ids = dataclasses.replace(message.ids, message_id="")
    return dataclasses.replace(message, ids=ids, card=card)
