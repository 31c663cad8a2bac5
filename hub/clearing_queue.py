"""The clearing system's queue pair: pacs.008 documents in, pacs.002 status reports out.

Clearing systems deliver ISO 20022 over MQ: the document is the message body (XML, no
canonical envelope). :class:`ClearingQueueEdge` consumes the inbound queue, has each
document credited by :class:`hub.clearing.ClearingInbound` on the hub's event loop, publishes
the pacs.002 (to the message's ``reply_to`` when it names one, else the outbound queue, with
``correlation_id`` = the document's ``message_id``), waits for the broker's confirm, and only
then acks the document. A crash in between redelivers the document; the credits are
idempotent by posting reference, so a redelivered pacs.008 credits once and is answered
again.

Both queues are durable quorum queues, declared at start. A document that cannot be
processed is answered with a pacs.002 ``RJCT`` like any other (never dropped); one that
makes the hub itself fail is rejected to the dead-letter queue ``<inbound>.dlq`` with the
error in the ``x-isobridge-reason`` header. The consumer runs on a thread of its own (pika's
connections are not thread-safe) and reconnects with backoff when the broker goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions

from adapters.base import scrub
from hub.clearing import ClearingInbound
from routing.amqp import node_parameters
from routing.amqps import BrokerTls, tls_refusal

__all__ = ["ClearingQueueEdge", "serve_until_stopped", "wait_ready"]

_log = logging.getLogger("isobridge.clearing")


class ClearingQueueEdge:
    """See the module docstring."""

    def __init__(
        self,
        url: str,
        clearing: ClearingInbound,
        loop: asyncio.AbstractEventLoop,
        *,
        inbound: str = "clearing.inbound",
        outbound: str = "clearing.outbound",
        prefetch: int = 8,
        timeout: float = 60.0,
        tls: BrokerTls | None = None,
    ) -> None:
        self.url = url
        self.tls = tls
        self._refusals: list[str] = []  # refused TLS handshakes, in words
        self.clearing = clearing
        self.loop = loop
        self.inbound = inbound
        self.outbound = outbound
        self.prefetch = prefetch
        self.timeout = timeout
        self.processed = 0
        self.dead_lettered = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="isobridge-clearing", daemon=True)
        self._connection: Any = None

    def start(self, timeout: float = 30.0) -> None:
        """Connect, declare the queues and start consuming (waits until it is ready; a
        refused TLS handshake ends the wait at once)."""
        self._thread.start()
        wait_ready(self._ready, timeout, self._refusals, self.stop, f"at {_masked(self.url)}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop consuming (an unacked document goes back to the queue) and disconnect."""
        self._stop.set()
        connection = self._connection
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.add_callback_threadsafe(lambda: None)
        self._thread.join(timeout)

    # -- the consumer thread ------------------------------------------------------------------

    def _run(self) -> None:
        serve_until_stopped(self._serve, self._stop, "clearing queues", self._refusals.append)

    def _serve(self) -> None:
        connection = pika.BlockingConnection(node_parameters(self.url, self.tls))
        self._connection = connection
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            dead = f"{self.inbound}.dlq"
            quorum = {"x-queue-type": "quorum"}
            channel.queue_declare(dead, durable=True, arguments=quorum)
            channel.queue_declare(
                self.inbound,
                durable=True,
                arguments={
                    **quorum,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": dead,
                },
            )
            channel.queue_declare(self.outbound, durable=True, arguments=quorum)
            channel.basic_qos(prefetch_count=self.prefetch)
            self._ready.set()
            for method, properties, body in channel.consume(self.inbound, inactivity_timeout=0.2):
                if self._stop.is_set():
                    break
                if method is None:
                    continue
                self._handle(channel, method, properties, body)
            channel.cancel()
        finally:
            self._connection = None
            with contextlib.suppress(Exception):
                connection.close()

    def _handle(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        started = time.perf_counter()
        try:
            outcome = asyncio.run_coroutine_threadsafe(
                self.clearing.process(body), self.loop
            ).result(self.timeout)
        except Exception as exc:  # the hub failed, not the document: park it with why
            reason = scrub(f"{type(exc).__name__}: {exc}")[:500]
            _log.error("clearing document %s parked: %s", properties.message_id, reason)
            channel.basic_publish(
                "",
                f"{self.inbound}.dlq",
                body,
                pika.BasicProperties(
                    delivery_mode=2,
                    message_id=properties.message_id,
                    headers={"x-isobridge-reason": reason},
                ),
            )
            channel.basic_ack(method.delivery_tag)
            self.dead_lettered += 1
            return
        channel.basic_publish(
            "",
            properties.reply_to or self.outbound,
            outcome.status_report,
            pika.BasicProperties(
                delivery_mode=2,
                content_type="application/xml",
                correlation_id=properties.message_id or properties.correlation_id,
            ),
        )
        channel.basic_ack(method.delivery_tag)  # after the confirmed status report
        self.processed += 1
        _log.info(
            "clearing document %s: %d credited, %d rejected%s (%.0f ms)",
            properties.message_id,
            outcome.credited,
            outcome.rejected,
            ", refused" if outcome.refused_document else "",
            (time.perf_counter() - started) * 1000,
        )


def wait_ready(
    ready: threading.Event, timeout: float, refusals: list[str], stop: Callable[[], None], at: str
) -> None:
    """Wait for ``ready``; when it does not come in ``timeout`` or a TLS handshake was
    refused (``refusals``), ``stop`` and raise RuntimeError naming the broker (``at``)."""
    deadline = time.monotonic() + timeout
    while not ready.wait(0.05):
        if refusals:
            stop()
            raise RuntimeError(f"clearing queues: the broker {at} refused TLS: {refusals[-1]}")
        if time.monotonic() >= deadline:
            stop()
            raise RuntimeError(f"clearing queues: no broker {at}")


def _masked(url: str) -> str:
    return url.rpartition("@")[2]


def serve_until_stopped(
    serve: Callable[[], None],
    stop: threading.Event,
    what: str,
    refused: Callable[[str], None] | None = None,
) -> None:
    """Run ``serve`` (a blocking pika consumer) again and again until ``stop`` is set; after
    a broker error, reconnect with a backoff of 0.2 s doubling to 10 s, logged with ``what``.
    A refused TLS handshake (an ``amqps://`` URL) is also told to ``refused``, in words."""
    delay = 0.2
    while not stop.is_set():
        try:
            serve()
            delay = 0.2
        except (pika.exceptions.AMQPError, ssl.SSLError) as exc:
            refusal = tls_refusal(exc)
            if refusal is not None and refused is not None:
                refused(refusal)
            reason = exc if refusal is None else f"TLS refused: {refusal}"
            _log.warning("%s: %s; reconnecting in %.1f s", what, reason, delay)
            stop.wait(delay)
            delay = min(delay * 2, 10.0)
