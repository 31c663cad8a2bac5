"""The wire form of a canonical message on a transport, and the headers the hub relies on.

The body is the canonical message in its versioned JSON form (:mod:`canonical_model.json_form`,
UTF-8). The AMQP 0-9-1 basic properties carry the rest:

========================  ====================================================================
property / header         meaning
========================  ====================================================================
``message_id``            the canonical message id (``ids.message_id``): the inbox key
``correlation_id``        request / reply: the request's id, echoed by the reply
``reply_to``              request / reply: the requester's own reply queue
``content_type``          ``application/vnd.isobridge.canonical+json``
``delivery_mode``         2 (persistent), always
``x-isobridge-schema``    the canonical JSON version of the body (an integer)
``x-isobridge-kind``      the message kind (``financial``, ``credit_transfer`` ...)
``x-isobridge-tenant``    the tenant id
``traceparent``           W3C trace context, when the sender had one
========================  ====================================================================

A delivery that cannot succeed (a body that is not canonical JSON, an unknown schema version, a
missing header, headers that contradict the body) is refused by :func:`decode` with a
:class:`BadMessageError`; transports dead-letter it at once, without retries.

Dead-lettered and retried copies carry these headers too (:data:`REASON` ...); their texts
pass through :func:`scrub`, so no clear card number reaches a queue.

A body this process encoded comes back without being parsed again: :func:`encode` remembers
the last few thousand bodies it wrote with their messages, and :func:`decode` of the same
bytes (the hub's request reaching its own core worker, the worker's reply reaching the hub's
requester) takes the message from there once, after the same header checks. The canonical
JSON round trip is exact (``from_json(to_json(m)) == m``, tested), so the message is the one
a parse would have built; it saves the parse (about a third of a card payment's JSON work).

>>> from canonical_model.messages import CanonicalMessage, Identifiers, MessageKind, MessageFunction
>>> m = CanonicalMessage(MessageKind.FINANCIAL, MessageFunction.REQUEST, "acme", Identifiers("m-1"))
>>> envelope = encode(m, traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
>>> envelope.message_id, envelope.headers[KIND], envelope.headers[TENANT]
('m-1', 'financial', 'acme')
>>> decode(envelope) == m
True
>>> decode(Envelope(b"{", "m-2", {SCHEMA: 2, KIND: "financial", TENANT: "acme"}))
Traceback (most recent call last):
...
routing.wire.BadMessageError: unknown schema version '2' (this hub reads 1)
>>> scrub("card 4111111111111111 declined")
'card 411111******1111 declined'
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from canonical_model.json_form import CANONICAL_VERSION, CanonicalJsonError, from_dict, to_json
from canonical_model.messages import CanonicalMessage
from canonical_model.pan import find_clear_pans, mask_pan

__all__ = [
    "ATTEMPT",
    "BadMessageError",
    "CONTENT_TYPE",
    "DEAD_LETTERED_AT",
    "DESTINATION",
    "Envelope",
    "Headers",
    "KIND",
    "ORIGINAL_EXCHANGE",
    "ORIGINAL_ROUTING_KEY",
    "REASON",
    "SCHEMA",
    "TENANT",
    "TRACEPARENT",
    "decode",
    "encode",
    "forget",
    "header_int",
    "header_str",
    "scrub",
    "unwritten",
]

CONTENT_TYPE = "application/vnd.isobridge.canonical+json"
SCHEMA = "x-isobridge-schema"
KIND = "x-isobridge-kind"
TENANT = "x-isobridge-tenant"
TRACEPARENT = "traceparent"

ATTEMPT = "x-isobridge-attempt"
"""How many times a handler has already failed this message (set on retried copies)."""
REASON = "x-isobridge-reason"
"""Why the message was retried or dead-lettered (scrubbed text)."""
ORIGINAL_EXCHANGE = "x-isobridge-original-exchange"
ORIGINAL_ROUTING_KEY = "x-isobridge-original-routing-key"
DESTINATION = "x-isobridge-destination"
"""The destination (queue) the message was dead-lettered from."""
DEAD_LETTERED_AT = "x-isobridge-dead-lettered-at"

Headers = Mapping[str, object]

_REQUIRED = (SCHEMA, KIND, TENANT)
_MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message as a transport carries it: the body and the AMQP properties the hub uses."""

    body: bytes
    message_id: str
    headers: Headers = field(default_factory=dict)
    correlation_id: str | None = None
    reply_to: str | None = None
    content_type: str = CONTENT_TYPE

    def updated(self, changes: Mapping[str, object]) -> Envelope:
        """A copy whose headers are updated with ``changes``."""
        return replace(self, headers={**self.headers, **changes})


class BadMessageError(ValueError):
    """A delivery that cannot be processed, whatever the number of attempts: dead-letter it."""


