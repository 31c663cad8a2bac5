"""``amqp://``: RabbitMQ 3.10+ through pika, loss-free across broker restarts.

How it follows the RabbitMQ reliability guide (https://www.rabbitmq.com/reliability.html) and
AMQP 0-9-1:

- **One I/O thread** owns a ``pika.SelectConnection`` (pika connections are not thread-safe);
  other threads hand it work through ``add_callback_threadsafe``. Handlers run on a worker
  thread per consumer, never on the I/O thread, so a slow handler cannot starve heartbeats.
- **Or the caller's event loop** (:meth:`AmqpTransport.start_async`): a
  ``pika.adapters.asyncio_connection.AsyncioConnection`` on the running loop takes the I/O
  thread's place, :meth:`~AmqpTransport.publish_batch_async` resolves on the confirm with no
  thread in between, and :meth:`~AmqpTransport.consume_async` runs async handlers on the
  loop, several batches at once. A request / reply then crosses no thread at all, which is
  what lets one hub process carry a thousand card payments a second (each thread hand-off
  costs a wake-up and a turn of the GIL). The blocking methods still work from other threads
  (they hand their work to the loop); on the loop's own thread, use the async ones.
- **Publisher confirms, pipelined**: messages are published persistent (``delivery_mode=2``)
  on a channel in confirm mode, up to ``window`` unconfirmed at a time; acks with
  ``multiple=True`` settle many at once. :meth:`AmqpTransport.publish_batch` returns once all
  of its messages are confirmed, so a caller (an outbox relay) acknowledges its sender only
  after the broker took responsibility. ``mandatory=True``: a ``basic.return`` (no queue
  bound) precedes the message's ack; the message is then parked on ``isobridge.unroutable``.
- **Backpressure**: at most ``max_in_flight`` messages are in flight across all callers (a
  caller waits for room), and ``connection.blocked`` (a broker memory or disk alarm) stops
  publishing until ``connection.unblocked``; memory stays bounded.
- **Consumers** use manual acks after the handler returned (its effect committed), a
  configurable prefetch (``basic.qos``), batches acked with ``multiple=True`` when nothing
  earlier is still pending. A retry / dead-letter / reply copy is published and confirmed
  before the delivery it stems from is acked.
- **Replies to this connection's own reply queue** (event-loop mode): a reply queue is
  exclusive to the connection that declared it, so a reply that a consumer of the same
  transport sends there could only ever reach that queue's consumer, on this same loop. It
  is handed to it at once (the canonical object, never written as JSON: its envelope has an
  empty body, :func:`routing.wire.unwritten`), and the request is acked then, as it would be
  once the broker confirmed the reply: an edge and the core worker in one hub process answer
  a payment through the broker once (the durable request), not twice. A reply whose
  consumer is stopping, or that a handler does not take (it raises: the reply goes through
  the broker then; it returns a retry or dead-letter outcome: it is parked as a delivered
  one would be) follows the usual path. Counted in :attr:`AmqpTransport.local_replies`.
- **Quorum queues** with ``x-delivery-limit`` (poison messages that crash consumers are
  dead-lettered by the broker), ``x-overflow: reject-publish`` and
  ``x-dead-letter-strategy: at-least-once``. A queue argument cannot change once the queue
  exists; change the limit of an existing queue by policy, e.g. ``rabbitmqctl set_policy
  --apply-to quorum_queues limits '^isobridge\\.' '{"delivery-limit": 20}'``.
- **Reconnection**: when the connection or a channel is lost (broker restart, network cut),
  the transport reconnects with exponential backoff, declares the topology again, resumes its
  consumers and republishes every message not yet confirmed. Deliveries whose ack was lost
  come again (``redelivered``): consumers are idempotent through their inbox, so nothing is
  lost and nothing is applied twice.
- **A cluster of nodes**: the URL may list several nodes, as libpq does for PostgreSQL:
  ``amqp://user:pass@host1:5672,host2:5672,host3:5672/vhost?heartbeat=10`` (credentials, virtual
  host and query are shared; a host without a port gets 5672, or 5671 for ``amqps``). The
  transport connects to the first node that answers, in the order listed; when its node dies
  or is cut off, it connects to the next one at once (a pause between nodes of some 50 ms,
  the backoff once a whole round of nodes failed). Quorum queues keep their messages on the
  other nodes (a majority must run); the reconnection above does the rest. Each instance
  may list the nodes in another order to spread the connections.
- **Nacks** are published again after a pause, six times over some 16 s, before the caller
  gets :class:`~routing.transport.PublishNackedError`: a quorum queue nacks while it elects
  a leader on the surviving nodes. With several nodes, a message nacked a third time makes
  the transport connect again, to the next node: on RabbitMQ 3.10 a channel opened while a
  queue's leader moved was seen to nack every publish to that queue for minutes.
- **Receiving** (event-loop mode): frames are read 64 KiB at a time and decoded by the
  transport's own decoder for the frames a hub gets (pika's for any other); a delivery whose
  frames were all read goes to its channel in one step, and a confirm straight to the
  channel's confirm callback, with the objects and counts pika's dispatch would give.
- **Start-up**: a wrong URL or a broker that is down is retried with backoff until the
  ``start`` timeout, then reported as :class:`~routing.transport.TransportUnavailableError`
  with a one-line reason (the password masked).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import queue as queue_module
import random
import ssl
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import urlsplit, urlunsplit

import pika
import pika.data
import pika.exceptions
import pika.frame
import pika.spec
from pika.adapters.asyncio_connection import AsyncioConnection
from pika.adapters.utils.io_services_utils import _AsyncPlaintextTransport

from canonical_model.construct import fast_constructor
from routing.amqps import BrokerTls, apply_tls, tls_refusal
from routing.transport import (
    DEFAULT_EXCHANGE,
    Action,
    AsyncBatchHandler,
    BatchHandler,
    Consumer,
    DeadLetter,
    Delivery,
    DeliveryObserver,
    Outgoing,
    PublishNackedError,
    PublishReceipt,
    PublishTimeoutError,
    Received,
    RoutingError,
    Topology,
    TransportBase,
    TransportUnavailableError,
    UnroutableError,
    _DecodedBatch,
    dispatch,
    follow_up,
    reply_envelope,
    unroutable_copy,
)
from routing.wire import Envelope, forget

__all__ = ["AmqpTransport", "masked_url", "node_parameters", "node_urls"]

_log = logging.getLogger("isobridge.routing")

_new_delivery: Final = fast_constructor(Delivery)

_COALESCE_BYTES = 128 * 1024
_RECONNECT_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
_NEXT_NODE_DELAY = 0.05
# A nack is published again after these pauses, then reported: a quorum queue nacks while it
# elects a new leader (its node died), which takes a few seconds.
_NACK_RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
_NACKS_BEFORE_RECONNECT = 3


def masked_url(url: str) -> str:
    """``url`` with its password replaced by ``***``.

    >>> masked_url("amqp://hub:s3cret@mq.example:5672/prod")
    'amqp://hub:***@mq.example:5672/prod'
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


def node_urls(url: str) -> list[str]:
    """The URL of each node that ``url`` lists (``host1:port1,host2:port2`` where one URL has
    its host), each with the shared credentials, virtual host and query; ``ValueError``
    naming what is wrong.

    >>> for one in node_urls("amqp://hub:pw@mq1:5681,mq2:5682,mq3/prod?heartbeat=10"):
    ...     print(one)
    amqp://hub:pw@mq1:5681/prod?heartbeat=10
    amqp://hub:pw@mq2:5682/prod?heartbeat=10
    amqp://hub:pw@mq3/prod?heartbeat=10
    >>> node_urls("amqp://mq1:5672,,mq3:5672/")
    Traceback (most recent call last):
    ValueError: node 2 of 'amqp://mq1:5672,,mq3:5672/' has no host
    """
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", "amqps"):
        raise ValueError(f"{masked_url(url)!r} is not an amqp:// or amqps:// URL")
    userinfo, at, hosts = parts.netloc.rpartition("@")
    found: list[str] = []
    for number, host in enumerate(hosts.split(","), start=1):
        if not host.strip():
            raise ValueError(f"node {number} of {masked_url(url)!r} has no host")
        one = urlunsplit(parts._replace(netloc=f"{userinfo}{at}{host.strip()}"))
        try:
            urlsplit(one).port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ValueError(
                f"node {number} of {masked_url(url)!r} has a bad port: {host.strip()!r}"
            ) from None
        found.append(one)
    return found


def node_parameters(url: str, tls: BrokerTls | None = None) -> list[Any]:
    """pika's connection parameters of each node ``url`` lists, in order: what
    ``pika.BlockingConnection`` takes to connect to the first node that answers. For an
    ``amqps://`` URL, TLS 1.3 with ``tls`` (:mod:`routing.amqps`); ``tls`` with an
    ``amqp://`` URL is a ``ValueError``.

    >>> [(p.host, p.port) for p in node_parameters("amqp://u:pw@mq1:5681,mq2/%2F")]
    [('mq1', 5681), ('mq2', 5672)]
    >>> [(p.port, p.ssl_options.server_hostname) for p in node_parameters("amqps://mq1,mq2:5")]
    [(5671, 'mq1'), (5, 'mq2')]
    """
    found = []
    for one in node_urls(url):
        parameters = pika.URLParameters(one)
        apply_tls(parameters, urlsplit(one).scheme, tls)
        found.append(parameters)
    return found


@dataclass(slots=True)
class _Batch:
    size: int
    unroutable: str
    remaining: int
    # Set once every message is settled, for a caller on another thread (submit_batch); an
    # event-loop caller is told through on_done and needs none.
    done: threading.Event | None = None
    # Called on the I/O thread (the event loop) once every message is settled.
    on_done: Callable[[], None] | None = None
    nacked: list[str] = field(default_factory=list)
    parked: list[str] = field(default_factory=list)
    returned: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Pub:
    item: Outgoing
    exchange: str
    batch: _Batch | None = None
    # A follow-up (retry copy, dead-letter copy, reply): called with True once confirmed.
    on_confirm: Callable[[bool], None] | None = None
    generation: int = 0
    returned: bool = False
    nacks: int = 0


