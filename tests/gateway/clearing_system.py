"""A scripted clearing system on RabbitMQ: takes the pacs.008 the gateway sent from the
outgoing queue and answers with a pacs.002 on the queue the message names (``reply_to``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pika

from adapters.base import BatchAdapter, DecodeContext, EncodeContext
from adapters.registry import default_registry
from canonical_model.codes import Status, TransactionStatus
from canonical_model.messages import CanonicalMessage, MessageFunction, OriginalTransaction
from tests.gateway.harness import AMQP_URL
from tests.support import fixed_vault


def _adapter(variant: str) -> BatchAdapter:
    adapter = default_registry().get(f"iso20022:{variant}")
    assert isinstance(adapter, BatchAdapter)
    return adapter


@dataclass
class Received:
    """One pacs.008 taken off the outgoing queue."""

    document: bytes
    properties: Any
    transfers: list[CanonicalMessage]


class ClearingSystem:
    """See the module docstring."""

    def __init__(self, outgoing: str) -> None:
        self.outgoing = outgoing

    def _take(self, timeout: float) -> Received:
        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        try:
            channel = connection.channel()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                method, properties, body = channel.basic_get(self.outgoing, auto_ack=True)
                if method is not None:
                    context = DecodeContext("clearing", fixed_vault())
                    transfers = _adapter("pacs.008").decode_batch(body, context)
                    return Received(body, properties, list(transfers))
                time.sleep(0.05)
            raise AssertionError(f"no pacs.008 on {self.outgoing} within {timeout} s")
        finally:
            connection.close()

    async def take(self, timeout: float = 10.0) -> Received:
        """The next pacs.008 the gateway sent."""
        return await asyncio.to_thread(self._take, timeout)

    def _answer(self, received: Received, status: Status) -> bytes:
        replies = [
            CanonicalMessage(
                transfer.kind,
                MessageFunction.RESPONSE,
                "clearing",
                transfer.ids.__class__(
                    f"st-{uuid.uuid4().hex[:12]}",
                    end_to_end_id=transfer.ids.end_to_end_id,
                    instruction_id=transfer.ids.instruction_id,
                    uetr=transfer.ids.uetr,
                ),
                transmitted_at=dt.datetime.now(dt.UTC),
                status=status,
                original=OriginalTransaction(
                    message_type="pacs.008.001.08",
                    message_id=transfer.ids.source_message_id,
                    instruction_id=transfer.ids.instruction_id,
                    end_to_end_id=transfer.ids.end_to_end_id,
                    uetr=transfer.ids.uetr,
                ),
            )
            for transfer in received.transfers
        ]
        document = _adapter("pacs.002").encode_batch(replies, EncodeContext("clearing"))
        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            channel.basic_publish(
                "",
                received.properties.reply_to,
                document,
                pika.BasicProperties(
                    delivery_mode=2, correlation_id=received.properties.message_id
                ),
                mandatory=True,
            )
        finally:
            connection.close()
        return document

    async def answer(
        self, received: Received, code: TransactionStatus, reason: str | None = None
    ) -> bytes:
        """Send the pacs.002 answering ``received`` with ``code`` (and ``reason``)."""
        return await asyncio.to_thread(self._answer, received, Status(code, reason=reason))
