"""The transport protocol, its topology, and the name table of transports.

A transport moves :class:`~routing.wire.Envelope` s between the hub's parts. Two backends have
the same semantics and pass the same behaviour suite (``tests/routing/test_transport.py``):

=============  ===========================================================================
URL            backend
=============  ===========================================================================
``memory://``  :class:`routing.memory.MemoryTransport`: in-process, the embedded default
``amqp://``    :class:`routing.amqp.AmqpTransport`: RabbitMQ 3.10+ through pika
=============  ===========================================================================

A transport is one module plus one line in :data:`TRANSPORTS`; its module is imported when a
URL first names it, and an unknown scheme gets a "did you mean".

**Topology** (:class:`Topology`, declared idempotently at start):

- a topic exchange for canonical messages (``isobridge.canonical``);
- per :class:`Destination`, a durable quorum queue bound by the destination's binding keys,
  with a delivery limit (RabbitMQ's ``x-delivery-limit``: a message delivered that many times
  without an ack, e.g. because its consumer crashes on it, is dead-lettered by the broker);
- a direct dead-letter exchange (``isobridge.dlx``) and one dead-letter queue per destination
  (``isobridge.<name>.dlq``), with at-least-once dead-lettering;
- retry tiers: one queue per delay of the :class:`RetryPolicy`, whose message TTL dead-letters
  the message back into its destination queue (RabbitMQ ships no delayed-message exchange);
- a parking queue for unroutable messages (``isobridge.unroutable``).

**Handlers** return an :class:`Outcome`: ``ack`` (optionally with a reply), ``retry`` (a
temporary failure: redelivered after the next backoff delay; after ``max_attempts`` parked on
the dead-letter queue) or ``dead_letter`` (cannot succeed: parked at once). A handler that
raises is retried with the exception text as the reason. Deliveries that are not canonical
messages are dead-lettered before any handler sees them. Parked messages carry their reason,
the attempt count and the original exchange and routing key (:class:`DeadLetter`). The
transport acks a delivery only after the handler returned and any follow-up message (retry
copy, dead-letter copy, reply) is confirmed by the broker: at least once, never lost (see the
RabbitMQ reliability guide, "Acknowledgements and Confirms").

**Per-account ordering**: a destination with ``single_active_consumer=True`` has one consumer
active at a time (the others stand by), so messages routed to it are processed in queue order.
Give each ordering domain (e.g. a shard of accounts, chosen in the routing key) its own
destination to scale out. Retries reorder by nature: an ordered destination should use
``RetryPolicy(max_attempts=1)`` and dead-letter rather than retry.

>>> topology = Topology((Destination("core", ("financial.#",)),))
>>> topology.queue("core"), topology.dead_letter_queue("core"), topology.retry_queue("core", 1000)
('isobridge.core', 'isobridge.core.dlq', 'isobridge.core.retry.1000ms')
>>> RetryPolicy((100, 1000), max_attempts=4).delay_ms(3)
1000
>>> topology.destination("cor")
Traceback (most recent call last):
...
routing.transport.UnknownDestinationError: unknown destination 'cor'; did you mean 'core'?
>>> open_transport("memroy://", topology)
Traceback (most recent call last):
...
routing.transport.UnknownTransportError: unknown transport 'memroy'; did you mean 'memory'?
"""

from __future__ import annotations

import asyncio
import datetime as dt
import difflib
import importlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Final, Literal, Protocol, Self, cast, runtime_checkable
from urllib.parse import urlsplit

from canonical_model.construct import fast_constructor
from canonical_model.messages import CanonicalMessage
from routing.wire import (
    ATTEMPT,
    DEAD_LETTERED_AT,
    DESTINATION,
    ORIGINAL_EXCHANGE,
    ORIGINAL_ROUTING_KEY,
    REASON,
    TRACEPARENT,
    BadMessageError,
    Envelope,
    decode,
    encode,
    header_int,
    header_str,
    scrub,
    unwritten,
)

__all__ = [
    "Action",
    "AsyncBatchHandler",
    "BatchHandler",
    "Consumer",
    "DEFAULT_EXCHANGE",
    "DeadLetter",
    "Delivery",
    "Received",
    "Destination",
    "DeliveryObserver",
    "Handler",
    "Outcome",
    "Outgoing",
    "PendingPublish",
    "PublishNackedError",
    "PublishReceipt",
    "PublishTimeoutError",
    "TransportBase",
    "RetryPolicy",
    "RoutingError",
    "SettledPublish",
    "TRANSPORTS",
    "Topology",
    "Transport",
    "TransportUnavailableError",
    "UnknownDestinationError",
    "UnknownTransportError",
    "UnroutableError",
    "as_batch_handler",
    "dispatch",
    "dispatch_async",
    "follow_up",
    "open_transport",
    "reply_envelope",
    "replay_copy",
    "routing_key_for",
    "settled_action",
    "unroutable_copy",
]