_PUBLISH_METHOD = struct.pack(">IH", pika.spec.Basic.Publish.INDEX, 0)  # class, method, ticket
_CONTENT_HEADER = struct.pack(">HH", pika.spec.Basic.INDEX, 0)  # class, weight
_FRAME_END = bytes((pika.spec.FRAME_END,))
_PROPERTY_FLAGS = (
    pika.spec.BasicProperties.FLAG_CONTENT_TYPE
    | pika.spec.BasicProperties.FLAG_HEADERS
    | pika.spec.BasicProperties.FLAG_DELIVERY_MODE
)
_FLAG_CORRELATION_ID = pika.spec.BasicProperties.FLAG_CORRELATION_ID
_FLAG_REPLY_TO = pika.spec.BasicProperties.FLAG_REPLY_TO
_FLAG_MESSAGE_ID = pika.spec.BasicProperties.FLAG_MESSAGE_ID
_TABLES: dict[tuple[tuple[str, object], ...], bytes] = {}
_TABLES_LIMIT = 256


_LENGTH_OCTETS = tuple(bytes((length,)) for length in range(256))
_SHORTS: dict[str, bytes] = {}  # exchange, routing keys, content type, reply queues: few
_SHORTS_LIMIT = 1024


def _short(value: str) -> bytes | None:
    """An AMQP short string (length octet, UTF-8), None beyond 255 octets."""
    encoded = value.encode()
    if len(encoded) > 255:
        return None
    return _LENGTH_OCTETS[len(encoded)] + encoded


def _short_repeated(value: str) -> bytes | None:
    """:func:`_short` of a value that recurs (an exchange, a routing key), remembered."""
    short = _SHORTS.get(value)
    if short is None:
        short = _short(value)
        if short is None:
            return None
        if len(_SHORTS) >= _SHORTS_LIMIT:
            _SHORTS.clear()
        _SHORTS[value] = short
    return short


def _headers_table(headers: Any) -> bytes:
    """The AMQP field table of ``headers``, as pika encodes it; the few distinct header sets
    a hub publishes (schema, kind, tenant) are encoded once."""
    items = tuple(headers.items())
    if all(type(value) is str or type(value) is int for _, value in items):
        table = _TABLES.get(items)
        if table is None:
            pieces: list[bytes] = []
            pika.data.encode_table(pieces, dict(items))
            table = b"".join(pieces)
            if len(_TABLES) >= _TABLES_LIMIT:
                _TABLES.clear()
            _TABLES[items] = table
        return table
    pieces = []
    pika.data.encode_table(pieces, dict(headers))
    return b"".join(pieces)


def _publish_frames(
    channel_number: int,
    body_max: int,
    exchange: str,
    routing_key: str,
    mandatory: bool,
    envelope: Envelope,
) -> bytes | None:
    """The frames of one ``basic.publish`` (method, content header, body), byte for byte what
    ``channel.basic_publish(..., _properties(envelope))`` writes, built without pika's frame,
    method and property objects (a third of the hub's publish cost); None when a string is
    too long for AMQP (pika's own path then raises its error)."""
    short_exchange = _short_repeated(exchange)
    short_key = _short_repeated(routing_key)
    content_type = _short_repeated(envelope.content_type)
    if short_exchange is None or short_key is None or content_type is None:
        return None
    flags = _PROPERTY_FLAGS
    properties = [content_type, _headers_table(envelope.headers), b"\x02"]
    for flag, value, encode in (
        (_FLAG_CORRELATION_ID, envelope.correlation_id, _short),
        (_FLAG_REPLY_TO, envelope.reply_to, _short_repeated),  # a requester's own queue
        (_FLAG_MESSAGE_ID, envelope.message_id, _short),
    ):
        if value is not None:
            short = encode(value)
            if short is None:
                return None
            flags |= flag
            properties.append(short)
    method = b"".join(
        (_PUBLISH_METHOD, short_exchange, short_key, b"\x01" if mandatory else b"\x00")
    )
    body = envelope.body
    header = b"".join((_CONTENT_HEADER, struct.pack(">QH", len(body), flags), *properties))
    frames = [
        struct.pack(">BHI", pika.spec.FRAME_METHOD, channel_number, len(method)),
        method,
        _FRAME_END,
        struct.pack(">BHI", pika.spec.FRAME_HEADER, channel_number, len(header)),
        header,
        _FRAME_END,
    ]
    for start in range(0, len(body), body_max):
        chunk = body[start : start + body_max]
        frames += (
            struct.pack(">BHI", pika.spec.FRAME_BODY, channel_number, len(chunk)),
            chunk,
            _FRAME_END,
        )
    return b"".join(frames)


_FRAME_HEAD = struct.Struct(">BHI")  # type, channel, size
_METHOD_ID = struct.Struct(">I")
_DELIVERY_TAG = struct.Struct(">QB")  # delivery tag, bits
_CONTENT_HEAD = struct.Struct(">HHQH")  # class, weight, body size, property flags
_TABLE_SIZE = struct.Struct(">I")
_DELIVER_ID = pika.spec.Basic.Deliver.INDEX
_ACK_ID = pika.spec.Basic.Ack.INDEX
_BASIC_ID = pika.spec.Basic.INDEX
# The properties a hub's messages carry (see _publish_frames); others take pika's path.
_FAST_FLAGS = _PROPERTY_FLAGS | _FLAG_CORRELATION_ID | _FLAG_REPLY_TO | _FLAG_MESSAGE_ID
_pika_decode_frame: Callable[[bytes], tuple[int, Any]] = pika.frame.decode_frame
_pika_callback_log = logging.getLogger("pika.callback")  # where pika logs a callback's error
_DECODED_SHORTS: dict[bytes, str] = {}  # consumer tags, exchanges, routing keys, reply queues
_DECODED_TABLES: dict[bytes, dict[str, Any]] = {}
_IMMUTABLE_VALUES = (str, int, bool, float, bytes, type(None))
# Every attribute of BasicProperties() in its order, unset (its __init__ only assigns them).
_NO_PROPERTIES: dict[str, Any] = dict(vars(pika.spec.BasicProperties()))


def _decoded_short(data: bytes, offset: int) -> tuple[str, int]:
    """The recurring short string at ``offset`` (its length octet) and the offset after it;
    UnicodeDecodeError where pika would keep the bytes."""
    end = offset + 1 + data[offset]
    raw = data[offset + 1 : end]
    text = _DECODED_SHORTS.get(raw)
    if text is None:
        text = raw.decode()
        if len(_DECODED_SHORTS) >= _SHORTS_LIMIT:
            _DECODED_SHORTS.clear()
        _DECODED_SHORTS[raw] = text
    return text, end


def _decoded_table(data: bytes, offset: int) -> tuple[dict[str, Any], int]:
    """The field table at ``offset`` (a fresh dict, as pika gives) and the offset after it;
    the few distinct header sets of a hub's messages are decoded once."""
    end = offset + 4 + _TABLE_SIZE.unpack_from(data, offset)[0]
    raw = data[offset:end]
    table = _DECODED_TABLES.get(raw)
    if table is None:
        table, _ = pika.data.decode_table(raw, 0)
        if all(type(value) in _IMMUTABLE_VALUES for value in table.values()):
            if len(_DECODED_TABLES) >= _TABLES_LIMIT:
                _DECODED_TABLES.clear()
            _DECODED_TABLES[raw] = table
        else:
            return table, end
    return dict(table), end


def _decode_frame(data: bytes, start: int = 0) -> tuple[int, Any]:
    """``pika.frame.decode_frame(data[start:])``, the same frames and objects, with the
    frames of a hub's traffic (deliveries, their content headers and bodies, confirms)
    decoded without pika's generic method and property decoders; anything else goes to
    pika."""
    if len(data) - start < 7 or data[start : start + 4] == b"AMQP":
        return _pika_decode_frame(data[start:] if start else data)
    frame_type, channel_number, size = _FRAME_HEAD.unpack_from(data, start)
    end = start + 8 + size
    if end > len(data):
        return 0, None
    if data[end - 1] != pika.spec.FRAME_END:
        return _pika_decode_frame(data[start:] if start else data)  # raises InvalidFrameError
    try:
        if frame_type == pika.spec.FRAME_BODY:
            return end - start, pika.frame.Body(channel_number, data[start + 7 : end - 1])
        if frame_type == pika.spec.FRAME_METHOD:
            method_id = _METHOD_ID.unpack_from(data, start + 7)[0]
            if method_id == _DELIVER_ID:
                consumer_tag, offset = _decoded_short(data, start + 11)
                delivery_tag, bits = _DELIVERY_TAG.unpack_from(data, offset)
                exchange, offset = _decoded_short(data, offset + 9)
                routing_key, offset = _decoded_short(data, offset)
                deliver = pika.spec.Basic.Deliver(
                    consumer_tag, delivery_tag, bits & 1 != 0, exchange, routing_key
                )
                return end - start, pika.frame.Method(channel_number, deliver)
            if method_id == _ACK_ID:
                delivery_tag, bits = _DELIVERY_TAG.unpack_from(data, start + 11)
                ack = pika.spec.Basic.Ack(delivery_tag, bits & 1 != 0)
                return end - start, pika.frame.Method(channel_number, ack)
        elif frame_type == pika.spec.FRAME_HEADER:
            class_id, _, body_size, flags = _CONTENT_HEAD.unpack_from(data, start + 7)
            if class_id == _BASIC_ID and flags & _FAST_FLAGS == flags:
                properties = _basic_properties(data, start + 21, flags)
                return end - start, pika.frame.Header(channel_number, body_size, properties)
    except (UnicodeDecodeError, IndexError, struct.error):
        pass  # pika keeps undecodable strings as bytes, and has its own errors
    return _pika_decode_frame(data[start:] if start else data)


