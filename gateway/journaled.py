"""The payment journal seam on the real journal (:mod:`journal`): events appended, status
read back from its read model (ARCHITECTURE.md, invariant 4).

Each payment event is one :class:`journal.Event` keyed by the ``DomesticPaymentId``
(``transaction_id``), with the end-to-end id, instruction id and UETR as its other ids, so
``isobridge trace <id>`` finds the payment by any of them. Bodies hold the status, reason,
amount, currency, consent id and channel only; account numbers, names and the initiation
go into the encrypted personal part. The ``received`` events are the gateway's record of
its payments (:meth:`JournalPayments.received`): a restarted gateway rebuilds its payments
from them. Appends and reads run on a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from typing import Any

from canonical_model.messages import CanonicalMessage
from gateway.payments import CHANNEL
from gateway.security.sca import ScaAttempt
from journal import Event, EventKind, Journal, StoredEvent, TransactionIds, TransactionView

__all__ = ["JournalPayments", "JournalProbe", "JournalScaAudit"]


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
        personal: Mapping[str, Any] | None = None,
    ) -> None:
        """Append one event of the payment ``transaction_id``; ``personal`` (account numbers,
        names, the initiation) is stored encrypted under the tenant's journal key."""
        ids = payment.ids
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
            personal=dict(personal) if personal is not None else None,
        )
        await asyncio.to_thread(self.journal.record, [event])

    async def received(self) -> list[StoredEvent]:
        """Every ``received`` event of the gateway's payments (``body["channel"]``)."""

        def read() -> list[StoredEvent]:
            return [
                event
                for event in self.journal.events()
                if event.kind is EventKind.RECEIVED and event.body.get("channel") == CHANNEL
            ]

        return await asyncio.to_thread(read)

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


class JournalScaAudit:
    """A :data:`gateway.security.sca.ScaAudit` appending to a :class:`journal.Journal` (runs
    on the authorization server's thread)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def __call__(self, attempt: ScaAttempt) -> None:
        """Append the attempt's ``sca_attempt`` event."""
        body: dict[str, Any] = {
            "status": f"sca_{attempt.outcome.value}",
            "client_id": attempt.client_id,
            "failures": attempt.failures,
            "max_attempts": attempt.max_attempts,
        }
        if attempt.step is not None:
            body["time_step"] = str(attempt.step)
        if attempt.retry_after is not None:
            body["retry_after"] = attempt.retry_after
        event = Event(
            EventKind.SCA_ATTEMPT,
            attempt.tenant,
            TransactionIds(attempt.consent_id),
            dt.datetime.fromtimestamp(attempt.at, dt.UTC),
            body=body,
            personal={"psu": attempt.psu},
        )
        self.journal.record([event])