TRANSPORTS: Mapping[str, str] = {
    "memory": "routing.memory:MemoryTransport",
    "amqp": "routing.amqp:AmqpTransport",
    "amqps": "routing.amqp:AmqpTransport",
}
"""Transports by URL scheme: one line each, ``scheme -> "module:Class"``."""

DEFAULT_EXCHANGE = ""
"""AMQP's default exchange: the routing key is a queue name."""


class RoutingError(Exception):
    """Base of the routing errors."""


class UnknownTransportError(RoutingError, LookupError):
    """A transport URL whose scheme names no transport; suggests close names."""


class UnknownDestinationError(RoutingError, LookupError):
    """A destination that the topology does not declare; suggests close names."""


class TransportUnavailableError(RoutingError):
    """The broker cannot be reached (wrong URL, broker down) after the retries allowed."""


class PublishTimeoutError(RoutingError):
    """Not every message of a batch was confirmed in time; they may still arrive (once more)."""


class PublishNackedError(RoutingError):
    """The broker refused (nacked) messages: it did not take responsibility for them."""

    def __init__(self, message_ids: Sequence[str]) -> None:
        super().__init__(f"broker nacked {len(message_ids)} message(s): {', '.join(message_ids)}")
        self.message_ids = tuple(message_ids)


class UnroutableError(RoutingError):
    """Messages that no queue is bound for (returned by the broker, not parked)."""

    def __init__(self, message_ids: Sequence[str]) -> None:
        super().__init__(f"{len(message_ids)} unroutable message(s): {', '.join(message_ids)}")
        self.message_ids = tuple(message_ids)