def _basic_properties(data: bytes, offset: int, flags: int) -> Any:
    """The ``BasicProperties`` at ``offset`` whose ``flags`` are within ``_FAST_FLAGS``."""
    content_type = headers = delivery_mode = correlation_id = reply_to = message_id = None
    if flags & pika.spec.BasicProperties.FLAG_CONTENT_TYPE:
        content_type, offset = _decoded_short(data, offset)
    if flags & pika.spec.BasicProperties.FLAG_HEADERS:
        headers, offset = _decoded_table(data, offset)
    if flags & pika.spec.BasicProperties.FLAG_DELIVERY_MODE:
        delivery_mode = data[offset]
        offset += 1
    if flags & _FLAG_CORRELATION_ID:
        end = offset + 1 + data[offset]
        correlation_id = data[offset + 1 : end].decode()
        offset = end
    if flags & _FLAG_REPLY_TO:
        reply_to, offset = _decoded_short(data, offset)
    if flags & _FLAG_MESSAGE_ID:
        end = offset + 1 + data[offset]
        message_id = data[offset + 1 : end].decode()
    properties = object.__new__(pika.spec.BasicProperties)
    properties.__dict__ = {
        **_NO_PROPERTIES,
        "content_type": content_type,
        "headers": headers,
        "delivery_mode": delivery_mode,
        "correlation_id": correlation_id,
        "reply_to": reply_to,
        "message_id": message_id,
    }
    return properties


@dataclass(slots=True)
class _WholeDelivery:
    """A ``basic.deliver`` with its content header and body, all read (pika's objects)."""

    channel_number: int
    method: Any  # pika.spec.Basic.Deliver
    header: Any  # pika.frame.Header
    body: bytes
    size: int  # bytes of its frames
    frames: int


def _whole_delivery(data: bytes, start: int) -> _WholeDelivery | None:
    """The ``basic.deliver`` at ``start`` in ``data``, when its content header and every body
    frame follow it in ``data`` and decode on :func:`_decode_frame`'s own paths; None for
    anything else (pika's path then takes the frames one at a time)."""
    if len(data) - start < 7:
        return None
    frame_type, channel_number, size = _FRAME_HEAD.unpack_from(data, start)
    end = start + 8 + size
    if (
        frame_type != pika.spec.FRAME_METHOD
        or len(data) < end + 7
        or data[end - 1] != pika.spec.FRAME_END
        or _METHOD_ID.unpack_from(data, start + 7)[0] != _DELIVER_ID
    ):
        return None
    try:
        consumer_tag, offset = _decoded_short(data, start + 11)
        delivery_tag, bits = _DELIVERY_TAG.unpack_from(data, offset)
        exchange, offset = _decoded_short(data, offset + 9)
        routing_key, offset = _decoded_short(data, offset)
        frame_type, header_channel, size = _FRAME_HEAD.unpack_from(data, end)
        header_end = end + 8 + size
        if (
            frame_type != pika.spec.FRAME_HEADER
            or header_channel != channel_number
            or len(data) < header_end
            or data[header_end - 1] != pika.spec.FRAME_END
        ):
            return None
        class_id, _, body_size, flags = _CONTENT_HEAD.unpack_from(data, end + 7)
        if class_id != _BASIC_ID or flags & _FAST_FLAGS != flags:
            return None
        properties = _basic_properties(data, end + 21, flags)
        position, frames, seen = header_end, 2, 0
        fragments: list[bytes] = []
        while seen < body_size:
            frame_type, body_channel, size = _FRAME_HEAD.unpack_from(data, position)
            body_end = position + 8 + size
            if (
                frame_type != pika.spec.FRAME_BODY
                or body_channel != channel_number
                or len(data) < body_end
                or data[body_end - 1] != pika.spec.FRAME_END
            ):
                return None
            fragments.append(data[position + 7 : body_end - 1])
            seen += size
            position = body_end
            frames += 1
    except (UnicodeDecodeError, IndexError, struct.error):
        return None  # undecodable strings, or frames not all read yet
    if seen != body_size:
        return None  # a body longer than announced: pika's error
    return _WholeDelivery(
        channel_number,
        pika.spec.Basic.Deliver(consumer_tag, delivery_tag, bits & 1 != 0, exchange, routing_key),
        pika.frame.Header(channel_number, body_size, properties),
        fragments[0] if len(fragments) == 1 else b"".join(fragments),
        position - start,
        frames,
    )


_new_received: Final = fast_constructor(Received)  # one per delivery, in half the time
_DELIVER_CALLBACK_KEY = pika.spec.Basic.Deliver.NAME  # pika's callback key for the method
_ACK_CALLBACK_KEY = pika.spec.Basic.Ack.NAME


def _standing_callback(callbacks: Any, channel_number: int, key: str) -> Any:
    """The one callback pika's ``CallbackManager`` would call for method ``key`` on
    ``channel_number``, when that is all it would do: a single callback, kept after use
    (not one-shot), for any caller and any arguments (``confirm_delivery``'s on
    ``basic.ack``). None otherwise, or where the manager is not as expected."""
    stack = getattr(callbacks, "_stack", None)
    if not isinstance(stack, dict):
        return None
    entries = stack.get(str(channel_number), {}).get(key)
    if not isinstance(entries, list) or len(entries) != 1:
        return None
    entry = entries[0]
    if not isinstance(entry, dict) or entry.get("one_shot", True) is not False:
        return None
    if entry.get("only", True) is not None or entry.get("arguments", True) is not None:
        return None
    return entry.get("callback")


# Bytes asked of each recv(): pika asks 4 KiB, which splits many deliveries across reads
# (a hub's message is 1-2 KiB) and costs a system call per 4 KiB. Below glibc's mmap
# threshold, so the read buffer is no mmap / munmap of its own.
_RECV_BYTES = 64 * 1024


def _consume_until_drained(transport: Any) -> None:
    """pika's ``_AsyncTransportBase._consume`` for a plaintext socket, which stops after a
    read that did not fill its buffer, as libuv's read loop does: the socket is then most
    likely drained, and the loop's (level-triggered) poll reports any byte that comes
    later. pika reads once more, until ``recv`` raises ``EAGAIN``: a system call and an
    exception raised through four frames and caught, for each time the socket was readable.
    """
    consumed = 0
    limit = transport._MAX_RECV_BYTES
    while transport._state == transport._STATE_ACTIVE and consumed < transport._MAX_CONSUME_BYTES:
        data = transport._sigint_safe_recv(transport._sock, limit)
        if not data:
            _log.error("AMQP socket EOF; %s", transport._sock)
            raise transport.RxEndOfFile()
        consumed += len(data)
        try:
            transport._protocol.data_received(data)
        except Exception as error:
            _log.exception("protocol.data_received() failed: error=%r", error)
            raise
        if len(data) < limit:
            return


class _Connection(AsyncioConnection):  # type: ignore[misc]  # pika is untyped
    """pika's asyncio connection reading frames with :func:`_decode_frame`, handing a
    delivery whose frames were all read to its channel in one step, and reading the socket
    64 KiB at a time.

    pika takes each frame of a delivery (method, content header, body) through its
    dispatch: callbacks looked up, the channel found, the frame given to the channel's
    content assembler, the three put together at the last one; and it cuts the frames it
    read off the front of its buffer one at a time (a copy of the rest each time). Here,
    when a ``basic.deliver``, its header and its body are all in the bytes read, the
    channel gets them at once (``Channel._on_deliver``, what pika's assembler calls), with
    the same objects and counts, and the buffer is cut once per read. Everything else
    (other frames, a delivery split across reads, a channel mid-content, properties or
    strings outside :func:`_decode_frame`'s paths) takes pika's own path, frame by frame.
    """

    assembled_deliveries = 0
    """Deliveries handed over in one step (the others went through pika's dispatch)."""
    direct_confirms = 0
    """``basic.ack`` frames handed straight to the channel's confirm callback."""
    direct_writes = 0
    """Sends made at the end of a turn of the event loop, past pika's writability watcher."""
    _frame_buffer: bytes  # pika's: what was read and not yet taken as frames
    _unsent: list[bytes] | None = None  # frames of this turn of the loop, not yet sent

    def _proto_connection_made(self, transport: Any) -> None:
        if isinstance(getattr(transport, "_MAX_RECV_BYTES", None), int):
            transport._MAX_RECV_BYTES = _RECV_BYTES
        if transport.__class__ is _AsyncPlaintextTransport:
            transport._consume = functools.partial(_consume_until_drained, transport)
        super()._proto_connection_made(transport)

    def _adapter_emit_data(self, data: bytes) -> None:
        # pika hands each frame to its transport, which turns a writability watcher on and
        # sends at the next poll of the loop, then turns it off: two epoll_ctl calls and a
        # turn of the loop per burst. Here the frames of one turn are sent together at its
        # end, from the socket at once when nothing waits before them; what the socket does
        # not take goes through pika's transport (its watcher, its errors).
        transport = self._transport
        if transport.__class__ is not _AsyncPlaintextTransport:
            super()._adapter_emit_data(data)
            return
        if self._unsent is None:
            self._unsent = [data]
            self._nbio.get_native_ioloop().call_soon(self._send_unsent)
        else:
            self._unsent.append(data)

    def _send_unsent(self) -> None:
        frames, self._unsent = self._unsent, None
        transport = self._transport
        if not frames or transport is None:
            return  # the connection went meanwhile, as pika's own buffer would have
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        if transport._state == transport._STATE_ACTIVE and not transport.get_write_buffer_size():
            try:
                sent = transport._sock.send(data)
            except OSError:  # would block; or failed, and pika's transport aborts on it again
                sent = 0
            self.direct_writes += 1
            if sent == len(data):
                return
            data = data[sent:]
        transport.write(data)

    def _read_frame(self) -> Any:
        return _decode_frame(self._frame_buffer)

    def _on_data_available(self, data_in: bytes) -> None:
        # pika's loop (Connection._on_data_available) with an offset into the buffer; the
        # buffer is cut at the end, or at once if a frame's handling ends in an error.
        buffer = self._frame_buffer + data_in
        self._frame_buffer = buffer
        start = 0
        try:
            while start < len(buffer):
                if buffer[start] == pika.spec.FRAME_METHOD:
                    whole = _whole_delivery(buffer, start)
                    if whole is not None:
                        channel = self._channel_taking(whole.channel_number)
                        if channel is not None:
                            start += whole.size
                            self.bytes_received += whole.size
                            self.frames_received += whole.frames
                            self.assembled_deliveries += 1
                            channel._on_deliver(
                                pika.frame.Method(whole.channel_number, whole.method),
                                whole.header,
                                whole.body,
                            )
                            if self._frame_buffer is not buffer:
                                return  # the connection was reset meanwhile
                            continue
                consumed, frame_value = _decode_frame(buffer, start)
                if not frame_value:
                    return
                start += consumed
                self.bytes_received += consumed
                if (
                    frame_value.__class__ is pika.frame.Method
                    and frame_value.method.__class__ is pika.spec.Basic.Ack
                    and frame_value.channel_number > 0
                ):
                    confirm = _standing_callback(
                        self.callbacks, frame_value.channel_number, _ACK_CALLBACK_KEY
                    )
                    if confirm is not None:
                        # What pika's dispatch does with it (Connection._process_frame, then
                        # CallbackManager.process), without its lookups.
                        self.frames_received += 1
                        self.direct_confirms += 1
                        try:
                            confirm(frame_value)
                        except Exception:
                            _pika_callback_log.exception(
                                'Calling %s for "%s:%s" failed',
                                confirm,
                                frame_value.channel_number,
                                _ACK_CALLBACK_KEY,
                            )
                            raise
                        if self._frame_buffer is not buffer:
                            return
                        continue
                self._process_frame(frame_value)
                if self._frame_buffer is not buffer:
                    return
        finally:
            if start and self._frame_buffer is buffer:
                self._frame_buffer = buffer[start:]

    def _channel_taking(self, channel_number: int) -> Any:
        """The channel to hand a whole delivery to at once; None where pika's dispatch could
        do something else with its frames (an unknown channel, content in progress on it,
        a callback registered for deliveries)."""
        channel = self._channels.get(channel_number)
        assembler = getattr(channel, "_content_assembler", None)
        stack = getattr(self.callbacks, "_stack", None)
        if (
            getattr(assembler, "_method_frame", True) is not None
            or getattr(assembler, "_header_frame", True) is not None
            or not isinstance(stack, dict)
            or _DELIVER_CALLBACK_KEY in stack.get(str(channel_number), ())
        ):
            return None
        return channel


