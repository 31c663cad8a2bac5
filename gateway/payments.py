"""Domestic payments: an OBIE payment becomes a canonical credit transfer routed through the hub.

ARCHITECTURE.md, main flow 2; CANONICAL.md, "open banking" column. The OBIE v4.0
``OBWriteDomestic2`` initiation maps onto one canonical message (kind ``financial``,
processing code ``00``: the debtor's bank sends money out):

==========================================  =================================================
OBIE ``Data.Initiation``                    canonical
==========================================  =================================================
``DomesticPaymentId`` (minted)              ``ids.message_id`` (and pacs.008 ``GrpHdr/MsgId``)
``EndToEndIdentification``                  ``ids.end_to_end_id``
``InstructionIdentification``               ``ids.instruction_id``
(minted, UUID v4)                           ``ids.uetr``
``InstructedAmount`` ``Amount`` / ``Currency``  ``amount`` (``Money``, exact decimal)
``DebtorAccount`` or the consent's account  ``debtor_account.iban``
``CreditorAccount`` (``UK.OBIE.IBAN`` only)  ``creditor_account.iban``, ``creditor.name``
``RemittanceInformation.Unstructured``      ``remittance``
==========================================  =================================================

What happens, and the status (ISO 20022 ``ExternalPaymentTransactionStatus1Code``) that the
journal's read model then holds for ``DomesticPaymentId``:

1. ``RCVD``: the request is journaled (``received``).
2. The debit posting (``DEBT`` of the debtor account, through the core banking connector).
   Refused by the mainframe: ``RJCT`` with the reason the result code maps to (``51`` ->
   ``AM04``, ``14`` -> ``AC01``, ``62`` -> ``AC06``, ``91`` -> ``AB08``...).
3. The pacs.008.001.08 goes to the clearing queue (confirmed by the broker): ``ACSP``. If
   it cannot be published, the debit is reversed (``REVS``) and the payment is ``RJCT``
   (``NARR``).
4. The clearing system's pacs.002 (:meth:`PaymentService.receive_status_report`): ``ACSC``,
   or ``RJCT`` with its reason, in which case the debit is reversed.

With a saga port (:class:`gateway.ports.PaymentSagaPort`, ``[clearing] sagas = true`` in
``gateway.toml``), steps 2 to 4 are the outbound credit transfer saga instead
(:mod:`hub.sagas.payments`): a hold on the debtor account, the pacs.008, then on the clearing
system's answer the debit (``ACSC``) or the hold released (``RJCT`` with its reason), and on
no answer a camt.056 recall. The payment is answered ``RCVD`` at once and its status follows
the saga in the journal's read model (``ACSP`` once sent, ``ACSC``, ``RJCT``).

The posting reference is derived from the tenant, end-to-end id, UETR and instruction id
(``hub.core.posting_reference``), so a retried posting or reversal is applied once.

The payments themselves (tenant, consent, debtor IBAN, UETR, initiation) are rows of the
gateway's database (``gateway_payments``, :mod:`gateway.store`), shared by every gateway
process: a payment made through one is found by a GET on another, and the clearing
system's pacs.002, which any process's consumer may take, finds its payment (by message id
or UETR). The journal's ``received`` event carries the consent id and, encrypted, the
initiation and the debtor account too, so :meth:`PaymentService.restore` can rebuild the
rows of payments the journal holds and the database does not (a new database, or payments
made before the gateway kept its own).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.engine import Connection, Engine

from adapters.base import AdapterDecodeError, BatchAdapter, DecodeContext, EncodeContext
from adapters.registry import AdapterRegistry, default_registry
from canonical_model.codes import TransactionStatus
from canonical_model.messages import (
    Account,
    CanonicalMessage,
    Identifiers,
    MessageFunction,
    MessageKind,
    OriginalTransaction,
    Party,
    ProcessingCode,
)
from canonical_model.money import AmountError, Money
from canonical_model.pan import PanToken, random_hex_id
from gateway.errors import ObieError
from gateway.ports import (
    ClearingPublisher,
    CoreBankingPort,
    PaymentHistory,
    PaymentJournal,
    PaymentSagaPort,
    new_id,
)
from gateway.store import insert_or_ignore, payments_table, transaction, utc
from journal import EventKind

__all__ = [
    "Payment",
    "PaymentOutcome",
    "PaymentService",
    "canonical_payment",
    "check_initiation",
]

_log = logging.getLogger("isobridge.gateway.payments")

CLEARING_DESTINATION: Final = "clearing"
CHANNEL: Final = "open-banking"
"""``body["channel"]`` of the ``received`` event of a gateway payment."""
_IBAN_SCHEMES: Final = frozenset({"UK.OBIE.IBAN", "IBAN"})


@dataclass(frozen=True, slots=True)
class Payment:
    """A payment the gateway accepted: the TPP's view (initiation, consent) and the
    canonical message it became."""

    payment_id: str
    tenant: str
    consent_id: str
    created_at: dt.datetime
    initiation: Mapping[str, Any]
    message: CanonicalMessage


@dataclass(frozen=True, slots=True)
class PaymentOutcome:
    """A payment's current status as the journal's read model holds it."""

    status: str
    reason: str | None
    updated_at: dt.datetime


def _unsupported(name: str, message: str, path: str) -> ObieError:
    return ObieError.single(400, name, message, path)


def canonical_payment(
    initiation: Mapping[str, Any],
    *,
    tenant: str,
    payment_id: str,
    debtor_iban: str,
    uetr: str,
    now: dt.datetime,
) -> CanonicalMessage:
    """The canonical credit transfer of a validated ``Data.Initiation`` (module docstring);
    :class:`ObieError` for what the hub does not carry."""
    amount = initiation["InstructedAmount"]
    try:
        money = Money.of(amount["Amount"], amount["Currency"])
    except (AmountError, ValueError, KeyError) as exc:
        raise _unsupported(
            "UK.OBIE.Unsupported.Currency"
            if "currency" in str(exc).lower()
            else "UK.OBIE.Field.Invalid",
            f"InstructedAmount: {exc}"[:200],
            "Data.Initiation.InstructedAmount",
        ) from None
    if money.amount <= 0:
        raise _unsupported(
            "UK.OBIE.Field.Invalid",
            "the amount must be positive",
            "Data.Initiation.InstructedAmount.Amount",
        )
    creditor = initiation["CreditorAccount"]
    if creditor.get("SchemeName") not in _IBAN_SCHEMES:
        raise _unsupported(
            "UK.OBIE.Unsupported.AccountIdentifier",
            "creditor accounts are identified by IBAN (UK.OBIE.IBAN)",
            "Data.Initiation.CreditorAccount.SchemeName",
        )
    remittance = initiation.get("RemittanceInformation", {}).get("Unstructured", ())
    return CanonicalMessage(
        MessageKind.FINANCIAL,
        MessageFunction.REQUEST,
        tenant,
        Identifiers(
            payment_id,
            end_to_end_id=initiation["EndToEndIdentification"],
            instruction_id=initiation["InstructionIdentification"],
            uetr=uetr,
        ),
        transmitted_at=now,
        settlement_date=now.date(),
        processing=ProcessingCode("00"),
        amount=money,
        debtor_account=Account(iban=debtor_iban),
        creditor=Party(name=creditor["Name"]),
        creditor_account=Account(iban=creditor["Identification"], name=creditor["Name"]),
        remittance=tuple(str(line)[:140] for line in remittance)[:1],
    )


def check_initiation(initiation: Mapping[str, Any]) -> None:
    """Refuse at consent time what :func:`canonical_payment` would refuse at payment time."""
    canonical_payment(
        initiation,
        tenant="check",
        payment_id="check",
        debtor_iban="check",
        uetr="00000000-0000-4000-8000-000000000000",
        now=dt.datetime.now(dt.UTC),
    )


class _NoCards:
    """pacs.002 answers hold no card numbers: tokenizing one is a bug."""

    def tokenize(self, pan: str, *, tenant: str) -> PanToken:
        raise RuntimeError("a pacs.002 held a card number")


class PaymentService:
    """See the module docstring."""

    def __init__(
        self,
        core: CoreBankingPort,
        clearing: ClearingPublisher,
        journal: PaymentJournal,
        *,
        engine: Engine,
        registry: AdapterRegistry | None = None,
        now: Callable[[], dt.datetime] | None = None,
        posting_reference: Callable[[CanonicalMessage], str] | None = None,
        sagas: PaymentSagaPort | None = None,
    ) -> None:
        self.core = core
        self.sagas = sagas
        self.posting_reference = posting_reference
        self.clearing = clearing
        self.journal = journal
        self.engine = engine
        self._now = now or (lambda: dt.datetime.now(dt.UTC))
        registry = registry or default_registry()
        pacs008 = registry.get("iso20022:pacs.008")
        pacs002 = registry.get("iso20022:pacs.002")
        if not isinstance(pacs008, BatchAdapter) or not isinstance(pacs002, BatchAdapter):
            raise TypeError("the iso20022 adapter must read and write batches")
        self._pacs008 = pacs008
        self._pacs002 = pacs002

    async def restore(self, history: PaymentHistory) -> int:
        """Add to the database the payments of the journal's ``received`` events that it
        does not hold; how many. Payments whose personal part is gone (a shredded tenant)
        are skipped."""
        restored = 0
        for event in await history.received():
            personal = event.personal
            if not isinstance(personal, Mapping):
                continue
            initiation = personal.get("initiation")
            debtor = personal.get("debtor_account")
            if not isinstance(initiation, Mapping) or not isinstance(debtor, str):
                continue
            payment = Payment(
                event.ids.transaction_id,
                event.tenant,
                str(event.body.get("consent_id", "")),
                event.at,
                initiation,
                canonical_payment(
                    initiation,
                    tenant=event.tenant,
                    payment_id=event.ids.transaction_id,
                    debtor_iban=debtor,
                    uetr=event.ids.uetr or str(uuid.uuid4()),
                    now=event.at,
                ),
            )
            if await asyncio.to_thread(self._insert, payment):
                restored += 1
        return restored

    def debiting(self, iban: str) -> list[Payment]:
        """The payments that debit the account ``iban``, oldest first (whichever TPP made
        them: they are the account's transactions)."""
        table = payments_table
        return self._select(table.c.debtor_iban == iban)

    def reference_of(self, payment: Payment) -> str | None:
        """The mainframe posting reference of the payment's debit, when it is known."""
        return self.posting_reference(payment.message) if self.posting_reference else None

    def find(self, payment_id: str, tenant: str) -> Payment | None:
        """The payment if it is ``tenant``'s."""
        table = payments_table
        found = self._select(table.c.payment_id == payment_id, table.c.tenant == tenant)
        return found[0] if found else None

    @staticmethod
    def new_payment_id() -> str:
        """A fresh ``DomesticPaymentId``."""
        return new_id("pmt")

    async def submit(
        self,
        initiation: Mapping[str, Any],
        *,
        tenant: str,
        consent_id: str,
        debtor_iban: str,
        payment_id: str | None = None,
    ) -> Payment:
        """Accept, post and send a payment (module docstring, steps 1-3), or start its saga."""
        payment = self.prepare(
            initiation, tenant=tenant, consent_id=consent_id, debtor_iban=debtor_iban,
            payment_id=payment_id,
        )  # fmt: skip
        await asyncio.to_thread(self._insert, payment)
        return await self.send(payment)

    def prepare(
        self,
        initiation: Mapping[str, Any],
        *,
        tenant: str,
        consent_id: str,
        debtor_iban: str,
        payment_id: str | None = None,
    ) -> Payment:
        """The payment a validated initiation becomes, not yet stored nor sent."""
        now = self._now()
        payment_id = payment_id or self.new_payment_id()
        message = canonical_payment(
            initiation,
            tenant=tenant,
            payment_id=payment_id,
            debtor_iban=debtor_iban,
            uetr=str(uuid.uuid4()),
            now=now,
        )
        return Payment(payment_id, tenant, consent_id, now, initiation, message)

    def store(self, connection: Connection, payment: Payment) -> bool:
        """Record a payment from :meth:`prepare` in the caller's transaction on
        ``connection`` (``POST /domestic-payments``: with its idempotency key and its
        consent's use); False if its id was recorded before."""
        message = payment.message
        if message.debtor_account is None or message.debtor_account.iban is None:
            raise RuntimeError("internal error: a payment without a debtor IBAN reached the store")
        return insert_or_ignore(
            connection,
            payments_table,
            {
                "payment_id": payment.payment_id,
                "tenant": payment.tenant,
                "consent_id": payment.consent_id,
                "created_at": payment.created_at,
                "debtor_iban": message.debtor_account.iban,
                "uetr": message.ids.uetr,
                "initiation": dict(payment.initiation),
            },
            ("payment_id",),
        )

    async def send(self, payment: Payment) -> Payment:
        """Journal, post and send a stored payment (module docstring, steps 1-3), or start
        its saga (``sagas``)."""
        message = payment.message
        tenant, payment_id = payment.tenant, payment.payment_id
        amount = message.amount
        if amount is None:
            raise RuntimeError("internal error: expected amount is not None")
        await self.journal.record(
            EventKind.RECEIVED,
            message,
            {
                "status": "RCVD",
                "amount": str(amount.amount),
                "currency": amount.currency.alpha,
                "consent_id": payment.consent_id,
                "channel": CHANNEL,
            },
            transaction_id=payment_id,
            personal={
                "initiation": dict(payment.initiation),
                "debtor_account": message.debtor_account.iban if message.debtor_account else None,
            },
        )
        if self.sagas is not None:
            await self.sagas.submit_payment(message)
            return payment
        reply = await self.core.handle(message)
        status = reply.status
        if status is None or status.code.is_rejection:
            reason = status.reason if status is not None else "NARR"
            code = status.original.code if status is not None and status.original else None
            await self._record(
                EventKind.ANSWERED,
                payment,
                {"status": "RJCT", "reason_code": reason, "response_code": code},
            )
            return payment
        document = self._pacs008.encode_batch(
            [dataclasses.replace(message, processing=None)], EncodeContext(tenant)
        )
        try:
            await self.clearing.publish(document, message_id=payment_id)
        except Exception as exc:  # not sent: give the money back and say so
            _log.error("payment %s not sent to clearing: %r", payment_id, exc)
            await self._reverse(payment, "not sent to the clearing system", "NARR")
            await self._record(
                EventKind.ANSWERED, payment, {"status": "RJCT", "reason_code": "NARR"}
            )
            return payment
        await self._record(
            EventKind.SENT, payment, {"status": "ACSP", "destination": CLEARING_DESTINATION}
        )
        return payment

    async def receive_status_report(self, document: bytes) -> int:
        """Apply a pacs.002 from the clearing system (step 4); how many payments it moved.
        Reports on payments this gateway does not know are logged and skipped."""
        try:
            reports = self._pacs002.decode_batch(
                document,
                DecodeContext("clearing", _NoCards(), new_message_id=random_hex_id),
            )
        except AdapterDecodeError as exc:
            _log.error("undecodable pacs.002 from clearing: %s", exc)
            return 0
        moved = 0
        for report in reports:
            payment = self._payment_for(report.original)
            if payment is None or report.status is None:
                _log.warning("pacs.002 for an unknown payment: %s", report.original)
                continue
            moved += 1
            status = report.status
            if status.code is TransactionStatus.RJCT:
                await self._reverse(
                    payment, f"clearing rejected it ({status.reason})", status.reason or "NARR"
                )
                await self._record(
                    EventKind.STATUS_CHANGED,
                    payment,
                    {"status": "RJCT", "reason_code": status.reason or "NARR"},
                )
            else:
                await self._record(EventKind.STATUS_CHANGED, payment, {"status": status.code.value})
        return moved

    async def outcome(self, payment: Payment) -> PaymentOutcome:
        """The payment's status from the journal's read model."""
        view = await self.journal.status(payment.payment_id)
        if view is None:
            return PaymentOutcome("RCVD", None, payment.created_at)
        return PaymentOutcome(view.status, view.reason_code, view.last_at)

    def _payment_for(self, original: OriginalTransaction | None) -> Payment | None:
        if original is None or (original.message_id is None and original.uetr is None):
            return None
        table = payments_table
        found = self._select(
            or_(table.c.payment_id == original.message_id, table.c.uetr == original.uetr)
        )
        by_id = [p for p in found if p.payment_id == original.message_id]
        return next(iter(by_id or found), None)

    def _insert(self, payment: Payment) -> bool:
        with transaction(self.engine) as connection:
            return self.store(connection, payment)

    def _select(self, *where: ColumnElement[bool]) -> list[Payment]:
        table = payments_table
        with transaction(self.engine) as connection:
            rows = connection.execute(
                select(table).where(*where).order_by(table.c.created_at, table.c.payment_id)
            ).all()
        payments = []
        for row in rows:
            created = utc(row.created_at)
            message = canonical_payment(
                row.initiation,
                tenant=row.tenant,
                payment_id=row.payment_id,
                debtor_iban=row.debtor_iban,
                uetr=row.uetr,
                now=created,
            )
            payments.append(
                Payment(
                    row.payment_id, row.tenant, row.consent_id, created, row.initiation, message
                )
            )
        return payments

    async def _reverse(self, payment: Payment, why: str, reason_code: str) -> None:
        debit = payment.message
        reversal = dataclasses.replace(
            debit,
            kind=MessageKind.REVERSAL,
            ids=dataclasses.replace(debit.ids, message_id=f"{payment.payment_id}-rev"),
            original=OriginalTransaction(
                message_id=debit.ids.message_id,
                instruction_id=debit.ids.instruction_id,
                end_to_end_id=debit.ids.end_to_end_id,
                uetr=debit.ids.uetr,
            ),
        )
        reply = await self.core.handle(reversal)
        await self._record(
            EventKind.REVERSED,
            payment,
            {
                "status": "RJCT",
                "reason_code": reason_code,
                "reason": why[:200],
                "response_code": reply.status.original.code
                if reply.status is not None and reply.status.original is not None
                else None,
            },
        )

    async def _record(self, kind: EventKind, payment: Payment, body: Mapping[str, Any]) -> None:
        await self.journal.record(kind, payment.message, body, transaction_id=payment.payment_id)
