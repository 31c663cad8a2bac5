"""The same records over a RabbitMQ queue pair, the way MQ-attached mainframes answer.

:class:`MqResponder` consumes CB-REQUEST records (message bodies, EBCDIC, 200 bytes) from a
durable request queue and publishes each CB-REPLY, persistent, to the request's ``reply_to``
(the durable reply queue of the pair when a request has none) with ``correlation_id`` = the
request's ``message_id`` (its ``correlation_id`` if it has no message id) and a new
``message_id``, through the default exchange with publisher confirms. Both queues are quorum
queues unless ``queue_type="classic"`` (ARCHITECTURE.md asks quorum queues of production); a
queue that already exists with another type is a channel error, retried with backoff.

Group commit: the messages ready at once (up to ``max_batch``, prefetch the same) are applied
in one database transaction (:func:`mainframe_sim.transactions.process_batch`); then their
replies are published and confirmed; then the requests are acknowledged (one ``multiple``
ack). A crash in between redelivers the requests, and since postings are idempotent by
posting reference, a redelivered request gets its stored reply again and is not applied twice.

Faults (:mod:`mainframe_sim.faults`): ``drop`` publishes no reply (the request is still
acknowledged), ``garbage`` publishes an undecodable body, ``disconnect`` closes the
connection without acknowledging the batch (the broker redelivers it), ``latency`` holds a
batch's replies until the largest delay drawn for it has passed since the batch arrived,
``down`` stops consuming (requests wait in the queue) until it is cleared.

pika has no automatic reconnection: :meth:`MqResponder.run` reconnects with a capped backoff
and declares its queues again after any connection or channel error.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
import uuid
from typing import Any, Final

import pika
import pika.exceptions

from mainframe_sim.faults import Faults
from mainframe_sim.ledger import Ledger
from mainframe_sim.records import Records
from mainframe_sim.transactions import Reply, process_batch

__all__ = ["DEFAULT_REPLY_QUEUE", "DEFAULT_REQUEST_QUEUE", "MqResponder"]

_log = logging.getLogger(__name__)

DEFAULT_REQUEST_QUEUE: Final = "mainframe.requests"
DEFAULT_REPLY_QUEUE: Final = "mainframe.replies"

_RECONNECT_ERRORS: Final = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    pika.exceptions.StreamLostError,
    pika.exceptions.ConnectionClosed,
    ConnectionError,
    OSError,
)


class _Disconnect(Exception):  # noqa: N818 - a signal inside the consume loop, not an error
    pass


class MqResponder:
    """Answers CB-REQUEST messages from a RabbitMQ queue; run it in its own thread.

    ``connections`` counts the connections made (reconnects show as more than one);
    ``requests`` counts requests handled and acknowledged, ``replies`` replies published.
    ``ready`` is set while connected and consuming, ``paused`` while ``down`` holds it back.
    """

    def __init__(
        self,
        ledger: Ledger,
        url: str,
        *,
        request_queue: str = DEFAULT_REQUEST_QUEUE,
        reply_queue: str = DEFAULT_REPLY_QUEUE,
        records: Records | None = None,
        faults: Faults | None = None,
        max_batch: int = 256,
        connection_name: str = "mainframe_sim",
        queue_type: str = "quorum",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.ledger = ledger
        self.url = url
        self.tls = tls  # an amqps:// URL: the client context (its CA, its certificate)
        self.request_queue = request_queue
        self.reply_queue = reply_queue
        self.records = records or Records()
        self.faults = faults or Faults()
        self.max_batch = max_batch
        self.connection_name = connection_name
        self.queue_type = queue_type
        self.connections = 0
        self.requests = 0
        self.replies = 0
        self.ready = threading.Event()
        self.paused = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Run :meth:`run` in a daemon thread."""
        self._thread = threading.Thread(target=self.run, name="mf-mq", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the loop to end and wait for its thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """Consume until :meth:`stop`; reconnect after broker or network failures."""
        backoff = 0.2
        while not self._stop.is_set():
            try:
                self._session()
                backoff = 0.2
            except _RECONNECT_ERRORS as exc:
                self.ready.clear()
                _log.warning(
                    "mainframe_sim mq: %s; reconnecting in %.1fs", exc or type(exc), backoff
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _connect(self) -> Any:
        parameters = pika.URLParameters(self.url)
        if self.tls is not None:
            parameters.ssl_options = pika.SSLOptions(self.tls, parameters.host)
        parameters.client_properties = {"connection_name": self.connection_name}
        parameters.heartbeat = 30
        return pika.BlockingConnection(parameters)

    def _session(self) -> None:
        connection = self._connect()
        self.connections += 1
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            arguments = {"x-queue-type": self.queue_type}
            channel.queue_declare(self.request_queue, durable=True, arguments=arguments)
            channel.queue_declare(self.reply_queue, durable=True, arguments=arguments)
            channel.basic_qos(prefetch_count=self.max_batch)
            self.ready.set()
            self._consume(connection, channel)
        except _Disconnect:
            pass  # closed below without acking: the broker redelivers
        finally:
            self.ready.clear()
            if connection.is_open:
                with contextlib.suppress(*_RECONNECT_ERRORS):
                    connection.close()

    def _consume(self, connection: Any, channel: Any) -> None:
        batch: list[tuple[Any, Any, bytes, float]] = []
        while not self._stop.is_set():
            if self.faults.down:
                self._flush(channel, batch)
                batch = []
                channel.cancel()
                self.paused.set()
                while self.faults.down and not self._stop.is_set():
                    connection.sleep(0.05)
                self.paused.clear()
                continue
            for method, properties, body in channel.consume(
                self.request_queue, inactivity_timeout=0.05
            ):
                if method is None:
                    break
                batch.append((method, properties, body, time.monotonic()))
                if len(batch) >= self.max_batch:
                    break
            self._flush(channel, batch)
            batch = []
        self._flush(channel, batch)
        channel.cancel()

    def _flush(self, channel: Any, batch: list[tuple[Any, Any, bytes, float]]) -> None:
        if not batch:
            return
        decoded = [self.records.decode_request(body) for _, _, body, _ in batch]
        requests = [item for item in decoded if not isinstance(item, Reply)]
        applied = iter(process_batch(self.ledger, requests))
        replies = [item if isinstance(item, Reply) else next(applied) for item in decoded]
        decisions = [self.faults.decide() for _ in batch]
        if any(decision.action == "disconnect" for decision in decisions):
            raise _Disconnect
        release = max(arrived + d.delay for (*_, arrived), d in zip(batch, decisions, strict=True))
        wait = release - time.monotonic()
        if wait > 0:
            channel.connection.sleep(wait)
        for (_, properties, _, _), reply, decision in zip(batch, replies, decisions, strict=True):
            if decision.action == "drop":
                continue
            if decision.action == "garbage":
                body = self.records.garbage_reply(self.faults.random_bytes(200))
            else:
                body = self.records.encode_reply(reply)
            channel.basic_publish(
                exchange="",
                routing_key=properties.reply_to or self.reply_queue,
                body=body,
                properties=pika.BasicProperties(
                    delivery_mode=pika.DeliveryMode.Persistent,
                    correlation_id=properties.message_id or properties.correlation_id,
                    message_id=uuid.uuid4().hex,
                    content_type="application/octet-stream",
                ),
            )
            self.replies += 1
        channel.basic_ack(delivery_tag=batch[-1][0].delivery_tag, multiple=True)
        self.requests += len(batch)
