"""The payment journal seam on the real journal (:mod:`journal`): events appended, status
read back from its read model (ARCHITECTURE.md, invariant 4).

Each payment event is one :class:`journal.Event` keyed by the ``DomesticPaymentId``
(``transaction_id``), with the end-to-end id, instruction id and UETR as its other ids, so
``isobridge trace <id>`` finds the payment by any of them. Bodies hold the status, reason,
amount and currency only; account numbers and names stay out of the clear part (the
payment's debtor and creditor IBANs go into the encrypted personal part). Appends and
reads run on a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from typing import Any

from canonical_model.messages import CanonicalMessage
from journal import Event, EventKind, Journal, TransactionIds, TransactionView

__all__ = ["JournalPayments", "JournalProbe"]


class JournalPayments:
    """:class:`gateway.ports.PaymentJournal` on a :class:`journal.Journal`."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def record(
        self,
        kind: EventKind,
        payment: CanonicalMessage,
        body: Mapping[str, Any],
        *,
        transaction_id: str,
    ) -> None:
        """Append one event of the payment ``transaction_id``."""
        ids = payment.ids
        personal: dict[str, Any] | None = None
        if kind is EventKind.RECEIVED:
            personal = {
                "debtor_account": payment.debtor_account.iban if payment.debtor_account else None,
                "creditor_account": payment.creditor_account.iban
                if payment.creditor_account
                else None,
                "creditor_name": payment.creditor.name if payment.creditor else None,
            }
        event = Event(
            kind,
            payment.tenant,
            TransactionIds(
                transaction_id,
                end_to_end_id=ids.end_to_end_id,
                stan=ids.instruction_id,
                uetr=ids.uetr,
            ),
            dt.datetime.now(dt.UTC),
            body={k: v for k, v in body.items() if v is not None},
            personal=personal,
        )
        await asyncio.to_thread(self.journal.record, [event])

    async def status(self, transaction_id: str) -> TransactionView | None:
        """The read model's row of ``transaction_id``."""
        return await asyncio.to_thread(self.journal.status, transaction_id)


class JournalProbe:
    """Readiness of the journal's database: a read of the read model answers."""

    name = "journal"

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def ready(self) -> bool:
        """True when the database answers a read."""
        await asyncio.to_thread(self.journal.status, "readiness-probe")
        return True
