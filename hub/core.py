"""The core banking service: canonical requests become postings on the mainframe, and the
mainframe's answers become canonical replies.

What each request becomes (the ``CB-REQUEST`` tran code of
``adapters/fixedwidth/layouts/corebank_request.cpy``, through the ``fixedwidth`` adapter's
``corebank-request`` variant):

=========================================  =================================================
canonical request                          posting
=========================================  =================================================
financial, processing ``00`` (purchase,    ``DEBT`` of ``debtor_account`` (ISO 8583 field
cash) / ``01`` / ``09``                    102)
financial, processing ``20`` (refund)      ``CRDT`` of ``debtor_account``
financial, processing ``40`` (transfer)    ``XFER`` from ``debtor_account`` to
                                           ``creditor_account`` (field 103)
balance enquiry (processing ``31``)        ``BALQ``
credit transfer (pacs.008 in)              ``CRDT`` of ``creditor_account``
authorization (0100)                       ``HOLD`` on ``debtor_account``
reversal (0420) of any of these            ``REVS`` of the original posting
=========================================  =================================================

The posting reference (``CB-POSTING-REF``, the mainframe's idempotency key) is derived from
what identifies the transaction, not from the hub's message id: the tenant, the terminal
(field 41), the RRN (field 37) and the STAN (field 11) of a card request, or the end-to-end
id and UETR of a credit transfer. A repeated request (0201, 0421, a redelivered message)
therefore posts once; a reversal derives the reference of the posting it reverses from its
original data elements (field 90: the original STAN) the same way.

The reply: the mainframe's result code (ISO 8583 field 39 values) as the canonical status,
an approval code on approval, and the ledger and available balances as additional amounts
(field 54). When the mainframe cannot be asked (breaker open, no connection: nothing was
sent) the reply is ``91``. When it was asked but did not answer (timeout, connection lost)
the reply is ``91`` too, and since the posting may have been applied, a reversal of it is
stored (:class:`PendingReversals`) and forwarded until the mainframe acknowledges it.
A request that cannot become a posting (no account, an unsupported processing code) is
answered ``12`` (invalid transaction) or ``14`` (no account) at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from adapters.base import AdapterDecodeError, AdapterEncodeError, DecodeContext, EncodeContext
from adapters.fixedwidth.adapter import FixedWidthAdapter
from adapters.framing import FixedRecordFramer, Framer, get_framer
from canonical_model.codes import Status, TransactionStatus, status_from_iso8583
from canonical_model.construct import fast_constructor
from canonical_model.messages import (
    Account,
    AdditionalAmount,
    CanonicalMessage,
    Identifiers,
    MessageFunction,
    MessageKind,
    OriginalTransaction,
    ProcessingCode,
)
from canonical_model.pan import PanToken, random_hex_id
from canonical_model.random_ids import token_hex
from canonical_model.replies import reply_to
from hub.breaker import CircuitBreaker
from hub.config_file import MainframeConfig
from hub.connector import (
    ConnectionLostError,
    ConnectorSettings,
    DestinationTimeoutError,
    DestinationUnavailableError,
    RecordConnector,
)
from observability.tracing import Tracing

__all__ = [
    "CORE_RECORD_LENGTH",
    "CoreBanking",
    "CoreStats",
    "NoPostingError",
    "PendingReversals",
    "PostingExchange",
    "RunningExchange",
    "corebank_connector",
    "corebank_exchange",
    "immediate_answer",
    "posting_for",
    "posting_reference",
]

_log = logging.getLogger("isobridge.core")

INVALID_TRANSACTION: Final = "12"
NO_ACCOUNT: Final = "14"
ISSUER_INOPERATIVE: Final = "91"
SYSTEM_MALFUNCTION: Final = "96"

CORE_RECORD_LENGTH: Final = 200
"""``CB-REQUEST`` and ``CB-REPLY`` are both 200 bytes."""
_REFERENCE = slice(4, 28)  # CB-POSTING-REF / CB-RP-POSTING-REF: after the 4-byte tran code

_DEBIT_TYPES: Final = frozenset({"00", "01", "09"})
_CREDIT_TYPES: Final = frozenset({"20"})
_TRANSFER_TYPES: Final = frozenset({"40"})
# The same instances as calling the classes, built without the frozen __setattr__ path
# (canonical_model.construct): a posting is built for every request.
_new_message: Final = fast_constructor(CanonicalMessage)
_new_identifiers: Final = fast_constructor(Identifiers)
_new_account: Final = fast_constructor(Account)
_new_processing_code: Final = fast_constructor(ProcessingCode)


class NoPostingError(ValueError):
    """A request that does not become a posting, with the ISO 8583 code to answer."""

    def __init__(self, response_code: str, reason: str) -> None:
        self.response_code = response_code
        self.reason = reason
        super().__init__(reason)


class PostingExchange(Protocol):
    """Sends one request record and returns the reply record (the connector's seam)."""

    async def request(self, payload: bytes) -> bytes: ...


class PendingReversals(Protocol):
    """Where reversals of postings with an unknown outcome are stored and forwarded."""

    def store(self, reversal: CanonicalMessage) -> None: ...


def immediate_answer(request: CanonicalMessage, response_code: str) -> CanonicalMessage:
    """The reply with ISO 8583 ``response_code`` that the hub gives ``request`` itself (no
    route, no core, a failure): a new message id, sent now."""
    return reply_to(
        request,
        status_from_iso8583(response_code),
        message_id=_new_message_id(),
        transmitted_at=dt.datetime.now(dt.UTC),
    )


def posting_reference(message: CanonicalMessage) -> str:
    """The 24-character posting reference of the transaction ``message`` is about.

    >>> from canonical_model.messages import Acceptor
    >>> purchase = CanonicalMessage(
    ...     MessageKind.FINANCIAL, MessageFunction.REQUEST, "bank-a",
    ...     Identifiers("m-1", end_to_end_id="000000000001", instruction_id="000042"),
    ...     acceptor=Acceptor(terminal_id="TERM0001"),
    ... )
    >>> repeat = dataclasses.replace(purchase, ids=Identifiers(
    ...     "m-2", end_to_end_id="000000000001", instruction_id="000042"), repeat=True)
    >>> reversal = dataclasses.replace(purchase, kind=MessageKind.REVERSAL, ids=Identifiers(
    ...     "m-3", end_to_end_id="000000000001", instruction_id="000077"),
    ...     original=OriginalTransaction(instruction_id="000042"))
    >>> posting_reference(purchase) == posting_reference(repeat) == posting_reference(reversal)
    True
    >>> len(posting_reference(purchase))
    24
    """
    ids = message.ids
    stan = ids.instruction_id
    if message.kind is MessageKind.REVERSAL and message.original is not None:
        stan = message.original.instruction_id or stan
    terminal = message.acceptor.terminal_id if message.acceptor is not None else None
    if terminal is not None or message.card is not None:
        identity = ("card", message.tenant, terminal or "", ids.end_to_end_id or "", stan or "")
    else:
        uetr = ids.uetr
        if message.kind is MessageKind.REVERSAL and message.original is not None:
            uetr = message.original.uetr or uetr
        identity = ("transfer", message.tenant, ids.end_to_end_id or "", uetr or "", stan or "")
    digest = hashlib.blake2b("\x1f".join(identity).encode(), digest_size=12).hexdigest()
    return digest.upper()


def _account(account: Account | None) -> str | None:
    if account is None:
        return None
    return account.iban or account.other_id


def posting_for(request: CanonicalMessage, *, message_id: str) -> CanonicalMessage:
    """The ``CB-REQUEST`` canonical message for ``request`` (see the module docstring).

    Raises :class:`NoPostingError` with the code to answer when there is none.
    """
    reference = posting_reference(request)
    kind = request.kind
    processing = request.processing.transaction_type if request.processing else None
    debtor = _account(request.debtor_account)
    creditor = _account(request.creditor_account)
    ids = _new_identifiers(message_id, transaction_id=reference)
    narrative = _narrative(request)
    if kind is MessageKind.REVERSAL:
        return CanonicalMessage(
            MessageKind.REVERSAL,
            MessageFunction.REQUEST,
            request.tenant,
            Identifiers(message_id, transaction_id=f"R{reference[1:]}"),
            amount=request.amount,
            debtor_account=Account(other_id=debtor) if debtor else None,
            original=OriginalTransaction(instruction_id=reference),
            remittance=narrative,
        )
    account: str | None = debtor
    contra: str | None = None
    debit = kind is MessageKind.AUTHORIZATION or (
        kind is MessageKind.FINANCIAL and processing in _DEBIT_TYPES
    )
    if kind is MessageKind.CREDIT_TRANSFER:
        if creditor is None:
            raise NoPostingError(NO_ACCOUNT, "a credit transfer needs the creditor account")
        code, account = "20", creditor
    elif kind is MessageKind.BALANCE_ENQUIRY:
        code = "31"
    elif debit:
        code = "00"
    elif kind is MessageKind.FINANCIAL and processing in _CREDIT_TYPES:
        code = "20"
    elif kind is MessageKind.FINANCIAL and processing in _TRANSFER_TYPES:
        if creditor is None:
            raise NoPostingError(NO_ACCOUNT, "a transfer needs the account to credit (field 103)")
        code, contra = "40", creditor
    else:
        raise NoPostingError(
            INVALID_TRANSACTION,
            f"no posting for a {kind.value} request with processing code {processing}",
        )
    if account is None:
        raise NoPostingError(NO_ACCOUNT, "the request names no account (field 102)")
    if kind is not MessageKind.BALANCE_ENQUIRY and request.amount is None:
        raise NoPostingError(INVALID_TRANSACTION, "a posting needs an amount")
    return _new_message(
        MessageKind.AUTHORIZATION if kind is MessageKind.AUTHORIZATION else _posting_kind(code),
        MessageFunction.REQUEST,
        request.tenant,
        ids,
        processing=_new_processing_code(code),
        amount=request.amount,
        debtor_account=_new_account(other_id=account),
        creditor_account=_new_account(other_id=contra) if contra else None,
        settlement_date=request.settlement_date,
        remittance=narrative,
    )


_BALANCE_REQUESTS: Final = 4096
"""How many accounts' ``BALQ`` request records :class:`CoreBanking` keeps as templates."""
_PLACEHOLDER_REFERENCE: Final = "0" * 24


def _balance_enquiry_fields(account: str, reference: str) -> dict[str, object]:
    """The CB-REQUEST fields of the ``BALQ`` of ``account`` that :func:`posting_for` and the
    request layout's mapping make of a balance enquiry (no amount, date nor narrative)."""
    return {
        "CB-BALANCE-ENQUIRY": True, "CB-POSTING-REF": reference, "CB-ORIG-POSTING-REF": "",
        "CB-ACCOUNT-NO": account, "CB-CONTRA-ACCOUNT": "", "CB-VALUE-DATE": 0,
        "CB-NARRATIVE": "", "CB-AMOUNT": 0, "CB-CURRENCY": "",
    }  # fmt: skip


def _posting_kind(code: str) -> MessageKind:
    return MessageKind.BALANCE_ENQUIRY if code == "31" else MessageKind.FINANCIAL


def _narrative(request: CanonicalMessage) -> tuple[str, ...]:
    if request.card is not None and request.card.token is not None:
        return (f"CARD {request.card.token.masked}"[:35],)
    if request.remittance:
        return (request.remittance[0][:35],)
    return ()


@dataclass(slots=True)
class CoreStats:
    """Counters of the core banking service."""

    requests: int = 0
    approved: int = 0
    declined: int = 0
    unavailable: int = 0
    unknown_outcome: int = 0
    refused: int = 0


class _NoCards:
    """The core's records hold no card numbers: tokenizing one is a bug."""

    def tokenize(self, pan: str, *, tenant: str) -> PanToken:
        raise RuntimeError("a core banking record held a card number")


class CoreBanking:
    """See the module docstring. ``exchange`` is a :class:`hub.connector.RecordConnector`."""

    def __init__(
        self,
        exchange: PostingExchange,
        *,
        reversals: PendingReversals | None = None,
        on_reversal_stored: Callable[[CanonicalMessage], None] | None = None,
        now: Callable[[], dt.datetime] | None = None,
        new_message_id: Callable[[], str] | None = None,
        tracing: Tracing | None = None,
        peer: str = "mainframe",
    ) -> None:
        self.exchange = exchange
        self.tracing = tracing or Tracing.disabled()
        self.peer = peer
        self.reversals = reversals
        self.on_reversal_stored = on_reversal_stored
        self.stats = CoreStats()
        self._request_adapter = FixedWidthAdapter("corebank-request")
        self._reply_adapter = FixedWidthAdapter("corebank-reply")
        self._request_codepage = self._request_adapter.codec.options.codepage
        self._balance_requests: dict[str, bytes] | None = {} if self._reference_splices() else None
        self._now = now or (lambda: dt.datetime.now(dt.UTC))
        self._new_message_id = new_message_id or _new_message_id

    async def handle(self, request: CanonicalMessage) -> CanonicalMessage:
        """The reply to ``request`` (never raises for a request it cannot serve)."""
        self.stats.requests += 1
        try:
            posting = posting_for(request, message_id=self._new_message_id())
        except NoPostingError as exc:
            self.stats.refused += 1
            _log.info("no posting for %s: %s", request.ids.message_id, exc.reason)
            return self._reply(request, status_from_iso8583(exc.response_code))
        try:
            answer = await self._answer_to(posting)
        except DestinationUnavailableError:
            return self._reply(request, status_from_iso8583(ISSUER_INOPERATIVE))
        if answer is None:
            if request.kind is not MessageKind.REVERSAL:
                await self.store_reversal(request)
            return self._reply(request, status_from_iso8583(ISSUER_INOPERATIVE))
        status, additional_amounts = answer
        if status is None:
            return self._reply(request, status_from_iso8583(SYSTEM_MALFUNCTION))
        approved = status.code is not TransactionStatus.RJCT
        if approved:
            self.stats.approved += 1
        else:
            self.stats.declined += 1
        return self._reply(
            request,
            status,
            approval_code=_approval_code(posting) if approved else None,
            additional_amounts=additional_amounts,
        )

    async def reverse(self, reversal: CanonicalMessage) -> str | None:
        """Send a stored reversal (:class:`hub.store.ReversalForwarder`'s seam): the core's
        result code, or ``None`` when it did not answer."""
        try:
            posting = posting_for(reversal, message_id=self._new_message_id())
        except NoPostingError as exc:
            return exc.response_code
        try:
            answer = await self.post(posting)
        except DestinationUnavailableError:
            return None
        if answer is None or answer.status is None:
            return None
        original = answer.status.original
        return original.code if original is not None else SYSTEM_MALFUNCTION

    async def post(self, posting: CanonicalMessage) -> CanonicalMessage | None:
        """Send one posting; its decoded reply, or ``None`` when it was sent and the
        outcome is not known (no reply, an undecodable one). Raises
        :class:`~hub.connector.DestinationUnavailableError` when it was not sent."""
        raw = await self._exchange(posting)
        if not isinstance(raw, bytes):
            return raw
        try:
            return self._reply_adapter.decode(
                raw,
                DecodeContext(posting.tenant, _NoCards(), new_message_id=self._new_message_id),
            )
        except AdapterDecodeError as exc:
            self.stats.unknown_outcome += 1
            _log.error("undecodable reply to posting %s: %s", posting.ids.transaction_id, exc)
            return None

    async def _answer_to(
        self, posting: CanonicalMessage
    ) -> tuple[Status | None, tuple[AdditionalAmount, ...]] | None:
        """:meth:`post`, for :meth:`handle`, which needs the reply's status and amounts
        (the balances) only: read from the record's fields with the checks of a full
        decode, without building the canonical reply (most of the decode's cost)."""
        raw = await self._exchange(posting)
        if not isinstance(raw, bytes):
            return None if raw is None else (raw.status, raw.additional_amounts)
        return self._read_outcome(raw, posting.ids.transaction_id)

    async def _exchange(self, posting: CanonicalMessage) -> bytes | CanonicalMessage | None:
        """The reply record to ``posting``; the refusal when it cannot be encoded; None
        when the outcome is unknown. Raises
        :class:`~hub.connector.DestinationUnavailableError` when it was not sent."""
        tenant = posting.tenant
        try:
            payload = self._request_adapter.encode(posting, EncodeContext(tenant))
        except AdapterEncodeError as exc:
            _log.error("cannot encode posting %s: %s", posting.ids.transaction_id, exc)
            return dataclasses.replace(
                posting,
                function=MessageFunction.RESPONSE,
                status=status_from_iso8583(INVALID_TRANSACTION),
            )
        return await self._transmit(payload, posting.ids.transaction_id)

    async def _transmit(self, payload: bytes, reference: str | None) -> bytes | None:
        """The reply record to the request record ``payload``; None when the outcome is
        unknown. Raises :class:`~hub.connector.DestinationUnavailableError` when it was not
        sent."""
        try:
            with self.tracing.connector_call(peer=self.peer, reference=reference):
                raw = await self.exchange.request(payload)
        except DestinationUnavailableError as exc:
            self.stats.unavailable += 1
            _log.warning("posting %s not sent: %s", reference, exc)
            raise
        except (DestinationTimeoutError, ConnectionLostError) as exc:
            self.stats.unknown_outcome += 1
            _log.warning("posting %s outcome unknown: %s", reference, exc)
            return None
        return raw

    async def balance_enquiry(
        self, tenant: str, account: str
    ) -> tuple[Status, tuple[AdditionalAmount, ...]]:
        """The status and balances :meth:`handle` answers a balance enquiry of ``account``
        with, from the account number straight to the CB-REQUEST record and from the
        CB-REPLY record to the balances: without the canonical enquiry, posting and reply
        that :meth:`handle` builds on the way (three quarters of its own cost, measured;
        the gateway's balance read, ``gateway.aisp``). The record is the one
        :func:`posting_for` and the request layout make (a fresh posting reference), the
        reply is read with the checks of a full decode; a failure is the status
        :meth:`handle` would answer (``14`` no account, ``12`` not encodable, ``91`` not
        sent or no answer, ``96`` an answer without a result)."""
        self.stats.requests += 1
        if not account:
            self.stats.refused += 1
            return status_from_iso8583(NO_ACCOUNT), ()
        reference = token_hex(12).upper()
        try:
            payload = self._balance_request(account, reference)
        except (AdapterEncodeError, ValueError, TypeError) as exc:
            _log.error("cannot encode posting %s: %s", reference, exc)
            return status_from_iso8583(INVALID_TRANSACTION), ()
        try:
            raw = await self._transmit(payload, reference)
        except DestinationUnavailableError:
            return status_from_iso8583(ISSUER_INOPERATIVE), ()
        answer = None if raw is None else self._read_outcome(raw, reference)
        if answer is None:
            return status_from_iso8583(ISSUER_INOPERATIVE), ()
        status, balances = answer
        if status is None:
            return status_from_iso8583(SYSTEM_MALFUNCTION), ()
        if status.code is TransactionStatus.RJCT:
            self.stats.declined += 1
        else:
            self.stats.approved += 1
        return status, balances

    def _balance_request(self, account: str, reference: str) -> bytes:
        """The CB-REQUEST record of the ``BALQ`` of ``account`` with posting reference
        ``reference``: the record the codec encodes once per account (kept for
        :data:`_BALANCE_REQUESTS` accounts), the reference's bytes put in place (a tenth of
        the codec's time; every other field is the same for each enquiry)."""
        templates = self._balance_requests
        if templates is None:
            return self._request_adapter.codec.encode(_balance_enquiry_fields(account, reference))
        template = templates.get(account)
        if template is None:
            template = self._request_adapter.codec.encode(
                _balance_enquiry_fields(account, _PLACEHOLDER_REFERENCE)
            )
            if len(templates) >= _BALANCE_REQUESTS:
                del templates[next(iter(templates))]
            templates[account] = template
        return b"".join(
            (template[: _REFERENCE.start], reference.encode(self._request_codepage),
             template[_REFERENCE.stop :])
        )  # fmt: skip

    def _reference_splices(self) -> bool:
        """Whether a 24-character posting reference is encoded as its bytes in the
        codepage at :data:`_REFERENCE` of the request record (so :meth:`_balance_request`
        may put it in a template)."""
        codec = self._request_adapter.codec
        first, second = "0123456789ABCDEF01234567", "FEDCBA9876543210FEDCBA98"
        one = codec.encode(_balance_enquiry_fields("X", first))
        other = codec.encode(_balance_enquiry_fields("X", second))
        return (
            one[_REFERENCE] == first.encode(self._request_codepage)
            and other[_REFERENCE] == second.encode(self._request_codepage)
            and one[: _REFERENCE.start] == other[: _REFERENCE.start]
            and one[_REFERENCE.stop :] == other[_REFERENCE.stop :]
        )

    def _read_outcome(
        self, raw: bytes, reference: str | None
    ) -> tuple[Status | None, tuple[AdditionalAmount, ...]] | None:
        try:
            values = self._reply_adapter.codec.decode(raw)
            return self._reply_adapter.mapper.status_and_amounts(values)
        except AdapterDecodeError as exc:
            self.stats.unknown_outcome += 1
            _log.error("undecodable reply to posting %s: %s", reference, exc)
            return None

    async def store_reversal(self, request: CanonicalMessage) -> None:
        """Store a reversal of the posting ``request`` became (or may have become)."""
        if self.reversals is None or request.kind is MessageKind.REVERSAL:
            return
        reversal = dataclasses.replace(
            request,
            kind=MessageKind.REVERSAL,
            function=MessageFunction.ADVICE,
            ids=dataclasses.replace(request.ids, message_id=self._new_message_id()),
            original=OriginalTransaction(
                message_type=None,
                message_id=request.ids.message_id,
                instruction_id=request.ids.instruction_id,
                end_to_end_id=request.ids.end_to_end_id,
                uetr=request.ids.uetr,
                transmitted_at=request.transmitted_at,
            ),
        )
        # Stored (committed) before the acquirer hears 91: a restart cannot lose it.
        await asyncio.to_thread(self.reversals.store, reversal)
        if self.on_reversal_stored is not None:
            self.on_reversal_stored(request)

    def _reply(
        self,
        request: CanonicalMessage,
        status: Status,
        *,
        approval_code: str | None = None,
        additional_amounts: tuple[AdditionalAmount, ...] | None = None,
    ) -> CanonicalMessage:
        return reply_to(
            request,
            status,
            message_id=self._new_message_id(),
            transmitted_at=self._now(),
            approval_code=approval_code,
            additional_amounts=additional_amounts,
        )


class RunningExchange(PostingExchange, Protocol):
    """A posting exchange with a life cycle (the TCP and the MQ connectors)."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


def corebank_exchange(config: MainframeConfig) -> RunningExchange:
    """The connector ``config`` asks for: TCP (:func:`corebank_connector`) or the MQ queue
    pair (:class:`hub.mainframe_mq.MqPostingExchange`)."""
    if config.via == "mq":
        from hub.mainframe_mq import MqPostingExchange

        if config.mq_url is None:
            raise RuntimeError("internal error: expected config.mq_url is not None")
        breaker = CircuitBreaker(
            "mainframe", failure_threshold=config.failure_threshold, reset_after=config.reset_after
        )
        return MqPostingExchange(
            config.mq_url,
            breaker,
            request_queue=config.request_queue,
            timeout=config.timeout,
            tls=config.broker_tls(),
        )
    return corebank_connector(config)


def corebank_connector(config: MainframeConfig) -> RecordConnector:
    """The connector to the mainframe of ``config``: its framing (``len2``, ``len4`` or
    ``cics``: transaction id ``CBRQ`` then the record, the reply bare), replies matched by
    posting reference, a circuit breaker, and mutual TLS 1.3 with ``[mainframe.tls]``."""
    if config.framing == "cics":
        request_framer: Framer = FixedRecordFramer(CORE_RECORD_LENGTH, header_size=4)
        reply_framer: Framer = FixedRecordFramer(CORE_RECORD_LENGTH)
        header = "CBRQ".encode(config.codepage)
    else:
        name = {"len2": "len2-binary", "len4": "len4-binary"}[config.framing]
        request_framer = reply_framer = get_framer(name, max_payload=4096)
        header = b""
    settings = ConnectorSettings(
        name=f"mainframe {config.host}:{config.port}",
        host=config.host,
        port=config.port,
        request_framer=request_framer,
        reply_framer=reply_framer,
        request_key=lambda record: bytes(record[_REFERENCE]),
        reply_key=lambda record: bytes(record[_REFERENCE]),
        request_header=header,
        connections=config.connections,
        timeout=config.timeout,
        tls=config.tls.client_context() if config.tls is not None else None,
        server_name=config.tls.server_name if config.tls is not None else None,
    )
    breaker = CircuitBreaker(
        "mainframe", failure_threshold=config.failure_threshold, reset_after=config.reset_after
    )
    return RecordConnector(settings, breaker)


def _new_message_id() -> str:
    """32 random hex digits, as ``uuid.uuid4().hex`` but without building a UUID (a fifth
    of the time; three per request), never 13 decimal digits in a row
    (:func:`canonical_model.pan.random_hex_id`)."""
    return random_hex_id()


def _approval_code(posting: CanonicalMessage) -> str:
    reference = posting.ids.transaction_id or ""
    return reference[-6:]