def _did_you_mean(what: str, name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown {what} {name!r}{hint or ' (known: ' + ', '.join(sorted(known)) + ')'}"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Camel-style redelivery: exponential backoff tiers, then the dead-letter queue.

    ``delays_ms[i]`` is the wait after the (i+1)-th failure; the last tier repeats. After
    ``max_attempts`` failed attempts the message is dead-lettered with its last reason.
    """

    delays_ms: tuple[int, ...] = (1_000, 10_000, 60_000)
    max_attempts: int = 5

    def __post_init__(self) -> None:
        if not self.delays_ms or any(d <= 0 for d in self.delays_ms):
            raise ValueError("retry delays must be positive milliseconds")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def delay_ms(self, failures: int) -> int:
        """The delay before the next attempt after ``failures`` failed attempts (>= 1)."""
        return self.delays_ms[min(failures, len(self.delays_ms)) - 1]


@dataclass(frozen=True, slots=True)
class Destination:
    """A consumer-side queue: what it receives (topic binding keys) and how it fails."""

    name: str
    binding_keys: tuple[str, ...]
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    delivery_limit: int = 20
    single_active_consumer: bool = False


@dataclass(frozen=True, slots=True)
class Topology:
    """Exchanges and queues of the hub; queue names derive from the destination names."""

    destinations: tuple[Destination, ...]
    exchange: str = "isobridge.canonical"
    dead_letter_exchange: str = "isobridge.dlx"
    prefix: str = "isobridge"

    def destination(self, name: str) -> Destination:
        """The destination called ``name``."""
        for destination in self.destinations:
            if destination.name == name:
                return destination
        names = [d.name for d in self.destinations]
        raise UnknownDestinationError(_did_you_mean("destination", name, names))

    def queue(self, destination: str) -> str:
        return f"{self.prefix}.{destination}"

    def dead_letter_queue(self, destination: str) -> str:
        return f"{self.prefix}.{destination}.dlq"

    def retry_queue(self, destination: str, delay_ms: int) -> str:
        return f"{self.prefix}.{destination}.retry.{delay_ms}ms"

    @property
    def unroutable_queue(self) -> str:
        """Where returned (unroutable) messages are parked."""
        return f"{self.prefix}.unroutable"

    @property
    def parking_names(self) -> tuple[str, ...]:
        """Names :meth:`parking_queue` accepts: every destination, and ``unroutable``."""
        return (*(d.name for d in self.destinations), "unroutable")

    def parking_queue(self, name: str) -> str:
        """The dead-letter queue of destination ``name``, or the unroutable parking queue."""
        if name == "unroutable":
            return self.unroutable_queue
        return self.dead_letter_queue(self.destination(name).name)


def routing_key_for(message: CanonicalMessage) -> str:
    """The default topic routing key: ``<kind>.<function>.<tenant>``."""
    return f"{message.kind.value}.{message.function.value}.{message.tenant}"


class TransportBase:
    """What every backend shares, written once: :meth:`publish` (one canonical message) on
    top of the backend's ``publish_batch``, use as a context manager (start, close), and the
    asyncio face of a backend whose work runs on threads of its own (each ``*_async`` method
    runs its blocking twin on a worker thread; an async handler runs on the caller's event
    loop). A backend that can run on the event loop itself overrides them."""

    def start(self, timeout: float = 30.0) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def publish_batch(
        self,
        items: Sequence[Outgoing],
        *,
        unroutable: Literal["park", "raise"] = "park",
        timeout: float = 60.0,
    ) -> PublishReceipt:
        raise NotImplementedError

    def publish(
        self,
        message: CanonicalMessage,
        routing_key: str | None = None,
        *,
        correlation_id: str | None = None,
        reply_to: str | None = None,
        traceparent: str | None = None,
    ) -> PublishReceipt:
        """Publish one canonical message (routing key: :func:`routing_key_for` by default)."""
        item = _outgoing(message, routing_key, correlation_id, reply_to, traceparent)
        return self.publish_batch([item])

    def consume(
        self,
        destination: str,
        handler: BatchHandler,
        *,
        prefetch: int = 100,
        batch_size: int = 1,
        batch_wait: float = 0.05,
    ) -> Consumer:
        raise NotImplementedError

    def consume_queue(
        self, queue: str, handler: BatchHandler, *, prefetch: int = 100, batch_size: int = 1
    ) -> Consumer:
        raise NotImplementedError

    def declare_reply_queue(self) -> str:
        raise NotImplementedError

    # -- the asyncio face --------------------------------------------------------------------

    async def start_async(self, timeout: float = 30.0) -> None:
        await asyncio.to_thread(self.start, timeout)

    async def close_async(self) -> None:
        await asyncio.to_thread(self.close)

    async def publish_batch_async(
        self,
        items: Sequence[Outgoing],
        *,
        unroutable: Literal["park", "raise"] = "park",
        timeout: float = 60.0,
    ) -> PublishReceipt:
        return await asyncio.to_thread(
            self.publish_batch, items, unroutable=unroutable, timeout=timeout
        )

    async def publish_async(
        self,
        message: CanonicalMessage,
        routing_key: str | None = None,
        *,
        correlation_id: str | None = None,
        reply_to: str | None = None,
        traceparent: str | None = None,
        timeout: float = 60.0,
    ) -> PublishReceipt:
        item = _outgoing(message, routing_key, correlation_id, reply_to, traceparent)
        return await self.publish_batch_async([item], timeout=timeout)

    async def consume_async(
        self,
        destination: str,
        handler: AsyncBatchHandler,
        *,
        prefetch: int = 100,
        batch_size: int = 1,
        batch_wait: float = 0.05,
    ) -> Consumer:
        run = _on_loop(handler, asyncio.get_running_loop())
        return await asyncio.to_thread(
            self.consume,
            destination,
            run,
            prefetch=prefetch,
            batch_size=batch_size,
            batch_wait=batch_wait,
        )

    async def consume_queue_async(
        self,
        queue: str,
        handler: AsyncBatchHandler,
        *,
        prefetch: int = 100,
        batch_size: int = 1,
    ) -> Consumer:
        run = _on_loop(handler, asyncio.get_running_loop())
        return await asyncio.to_thread(
            self.consume_queue, queue, run, prefetch=prefetch, batch_size=batch_size
        )

    async def declare_reply_queue_async(self) -> str:
        return await asyncio.to_thread(self.declare_reply_queue)


def _outgoing(
    message: CanonicalMessage,
    routing_key: str | None,
    correlation_id: str | None,
    reply_to: str | None,
    traceparent: str | None,
) -> Outgoing:
    """One canonical message to publish (routing key: :func:`routing_key_for` by default)."""
    envelope = encode(
        message, correlation_id=correlation_id, reply_to=reply_to, traceparent=traceparent
    )
    key = routing_key if routing_key is not None else routing_key_for(message)
    return Outgoing(envelope, key)


def _on_loop(handler: AsyncBatchHandler, loop: asyncio.AbstractEventLoop) -> BatchHandler:
    """A batch handler for a consumer thread that runs ``handler`` on ``loop`` and waits."""

    def run(deliveries: Sequence[Delivery]) -> Sequence[Outcome]:
        return asyncio.run_coroutine_threadsafe(_outcomes(handler, deliveries), loop).result()

    return run


async def _outcomes(
    handler: AsyncBatchHandler, deliveries: Sequence[Delivery]
) -> Sequence[Outcome]:
    return await handler(deliveries)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to publish: to ``exchange`` (None: the topology's topic exchange).

    ``message``: the canonical message ``envelope`` encodes, when the publisher holds it (a
    reply, :func:`follow_up`): a transport that hands the message to a consumer of its own
    process gives it that object instead of decoding the body again."""

    envelope: Envelope
    routing_key: str
    exchange: str | None = None
    mandatory: bool = True
    message: CanonicalMessage | None = None


@dataclass(frozen=True, slots=True)
class PublishReceipt:
    """What a publish achieved: all confirmed; ``parked`` lists those no queue was bound for."""

    confirmed: int
    parked: tuple[str, ...] = ()


class Action(StrEnum):
    ACK = "ack"
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a handler decided for one delivery."""

    action: Action
    reason: str = ""
    reply: CanonicalMessage | None = None

    @classmethod
    def ack(cls, reply: CanonicalMessage | None = None) -> Outcome:
        """Done (the effect is committed); ``reply`` goes to the requester's reply queue."""
        if cls is Outcome:  # every delivery's: built without the frozen __setattr__ path
            return _new_outcome(Action.ACK, "", reply)
        return cls(Action.ACK, reply=reply)

    @classmethod
    def retry(cls, reason: str) -> Outcome:
        """A temporary failure: try again after the next backoff delay."""
        return cls(Action.RETRY, reason)

    @classmethod
    def dead_letter(cls, reason: str) -> Outcome:
        """Cannot succeed: park it on the dead-letter queue now."""
        return cls(Action.DEAD_LETTER, reason)


@dataclass(frozen=True, slots=True)
class Delivery:
    """A canonical message handed to a handler, with where it came from.

    ``attempt`` counts from 1 (failed handler attempts and broker redeliveries before this
    one, plus one); ``exchange`` and ``routing_key`` are where it was first published.
    """

    message: CanonicalMessage
    envelope: Envelope
    destination: str
    attempt: int
    redelivered: bool
    exchange: str
    routing_key: str


# The same instances as calling the classes (canonical_model.construct), in half the time:
# one of each per delivery.
_new_outcome: Final = fast_constructor(Outcome)
_new_delivery: Final = fast_constructor(Delivery)

Handler = Callable[[Delivery], Outcome]
BatchHandler = Callable[[Sequence[Delivery]], Sequence[Outcome]]
AsyncBatchHandler = Callable[[Sequence[Delivery]], Awaitable[Sequence[Outcome]]]
"""A batch handler that runs on the event loop (``consume_async``): it may await I/O."""


class DeliveryObserver(Protocol):
    """Told when a message is retried or parked (metrics, see ``observability.metrics``).
    Called on a consumer's thread or event loop, or a publisher's: it must be quick and
    must not raise. ``destination`` is a topology destination, or ``unroutable`` for a
    message that no queue was bound for (parked at publish)."""

    def retried(self, destination: str) -> None: ...

    def dead_lettered(self, destination: str) -> None: ...


def as_batch_handler(handler: Handler) -> BatchHandler:
    """A batch handler that calls ``handler`` once per delivery."""

    def each(deliveries: Sequence[Delivery]) -> Sequence[Outcome]:
        return [handler(delivery) for delivery in deliveries]

    return each


class PendingPublish(Protocol):
    """A batch handed to a transport, not yet known to be confirmed."""

    def result(self, timeout: float = 60.0) -> PublishReceipt:
        """Wait for the confirms; the receipt, or the error :meth:`Transport.publish_batch`
        would raise (:class:`PublishTimeoutError` when ``timeout`` passes first)."""
        ...


@dataclass(frozen=True, slots=True)
class SettledPublish:
    """A :class:`PendingPublish` already settled (a transport that confirms at once)."""

    receipt: PublishReceipt | None = None
    error: RoutingError | None = None

    def result(self, timeout: float = 60.0) -> PublishReceipt:
        if self.error is not None:
            raise self.error
        if self.receipt is None:
            raise RuntimeError("internal error: expected self.receipt is not None")
        return self.receipt


@runtime_checkable
class Consumer(Protocol):
    """A running consumer of one queue; :meth:`stop` ends it (unacked messages go back)."""

    @property
    def queue(self) -> str: ...

    def stop(self, timeout: float = 10.0) -> None: ...


class Transport(Protocol):
    """Moves envelopes; the semantics are those of the module docstring for every backend."""

    @property
    def topology(self) -> Topology: ...

    def __enter__(self) -> Transport:
        """:meth:`start`, then the transport."""
        ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """:meth:`close`."""

    def start(self, timeout: float = 30.0) -> None:
        """Connect and declare the topology; retries with backoff up to ``timeout`` seconds,
        then raises :class:`TransportUnavailableError` (never a traceback of the client)."""

    def close(self) -> None:
        """Stop consumers and disconnect; idempotent."""

    def publish_batch(
        self,
        items: Sequence[Outgoing],
        *,
        unroutable: Literal["park", "raise"] = "park",
        timeout: float = 60.0,
    ) -> PublishReceipt:
        """Publish persistent messages with confirms, pipelined; return once every one is
        confirmed. Unroutable ones are parked (listed in the receipt), or, with
        ``unroutable="raise"``, not parked and reported by :class:`UnroutableError`. Raises
        :class:`PublishNackedError` when the broker refused any. The outbox relay's seam."""
        ...

    def submit_batch(
        self,
        items: Sequence[Outgoing],
        *,
        unroutable: Literal["park", "raise"] = "park",
        timeout: float = 60.0,
    ) -> PendingPublish:
        """Like :meth:`publish_batch`, but return as soon as the messages are handed over
        (``timeout`` bounds the wait for room in the in-flight window); ``result()`` waits
        for the confirms. Lets a relay prepare batch n+1 while batch n is confirmed."""
        ...

    def publish(
        self,
        message: CanonicalMessage,
        routing_key: str | None = None,
        *,
        correlation_id: str | None = None,
        reply_to: str | None = None,
        traceparent: str | None = None,
    ) -> PublishReceipt:
        """Publish one canonical message (routing key: :func:`routing_key_for` by default)."""
        ...

    def consume(
        self,
        destination: str,
        handler: BatchHandler,
        *,
        prefetch: int = 100,
        batch_size: int = 1,
        batch_wait: float = 0.05,
    ) -> Consumer:
        """Run ``handler`` on the destination's messages, up to ``batch_size`` at a time (it
        returns one outcome per delivery; the acks of a batch go out together)."""
        ...

    def consume_queue(
        self, queue: str, handler: BatchHandler, *, prefetch: int = 100, batch_size: int = 1
    ) -> Consumer:
        """Like :meth:`consume` on any queue (a reply queue); retries are dead-letters there."""
        ...

    def declare_reply_queue(self) -> str:
        """A new queue private to this transport instance, deleted when it closes."""
        ...

    def dead_letters(self, name: str, limit: int | None = None) -> list[DeadLetter]:
        """The parked messages of destination ``name`` (or ``unroutable``), oldest first,
        left in place."""
        ...

    def take_dead_letters(
        self, name: str, select: Callable[[DeadLetter], bool], act: Callable[[DeadLetter], None]
    ) -> int:
        """For each parked message that ``select`` picks: call ``act`` (it may publish), then
        remove it; the others stay. Returns how many were taken."""
        ...

    # -- the asyncio face: the same semantics, awaited on the caller's event loop ---------

    async def start_async(self, timeout: float = 30.0) -> None:
        """:meth:`start` from a coroutine. A backend that can do its I/O on the running
        event loop does it there from now on (no thread hand-offs); its blocking methods
        then must not be called on that loop's thread."""

    async def close_async(self) -> None:
        """:meth:`close` from a coroutine."""

    async def publish_batch_async(
        self,
        items: Sequence[Outgoing],
        *,
        unroutable: Literal["park", "raise"] = "park",
        timeout: float = 60.0,
    ) -> PublishReceipt:
        """:meth:`publish_batch`, awaited: returns once every message is confirmed."""
        ...

    async def publish_async(
        self,
        message: CanonicalMessage,
        routing_key: str | None = None,
        *,
        correlation_id: str | None = None,
        reply_to: str | None = None,
        traceparent: str | None = None,
        timeout: float = 60.0,
    ) -> PublishReceipt:
        """:meth:`publish`, awaited."""
        ...

    async def consume_async(
        self,
        destination: str,
        handler: AsyncBatchHandler,
        *,
        prefetch: int = 100,
        batch_size: int = 1,
        batch_wait: float = 0.05,
    ) -> Consumer:
        """:meth:`consume` with a handler that runs on the running event loop; a backend on
        the loop runs several batches at once (up to ``prefetch`` messages)."""
        ...

    async def consume_queue_async(
        self,
        queue: str,
        handler: AsyncBatchHandler,
        *,
        prefetch: int = 100,
        batch_size: int = 1,
    ) -> Consumer:
        """:meth:`consume_queue` with a handler on the running event loop."""
        ...

    async def declare_reply_queue_async(self) -> str:
        """:meth:`declare_reply_queue`, awaited."""
        ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A parked message and why: from our headers, or RabbitMQ's ``x-death`` when the broker
    dead-lettered it (delivery limit)."""

    envelope: Envelope
    reason: str
    attempts: int
    original_exchange: str
    original_routing_key: str
    destination: str
    dead_lettered_at: str

    @property
    def message_id(self) -> str:
        return self.envelope.message_id

    @classmethod
    def from_envelope(cls, envelope: Envelope, destination: str) -> DeadLetter:
        headers = envelope.headers
        reason = header_str(headers, REASON)
        exchange = header_str(headers, ORIGINAL_EXCHANGE)
        routing_key = header_str(headers, ORIGINAL_ROUTING_KEY)
        attempts = header_int(headers, ATTEMPT)
        at = header_str(headers, DEAD_LETTERED_AT) or ""
        deaths = headers.get("x-death")
        if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping):
            death = cast("Mapping[str, object]", deaths[0])
            if reason is None:
                reason = f"broker dead-lettered it: {header_str(death, 'reason')}"
                attempts = max(attempts, header_int(headers, "x-delivery-count"))
            keys = death.get("routing-keys")
            first = next(iter(keys), None) if isinstance(keys, list) else None
            if exchange is None:
                exchange = header_str(death, "exchange")
            if routing_key is None and first is not None:
                routing_key = first.decode() if isinstance(first, bytes) else str(first)
            if not at and isinstance(death.get("time"), dt.datetime):
                at = cast(dt.datetime, death["time"]).isoformat()
        return cls(
            envelope,
            scrub(reason or "unknown"),
            attempts,
            exchange or "",
            routing_key or "",
            header_str(headers, DESTINATION) or destination,
            at,
        )


_PARK_HEADERS = (ATTEMPT, REASON, DESTINATION, DEAD_LETTERED_AT, "x-death", "x-delivery-count")


def replay_copy(dead: DeadLetter) -> Outgoing:
    """The message as it was first published, to its original exchange and routing key, with
    a fresh attempt count: if it fails again it is parked again."""
    headers = {k: v for k, v in dead.envelope.headers.items() if k not in _PARK_HEADERS}
    headers.pop(ORIGINAL_EXCHANGE, None)
    headers.pop(ORIGINAL_ROUTING_KEY, None)
    headers["x-isobridge-replayed"] = header_int(dead.envelope.headers, "x-isobridge-replayed") + 1
    env = dead.envelope
    envelope = Envelope(
        env.body, env.message_id, headers, env.correlation_id, env.reply_to, env.content_type
    )
    return Outgoing(envelope, dead.original_routing_key, dead.original_exchange)


def reply_envelope(
    delivery_envelope: Envelope, reply: CanonicalMessage, *, written: bool = True
) -> Envelope:
    """The envelope of ``reply`` to the request that came in ``delivery_envelope``: its
    correlation id (the request's, else its message id) and the request's trace context.
    ``written=False``: with an empty body (:func:`routing.wire.unwritten`), for a reply
    handed to a consumer of this process that never goes through a broker."""
    correlation_id = delivery_envelope.correlation_id or delivery_envelope.message_id
    if not written:
        trace = header_str(delivery_envelope.headers, TRACEPARENT)
        return unwritten(reply, correlation_id=correlation_id, traceparent=trace)
    envelope = encode(reply, correlation_id=correlation_id)
    trace_header = delivery_envelope.headers.get(TRACEPARENT)
    if trace_header is not None:
        envelope = envelope.updated({TRACEPARENT: trace_header})
    return envelope


def follow_up(
    delivery_envelope: Envelope,
    destination: str | None,
    exchange: str,
    routing_key: str,
    attempt: int,
    outcome: Outcome,
    topology: Topology,
) -> Outgoing | None:
    """The message to publish (and have confirmed) before acking a delivery with ``outcome``:
    a retry copy into the next delay tier, a dead-letter copy, a reply, or nothing.

    ``destination`` is None for a plain queue (a reply queue): there a retry is a dead-letter
    to the destination-less parking queue.
    """
    if outcome.action is Action.ACK:
        reply_to = delivery_envelope.reply_to
        if outcome.reply is None or not reply_to:
            return None
        reply = reply_envelope(delivery_envelope, outcome.reply)
        return Outgoing(reply, reply_to, DEFAULT_EXCHANGE, mandatory=False, message=outcome.reply)
    reason = scrub(outcome.reason or outcome.action.value)
    origin = {ORIGINAL_EXCHANGE: exchange, ORIGINAL_ROUTING_KEY: routing_key, ATTEMPT: attempt}
    if outcome.action is Action.RETRY and destination is not None:
        policy = topology.destination(destination).retry
        if settled_action(outcome, destination, attempt, topology) is Action.RETRY:
            queue = topology.retry_queue(destination, policy.delay_ms(attempt))
            copy = delivery_envelope.updated({**origin, REASON: reason})
            return Outgoing(copy, queue, DEFAULT_EXCHANGE, mandatory=False)
        reason = scrub(f"gave up after {attempt} attempt(s): {reason}")
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    parked = {**origin, REASON: reason, DEAD_LETTERED_AT: now}
    if destination is None:
        copy = delivery_envelope.updated(parked)
        return Outgoing(copy, topology.unroutable_queue, DEFAULT_EXCHANGE, mandatory=False)
    copy = delivery_envelope.updated({**parked, DESTINATION: destination})
    return Outgoing(copy, destination, topology.dead_letter_exchange, mandatory=False)


def settled_action(
    outcome: Outcome, destination: str | None, attempt: int, topology: Topology
) -> Action:
    """What becomes of a delivery settled with ``outcome`` at its ``attempt``: a retry past
    the destination's ``max_attempts``, or on a plain queue (``destination`` None), is a
    dead-letter."""
    if outcome.action is not Action.RETRY:
        return outcome.action
    if destination is None or attempt >= topology.destination(destination).retry.max_attempts:
        return Action.DEAD_LETTER
    return Action.RETRY


def unroutable_copy(item: Outgoing, exchange: str, topology: Topology) -> Outgoing:
    """The parking copy of a message that the broker returned as unroutable."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    headers = {
        ORIGINAL_EXCHANGE: exchange,
        ORIGINAL_ROUTING_KEY: item.routing_key,
        REASON: scrub(f"unroutable: no queue is bound for routing key {item.routing_key!r}"),
        DEAD_LETTERED_AT: now,
        DESTINATION: "unroutable",
    }
    copy = item.envelope.updated(headers)
    return Outgoing(copy, topology.unroutable_queue, DEFAULT_EXCHANGE, mandatory=False)


def open_transport(url: str, topology: Topology, **options: object) -> Transport:
    """The transport for ``url`` (``memory://``, ``amqp://user:pass@host:5672/vhost``);
    not started yet."""
    scheme = urlsplit(url).scheme or url.partition(":")[0]
    target = TRANSPORTS.get(scheme)
    if target is None:
        raise UnknownTransportError(_did_you_mean("transport", scheme, TRANSPORTS))
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    factory = cast("Callable[..., Transport]", getattr(module, attr))
    return factory(url, topology, **options)


@dataclass(frozen=True, slots=True)
class Received:
    """A message as a backend took it from a queue, before decoding."""

    envelope: Envelope
    exchange: str
    routing_key: str
    redelivered: bool = False
    delivery_count: int = 0


def dispatch(
    received: Sequence[Received],
    destination: str | None,
    handler: BatchHandler,
    topology: Topology,
    observer: DeliveryObserver | None = None,
) -> list[Outgoing | None]:
    """Decode a batch, run ``handler`` on the valid messages, and return for each received
    message its follow-up (:func:`follow_up`; None: just ack). Shared by every backend, so
    they decide alike. Invalid messages are dead-lettered with their reason, untried.
    ``observer`` is told of each retry and dead-letter of a destination."""
    batch = _DecodedBatch(received, destination)
    batch.run(handler)
    return batch.follow_ups(topology, observer)


async def dispatch_async(
    received: Sequence[Received],
    destination: str | None,
    handler: AsyncBatchHandler,
    topology: Topology,
    observer: DeliveryObserver | None = None,
) -> list[Outgoing | None]:
    """:func:`dispatch` with a handler that is awaited (a consumer on the event loop)."""
    batch = _DecodedBatch(received, destination)
    await batch.run_async(handler)
    return batch.follow_ups(topology, observer)


class _DecodedBatch:
    """A received batch decoded for a handler; what :func:`dispatch` shares with
    :func:`dispatch_async` (and a transport that settles some follow-ups itself: the AMQP
    transport's replies handed over in-process)."""

    def __init__(self, received: Sequence[Received], destination: str | None) -> None:
        self.received = received
        self.destination = destination
        self.deliveries: list[Delivery] = []
        self.outcomes: dict[int, Outcome] = {}
        self.origins: list[tuple[str, str, int]] = []
        for index, item in enumerate(received):
            headers = item.envelope.headers
            exchange = header_str(headers, ORIGINAL_EXCHANGE)
            routing_key = header_str(headers, ORIGINAL_ROUTING_KEY)
            if exchange is None or routing_key is None:
                exchange, routing_key = item.exchange, item.routing_key
            attempt = header_int(headers, ATTEMPT) + item.delivery_count + 1
            self.origins.append((exchange, routing_key, attempt))
            try:
                message = decode(item.envelope)
            except BadMessageError as exc:
                self.outcomes[index] = Outcome.dead_letter(f"bad message: {exc}")
                continue
            self.deliveries.append(
                _new_delivery(
                    message,
                    item.envelope,
                    destination or "",
                    attempt,
                    item.redelivered,
                    exchange,
                    routing_key,
                )
            )

    def run(self, handler: BatchHandler) -> None:
        """Run ``handler`` on the valid deliveries and keep its outcomes."""
        if self.deliveries:
            try:
                results: Sequence[Outcome] = handler(self.deliveries)
            except Exception as exc:
                results = self.failed(exc)
            self.settle(results)

    async def run_async(self, handler: AsyncBatchHandler) -> None:
        """:meth:`run` with a handler that is awaited."""
        if self.deliveries:
            try:
                results: Sequence[Outcome] = await handler(self.deliveries)
            except Exception as exc:
                results = self.failed(exc)
            self.settle(results)

    def replies(self) -> Iterator[tuple[int, Envelope, CanonicalMessage]]:
        """The replies the handler gave, each with its index and its request's envelope:
        the deliveries acked with a reply, whose request named a reply queue."""
        received = self.received
        for index, outcome in self.outcomes.items():
            if outcome.action is Action.ACK and outcome.reply is not None:
                envelope = received[index].envelope
                if envelope.reply_to:
                    yield index, envelope, outcome.reply

    def failed(self, exc: Exception) -> list[Outcome]:
        """A handler that raised: every delivery is retried with the exception as reason."""
        return [Outcome.retry(f"{type(exc).__name__}: {exc}")] * len(self.deliveries)

    def settle(self, results: Sequence[Outcome]) -> None:
        results = list(results)
        if len(results) != len(self.deliveries):
            results = self.failed(
                RoutingError(
                    f"handler returned {len(results)} outcome(s)"
                    f" for {len(self.deliveries)} message(s)"
                )
            )
        valid = [i for i in range(len(self.received)) if i not in self.outcomes]
        self.outcomes.update(zip(valid, results, strict=True))

    def follow_ups(
        self,
        topology: Topology,
        observer: DeliveryObserver | None = None,
        settled: Mapping[int, Outgoing | None] | None = None,
    ) -> list[Outgoing | None]:
        """Each received message's follow-up (:func:`follow_up`); ``settled``: those the
        caller already decided, by index."""
        if observer is not None and self.destination is not None:
            for index, outcome in self.outcomes.items():
                if outcome.action is Action.ACK:
                    continue
                attempt = self.origins[index][2]
                action = settled_action(outcome, self.destination, attempt, topology)
                if action is Action.RETRY:
                    observer.retried(self.destination)
                else:
                    observer.dead_lettered(self.destination)
        decided = settled or {}
        return [
            decided[i]
            if i in decided
            else follow_up(
                item.envelope, self.destination, *self.origins[i], self.outcomes[i], topology
            )
            for i, item in enumerate(self.received)
        ]