def _properties(envelope: Envelope) -> Any:
    return pika.BasicProperties(
        content_type=envelope.content_type,
        delivery_mode=2,
        message_id=envelope.message_id,
        correlation_id=envelope.correlation_id,
        reply_to=envelope.reply_to,
        headers=dict(envelope.headers),
    )


def _envelope(properties: Any, body: bytes) -> Envelope:
    return Envelope(
        body,
        properties.message_id or "",
        dict(properties.headers or {}),
        properties.correlation_id,
        properties.reply_to,
        properties.content_type or "",
    )


def _fail_late(future: asyncio.Future[None]) -> None:
    """A deadline passed: ``future`` fails with :class:`TimeoutError` (if still pending)."""
    if not future.done():
        future.set_exception(TimeoutError())


class _AmqpPending:
    """A submitted batch; :meth:`result` waits for its confirms."""

    def __init__(self, transport: AmqpTransport, batches: list[_Batch], count: int) -> None:
        self._transport = transport
        self._batches = batches
        self._count = count

    def result(self, timeout: float = 60.0) -> PublishReceipt:
        deadline = time.monotonic() + timeout
        for batch in self._batches:
            if batch.done is None:
                raise RuntimeError("internal error: a batch submitted without its event")
            if not batch.done.wait(timeout=max(0.0, deadline - time.monotonic())):
                raise self._transport._not_confirmed(timeout)
        return _receipt(self._batches, self._count)


def _receipt(batches: Sequence[_Batch], count: int) -> PublishReceipt:
    """What settled ``batches`` achieved, or the error that says what they did not."""
    nacked = [m for b in batches for m in b.nacked]
    if nacked:
        raise PublishNackedError(nacked)
    returned = [m for b in batches for m in b.returned]
    if returned:
        raise UnroutableError(returned)
    return PublishReceipt(count, tuple(m for b in batches for m in b.parked))


