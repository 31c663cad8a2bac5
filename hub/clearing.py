"""Inbound clearing (ARCHITECTURE.md, main flow 3): a pacs.008 from the clearing system is
credited on the mainframe and answered with a pacs.002.

The hub is the creditor's bank here. Each credit transfer of the pacs.008 (one document may
hold many) becomes a credit posting (``CRDT``) on its creditor account through
:class:`hub.core.CoreBanking`; the postings of one document run concurrently. The answer is
one pacs.002.001.10 with a ``TxSts`` per transaction: ``ACSC`` when credited, ``RJCT`` with
the reason the mainframe's result code maps to (``14`` -> ``AC01`` unknown account, ``62``
-> ``AC06`` closed / blocked, ``91`` -> ``AB08`` core unavailable...).

A document that cannot be processed (not XML, not valid against its XSD, a business rule
broken) is answered with the adapter's reject: a pacs.002 with group status ``RJCT`` and
the reason code (``FF01`` format, ``AM10`` control sum, ...). Nothing is dropped.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

from adapters.base import AdapterDecodeError, BatchAdapter
from canonical_model.messages import CanonicalMessage, MessageKind, OriginalTransaction
from hub.bootstrap import Hub
from hub.core import CoreBanking

__all__ = ["ClearingInbound", "ClearingOutcome"]

_PACS008 = "pacs.008.001.08"


@dataclass(frozen=True, slots=True)
class ClearingOutcome:
    """The pacs.002 to send back, and what happened to each transaction."""

    status_report: bytes
    credited: int
    rejected: int
    refused_document: bool


class ClearingInbound:
    """See the module docstring."""

    def __init__(self, core: CoreBanking, hub: Hub, *, tenant: str) -> None:
        self.core = core
        self.hub = hub
        self.tenant = tenant
        adapter = hub.registry.get("iso20022:pacs.002")
        if not isinstance(adapter, BatchAdapter):
            raise TypeError("the iso20022 adapter must read and write batches")
        self._adapter = adapter

    async def process(self, document: bytes) -> ClearingOutcome:
        """Credit every transaction of ``document``; the pacs.002 answering it."""
        adapter = self._adapter
        try:
            transfers = adapter.decode_batch(document, self.hub.decode_context(self.tenant))
        except AdapterDecodeError as exc:
            answer = adapter.reject(exc, self.hub.encode_context(adapter, self.tenant))
            if answer is None:
                raise
            return ClearingOutcome(answer, 0, 0, refused_document=True)
        replies = await asyncio.gather(*(self._credit(transfer) for transfer in transfers))
        report = adapter.encode_batch(replies, self.hub.encode_context(adapter, self.tenant))
        rejected = sum(
            1 for reply in replies if reply.status is not None and reply.status.code.is_rejection
        )
        return ClearingOutcome(report, len(replies) - rejected, rejected, refused_document=False)

    async def _credit(self, transfer: CanonicalMessage) -> CanonicalMessage:
        credit = dataclasses.replace(transfer, kind=MessageKind.CREDIT_TRANSFER)
        reply = await self.core.handle(credit)
        # Answer in the transfer's own terms: a pacs.002 reports on a pacs.008 transaction.
        original = OriginalTransaction(
            message_type=_PACS008,
            message_id=transfer.ids.source_message_id,
            instruction_id=transfer.ids.instruction_id,
            end_to_end_id=transfer.ids.end_to_end_id,
            uetr=transfer.ids.uetr,
            transmitted_at=transfer.transmitted_at,
        )
        return dataclasses.replace(
            reply,
            kind=transfer.kind,
            approval_code=None,
            original=original,
            ids=dataclasses.replace(reply.ids, source_message_id=None),
        )
