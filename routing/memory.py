"""``memory://``: the embedded transport, in-process, with the semantics of ``amqp://``.

It keeps the topology of :mod:`routing.transport` as plain Python objects: a topic exchange
(AMQP 0-9-1 topic matching: ``*`` one word, ``#`` zero or more), the default exchange (routing
key = queue name), a direct dead-letter exchange, retry tiers whose messages move back to their
destination after the tier's delay, a parking queue for unroutable messages and single active
consumers. "Confirmed" means "in a queue of this process": nothing survives the process, which
is what the embedded default needs and all it promises. Two things have no meaning in one
process and are not modelled: the broker's delivery limit (a handler cannot crash a consumer
here without crashing the process; a failing handler goes through its retries as everywhere)
and the prefetch count (a consumer takes one batch at a time).

Each consumer runs its handler on a thread of its own, like the amqp transport.

>>> from routing.transport import Destination, Outcome, Topology
>>> from canonical_model.messages import CanonicalMessage, Identifiers, MessageKind, MessageFunction
>>> topology = Topology((Destination("core", ("financial.#",)),))
>>> m = CanonicalMessage(MessageKind.FINANCIAL, MessageFunction.REQUEST, "acme", Identifiers("m-1"))
>>> with MemoryTransport("memory://", topology) as transport:
...     transport.publish(m)
...     transport.publish(m, "statement.request.acme")
...     [dead.reason for dead in transport.dead_letters("unroutable")]
PublishReceipt(confirmed=1, parked=())
PublishReceipt(confirmed=1, parked=('m-1',))
["unroutable: no queue is bound for routing key 'statement.request.acme'"]
>>> topic_matches("financial.#", "financial.request.acme"), topic_matches("*.request", "a.b.c")
(True, False)
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from routing.transport import (
    DEFAULT_EXCHANGE,
    BatchHandler,
    DeadLetter,
    DeliveryObserver,
    Outgoing,
    PublishReceipt,
    Received,
    RoutingError,
    SettledPublish,
    Topology,
    TransportBase,
    UnknownDestinationError,
    UnroutableError,
    dispatch,
    unroutable_copy,
)
from routing.wire import Envelope

__all__ = ["MemoryTransport", "topic_matches"]


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching of a binding key against a routing key."""
    return _match(pattern.split("."), routing_key.split("."))


def _match(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head in ("*", words[0])) and _match(rest, words[1:])


@dataclass(slots=True)
class _Stored:
    envelope: Envelope
    exchange: str
    routing_key: str
    delivery_count: int = 0


@dataclass(slots=True)
class _Queue:
    name: str
    delivery_limit: int | None = None
    dead_letter: tuple[str, str] | None = None  # (exchange, routing key)
    ttl_ms: int | None = None
    ttl_target: str | None = None  # a retry tier: the queue its messages go back to
    single_active: bool = False
    ready: deque[_Stored] = field(default_factory=deque)
    consumers: list[_MemoryConsumer] = field(default_factory=list)


