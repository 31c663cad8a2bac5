"""The clearing queue pair for payments the bank sends: pacs.008 out, pacs.002 back.

The mirror of :mod:`hub.clearing_queue` (which serves pacs.008 coming *in*): the
open-banking gateway's payments leave as pacs.008 documents on the ``outgoing`` queue
(the document is the message body, ``message_id`` the payment id, ``reply_to`` the status
queue), and the clearing system's pacs.002 status reports come back on the ``status``
queue. Both are durable quorum queues, declared at start; the status queue dead-letters
to ``<status>.dlq``.

- :meth:`ClearingOutgoing.publish` (the gateway's ``ClearingPublisher`` seam) returns once
  the broker confirmed the document (publisher confirms, ``mandatory``); an unconfirmed or
  unroutable publish raises, and the gateway reverses the debit.
- :meth:`ClearingOutgoing.park` puts an answer that matches nothing on the status queue's
  dead-letter queue with its reason (the payment sagas' answers, :mod:`hub.sagas.payments`).
- A status report is handed to ``on_status`` (the gateway's
  ``PaymentService.receive_status_report``, or the payment sagas'
  :meth:`hub.sagas.service.PaymentSagas.receive_answer`) on the hub's event loop and acked
  after it returned, so an answer is stored before its broker message is acked; one that
  makes it fail (or takes longer than ``timeout``) is parked on the dead-letter queue.
  With ``handlers=N`` up to N reports are handed over at once, in the order they came
  (each acked when its own ``on_status`` returned): the payment sagas store answers that
  come together in one group commit instead of one commit's latency each. ``on_status``
  must then be safe to run concurrently; the default (1) hands over one at a time.

pika connections are not thread-safe: publishing uses a connection of its own on one worker
thread, the consumer another on its own thread; both reconnect when the broker goes away.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pika
import pika.exceptions

from adapters.base import scrub
from hub.clearing_queue import serve_until_stopped, wait_ready
from routing.amqp import node_parameters
from routing.amqps import BrokerTls

__all__ = ["ClearingOutgoing"]

_log = logging.getLogger("isobridge.clearing.outgoing")


class ClearingOutgoing:
    """See the module docstring."""

    def __init__(
        self,
        url: str,
        loop: asyncio.AbstractEventLoop,
        on_status: Callable[[bytes], Coroutine[Any, Any, int]],
        *,
        outgoing: str = "clearing.outgoing",
        status: str = "clearing.status",
        timeout: float = 30.0,
        tls: BrokerTls | None = None,
        handlers: int = 1,
    ) -> None:
        if handlers < 1:
            raise ValueError("handlers must be at least 1")
        self.url = url
        self.tls = tls
        self._refusals: list[str] = []  # refused TLS handshakes, in words
        self.loop = loop
        self.on_status = on_status
        self.outgoing = outgoing
        self.status = status
        self.timeout = timeout
        self.handlers = handlers
        self.published = 0
        self.reports = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(
            target=self._consume, name="isobridge-clearing-out", daemon=True
        )
        self._publisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="isobridge-clr-pub")
        self._publish_connection: Any = None
        self._publish_channel: Any = None
        self._consumer_connection: Any = None
        self._stopped = False

    def _declare(self, channel: Any) -> None:
        quorum = {"x-queue-type": "quorum"}
        channel.queue_declare(self.outgoing, durable=True, arguments=quorum)
        channel.queue_declare(f"{self.status}.dlq", durable=True, arguments=quorum)
        channel.queue_declare(
            self.status,
            durable=True,
            arguments={
                **quorum,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": f"{self.status}.dlq",
            },
        )

    def start(self, timeout: float = 30.0) -> None:
        """Declare the queues and start consuming status reports (waits until ready)."""
        self._thread.start()
        at = f"at {self.url.rpartition('@')[2]}"
        wait_ready(self._ready, timeout, self._refusals, self.stop, at)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop consuming and publishing; close the connections (once; again: nothing)."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        connection = self._consumer_connection
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.add_callback_threadsafe(lambda: None)
        if self._thread.is_alive():
            self._thread.join(timeout)

        def close() -> None:
            if self._publish_connection is not None:
                with contextlib.suppress(Exception):
                    self._publish_connection.close()
            self._publish_connection = self._publish_channel = None

        self._publisher.submit(close).result(timeout)
        self._publisher.shutdown(wait=True)

    name = "broker"
    """The readiness probe's name (``/readyz``)."""

    async def ready(self) -> bool:
        """Readiness: the status consumer is connected to the broker."""
        return self._thread.is_alive() and self._consumer_connection is not None

    # -- publishing (the gateway's ClearingPublisher) ----------------------------------------

    async def publish(self, document: bytes, *, message_id: str) -> None:
        """Put ``document`` on the outgoing queue; returns once the broker confirmed it."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._publisher, self._publish_blocking, document, message_id)

    async def park(self, document: bytes, *, reason: str, message_id: str | None = None) -> None:
        """Put an answer nobody can take on the status dead-letter queue, with ``reason`` in
        the ``x-isobridge-reason`` header (:class:`hub.sagas.payments.ClearingAnswers`)."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            self._publisher,
            functools.partial(
                self._publish_blocking,
                document,
                message_id or "",
                queue=f"{self.status}.dlq",
                headers={"x-isobridge-reason": scrub(reason)[:500]},
            ),
        )

    def _publish_blocking(
        self,
        document: bytes,
        message_id: str,
        *,
        queue: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        for attempt in (1, 2):
            try:
                if self._publish_channel is None:
                    connection = pika.BlockingConnection(node_parameters(self.url, self.tls))
                    channel = connection.channel()
                    channel.confirm_delivery()
                    self._declare(channel)
                    self._publish_connection, self._publish_channel = connection, channel
                self._publish_channel.basic_publish(
                    "",
                    queue or self.outgoing,
                    document,
                    pika.BasicProperties(
                        delivery_mode=2,
                        content_type="application/xml",
                        message_id=message_id or None,
                        reply_to=None if queue else self.status,
                        headers=headers,
                    ),
                    mandatory=True,
                )
                if queue is None:
                    self.published += 1
                return
            except (
                pika.exceptions.AMQPConnectionError,
                pika.exceptions.ChannelClosed,
                pika.exceptions.StreamLostError,
            ):
                self._publish_connection = self._publish_channel = None
                if attempt == 2:
                    raise

    # -- consuming status reports -------------------------------------------------------------

    def _consume(self) -> None:
        serve_until_stopped(self._serve, self._stop, "clearing status queue", self._refusals.append)

    def _serve(self) -> None:
        connection = pika.BlockingConnection(node_parameters(self.url, self.tls))
        self._consumer_connection = connection
        try:
            channel = connection.channel()
            self._declare(channel)
            channel.basic_qos(prefetch_count=max(16, self.handlers))
            reports = _StatusReports(self, connection, channel)
            self._ready.set()
            for method, properties, body in channel.consume(self.status, inactivity_timeout=0.2):
                if self._stop.is_set():
                    break
                if method is not None:
                    reports.received(method.delivery_tag, properties.message_id, body)
            reports.drain(min(self.timeout, 10.0))
            channel.cancel()
        finally:
            self._consumer_connection = None
            with contextlib.suppress(Exception):
                connection.close()

    async def _handle(self, body: bytes) -> int:
        return await asyncio.wait_for(self.on_status(body), self.timeout)


class _StatusReports:
    """The status reports of one consumer connection: at most ``handlers`` of them with
    ``on_status`` at a time, started in the order they came, each acked (or, when
    ``on_status`` failed, rejected to the dead-letter queue) once its own handler returned;
    one whose handler was cancelled (the hub stopping) is given back to the queue.
    Everything but the handlers runs on the consumer thread (pika is not thread-safe): a
    handler's end comes back to it through ``add_callback_threadsafe``."""

    def __init__(self, owner: ClearingOutgoing, connection: Any, channel: Any) -> None:
        self.owner = owner
        self.connection = connection
        self.channel = channel
        self.waiting: deque[tuple[int, str | None, bytes]] = deque()
        self.running = 0

    def received(self, tag: int, message_id: str | None, body: bytes) -> None:
        self.waiting.append((tag, message_id, body))
        self._start()

    def _start(self) -> None:
        owner = self.owner
        while self.waiting and self.running < owner.handlers:
            tag, message_id, body = self.waiting.popleft()
            self.running += 1
            future = asyncio.run_coroutine_threadsafe(owner._handle(body), owner.loop)
            future.add_done_callback(functools.partial(self._handled, tag, message_id))

    def _handled(
        self, tag: int, message_id: str | None, future: concurrent.futures.Future[int]
    ) -> None:
        """On the event loop: hand the outcome back to the consumer thread."""
        with contextlib.suppress(Exception):  # the connection is gone: redelivered later
            self.connection.add_callback_threadsafe(
                functools.partial(self._settle, tag, message_id, future)
            )

    def _settle(
        self, tag: int, message_id: str | None, future: concurrent.futures.Future[int]
    ) -> None:
        self.running -= 1
        if future.cancelled():  # the hub is stopping: not handled, so delivered again
            self.channel.basic_reject(tag, requeue=True)
            return
        error = future.exception()
        if error is not None:  # the hub failed on it: park it with why
            _log.error("status report %s parked: %r", message_id, error)
            self.channel.basic_reject(tag, requeue=False)
        else:
            self.channel.basic_ack(tag)
            self.owner.reports += 1
        self._start()

    def drain(self, timeout: float) -> None:
        """Stopping: let the handlers under way finish and ack them (for at most
        ``timeout`` seconds); the reports not started are left to the broker."""
        self.waiting.clear()
        deadline = time.monotonic() + timeout
        while self.running and time.monotonic() < deadline:
            self.connection.process_data_events(time_limit=0.05)
