"""The core banking connector over MQ: ``CB-REQUEST`` records on a RabbitMQ queue pair.

The way MQ-attached mainframes are reached (and ``mainframe_sim --mq`` answers): each record
is a persistent message on the durable request queue (``mainframe.requests``) with a new
``message_id`` and ``reply_to`` = this hub instance's own reply queue (exclusive, deleted
with the connection); the mainframe answers there with ``correlation_id`` = that message id.
Publishes are confirmed by the broker before the request counts as sent.

The same contract as the TCP connector (:class:`hub.connector.RecordConnector`):
:class:`~hub.connector.DestinationUnavailableError` when the request was not sent (breaker
open, broker unreachable), :class:`~hub.connector.DestinationTimeoutError` when it was sent
and no reply came in time (the outcome is unknown: the caller stores a reversal). A reply
after its timeout is dropped and counted. pika's connection lives on a thread of its own
(pika is not thread-safe); it reconnects with backoff, and requests made meanwhile are
refused at once rather than queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import ssl
import threading
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions

from canonical_model.pan import random_hex_id
from hub.breaker import CircuitBreaker
from hub.connector import DestinationTimeoutError, DestinationUnavailableError
from routing.amqp import node_parameters
from routing.amqps import BrokerTls, tls_refusal

__all__ = ["MqExchangeStats", "MqPostingExchange"]

_log = logging.getLogger("isobridge.mainframe_mq")


@dataclass(slots=True)
class MqExchangeStats:
    """Counters of the MQ connector."""

    sent: int = 0
    replies: int = 0
    timeouts: int = 0
    refused: int = 0
    late_replies: int = 0
    connects: int = 0


class MqPostingExchange:
    """See the module docstring. ``async with MqPostingExchange(...) as exchange``."""

    def __init__(
        self,
        url: str,
        breaker: CircuitBreaker,
        *,
        request_queue: str = "mainframe.requests",
        timeout: float = 5.0,
        queue_type: str = "quorum",
        tls: BrokerTls | None = None,
    ) -> None:
        self.url = url
        self.tls = tls
        self.refusal: str | None = None  # the last refused TLS handshake, in words
        self.breaker = breaker
        self.request_queue = request_queue
        self.timeout = timeout
        self.queue_type = queue_type
        self.stats = MqExchangeStats()
        self._outgoing: queue.SimpleQueue[tuple[str, bytes] | None] = queue.SimpleQueue()
        self._waiting: dict[str, asyncio.Future[bytes]] = {}
        self._lock = threading.Lock()
        self._up = threading.Event()
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="isobridge-mainframe-mq")

    @property
    def connected(self) -> bool:
        """Whether the queue pair is usable now."""
        return self._up.is_set()

    async def start(self) -> None:
        """Start connecting (in the background: a broker down at start-up is retried)."""
        self._loop = asyncio.get_running_loop()
        self._thread.start()

    async def wait_connected(self, timeout: float = 30.0) -> None:
        """Wait until the queue pair is usable (tests, start-up checks)."""
        if not await asyncio.to_thread(self._up.wait, timeout):
            why = "broker not reachable"
            if self.refusal is not None:
                why += f": TLS refused: {self.refusal}"
            raise DestinationUnavailableError(self._name, why)

    async def close(self) -> None:
        """Disconnect; requests still waiting fail as timeouts when theirs come."""
        self._stop.set()
        self._outgoing.put(None)
        await asyncio.to_thread(self._thread.join, 10.0)

    async def __aenter__(self) -> MqPostingExchange:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def _name(self) -> str:
        return f"mainframe via {self.url.rpartition('@')[2]}"

    async def request(self, payload: bytes) -> bytes:
        """Send one record, return its reply record (see the module docstring)."""
        if not self.breaker.allow():
            self.stats.refused += 1
            raise DestinationUnavailableError(self._name, "circuit breaker open")
        if not self._up.is_set():
            self.stats.refused += 1
            self.breaker.record_failure()
            raise DestinationUnavailableError(self._name, "broker not reachable")
        message_id = random_hex_id()
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._waiting[message_id] = future
        self._outgoing.put((message_id, payload))
        try:
            async with asyncio.timeout(self.timeout):
                reply = await future
        except TimeoutError:
            self.stats.timeouts += 1
            self.breaker.record_failure()
            raise DestinationTimeoutError(
                self._name, f"no reply within {self.timeout:g} s"
            ) from None
        finally:
            with self._lock:
                self._waiting.pop(message_id, None)
        self.stats.replies += 1
        self.breaker.record_success()
        return reply

    # -- the pika thread ----------------------------------------------------------------------

    def _run(self) -> None:
        delay = 0.1
        while not self._stop.is_set():
            try:
                self._serve()
                delay = 0.1
            except (pika.exceptions.AMQPError, ssl.SSLError) as exc:
                self._up.clear()
                refusal = tls_refusal(exc)
                if refusal is not None:
                    self.refusal = refusal
                reason = exc if refusal is None else f"TLS refused: {refusal}"
                _log.warning("%s: %s; reconnecting in %.1f s", self._name, reason, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)

    def _serve(self) -> None:
        connection = pika.BlockingConnection(node_parameters(self.url, self.tls))
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            channel.queue_declare(
                self.request_queue, durable=True, arguments={"x-queue-type": self.queue_type}
            )
            reply_queue = channel.queue_declare("", exclusive=True, auto_delete=True)
            reply_to = reply_queue.method.queue
            channel.basic_consume(reply_to, self._on_reply, auto_ack=True)
            # Anything queued while disconnected is refused by now: start clean.
            while not self._outgoing.empty():
                with contextlib.suppress(queue.Empty):
                    self._outgoing.get_nowait()
            self.stats.connects += 1
            self._up.set()
            while not self._stop.is_set():
                connection.process_data_events(time_limit=0.002)
                self._publish_pending(channel, reply_to)
        finally:
            self._up.clear()
            with contextlib.suppress(Exception):
                connection.close()

    def _publish_pending(self, channel: Any, reply_to: str) -> None:
        while True:
            try:
                item = self._outgoing.get_nowait()
            except queue.Empty:
                return
            if item is None:
                return
            message_id, payload = item
            channel.basic_publish(
                "",
                self.request_queue,
                payload,
                pika.BasicProperties(delivery_mode=2, message_id=message_id, reply_to=reply_to),
            )
            self.stats.sent += 1

    def _on_reply(self, _channel: Any, _method: Any, properties: Any, body: bytes) -> None:
        correlation_id = properties.correlation_id or ""
        with self._lock:
            future = self._waiting.get(correlation_id)
        if future is None or self._loop is None:
            self.stats.late_replies += 1
            return
        self._loop.call_soon_threadsafe(_settle, future, bytes(body))


def _settle(future: asyncio.Future[bytes], body: bytes) -> None:
    if not future.done():
        future.set_result(body)