class AmqpTransport(TransportBase):
    """The RabbitMQ transport; see the module docstring. Not started by the constructor."""

    def __init__(
        self,
        url: str,
        topology: Topology,
        *,
        window: int = 1_000,
        max_in_flight: int = 10_000,
        reconnect_delays: Sequence[float] = _RECONNECT_DELAYS,
        declare: bool = True,
        observer: DeliveryObserver | None = None,
        quorum_group_size: int | None = None,
        tls: BrokerTls | None = None,
    ) -> None:
        self.url = url
        self._topology = topology
        self._observer = observer
        try:
            self._nodes = tuple(node_parameters(url, tls))
        except Exception as exc:
            raise TransportUnavailableError(f"bad broker URL {masked_url(url)}: {exc}") from None
        for parameters in self._nodes:
            parameters.blocked_connection_timeout = 300
        self._node = 0  # the index of the node to connect to next (or connected to)
        # x-quorum-initial-group-size of the quorum queues it declares (None: the broker's
        # default, every running node). A queue argument: it cannot change once declared.
        self._quorum_group_size = quorum_group_size
        self._window = max(1, window)
        self._max_in_flight = max(self._window, max_in_flight)
        self._declare = declare
        self._reconnect_delays = tuple(reconnect_delays) or _RECONNECT_DELAYS
        self._exchanges = {DEFAULT_EXCHANGE, topology.exchange, topology.dead_letter_exchange}

        # Shared with callers (under _flight).
        self._flight = threading.Condition()
        self._in_flight = 0
        self._pending: deque[_Pub] = deque()
        self._ready = threading.Event()
        self._stop_requested = threading.Event()  # cuts a reconnect backoff short
        self._closing = False
        self._fatal: str | None = None
        self._last_error = "not connected yet"
        self._attempts = 0
        self._tls_refused: set[int] = set()  # nodes that refused the TLS handshake
        self._ever_ready = False
        self._consumers: list[_ConsumerBase] = []
        self._reply_queues: list[str] = []
        self._local_replies = 0

        # Owned by the I/O thread.
        self._connection: Any = None
        self._channel: Any = None
        self._generation = 0
        self._next_tag = 1
        self._low_tag = 1
        self._unconfirmed: dict[int, _Pub] = {}
        self._acks_due: list[_ConsumerBase] = []  # consumers with confirmed follow-ups to ack
        self._nacked_later: list[tuple[float, _Pub]] = []  # (when, nacked pub) to resend
        self._blocked = False
        self._channel_numbers = itertools.count(1)
        self._republished = 0
        self._nacks_retried = 0
        self._session_ready = False
        self._io: threading.Thread | None = None
        # Event-loop mode (start_async): the loop does the I/O thread's work.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._loop_task: asyncio.Task[None] | None = None
        self._connection_ended: asyncio.Future[None] | None = None
        self._loop_done = threading.Event()

    @property
    def topology(self) -> Topology:
        return self._topology

    @property
    def blocked(self) -> bool:
        """Whether the broker has blocked publishing (``connection.blocked``: a resource alarm)."""
        return self._blocked

    @property
    def unconfirmed_count(self) -> int:
        """Messages on the wire whose confirm has not come yet."""
        return len(self._unconfirmed)

    @property
    def local_replies(self) -> int:
        """Replies handed to a consumer of this transport's own reply queue past the broker
        (see the module docstring)."""
        return self._local_replies

    @property
    def connected_node(self) -> tuple[str, int] | None:
        """The host and port of the node the transport is connected to (None: not now)."""
        if not self._ready.is_set():
            return None
        parameters = self._nodes[self._node]
        return str(parameters.host), int(parameters.port)

    @property
    def nack_retried_count(self) -> int:
        """Messages the broker nacked that were published again."""
        return self._nacks_retried

    @property
    def republished_count(self) -> int:
        """Messages published again because their connection was lost before the confirm."""
        return self._republished

    # --- life cycle ------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        if self._io is None:
            self._io = threading.Thread(target=self._run_io, name="isobridge-amqp-io", daemon=True)
            self._io.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(timeout=0.05):
            if self._fatal is not None or time.monotonic() >= deadline:
                reason = self._fatal or (
                    f"cannot reach the broker at {masked_url(self.url)} after"
                    f" {self._attempts} attempt(s) in {timeout:g} s: {self._last_error}"
                )
                self.close()
                raise TransportUnavailableError(reason)

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._stop_requested.set()
        consumers = list(self._consumers)
        for consumer in consumers:
            consumer.stopping = True
        self._call(self._shutdown)
        if self._io is not None and self._io is not threading.current_thread():
            self._io.join(timeout=15)
        if self._loop_task is not None and not self._on_loop_thread():
            self._loop_done.wait(timeout=15)
        for consumer in consumers:
            consumer.join(timeout=15)
        with self._flight:
            self._flight.notify_all()

    async def start_async(self, timeout: float = 30.0) -> None:
        """Start on the running event loop (see the module docstring); the same errors as
        :meth:`start`."""
        if self._io is None and self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
            self._loop_task = self._loop.create_task(self._run_on_loop())
        deadline = time.monotonic() + timeout
        while not self._ready.is_set():
            if self._fatal is not None or time.monotonic() >= deadline:
                reason = self._fatal or (
                    f"cannot reach the broker at {masked_url(self.url)} after"
                    f" {self._attempts} attempt(s) in {timeout:g} s: {self._last_error}"
                )
                await self.close_async()
                raise TransportUnavailableError(reason)
            await asyncio.sleep(0.01)

    async def close_async(self) -> None:
        if self._loop is None or not self._on_loop_thread():
            await asyncio.to_thread(self.close)
            return
        self.close()
        if self._loop_task is not None:
            await asyncio.wait({self._loop_task}, timeout=15)

    def _on_loop_thread(self) -> bool:
        return self._loop is not None and threading.get_ident() == self._loop_thread

    async def _run_on_loop(self) -> None:
        """:meth:`_run_io` on the event loop: connect, serve until lost, back off, again."""
        loop = asyncio.get_running_loop()
        failures = 0
        try:
            while not self._closing:
                self._attempts += 1
                self._session_ready = False
                self._connection_ended = loop.create_future()
                self._connection = _Connection(
                    self._nodes[self._node],
                    on_open_callback=self._on_connection_open,
                    on_open_error_callback=self._on_connection_open_error,
                    on_close_callback=self._on_connection_closed,
                    custom_ioloop=loop,
                )
                await self._connection_ended
                self._connection = None
                if self._closing or self._fatal is not None:
                    break
                failures = 0 if self._session_ready else failures + 1
                self._ready.clear()
                delay = self._next_node(failures)
                until = loop.time() + delay
                while loop.time() < until and not self._stop_requested.is_set():
                    await asyncio.sleep(min(0.05, until - loop.time()))
        finally:
            self._ready.clear()
            self._loop_done.set()

    def _next_node(self, failures: int) -> float:
        """Move on to the next node listed; the pause before connecting to it. The backoff
        grows with each round of nodes that all failed; within a round the next node is
        tried at once (another node answering is the point of a cluster)."""
        count = len(self._nodes)
        self._node = (self._node + 1) % count
        if failures % count != 0:
            # jitter: many hubs, one cluster (nothing secret depends on it)
            delay = _NEXT_NODE_DELAY * (0.75 + random.random() / 2)  # noqa: S311
            _log.warning(
                "broker node unreachable (%s); trying node %d of %d",
                self._last_error,
                self._node + 1,
                count,
            )
            return delay
        return self._backoff(failures // count)

    def _backoff(self, failures: int) -> float:
        delay = self._reconnect_delays[min(failures, len(self._reconnect_delays) - 1)]
        # jitter: many hubs, one broker (nothing secret depends on it)
        delay *= 0.75 + random.random() / 2  # noqa: S311
        _log.warning("broker connection lost (%s); reconnecting in %.2fs", self._last_error, delay)
        return delay

    def _end_connection(self, connection: Any) -> None:
        """The connection is over: let the loop that runs it go on to the next."""
        if self._loop is None:
            connection.ioloop.stop()
        elif self._connection_ended is not None and not self._connection_ended.done():
            self._connection_ended.set_result(None)

    def _run_io(self) -> None:
        failures = 0
        try:
            while not self._closing:
                self._attempts += 1
                self._session_ready = False
                self._connection = pika.SelectConnection(
                    self._nodes[self._node],
                    on_open_callback=self._on_connection_open,
                    on_open_error_callback=self._on_connection_open_error,
                    on_close_callback=self._on_connection_closed,
                )
                connection = self._connection
                connection.ioloop.start()
                self._connection = None
                connection.ioloop.close()  # its wake-up socket pair
                if self._closing or self._fatal is not None:
                    break
                # A connection that got as far as ready resets the backoff.
                failures = 0 if self._session_ready else failures + 1
                self._ready.clear()
                self._stop_requested.wait(self._next_node(failures))
        finally:
            self._ready.clear()

    def _call(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the I/O thread soon (dropped when there is no connection: the
        state it works on is rebuilt at the next connect)."""
        connection = self._connection
        if connection is None:
            return
        loop = self._loop
        if loop is None:
            with contextlib.suppress(Exception):
                connection.ioloop.add_callback_threadsafe(callback)
        elif self._on_loop_thread():
            loop.call_soon(callback)
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to run on
                loop.call_soon_threadsafe(callback)

    def _shutdown(self) -> None:
        connection = self._connection
        if connection is None:
            return
        if connection.is_open:
            connection.close()
        elif connection.is_closed:
            self._end_connection(connection)

    # --- connection callbacks (I/O thread) -------------------------------------------------

    def _on_connection_open(self, connection: Any) -> None:
        if self._closing:  # close() came while this connection was being opened
            connection.close()
            return
        connection.add_on_connection_blocked_callback(self._on_blocked)
        connection.add_on_connection_unblocked_callback(self._on_unblocked)
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_connection_open_error(self, connection: Any, error: BaseException) -> None:
        self._last_error = _describe(error)
        refusal = tls_refusal(error)
        if refusal is not None:
            node = self._nodes[self._node]
            self._last_error = f"TLS with {node.host}:{node.port} refused: {refusal}"
            self._tls_refused.add(self._node)
            if not self._ever_ready and len(self._tls_refused) == len(self._nodes):
                # Every node refused the handshake before any session: a certificate or
                # version problem that retrying does not mend; report it now.
                self._fatal = f"the broker at {masked_url(self.url)}: {self._last_error}"
        if isinstance(
            error,
            pika.exceptions.ProbableAuthenticationError | pika.exceptions.ProbableAccessDeniedError,
        ):
            self._fatal = (
                f"the broker at {masked_url(self.url)} refused the login: {self._last_error}"
            )
        self._end_connection(connection)

    def _on_connection_closed(self, connection: Any, error: BaseException) -> None:
        if not self._closing:
            self._last_error = _describe(error)
        self._ready.clear()
        self._channel = None
        self._generation += 1
        self._blocked = False
        # Unconfirmed messages go first at the next connection; follow-ups of deliveries on
        # the lost channels are dropped (those deliveries come again).
        resend = [self._unconfirmed[tag] for tag in sorted(self._unconfirmed)]
        resend += [pub for _when, pub in self._nacked_later]
        self._nacked_later.clear()
        self._unconfirmed.clear()
        self._next_tag = self._low_tag = 1
        for pub in reversed(resend):
            if pub.on_confirm is None:
                pub.returned = False
                self._pending.appendleft(pub)
                self._republished += 1
        for consumer in self._consumers:
            consumer.channel = None
            consumer.unsettled.clear()
            consumer.acks_due.clear()
        self._end_connection(connection)

    def _on_blocked(self, connection: Any, frame: Any) -> None:
        _log.warning("the broker blocked publishing (resource alarm); holding messages")
        self._blocked = True

    def _on_unblocked(self, connection: Any, frame: Any) -> None:
        self._blocked = False
        self._pump()

    def _on_channel_open(self, channel: Any) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        self._declare_topology(
            channel,
            lambda: channel.confirm_delivery(
                ack_nack_callback=self._on_confirm, callback=lambda _frame: self._on_confirm_mode()
            ),
        )

    def _on_channel_closed(self, channel: Any, reason: BaseException) -> None:
        if channel is not self._channel or self._closing:
            return
        self._last_error = _describe(reason)
        if isinstance(reason, pika.exceptions.ChannelClosedByBroker) and reason.reply_code == 406:
            self._fatal = f"the topology on the broker disagrees: {reason.reply_text}"
        # Start afresh on a new connection: simplest state to reason about.
        connection = self._connection
        if connection is not None and connection.is_open:
            connection.close()

    def _on_confirm_mode(self) -> None:
        self._session_ready = True
        self._ever_ready = True
        self._next_tag = self._low_tag = 1
        connection = self._connection
        for consumer in self._consumers:
            if not consumer.stopping:
                connection.channel(
                    on_open_callback=lambda ch, c=consumer: self._start_consumer(c, ch)
                )
        self._ready.set()
        self._pump()

    def _declare_topology(self, channel: Any, done: Callable[[], None]) -> None:
        topology = self._topology
        if not self._declare:  # operator tooling: use what exists, change nothing
            done()
            return
        steps: list[tuple[Callable[..., Any], dict[str, Any]]] = [
            (
                channel.exchange_declare,
                {"exchange": topology.exchange, "exchange_type": "topic", "durable": True},
            ),
            (
                channel.exchange_declare,
                {
                    "exchange": topology.dead_letter_exchange,
                    "exchange_type": "direct",
                    "durable": True,
                },
            ),
            (
                channel.queue_declare,
                {
                    "queue": topology.unroutable_queue,
                    "durable": True,
                    "arguments": {"x-queue-type": "quorum"},
                },
            ),
        ]
        for dest in topology.destinations:
            queue = topology.queue(dest.name)
            arguments: dict[str, Any] = {
                "x-queue-type": "quorum",
                "x-dead-letter-exchange": topology.dead_letter_exchange,
                "x-dead-letter-routing-key": dest.name,
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
                "x-delivery-limit": dest.delivery_limit,
            }
            if dest.single_active_consumer:
                arguments["x-single-active-consumer"] = True
            steps.append(
                (channel.queue_declare, {"queue": queue, "durable": True, "arguments": arguments})
            )
            steps.extend(
                (
                    channel.queue_bind,
                    {"queue": queue, "exchange": topology.exchange, "routing_key": key},
                )
                for key in dest.binding_keys
            )
            dlq = topology.dead_letter_queue(dest.name)
            steps.append(
                (
                    channel.queue_declare,
                    {"queue": dlq, "durable": True, "arguments": {"x-queue-type": "quorum"}},
                )
            )
            steps.append(
                (
                    channel.queue_bind,
                    {
                        "queue": dlq,
                        "exchange": topology.dead_letter_exchange,
                        "routing_key": dest.name,
                    },
                )
            )
            for delay in sorted(set(dest.retry.delays_ms)):
                tier_arguments: dict[str, Any] = {
                    "x-queue-type": "quorum",
                    "x-message-ttl": delay,
                    "x-dead-letter-exchange": DEFAULT_EXCHANGE,
                    "x-dead-letter-routing-key": queue,
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                }
                steps.append(
                    (
                        channel.queue_declare,
                        {
                            "queue": topology.retry_queue(dest.name, delay),
                            "durable": True,
                            "arguments": tier_arguments,
                        },
                    )
                )
        if self._quorum_group_size is not None:
            for _method, kwargs in steps:
                queue_arguments = kwargs.get("arguments")
                if isinstance(queue_arguments, dict) and (
                    queue_arguments.get("x-queue-type") == "quorum"
                ):
                    queue_arguments["x-quorum-initial-group-size"] = self._quorum_group_size
        for name in self._reply_queues:
            steps.append(
                (channel.queue_declare, {"queue": name, "exclusive": True, "auto_delete": True})
            )
        remaining = deque(steps)

        def next_step(_frame: Any = None) -> None:
            if channel.is_closed:
                return
            if not remaining:
                done()
                return
            method, kwargs = remaining.popleft()
            method(callback=next_step, **kwargs)

        next_step()

    # --- publishing ------------------------------------------------------------------------

    def publish_batch(
        self,
        items: Sequence[Outgoing],
        *,
        unroutable: Literal["park", "raise"] = "park",
        timeout: float = 60.0,
    ) -> PublishReceipt:
        deadline = time.monotonic() + timeout
        pending = self.submit_batch(items, unroutable=unroutable, timeout=timeout)
        return pending.result(timeout=max(0.0, deadline - time.monotonic()))

    def submit_batch(
        self,
        items: Sequence[Outgoing],
        *,
        unroutable: Literal["park", "raise"] = "park",
        timeout: float = 60.0,
    ) -> _AmqpPending:
        self._check_publishable(items)
        deadline = time.monotonic() + timeout
        batches: list[_Batch] = []
        for part in self._chunks(items):
            with self._flight:
                while self._in_flight + len(part) > self._max_in_flight:
                    left = deadline - time.monotonic()
                    if left <= 0 or self._closing or self._on_loop_thread():
                        raise self._no_room(timeout)
                    self._flight.wait(timeout=min(left, 0.5))
                self._in_flight += len(part)
            batches.append(self._hand_over(part, unroutable, done=threading.Event()))
            self._call(self._pump)
        return _AmqpPending(self, batches, len(items))

    async def publish_batch_async(
        self,
        items: Sequence[Outgoing],
        *,
        unroutable: Literal["park", "raise"] = "park",
        timeout: float = 60.0,
    ) -> PublishReceipt:
        if not self._on_loop_thread():
            return await super().publish_batch_async(items, unroutable=unroutable, timeout=timeout)
        self._check_publishable(items)
        loop = self._loop
        if loop is None:
            raise RuntimeError("internal error: on the loop's thread without a loop")
        deadline = loop.time() + timeout
        settled: asyncio.Future[None] = loop.create_future()
        batches: list[_Batch] = []
        left = 0

        def one_done() -> None:
            nonlocal left
            left -= 1
            if left == 0 and not settled.done():
                settled.set_result(None)

        for part in self._chunks(items):
            while self._in_flight + len(part) > self._max_in_flight:
                if loop.time() >= deadline or self._closing:
                    raise self._no_room(timeout)
                await asyncio.sleep(0.005)
            with self._flight:
                self._in_flight += len(part)
            left += 1
            batches.append(self._hand_over(part, unroutable, on_done=one_done))
        self._pump()
        if not settled.done():
            # A timer on the future rather than a timeout scope: a third of the cost, and
            # the loop's (uvloop's) own code.
            timer = loop.call_at(deadline, _fail_late, settled)
            try:
                await settled
            except TimeoutError:
                raise self._not_confirmed(timeout) from None
            finally:
                timer.cancel()
        return _receipt(batches, len(items))

    def _check_publishable(self, items: Sequence[Outgoing]) -> None:
        if self._closing or (self._io is None and self._loop is None):
            raise RoutingError("the amqp transport is not started (or closed)")
        for item in items:
            exchange = self._topology.exchange if item.exchange is None else item.exchange
            if exchange not in self._exchanges:
                raise RoutingError(f"exchange {exchange!r} is not part of this hub's topology")

    def _chunks(self, items: Sequence[Outgoing]) -> Iterator[Sequence[Outgoing]]:
        chunk = self._window  # several chunks in flight keep the window full
        for start in range(0, len(items), chunk):
            yield items[start : start + chunk]

    def _hand_over(
        self,
        part: Sequence[Outgoing],
        unroutable: Literal["park", "raise"],
        on_done: Callable[[], None] | None = None,
        done: threading.Event | None = None,
    ) -> _Batch:
        """Queue ``part`` (room reserved) for the I/O thread to publish; its batch."""
        batch = _Batch(len(part), unroutable, len(part), done=done, on_done=on_done)
        topic = self._topology.exchange
        self._pending.extend(
            _Pub(item, topic if item.exchange is None else item.exchange, batch) for item in part
        )
        return batch

    def _no_room(self, timeout: float) -> PublishTimeoutError:
        return PublishTimeoutError(f"no room to publish within {timeout:g} s ({self._last_error})")

    def _not_confirmed(self, timeout: float) -> PublishTimeoutError:
        return PublishTimeoutError(
            f"messages not confirmed within {timeout:g} s"
            f" (broker: {self._last_error}); they may still be delivered"
        )

    def _pump(self) -> None:
        """Put pending messages on the wire while the window has room (I/O thread)."""
        channel = self._channel
        if channel is None or not self._ready.is_set() or self._blocked or not channel.is_open:
            return
        if self._nacked_later:
            now = time.monotonic()
            due = [pub for when, pub in self._nacked_later if when <= now]
            if due:
                self._nacked_later = [(w, p) for w, p in self._nacked_later if w > now]
                self._pending.extendleft(reversed(due))
        pending = self._pending
        unconfirmed = self._unconfirmed
        window = self._window
        generation = self._generation
        # Frames built here go out through the connection's own output (its byte and frame
        # counts kept); a pika without those internals publishes the usual way.
        output: Callable[[list[bytes]], None] | None = getattr(
            self._connection, "_output_marshaled_frames", None
        )
        body_max = getattr(self._connection, "_body_max_length", None)
        if not (callable(output) and isinstance(body_max, int) and body_max > 0):
            output, body_max = None, 0
        built: list[bytes] = []
        while pending and len(unconfirmed) < window:
            pub = pending.popleft()
            if pub.on_confirm is not None and pub.generation != generation:
                continue  # a follow-up of a delivery on a lost channel: it comes again
            item = pub.item
            frames = (
                _publish_frames(
                    channel.channel_number,
                    body_max,
                    pub.exchange,
                    item.routing_key,
                    item.mandatory,
                    item.envelope,
                )
                if output is not None
                else None
            )
            if frames is not None:
                built.append(frames)
            else:
                if built and output is not None:
                    output(built)
                    built = []
                channel.basic_publish(
                    pub.exchange,
                    item.routing_key,
                    item.envelope.body,
                    _properties(item.envelope),
                    mandatory=item.mandatory,
                )
            unconfirmed[self._next_tag] = pub
            self._next_tag += 1
        if built and output is not None:
            output(built)
        self._coalesce_output()

    def _coalesce_output(self) -> None:
        """pika writes each frame with a send() of its own, three per message; join what is
        waiting into chunks of up to 128 KiB so the ioloop sends it in a few system calls
        (on TLS connections: a plain one sends a turn's frames joined, :class:`_Connection`).
        (pika's write buffer is internal: when it is not where expected, nothing changes.)"""
        transport = getattr(self._connection, "_transport", None)
        buffers = getattr(transport, "_tx_buffers", None)
        if not isinstance(buffers, deque) or len(buffers) < 3:
            return
        chunks: list[bytes] = []
        current: list[bytes] = []
        size = 0
        for data in buffers:
            current.append(data)
            size += len(data)
            if size >= _COALESCE_BYTES:
                chunks.append(b"".join(current))
                current, size = [], 0
        if current:
            chunks.append(b"".join(current))
        buffers.clear()
        buffers.extend(chunks)

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        ok = isinstance(method, pika.spec.Basic.Ack)
        tag = method.delivery_tag
        unconfirmed = self._unconfirmed
        if method.multiple:
            settled = []
            for candidate in range(self._low_tag, tag + 1):
                pub = unconfirmed.pop(candidate, None)
                if pub is not None:
                    settled.append(pub)
        else:
            single = unconfirmed.pop(tag, None)
            settled = [single] if single is not None else []
        while self._low_tag < self._next_tag and self._low_tag not in unconfirmed:
            self._low_tag += 1
        finished: list[_Batch] = []
        for pub in settled:
            self._settle_pub(pub, ok, finished)
        if self._acks_due:
            self._flush_acks()
        if finished:
            with self._flight:
                self._in_flight -= sum(b.size for b in finished)
                self._flight.notify_all()
            for batch in finished:
                if batch.done is not None:
                    batch.done.set()
                if batch.on_done is not None:
                    batch.on_done()
        self._pump()

    def _settle_pub(self, pub: _Pub, ok: bool, finished: list[_Batch]) -> None:
        if pub.on_confirm is not None:
            pub.on_confirm(ok and not pub.returned)
            return
        batch = pub.batch
        if batch is None:
            return
        message_id = pub.item.envelope.message_id
        if not ok and pub.nacks < len(_NACK_RETRY_DELAYS):
            self._publish_later(pub)
            return
        if not ok:
            batch.nacked.append(message_id)
        elif pub.returned:
            if batch.unroutable == "raise":
                batch.returned.append(message_id)
            else:
                batch.parked.append(message_id)
                if self._observer is not None:
                    self._observer.dead_lettered("unroutable")
                parked = unroutable_copy(pub.item, pub.exchange, self._topology)
                batch.remaining += 1
                self._pending.append(_Pub(parked, DEFAULT_EXCHANGE, batch))
        batch.remaining -= 1
        if batch.remaining == 0:
            finished.append(batch)

    def _publish_later(self, pub: _Pub) -> None:
        """Publish a nacked message again after a pause (I/O thread)."""
        delay = _NACK_RETRY_DELAYS[pub.nacks]
        pub.nacks += 1
        self._nacks_retried += 1
        pub.returned = False
        self._nacked_later.append((time.monotonic() + delay, pub))
        connection = self._connection
        if connection is None:
            return
        if pub.nacks == _NACKS_BEFORE_RECONNECT and len(self._nodes) > 1 and connection.is_open:
            # Seen on RabbitMQ 3.10 after a node died: a channel that went on nacking every
            # publish to a queue whose new leader ran. A new connection gets a fresh channel.
            _log.warning("the broker keeps nacking; connecting again (to the next node)")
            self._last_error = "publishes nacked again and again"
            connection.close()
            return
        connection.ioloop.call_later(delay, self._pump)

    def _on_return(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        message_id = properties.message_id
        for tag in range(self._low_tag, self._next_tag):
            pub = self._unconfirmed.get(tag)
            if (
                pub is not None
                and not pub.returned
                and pub.item.envelope.message_id == message_id
                and pub.item.routing_key == method.routing_key
            ):
                pub.returned = True
                return

    # --- consuming -------------------------------------------------------------------------

    def consume(
        self,
        destination: str,
        handler: BatchHandler,
        *,
        prefetch: int = 100,
        batch_size: int = 1,
        batch_wait: float = 0.05,
    ) -> _AmqpConsumer:
        name = self._topology.destination(destination).name
        queue = self._topology.queue(name)
        return self._consume(queue, name, handler, prefetch, batch_size, batch_wait)

    def consume_queue(
        self, queue: str, handler: BatchHandler, *, prefetch: int = 100, batch_size: int = 1
    ) -> _AmqpConsumer:
        return self._consume(queue, None, handler, prefetch, batch_size, 0.0)

    def _consume(
        self,
        queue: str,
        destination: str | None,
        handler: BatchHandler,
        prefetch: int,
        batch_size: int,
        batch_wait: float,
    ) -> _AmqpConsumer:
        if self._closing or (self._io is None and self._loop is None):
            raise RoutingError("the amqp transport is not started (or closed)")
        consumer = _AmqpConsumer(
            self, queue, destination, handler, prefetch, batch_size, batch_wait
        )
        self._consumers.append(consumer)
        consumer.begin()
        started = threading.Event()
        self._call(functools.partial(self._open_consumer_channel, consumer, started.set))
        started.wait(timeout=10)
        return consumer

    async def consume_async(
        self,
        destination: str,
        handler: AsyncBatchHandler,
        *,
        prefetch: int = 100,
        batch_size: int = 1,
        batch_wait: float = 0.05,
    ) -> Consumer:
        if not self._on_loop_thread():
            return await super().consume_async(
                destination, handler, prefetch=prefetch, batch_size=batch_size,
                batch_wait=batch_wait,
            )  # fmt: skip
        name = self._topology.destination(destination).name
        queue = self._topology.queue(name)
        return await self._consume_on_loop(queue, name, handler, prefetch, batch_size, batch_wait)

    async def consume_queue_async(
        self,
        queue: str,
        handler: AsyncBatchHandler,
        *,
        prefetch: int = 100,
        batch_size: int = 1,
    ) -> Consumer:
        if not self._on_loop_thread():
            return await super().consume_queue_async(
                queue, handler, prefetch=prefetch, batch_size=batch_size
            )
        return await self._consume_on_loop(queue, None, handler, prefetch, batch_size, 0.0)

    async def _consume_on_loop(
        self,
        queue: str,
        destination: str | None,
        handler: AsyncBatchHandler,
        prefetch: int,
        batch_size: int,
        batch_wait: float,
    ) -> Consumer:
        if self._closing:
            raise RoutingError("the amqp transport is closed")
        loop = asyncio.get_running_loop()
        consumer = _AsyncAmqpConsumer(
            self, loop, queue, destination, handler, prefetch, batch_size, batch_wait
        )
        self._consumers.append(consumer)
        started: asyncio.Future[None] = loop.create_future()

        def on_consuming() -> None:
            if not started.done():
                started.set_result(None)

        self._open_consumer_channel(consumer, on_consuming)
        # Not connected now: the consumer starts with the next connection.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(started, 10)
        return consumer

    def _open_consumer_channel(
        self, consumer: _ConsumerBase, on_consuming: Callable[[], None]
    ) -> None:
        if self._ready.is_set() and self._connection is not None:
            self._connection.channel(
                on_open_callback=lambda ch: self._start_consumer(consumer, ch, on_consuming)
            )

    def _start_consumer(
        self,
        consumer: _ConsumerBase,
        channel: Any,
        on_consuming: Callable[[], None] | None = None,
    ) -> None:
        if consumer.stopping:
            channel.close()
            return
        if consumer.channel is not None:  # opened twice (a connect raced consume): keep one
            channel.close()
            return
        consumer.channel = channel
        # Delivery tags belong to one channel: a number per channel tells stale work apart.
        generation = next(self._channel_numbers)
        consumer.generation = generation
        consumer.unsettled.clear()
        consumer.acks_due.clear()
        channel.add_on_close_callback(
            functools.partial(self._on_consumer_channel_closed, consumer, generation)
        )
        # basic.cancel from the broker (queue deleted, leader moved): start over on a new
        # channel, which consumes again once the queue is back.
        channel.add_on_cancel_callback(lambda _frame: channel.is_open and channel.close())

        def on_message(ch: Any, method: Any, properties: Any, body: bytes) -> None:
            envelope = _envelope(properties, body)
            count = envelope.headers.get("x-delivery-count")
            received = _new_received(
                envelope,
                method.exchange,
                method.routing_key,
                method.redelivered,
                count if isinstance(count, int) else int(method.redelivered),
            )
            consumer.unsettled.add(method.delivery_tag)
            consumer.deliver(generation, method.delivery_tag, received)

        def consuming(_frame: Any) -> None:
            if on_consuming is not None:
                on_consuming()

        def on_qos(_frame: Any) -> None:
            channel.basic_consume(consumer.queue, on_message, callback=consuming)

        channel.basic_qos(prefetch_count=consumer.prefetch, callback=on_qos)

    def _on_consumer_channel_closed(
        self, consumer: _ConsumerBase, generation: int, channel: Any, reason: BaseException
    ) -> None:
        if consumer.generation != generation:
            return
        consumer.channel = None
        consumer.unsettled.clear()
        consumer.acks_due.clear()
        connection = self._connection
        if consumer.stopping or self._closing or connection is None or not connection.is_open:
            return  # stopped, or the whole connection is going: it is reopened with it
        _log.warning("consumer channel of %s closed (%s); reopening", consumer.queue, reason)

        def reopen() -> None:
            if not consumer.stopping and connection.is_open and consumer.channel is None:
                connection.channel(
                    on_open_callback=functools.partial(self._start_consumer, consumer)
                )

        connection.ioloop.call_later(1.0, reopen)

    def _settle_deliveries(
        self,
        consumer: _ConsumerBase,
        generation: int,
        tags: list[int],
        follow_ups: list[Outgoing | None],
    ) -> None:
        """Ack (or publish-then-ack) a handled batch (I/O thread)."""
        channel = consumer.channel
        if generation != consumer.generation or channel is None or not channel.is_open:
            return  # the channel is gone: the broker redelivers these
        plain = [tag for tag, item in zip(tags, follow_ups, strict=True) if item is None]
        for tag, item in zip(tags, follow_ups, strict=True):
            if item is None:
                continue
            if item.message is not None and item.routing_key not in self._reply_queues:
                forget(item.envelope)  # a reply to another connection: never consumed here
            exchange = self._topology.exchange if item.exchange is None else item.exchange

            def after(ok: bool, tag: int = tag) -> None:
                if generation != consumer.generation or not channel.is_open:
                    return
                if ok:
                    if not consumer.acks_due:
                        self._acks_due.append(consumer)
                    consumer.acks_due.append(tag)
                else:
                    consumer.unsettled.discard(tag)
                    channel.basic_nack(tag, requeue=True)

            self._pending.append(
                _Pub(item, exchange, on_confirm=after, generation=self._generation)
            )
        if plain:
            self._ack(consumer, channel, plain)
        self._pump()

    def _reply_consumer(
        self, queue: str, loop: asyncio.AbstractEventLoop
    ) -> _AsyncAmqpConsumer | None:
        """The consumer on ``loop`` (the running one) of ``queue`` when it is a reply queue
        of this connection (the only consumer the broker could deliver to there), if any."""
        if queue not in self._reply_queues:
            return None
        for consumer in self._consumers:
            if (
                isinstance(consumer, _AsyncAmqpConsumer)
                and consumer.queue == queue
                and not consumer.stopping
                and consumer.loop is loop
            ):
                return consumer
        return None

    async def _reply_locally(
        self, batch: _DecodedBatch, loop: asyncio.AbstractEventLoop
    ) -> dict[int, Outgoing | None]:
        """Hand the replies in ``batch`` that go to a reply queue of this connection to its
        consumer on ``loop``, the running one (see the module docstring); their follow-ups,
        by index (None: the request is acked at once). A reply's body is written only if it
        must go through the broker after all (its consumer parks or retries it); the rest
        are left to :meth:`_DecodedBatch.follow_ups`."""
        local: dict[_AsyncAmqpConsumer, list[tuple[int, Envelope, Delivery]]] = {}
        for index, request, reply in batch.replies():
            queue = request.reply_to or ""
            consumer = self._reply_consumer(queue, loop)
            if consumer is not None:
                envelope = reply_envelope(request, reply, written=False)
                delivery = _new_delivery(reply, envelope, "", 1, False, DEFAULT_EXCHANGE, queue)
                local.setdefault(consumer, []).append((index, request, delivery))
        settled: dict[int, Outgoing | None] = {}
        for consumer, handed in local.items():
            deliveries = [delivery for _, _, delivery in handed]
            try:
                outcomes = list(await consumer.handler(deliveries))
            except Exception as exc:  # the broker delivers them to the handler once more
                _log.warning(
                    "replies not taken on %s: %r; sent through the broker", consumer.queue, exc
                )
                continue
            if len(outcomes) != len(deliveries):
                continue
            self._local_replies += len(deliveries)
            for (index, request, delivery), outcome in zip(handed, outcomes, strict=True):
                if outcome.action is Action.ACK:
                    settled[index] = None
                    continue
                written = reply_envelope(request, delivery.message)
                forget(written)  # parked or retried through the broker, not decoded here
                settled[index] = follow_up(
                    written, None, DEFAULT_EXCHANGE, consumer.queue, 1, outcome, self._topology
                )
        return settled

    def _ack(self, consumer: _ConsumerBase, channel: Any, tags: list[int]) -> None:
        """Ack ``tags`` on ``channel``: one ``multiple`` ack up to the last when no delivery
        before it is still unsettled (being handled, or its follow-up unconfirmed)."""
        unsettled = consumer.unsettled
        unsettled.difference_update(tags)
        last = max(tags)
        if len(tags) > 1 and (not unsettled or min(unsettled) > last):
            channel.basic_ack(last, multiple=True)
        else:
            for tag in tags:
                channel.basic_ack(tag)

    def _flush_acks(self) -> None:
        """Ack the deliveries whose follow-ups a confirm settled, a consumer at a time."""
        due, self._acks_due = self._acks_due, []
        for consumer in due:
            tags, consumer.acks_due = consumer.acks_due, []
            channel = consumer.channel
            if tags and channel is not None and channel.is_open:
                self._ack(consumer, channel, tags)

    def declare_reply_queue(self) -> str:
        name = f"{self._topology.prefix}.reply.{uuid.uuid4().hex}"
        done = threading.Event()
        self._reply_queues.append(name)
        self._call(functools.partial(self._declare_reply_queue, name, done.set))
        if not done.wait(timeout=10):
            raise self._no_reply_queue()
        return name

    async def declare_reply_queue_async(self) -> str:
        if not self._on_loop_thread():
            return await super().declare_reply_queue_async()
        name = f"{self._topology.prefix}.reply.{uuid.uuid4().hex}"
        declared: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reply_queues.append(name)

        def on_declared() -> None:
            if not declared.done():
                declared.set_result(None)

        self._declare_reply_queue(name, on_declared)
        try:
            await asyncio.wait_for(declared, 10)
        except TimeoutError:
            raise self._no_reply_queue() from None
        return name

    def _declare_reply_queue(self, name: str, done: Callable[[], None]) -> None:
        channel = self._channel
        if channel is not None and channel.is_open:
            channel.queue_declare(
                name, exclusive=True, auto_delete=True, callback=lambda _frame: done()
            )

    def _no_reply_queue(self) -> TransportUnavailableError:
        return TransportUnavailableError(f"could not declare a reply queue ({self._last_error})")

    # --- dead letters (operator tooling: a blocking connection of its own) -----------------

    @contextlib.contextmanager
    def _blocking_channel(self, queue: str) -> Iterator[Any]:
        """A channel on a connection of its own; a missing queue is a RoutingError."""
        connection = self._blocking()
        try:
            yield connection.channel()
        except pika.exceptions.ChannelClosedByBroker as exc:
            raise RoutingError(f"queue {queue!r}: {exc.reply_text}") from None
        finally:
            if connection.is_open:
                connection.close()

    def _blocking(self) -> Any:
        try:
            return pika.BlockingConnection(list(self._nodes))
        except (pika.exceptions.AMQPError, ssl.SSLError) as exc:  # a refused TLS handshake
            reason = _describe(exc)
            refusal = tls_refusal(exc)
            raise TransportUnavailableError(
                f"cannot reach the broker at {masked_url(self.url)}: "
                + (f"TLS refused: {refusal}" if refusal is not None else reason)
            ) from None

    def dead_letters(self, name: str, limit: int | None = None) -> list[DeadLetter]:
        queue = self._topology.parking_queue(name)
        found: list[DeadLetter] = []
        with self._blocking_channel(queue) as channel:
            present = channel.queue_declare(queue, passive=True).method.message_count
            while len(found) < (present if limit is None else min(limit, present)):
                method, properties, body = channel.basic_get(queue, auto_ack=False)
                if method is None:
                    break
                found.append(DeadLetter.from_envelope(_envelope(properties, body), name))
            channel.close()  # everything unacked goes back, in place
            self._await_returned(channel.connection, queue, len(found))
        return found

    def take_dead_letters(
        self, name: str, select: Callable[[DeadLetter], bool], act: Callable[[DeadLetter], None]
    ) -> int:
        queue = self._topology.parking_queue(name)
        taken = 0
        with self._blocking_channel(queue) as channel:
            # Only what is parked now: a replay that is parked again must not come round.
            present = channel.queue_declare(queue, passive=True).method.message_count
            for _ in range(present):
                method, properties, body = channel.basic_get(queue, auto_ack=False)
                if method is None:
                    break
                dead = DeadLetter.from_envelope(_envelope(properties, body), name)
                if select(dead):
                    act(dead)
                    channel.basic_ack(method.delivery_tag)
                    taken += 1
            channel.close()
            self._await_returned(channel.connection, queue, present - taken)
        return taken

    @staticmethod
    def _await_returned(connection: Any, queue: str, expected: int, wait: float = 5.0) -> None:
        """Wait (at most ``wait`` seconds) until ``queue`` holds ``expected`` ready messages
        again: the broker puts back what a closed channel left unacknowledged a moment
        after the close (a quorum queue through its log), and a reader that comes straight
        after must find the queue as it was, not short of them."""
        if expected <= 0 or not connection.is_open:
            return
        deadline = time.monotonic() + wait
        channel = connection.channel()
        try:
            while time.monotonic() < deadline:
                count = channel.queue_declare(queue, passive=True).method.message_count
                if count >= expected:
                    return
                connection.sleep(0.01)
        finally:
            if channel.is_open:
                channel.close()

    # --- for tests and tooling -------------------------------------------------------------

    def queue_depth(self, queue: str) -> int:
        """Messages ready in ``queue`` (a passive declare on a connection of its own)."""
        with self._blocking_channel(queue) as channel:
            frame = channel.queue_declare(queue, passive=True)
            return int(frame.method.message_count)

    def queue_depths(self, queues: Sequence[str]) -> dict[str, int]:
        """Messages ready in each of ``queues`` that exists (metrics): passive declares on
        one connection of its own; a missing queue closes only its own channel."""
        connection = self._blocking()
        depths: dict[str, int] = {}
        try:
            for queue in queues:
                channel = connection.channel()
                try:
                    frame = channel.queue_declare(queue, passive=True)
                except pika.exceptions.ChannelClosedByBroker:
                    continue
                depths[queue] = int(frame.method.message_count)
                channel.close()
        finally:
            if connection.is_open:
                connection.close()
        return depths

    def _remove(self, consumer: _ConsumerBase) -> None:
        if consumer in self._consumers:
            self._consumers.remove(consumer)


class _ConsumerBase:
    """What the I/O side knows of a consumer: its channel and what is pending on it."""

    def __init__(
        self,
        transport: AmqpTransport,
        queue: str,
        destination: str | None,
        prefetch: int,
        batch_size: int,
        batch_wait: float,
    ) -> None:
        self._transport = transport
        self._queue = queue
        self.destination = destination
        self.prefetch = max(1, prefetch)
        self.batch_size = max(1, min(batch_size, self.prefetch))
        self.batch_wait = batch_wait
        self.stopping = False
        # I/O side state
        self.channel: Any = None
        self.generation = -1
        # Delivery tags of this channel not acked or nacked yet, and those whose follow-up
        # was confirmed, to be acked together at the end of the confirm that settled them.
        self.unsettled: set[int] = set()
        self.acks_due: list[int] = []

    @property
    def queue(self) -> str:
        return self._queue

    def deliver(self, generation: int, tag: int, received: Received) -> None:
        """A message from the broker (I/O thread)."""
        raise NotImplementedError

    def join(self, timeout: float) -> None:
        """Wait until the consumer has stopped handling."""

    def _cancel(self) -> None:
        channel = self.channel
        self.channel = None
        self.generation = -1
        if channel is not None and channel.is_open:
            channel.close()


class _AsyncAmqpConsumer(_ConsumerBase):
    """A consumer whose handler runs on the transport's event loop; each batch is a task, so
    several batches are handled at once (``prefetch`` bounds the messages held)."""

    def __init__(
        self,
        transport: AmqpTransport,
        loop: asyncio.AbstractEventLoop,
        queue: str,
        destination: str | None,
        handler: AsyncBatchHandler,
        prefetch: int,
        batch_size: int,
        batch_wait: float,
    ) -> None:
        super().__init__(transport, queue, destination, prefetch, batch_size, batch_wait)
        self.loop = loop
        self.handler = handler
        self._buffer: list[tuple[int, int, Received]] = []
        self._flush_at: asyncio.Handle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def deliver(self, generation: int, tag: int, received: Received) -> None:
        self._buffer.append((generation, tag, received))
        if len(self._buffer) >= self.batch_size:
            self._flush()
        elif self._flush_at is None:
            # What one read from the socket brought arrives before a call_soon runs: with no
            # wait the batches are as large as the traffic makes them, at no added latency.
            self._flush_at = (
                self.loop.call_later(self.batch_wait, self._flush)
                if self.batch_wait > 0
                else self.loop.call_soon(self._flush)
            )

    def _flush(self) -> None:
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        batch, self._buffer = self._buffer, []
        # Items of an older channel are stale: their channel is gone, the broker resends.
        current = [b for b in batch if b[0] == self.generation]
        if not current or self.stopping:
            return
        task = self.loop.create_task(self._handle(current))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, batch: list[tuple[int, int, Received]]) -> None:
        transport = self._transport
        decoded = _DecodedBatch([r for _, _, r in batch], self.destination)
        await decoded.run_async(self.handler)
        settled = (
            await transport._reply_locally(decoded, self.loop) if transport._reply_queues else None
        )
        follow_ups = decoded.follow_ups(transport.topology, transport._observer, settled)
        transport._settle_deliveries(self, batch[0][0], [tag for _, tag, _ in batch], follow_ups)

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping = True
        self._transport._call(self._cancel)
        self._transport._remove(self)


class _AmqpConsumer(_ConsumerBase):
    def __init__(
        self,
        transport: AmqpTransport,
        queue: str,
        destination: str | None,
        handler: BatchHandler,
        prefetch: int,
        batch_size: int,
        batch_wait: float,
    ) -> None:
        super().__init__(transport, queue, destination, prefetch, batch_size, batch_wait)
        self.handler = handler
        self.work: queue_module.SimpleQueue[tuple[int, int, Received]] = queue_module.SimpleQueue()
        self._thread = threading.Thread(
            target=self._run, name=f"isobridge-consumer-{queue}", daemon=True
        )

    def deliver(self, generation: int, tag: int, received: Received) -> None:
        self.work.put((generation, tag, received))

    def begin(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _next_batch(self) -> list[tuple[int, int, Received]]:
        try:
            first = self.work.get(timeout=0.2)
        except queue_module.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.batch_wait
        while len(batch) < self.batch_size:
            try:
                left = deadline - time.monotonic()
                batch.append(self.work.get_nowait() if left <= 0 else self.work.get(timeout=left))
            except queue_module.Empty:
                break
        return batch

    def _run(self) -> None:
        transport = self._transport
        while not self.stopping:
            batch = self._next_batch()
            if not batch:
                continue
            # Items of an older channel are stale: their channel is gone, the broker resends.
            current = [b for b in batch if b[0] == self.generation]
            if not current or self.stopping:
                continue
            generation = current[0][0]
            follow_ups = dispatch(
                [r for _, _, r in current],
                self.destination,
                self.handler,
                transport.topology,
                transport._observer,
            )
            tags = [tag for _, tag, _ in current]
            transport._call(
                functools.partial(transport._settle_deliveries, self, generation, tags, follow_ups)
            )

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping = True
        transport = self._transport
        transport._call(self._cancel)
        self.join(timeout)
        transport._remove(self)


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if isinstance(error, pika.exceptions.AMQPConnectionError) and error.args:
        inner = error.args[0]
        if isinstance(inner, BaseException):
            text = str(inner) or type(inner).__name__
    return f"{type(error).__name__}: {text}" if text != type(error).__name__ else text