class MemoryTransport(TransportBase):
    """The in-process transport; see the module docstring."""

    def __init__(
        self,
        url: str,
        topology: Topology,
        *,
        declare: bool = True,
        observer: DeliveryObserver | None = None,
    ) -> None:
        # ``declare`` is accepted for symmetry with amqp://: in memory, declaring is existing.
        self.url = url
        self._topology = topology
        self._observer = observer
        self._lock = threading.Condition()
        self._queues: dict[str, _Queue] = {}
        self._bindings: list[tuple[str, str]] = []  # (binding key, queue) on the topic exchange
        self._delayed: list[tuple[float, int, str, _Stored]] = []
        self._sequence = itertools.count()
        self._consumers: list[_MemoryConsumer] = []
        self._timer: threading.Thread | None = None
        self._closed = False
        self._started = False

    @property
    def topology(self) -> Topology:
        return self._topology

    def start(self, timeout: float = 30.0) -> None:
        """Declare the topology (idempotent)."""
        with self._lock:
            if self._started:
                return
            topology = self._topology
            for dest in topology.destinations:
                queue = topology.queue(dest.name)
                self._queues[queue] = _Queue(
                    queue,
                    delivery_limit=dest.delivery_limit,
                    dead_letter=(topology.dead_letter_exchange, dest.name),
                    single_active=dest.single_active_consumer,
                )
                self._bindings.extend((key, queue) for key in dest.binding_keys)
                dlq = topology.dead_letter_queue(dest.name)
                self._queues[dlq] = _Queue(dlq)
                for delay in sorted(set(dest.retry.delays_ms)):
                    tier = topology.retry_queue(dest.name, delay)
                    self._queues[tier] = _Queue(tier, ttl_ms=delay, ttl_target=queue)
            self._queues[topology.unroutable_queue] = _Queue(topology.unroutable_queue)
            self._started = True
            self._timer = threading.Thread(
                target=self._move_due, name="isobridge-memory-timer", daemon=True
            )
            self._timer.start()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            consumers = list(self._consumers)
            self._lock.notify_all()
        for consumer in consumers:
            consumer.stop()
        if self._timer is not None:
            self._timer.join(timeout=10)

    # --- publishing ------------------------------------------------------------------------

    def submit_batch(
        self,
        items: Sequence[Outgoing],
        *,
        unroutable: Literal["park", "raise"] = "park",
        timeout: float = 60.0,
    ) -> SettledPublish:
        try:
            return SettledPublish(self.publish_batch(items, unroutable=unroutable))
        except RoutingError as exc:
            return SettledPublish(error=exc)

    def publish_batch(
        self,
        items: Sequence[Outgoing],
        *,
        unroutable: Literal["park", "raise"] = "park",
        timeout: float = 60.0,
    ) -> PublishReceipt:
        parked: list[str] = []
        with self._lock:
            self._check_open()
            for item in items:
                if not self._route(item) and item.mandatory:
                    if unroutable == "raise":
                        parked.append(item.envelope.message_id)
                        continue
                    exchange = self._exchange_of(item)
                    self._route(unroutable_copy(item, exchange, self._topology))
                    parked.append(item.envelope.message_id)
                    if self._observer is not None:
                        self._observer.dead_lettered("unroutable")
            self._lock.notify_all()
        if unroutable == "raise" and parked:
            raise UnroutableError(parked)
        return PublishReceipt(len(items), tuple(parked))

    def _check_open(self) -> None:
        if self._closed or not self._started:
            raise RoutingError("the memory transport is not started (or closed)")

    def _exchange_of(self, item: Outgoing) -> str:
        return self._topology.exchange if item.exchange is None else item.exchange

    def _route(self, item: Outgoing) -> bool:
        """Put ``item`` in every queue its exchange routes it to; False if none."""
        exchange = self._exchange_of(item)
        key = item.routing_key
        if exchange == DEFAULT_EXCHANGE:
            targets = [key] if key in self._queues else []
        elif exchange == self._topology.exchange:
            targets = list(
                dict.fromkeys(q for pattern, q in self._bindings if topic_matches(pattern, key))
            )
        elif exchange == self._topology.dead_letter_exchange:
            try:
                targets = [self._topology.dead_letter_queue(self._topology.destination(key).name)]
            except UnknownDestinationError:
                targets = []
        else:
            raise RoutingError(f"no exchange {exchange!r} in the memory transport")
        for name in targets:
            self._enqueue(self._queues[name], _Stored(item.envelope, exchange, key))
        return bool(targets)

    def _enqueue(self, queue: _Queue, stored: _Stored) -> None:
        if queue.ttl_ms is not None and queue.ttl_target is not None:
            due = time.monotonic() + queue.ttl_ms / 1000
            heapq.heappush(self._delayed, (due, next(self._sequence), queue.ttl_target, stored))
        else:
            queue.ready.append(stored)

    def _move_due(self) -> None:
        with self._lock:
            while not self._closed:
                now = time.monotonic()
                while self._delayed and self._delayed[0][0] <= now:
                    _, _, target, stored = heapq.heappop(self._delayed)
                    envelope = stored.envelope
                    self._queues[target].ready.append(_Stored(envelope, DEFAULT_EXCHANGE, target))
                    self._lock.notify_all()
                wait = self._delayed[0][0] - now if self._delayed else 1.0
                self._lock.wait(timeout=max(0.001, min(wait, 1.0)))

    # --- consuming -------------------------------------------------------------------------

    def consume(
        self,
        destination: str,
        handler: BatchHandler,
        *,
        prefetch: int = 100,
        batch_size: int = 1,
        batch_wait: float = 0.05,
    ) -> _MemoryConsumer:
        name = self._topology.destination(destination).name
        return self._consume(self._topology.queue(name), name, handler, batch_size, batch_wait)

    def consume_queue(
        self, queue: str, handler: BatchHandler, *, prefetch: int = 100, batch_size: int = 1
    ) -> _MemoryConsumer:
        return self._consume(queue, None, handler, batch_size, 0.0)

    def _consume(
        self,
        queue: str,
        destination: str | None,
        handler: BatchHandler,
        batch_size: int,
        batch_wait: float,
    ) -> _MemoryConsumer:
        with self._lock:
            self._check_open()
            if queue not in self._queues:
                raise RoutingError(f"no queue {queue!r}")
            consumer = _MemoryConsumer(self, self._queues[queue], destination, handler, batch_size)
            consumer.batch_wait = batch_wait
            self._queues[queue].consumers.append(consumer)
            self._consumers.append(consumer)
        consumer.begin()
        return consumer

    def declare_reply_queue(self) -> str:
        with self._lock:
            self._check_open()
            name = f"{self._topology.prefix}.reply.{uuid.uuid4().hex}"
            self._queues[name] = _Queue(name)
            return name

    # --- dead letters ----------------------------------------------------------------------

    def dead_letters(self, name: str, limit: int | None = None) -> list[DeadLetter]:
        queue = self._topology.parking_queue(name)
        with self._lock:
            self._check_open()
            stored = list(self._queues[queue].ready)
        if limit is not None:
            stored = stored[:limit]
        return [DeadLetter.from_envelope(s.envelope, name) for s in stored]

    def take_dead_letters(
        self, name: str, select: Callable[[DeadLetter], bool], act: Callable[[DeadLetter], None]
    ) -> int:
        queue = self._queues[self._topology.parking_queue(name)]
        with self._lock:
            self._check_open()
            stored = list(queue.ready)
            queue.ready.clear()
        kept: list[_Stored] = []
        taken = 0
        try:
            for index, item in enumerate(stored):
                dead = DeadLetter.from_envelope(item.envelope, name)
                if select(dead):
                    try:
                        act(dead)
                    except BaseException:
                        kept.extend(stored[index:])
                        raise
                    taken += 1
                else:
                    kept.append(item)
        finally:
            with self._lock:
                queue.ready.extendleft(reversed(kept))
        return taken

    # --- for tests and the consumers -------------------------------------------------------

    def queue_depth(self, queue: str) -> int:
        """Messages ready in ``queue`` (tests and tooling)."""
        with self._lock:
            return len(self._queues[queue].ready)

    def queue_depths(self, queues: Sequence[str]) -> dict[str, int]:
        """Messages ready in each of ``queues`` that exists (metrics)."""
        with self._lock:
            return {q: len(self._queues[q].ready) for q in queues if q in self._queues}

    def _take(self, consumer: _MemoryConsumer) -> list[_Stored] | None:
        """Up to a batch of messages for ``consumer``; None once it must stop."""
        queue = consumer.queue_state
        deadline: float | None = None
        with self._lock:
            while True:
                if consumer.stopping or self._closed:
                    return None
                active = not queue.single_active or (queue.consumers[:1] == [consumer])
                if active and queue.ready:
                    if len(queue.ready) >= consumer.batch_size or consumer.batch_wait <= 0:
                        break
                    if deadline is None:
                        deadline = time.monotonic() + consumer.batch_wait
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._lock.wait(timeout=remaining)
                    continue
                self._lock.wait(timeout=1.0)
            batch = [
                queue.ready.popleft() for _ in range(min(consumer.batch_size, len(queue.ready)))
            ]
            for stored in batch:
                stored.delivery_count += 1
            return batch

    def _settle(self, consumer: _MemoryConsumer, batch: list[_Stored]) -> None:
        received = [
            Received(
                s.envelope, s.exchange, s.routing_key, s.delivery_count > 1, s.delivery_count - 1
            )
            for s in batch
        ]
        follow_ups = dispatch(
            received, consumer.destination, consumer.handler, self._topology, self._observer
        )
        with self._lock:
            for item in follow_ups:
                if item is not None:
                    self._route(item)
            self._lock.notify_all()

    def _remove(self, consumer: _MemoryConsumer) -> None:
        with self._lock:
            if consumer in consumer.queue_state.consumers:
                consumer.queue_state.consumers.remove(consumer)
            if consumer in self._consumers:
                self._consumers.remove(consumer)
            self._lock.notify_all()


class _MemoryConsumer:
    def __init__(
        self,
        transport: MemoryTransport,
        queue: _Queue,
        destination: str | None,
        handler: BatchHandler,
        batch_size: int,
    ) -> None:
        self._transport = transport
        self.queue_state = queue
        self.destination = destination
        self.handler = handler
        self.batch_size = max(1, batch_size)
        self.batch_wait = 0.05
        self.stopping = False
        self._thread = threading.Thread(
            target=self._run, name=f"isobridge-consumer-{queue.name}", daemon=True
        )

    @property
    def queue(self) -> str:
        return self.queue_state.name

    def begin(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        transport = self._transport
        try:
            while True:
                batch = transport._take(self)
                if batch is None:
                    return
                transport._settle(self, batch)
        finally:
            transport._remove(self)

    def stop(self, timeout: float = 10.0) -> None:
        with self._transport._lock:
            self.stopping = True
            self._transport._lock.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
