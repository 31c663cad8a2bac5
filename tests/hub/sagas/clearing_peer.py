"""A scripted clearing system on the real RabbitMQ queues, for the payment saga tests.

It takes pacs.008 and camt.056 documents off the outgoing queue and answers on the queue
each one names (``reply_to``) as the test tells it: a pacs.002 ``ACSC`` or ``RJCT``, or
nothing; to a recall, a pacs.004 return or a camt.029 refusal, or nothing. Like a real
clearing system it settles a payment once, whatever the number of copies it is sent, and
answers a copy with the same answer (same message id). It keeps its own books
(:attr:`ClearingPeer.settled`, :attr:`ClearingPeer.returned`), against which the tests
reconcile the mainframe's ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pika

from adapters.base import BatchAdapter, DecodeContext, EncodeContext
from adapters.iso20022 import camt029
from adapters.registry import default_registry
from canonical_model.codes import Status, TransactionStatus
from canonical_model.messages import (
    CanonicalMessage,
    Identifiers,
    MessageFunction,
    MessageKind,
    OriginalTransaction,
)
from tests.support import fixed_vault

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
PACS008 = "pacs.008.001.08"


def adapter(variant: str) -> BatchAdapter:
    found = default_registry().get(f"iso20022:{variant}")
    assert isinstance(found, BatchAdapter)
    return found


@dataclasses.dataclass
class ClearingPeer:
    """See the module docstring. ``on_payment``: ``"ACSC"``, ``"RJCT:<reason>"`` or ``None``
    (no answer); ``on_recall``: ``"return"``, ``"refuse"`` or ``None``."""

    outgoing: str
    on_payment: str | None = "ACSC"
    on_recall: str | None = None
    settled: dict[str, Decimal] = dataclasses.field(default_factory=dict)
    returned: dict[str, Decimal] = dataclasses.field(default_factory=dict)
    received: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    answers: list[bytes] = dataclasses.field(default_factory=list)
    _payments: dict[str, CanonicalMessage] = dataclasses.field(default_factory=dict)

    @property
    def net_settled(self) -> Decimal:
        """What the bank paid out through clearing: settled and not returned."""
        return sum(self.settled.values(), Decimal(0)) - sum(self.returned.values(), Decimal(0))

    def serve_once(self) -> int:
        """Take and answer every document on the outgoing queue now; how many."""
        taken = 0
        with _channel() as channel:
            while True:
                method, properties, body = channel.basic_get(self.outgoing, auto_ack=True)
                if method is None:
                    return taken
                taken += 1
                self._take(channel, properties, body)

    async def serve(self, stop: asyncio.Event) -> None:
        """Answer until ``stop`` is set."""
        while not stop.is_set():
            if not await asyncio.to_thread(self.serve_once):
                await asyncio.sleep(0.05)

    def _take(self, channel: Any, properties: Any, body: bytes) -> None:
        context = DecodeContext("clearing", fixed_vault())
        (message,) = adapter("pacs.002").decode_batch(body, context)
        self.received.append((message.kind.value, properties.message_id))
        if message.kind is MessageKind.CANCELLATION:
            self._recall(channel, properties, message)
            return
        payment_id = properties.message_id
        self._payments[payment_id] = message
        if self.on_payment is None:
            return
        code, _, reason = self.on_payment.partition(":")
        if code == "ACSC" and message.ids.end_to_end_id not in self.returned:
            assert message.amount is not None
            self.settled.setdefault(payment_id, message.amount.amount)
        status = Status(TransactionStatus(code), reason or None)
        self._send(channel, properties.reply_to, _status_report(message, payment_id, status))

    def _recall(self, channel: Any, properties: Any, recall: CanonicalMessage) -> None:
        original = recall.original
        assert original is not None and original.message_id is not None
        payment = self._payments.get(original.message_id)
        if self.on_recall is None or payment is None:
            return
        if self.on_recall == "return":
            assert payment.amount is not None
            self.settled.setdefault(original.message_id, payment.amount.amount)
            self.returned.setdefault(original.message_id, payment.amount.amount)
            document = _return(payment, original.message_id)
        else:
            self.settled.setdefault(original.message_id, payment.amount.amount)  # type: ignore[union-attr]
            document = _refusal(recall, original.message_id)
        self._send(channel, properties.reply_to, document)

    def _send(self, channel: Any, queue: str, document: bytes) -> None:
        self.answers.append(document)
        channel.basic_publish(
            "", queue, document, pika.BasicProperties(delivery_mode=2), mandatory=True
        )

    def send_raw(self, queue: str, document: bytes) -> None:
        """Put any document on ``queue`` (an answer that matches nothing, a duplicate)."""
        with _channel() as channel:
            self._send(channel, queue, document)


@contextlib.contextmanager
def _channel() -> Iterator[Any]:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        yield channel
    finally:
        connection.close()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _original(payment: CanonicalMessage, payment_id: str) -> OriginalTransaction:
    return OriginalTransaction(
        message_type=PACS008,
        message_id=payment_id,
        instruction_id=payment.ids.instruction_id,
        end_to_end_id=payment.ids.end_to_end_id,
        uetr=payment.ids.uetr,
    )


def _status_report(
    payment: CanonicalMessage, payment_id: str, status: Status, answer_id: str | None = None
) -> bytes:
    report = CanonicalMessage(
        payment.kind,
        MessageFunction.RESPONSE,
        "clearing",
        Identifiers(
            answer_id or f"st-{payment_id}"[:35],  # a copy of the payment: the same answer
            end_to_end_id=payment.ids.end_to_end_id,
            instruction_id=payment.ids.instruction_id,
            uetr=payment.ids.uetr,
        ),
        transmitted_at=_now(),
        status=status,
        original=_original(payment, payment_id),
    )
    return adapter("pacs.002").encode_batch([report], EncodeContext("clearing"))


def status_report(
    payment_id: str,
    end_to_end_id: str,
    uetr: str | None,
    code: TransactionStatus,
    *,
    answer_id: str | None = None,
) -> bytes:
    """A pacs.002 about a payment the peer may never have seen (unmatched answers)."""
    payment = CanonicalMessage(
        MessageKind.FINANCIAL,
        MessageFunction.REQUEST,
        "clearing",
        Identifiers(payment_id, end_to_end_id=end_to_end_id, uetr=uetr),
    )
    return _status_report(payment, payment_id, Status(code), answer_id)


def _return(payment: CanonicalMessage, payment_id: str) -> bytes:
    returned = CanonicalMessage(
        MessageKind.RETURN,
        MessageFunction.REQUEST,
        "clearing",
        Identifiers(
            f"rt-{payment_id}"[:35],
            end_to_end_id=payment.ids.end_to_end_id,
            instruction_id=payment.ids.instruction_id,
            uetr=payment.ids.uetr,
        ),
        transmitted_at=_now(),
        settlement_date=_now().date(),
        amount=payment.amount,
        original=_original(payment, payment_id),
        status=Status(TransactionStatus.RJCT, "FOCR"),
    )
    return adapter("pacs.004").encode_batch([returned], EncodeContext("clearing"))


def _refusal(recall: CanonicalMessage, payment_id: str) -> bytes:
    refusal = CanonicalMessage(
        MessageKind.CANCELLATION,
        MessageFunction.RESPONSE,
        "clearing",
        Identifiers(
            f"rf-{payment_id}"[:35],
            end_to_end_id=recall.ids.end_to_end_id,
            instruction_id=recall.ids.instruction_id,
            uetr=recall.ids.uetr,
        ),
        transmitted_at=_now(),
        amount=recall.amount,
        original=recall.original,
        status=Status(TransactionStatus.RJCT, "CUST"),
    )
    return camt029.encode_resolutions([refusal])