def scrub(text: str) -> str:
    """``text`` with every Luhn-valid 13-19 digit run masked, cut to 500 characters."""
    for pan in find_clear_pans(text):
        text = text.replace(pan, mask_pan(pan))
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


class _EncodedBodies:
    """The bodies :func:`encode` wrote lately, each with its message (bounded: the oldest go
    first; a body published here and consumed by another process is never asked for)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._messages: OrderedDict[bytes, CanonicalMessage] = OrderedDict()
        self._lock = threading.Lock()  # consumers on threads (memory://) decode too

    def remember(self, body: bytes, message: CanonicalMessage) -> None:
        with self._lock:
            self._messages[body] = message
            if len(self._messages) > self._limit:
                self._messages.popitem(last=False)

    def take(self, body: bytes) -> CanonicalMessage | None:
        if type(body) is not bytes:  # a bytearray or a view: not what encode wrote
            return None
        with self._lock:
            return self._messages.pop(body, None)


_ENCODED = _EncodedBodies(4096)


def forget(envelope: Envelope) -> None:
    """Drop the message :func:`encode` remembered for ``envelope``'s body: a body that this
    process will not decode (a reply sent to another connection's reply queue, or one
    handed over in-process that its consumer parked through the broker).
    Otherwise it would stay until 4,096 newer bodies pushed it out, and the collector's
    full passes would scan it (bench/RESULTS.md, e2e); decoding the body later still works,
    from the JSON."""
    _ENCODED.take(envelope.body)


def encode(
    message: CanonicalMessage,
    *,
    correlation_id: str | None = None,
    reply_to: str | None = None,
    traceparent: str | None = None,
) -> Envelope:
    """The wire form of ``message``."""
    body = to_json(message).encode()
    _ENCODED.remember(body, message)
    return _envelope(body, message, correlation_id, reply_to, traceparent)


def unwritten(
    message: CanonicalMessage,
    *,
    correlation_id: str | None = None,
    reply_to: str | None = None,
    traceparent: str | None = None,
) -> Envelope:
    """The envelope :func:`encode` gives ``message``, with an empty body: for a message
    handed to a consumer of this process past the transport (a reply handed over
    in-process), which never needs its JSON. :func:`decode` refuses it."""
    return _envelope(b"", message, correlation_id, reply_to, traceparent)


def _envelope(
    body: bytes,
    message: CanonicalMessage,
    correlation_id: str | None,
    reply_to: str | None,
    traceparent: str | None,
) -> Envelope:
    headers: dict[str, object] = {
        SCHEMA: CANONICAL_VERSION,
        KIND: message.kind.value,
        TENANT: message.tenant,
    }
    if traceparent is not None:
        headers[TRACEPARENT] = traceparent
    return Envelope(
        body,
        message.ids.message_id,
        headers,
        correlation_id=correlation_id,
        reply_to=reply_to,
    )


def header_str(headers: Headers, name: str) -> str | None:
    """A header as text (AMQP may hand long strings back as bytes), or None when absent."""
    value = headers.get(name)
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def header_int(headers: Headers, name: str, default: int = 0) -> int:
    """A header as an integer, ``default`` when absent or not a number."""
    value = headers.get(name)
    if isinstance(value, bool) or not isinstance(value, int | str | bytes):
        return default
    try:
        return int(value)
    except ValueError:
        return default


def decode(envelope: Envelope) -> CanonicalMessage:
    """The canonical message in ``envelope``; :class:`BadMessageError` says why it is not one."""
    headers = envelope.headers
    missing = [name for name in _REQUIRED if headers.get(name) is None]
    if missing:
        raise BadMessageError(f"missing header(s): {', '.join(missing)}")
    if envelope.content_type != CONTENT_TYPE:
        raise BadMessageError(f"content type {envelope.content_type!r}, expected {CONTENT_TYPE}")
    version = header_int(headers, SCHEMA, -1)
    if version != CANONICAL_VERSION:
        raise BadMessageError(
            f"unknown schema version {scrub(str(headers.get(SCHEMA)))!r}"
            f" (this hub reads {CANONICAL_VERSION})"
        )
    message = _ENCODED.take(envelope.body)
    if message is None:
        try:
            data = json.loads(envelope.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadMessageError(scrub(f"body is not JSON: {exc}")) from None
        try:
            message = from_dict(data)
        except CanonicalJsonError as exc:
            raise BadMessageError(scrub(f"body is not a canonical message: {exc}")) from None
    if header_str(headers, KIND) != message.kind.value:
        raise BadMessageError(
            f"header {KIND}={scrub(str(header_str(headers, KIND)))!r}"
            f" contradicts the body ({message.kind.value})"
        )
    if header_str(headers, TENANT) != message.tenant:
        raise BadMessageError(f"header {TENANT} contradicts the body's tenant")
    return message
