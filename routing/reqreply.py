"""Request / reply over queues: correlation ids, a reply queue per instance, timeouts.

A :class:`Requester` declares a reply queue of its own on the transport (exclusive and
auto-deleted on RabbitMQ: it lives as long as the connection) and consumes it. Each request
goes out with a fresh ``correlation_id`` and ``reply_to`` = that queue; the responder's handler
returns ``Outcome.ack(reply=...)`` and the transport publishes the reply to ``reply_to`` with
the same correlation id, confirmed, before it acks the request (so a request is never lost
between the two). A reply that does not come within the timeout produces the canonical
timeout outcome (:func:`timeout_reply`): a response with status RJCT, reason AB05
(``TimeoutCreditorAgent``), which each edge answers in its own protocol (ISO 8583 field 39
68, a pacs.002 RJCT AB05). A reply that arrives after its timeout is dropped and counted.

From a coroutine, :meth:`Requester.start_async`, :meth:`Requester.send_async` and
:meth:`Requester.request_async` do the same on the event loop: the replies resolve asyncio
futures there (with a transport started by ``start_async``, no thread is crossed).

>>> from canonical_model.messages import CanonicalMessage, Identifiers, MessageKind, MessageFunction
>>> from routing.memory import MemoryTransport
>>> from routing.transport import Destination, Topology
>>> topology = Topology((Destination("core", ("financial.#",)),))
>>> request = CanonicalMessage(
...     MessageKind.FINANCIAL, MessageFunction.REQUEST, "acme", Identifiers("m-1"))
>>> with MemoryTransport("memory://", topology) as transport, Requester(transport) as requester:
...     responder = transport.consume("core", responder_handler(approve))
...     answer = requester.request(request, timeout=5)
...     responder.stop()
...     late = requester.request(request, timeout=0.05)
>>> answer.function.value, answer.status.code.value
('response', 'ACSC')
>>> late.status.reason, late.ids.message_id
('AB05', 'm-1-timeout')
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from types import TracebackType

from canonical_model.codes import Status, TransactionStatus
from canonical_model.messages import CanonicalMessage
from canonical_model.replies import reply_to
from routing.transport import (
    BatchHandler,
    Consumer,
    Delivery,
    Outcome,
    Transport,
    as_batch_handler,
    routing_key_for,
)

__all__ = [
    "Requester",
    "TIMEOUT_REASON",
    "approve",
    "responder_handler",
    "timeout_reply",
]

_log = logging.getLogger("isobridge.routing")

TIMEOUT_REASON = "AB05"
"""ISO 20022 ExternalStatusReason1Code ``TimeoutCreditorAgent``."""


def timeout_reply(request: CanonicalMessage, waited: float) -> CanonicalMessage:
    """The canonical outcome of a request that got no reply within ``waited`` seconds."""
    return reply_to(
        request,
        Status(
            TransactionStatus.RJCT,
            reason=TIMEOUT_REASON,
            additional_info=f"no reply within {waited:g} s",
        ),
        message_id=f"{request.ids.message_id}-timeout",
        transmitted_at=request.transmitted_at,
    )


def approve(request: CanonicalMessage) -> CanonicalMessage:
    """A responder for examples and tests: the request, approved (ACSC)."""
    return reply_to(
        request,
        Status(TransactionStatus.ACSC),
        message_id=f"{request.ids.message_id}-reply",
        transmitted_at=request.transmitted_at,
    )


def responder_handler(answer: Callable[[CanonicalMessage], CanonicalMessage]) -> BatchHandler:
    """A handler that replies with ``answer(request)`` (the transport publishes the reply,
    confirmed, before it acks the request)."""

    def handle(delivery: Delivery) -> Outcome:
        return Outcome.ack(reply=answer(delivery.message))

    return as_batch_handler(handle)


class Requester:
    """Sends requests and waits for their replies on a reply queue of its own."""

    def __init__(self, transport: Transport, *, default_timeout: float = 5.0) -> None:
        self._transport = transport
        self._default_timeout = default_timeout
        self._lock = threading.Lock()
        self._waiting: dict[str, Future[CanonicalMessage]] = {}
        self._waiting_on_loop: dict[str, asyncio.Future[CanonicalMessage]] = {}
        self._consumer: Consumer | None = None
        self._reply_queue = ""
        self._loop: asyncio.AbstractEventLoop | None = None  # start_async's
        # Correlation ids: unique per requester (a random prefix) and cheap (a counter).
        self._id_prefix = uuid.uuid4().hex[:16]
        self._id_numbers = itertools.count(1)
        self.late_replies = 0

    def __enter__(self) -> Requester:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def reply_queue(self) -> str:
        return self._reply_queue

    def start(self) -> None:
        """Declare the reply queue and start listening on it."""
        if self._consumer is None:
            self._reply_queue = self._transport.declare_reply_queue()
            self._consumer = self._transport.consume_queue(
                self._reply_queue, self._on_replies, prefetch=500, batch_size=100
            )

    async def start_async(self) -> None:
        """:meth:`start` on the running event loop; use :meth:`send_async` then."""
        if self._consumer is None:
            # Kept: asyncio.get_running_loop() makes a getpid() system call each time.
            self._loop = asyncio.get_running_loop()
            self._reply_queue = await self._transport.declare_reply_queue_async()
            self._consumer = await self._transport.consume_queue_async(
                self._reply_queue, self._on_replies_on_loop, prefetch=1_000, batch_size=200
            )

    def _next_correlation_id(self) -> str:
        return f"{self._id_prefix}{next(self._id_numbers):x}"

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.stop()
            self._consumer = None

    async def _on_replies_on_loop(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        waiting = self._waiting_on_loop
        for delivery in deliveries:
            correlation_id = delivery.envelope.correlation_id or ""
            future = waiting.pop(correlation_id, None)
            if future is None or future.done():
                self.late_replies += 1
                _log.info("reply %s came after its timeout; dropped", correlation_id)
            else:
                future.set_result(delivery.message)
        return [Outcome.ack() for _ in deliveries]

    async def send_async(
        self,
        request: CanonicalMessage,
        routing_key: str | None = None,
        *,
        traceparent: str | None = None,
        timeout: float = 60.0,
    ) -> tuple[str, asyncio.Future[CanonicalMessage]]:
        """:meth:`send` from a coroutine of a requester started by :meth:`start_async`: the
        publish is awaited (``timeout`` bounds the wait for its confirm); the reply's future
        belongs to the running loop. Pair a timed-out wait with :meth:`abandon`."""
        if self._consumer is None:
            raise RuntimeError("the requester is not started")
        correlation_id = self._next_correlation_id()
        loop = self._loop
        if loop is None:
            raise RuntimeError("the requester is not started on an event loop (start_async)")
        future: asyncio.Future[CanonicalMessage] = loop.create_future()
        self._waiting_on_loop[correlation_id] = future
        try:
            await self._transport.publish_async(
                request,
                routing_key,
                correlation_id=correlation_id,
                reply_to=self._reply_queue,
                traceparent=traceparent,
                timeout=timeout,
            )
        except BaseException:
            self._waiting_on_loop.pop(correlation_id, None)
            raise
        return correlation_id, future

    async def request_async(
        self,
        request: CanonicalMessage,
        routing_key: str | None = None,
        *,
        timeout: float | None = None,
        traceparent: str | None = None,
    ) -> CanonicalMessage:
        """:meth:`request` from a coroutine: the reply, or after ``timeout`` seconds (publish
        included) the canonical timeout outcome."""
        waited = self._default_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + waited
        correlation_id = ""
        try:
            async with asyncio.timeout_at(deadline):
                correlation_id, future = await self.send_async(
                    request, routing_key, traceparent=traceparent, timeout=waited
                )
                return await future
        except TimeoutError:
            self.abandon(correlation_id)
            return timeout_reply(request, waited)

    def _on_replies(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        for delivery in deliveries:
            correlation_id = delivery.envelope.correlation_id or ""
            with self._lock:
                future = self._waiting.pop(correlation_id, None)
            if future is None:
                self.late_replies += 1
                _log.info("reply %s came after its timeout; dropped", correlation_id)
            else:
                future.set_result(delivery.message)
        return [Outcome.ack() for _ in deliveries]

    def send(
        self,
        request: CanonicalMessage,
        routing_key: str | None = None,
        *,
        traceparent: str | None = None,
    ) -> tuple[str, Future[CanonicalMessage]]:
        """Publish ``request`` (confirmed); its correlation id and the future of its reply."""
        if self._consumer is None:
            raise RuntimeError("the requester is not started")
        correlation_id = self._next_correlation_id()
        future: Future[CanonicalMessage] = Future()
        with self._lock:
            self._waiting[correlation_id] = future
        try:
            self._transport.publish(
                request,
                routing_key if routing_key is not None else routing_key_for(request),
                correlation_id=correlation_id,
                reply_to=self._reply_queue,
                traceparent=traceparent,
            )
        except BaseException:
            with self._lock:
                self._waiting.pop(correlation_id, None)
            raise
        return correlation_id, future

    def abandon(self, correlation_id: str) -> None:
        """Stop waiting for the reply of a :meth:`send` (its caller timed out): a reply that
        comes later is dropped and counted in ``late_replies``."""
        with self._lock:
            self._waiting.pop(correlation_id, None)
        self._waiting_on_loop.pop(correlation_id, None)

    def request(
        self,
        request: CanonicalMessage,
        routing_key: str | None = None,
        *,
        timeout: float | None = None,
        traceparent: str | None = None,
    ) -> CanonicalMessage:
        """Send ``request`` and wait for its reply; after ``timeout`` seconds, the canonical
        timeout outcome (:func:`timeout_reply`)."""
        waited = self._default_timeout if timeout is None else timeout
        correlation_id, future = self.send(request, routing_key, traceparent=traceparent)
        try:
            return future.result(timeout=waited)
        except FutureTimeout:
            with self._lock:
                self._waiting.pop(correlation_id, None)
            return timeout_reply(request, waited)
