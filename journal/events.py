"""Journal events: what happened to a transaction, and the bytes its hash is taken over.

An :class:`Event` is one state change of one transaction. It names the transaction by its
ids (:class:`TransactionIds`: the hub id, the RRN or end-to-end id, STAN + terminal id, the
UETR), its tenant, the time, a non-personal ``body`` (status, reason code, destination,
attempt, latency, amount as a decimal string...) that is stored in clear and feeds the read
model, and an optional ``personal`` part (names, account ids, remittance information) that
is stored only as AES-256-GCM ciphertext under the tenant's journal key
(:mod:`journal.keys`).

Once appended an event is a :class:`StoredEvent`: it has its place in the chain (``seq``,
from 1 without gaps), the hash of its predecessor and its own hash::

    hash(n) = SHA-256(hash(n - 1) || canonical_bytes(event n))      hash(0) = 32 zero bytes

:func:`canonical_bytes` covers every stored column, the personal part as its ciphertext, so
the chain verifies without any key and still verifies once a tenant's key is destroyed.

Bodies are JSON objects of scalars, lists and objects (no floats that are not finite), kept
as the exact text that was hashed. No clear card number may appear anywhere in an event
(``ARCHITECTURE.md``, invariant 1): :func:`check_event` refuses one, in the personal part too.
It refuses any Luhn-valid run of 13 to 19 digits (:func:`canonical_model.find_clear_pans`),
so a long number that is not a card number (a float with many digits) is refused as well:
keep ids and amounts as short strings, and round floats.

>>> at = dt.datetime(2026, 11, 29, 5, 0, tzinfo=dt.UTC)
>>> event = Event(EventKind.RECEIVED, "acme", TransactionIds("m-1", stan="000123"), at,
...               body={"amount": "10.00", "currency": "EUR"})
>>> body_text(event.body)
'{"amount":"10.00","currency":"EUR"}'
>>> canonical = canonical_bytes(1, Event(EventKind.SENT, "acme", TransactionIds("m-1"), at),
...                             "{}", None, None)
>>> print(canonical.decode())
[1,"2026-11-29T05:00:00.000000Z","sent","acme","m-1",null,null,null,null,"{}",null,null]
>>> chain_hash(GENESIS_HASH, canonical) == hashlib.sha256(bytes(32) + canonical).hexdigest()
True
>>> check_event(Event(EventKind.RECEIVED, "acme", TransactionIds("m-2"), at,
...                   body={"note": "4111111111111111"}))
Traceback (most recent call last):
...
ValueError: event m-2 (received): its body holds a clear card number
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import json.encoder
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from json.encoder import encode_basestring
from operator import attrgetter
from typing import Any, Final, Protocol

from canonical_model.pan import contains_clear_pan

__all__ = [
    "GENESIS_HASH",
    "Event",
    "EventKind",
    "Hashed",
    "JsonObject",
    "Sealed",
    "StoredEvent",
    "TransactionIds",
    "body_text",
    "canonical_bytes",
    "chain_hash",
    "check_event",
    "checked_event",
    "format_time",
]

JsonObject = Mapping[str, Any]
"""A JSON object: string keys; values are JSON scalars (finite numbers), lists, objects."""

GENESIS_HASH: Final = "0" * 64
"""The predecessor hash of event 1."""

MAX_ID_LENGTH: Final = 64
MAX_TENANT_LENGTH: Final = 64


class EventKind(StrEnum):
    """The state changes of a transaction (issue 9). The value is what the row stores."""

    RECEIVED = "received"
    TOKENIZED = "tokenized"
    ROUTED = "routed"
    SENT = "sent"
    ANSWERED = "answered"
    TIMED_OUT = "timed_out"
    REVERSED = "reversed"
    DEAD_LETTERED = "dead_lettered"
    REPLAYED = "replayed"
    STATUS_CHANGED = "status_changed"
    # The saga runner (issue 10, hub.sagas): every transition of a saga is one of these.
    SAGA_STARTED = "saga_started"
    SAGA_STEP = "saga_step"
    SAGA_SIGNAL = "saga_signal"
    SAGA_ATTENTION = "saga_attention"
    SAGA_RETRIED = "saga_retried"
    SAGA_FINISHED = "saga_finished"
    # The gateway's built-in authorization server (issue 12): one per second-factor attempt
    # of a PSU authorising a consent, keyed by the consent id (gateway.security.sca).
    SCA_ATTEMPT = "sca_attempt"
    # Key rotation schedules (issue 12, hub.rotation): a key rotated, or a rotation failed.
    KEY_ROTATION = "key_rotation"


@dataclass(frozen=True, slots=True)
class TransactionIds:
    """How a transaction is found again (``isobridge trace``); each id is indexed.

    ``transaction_id`` is the hub id of the transaction (the ``message_id`` of the request
    that started it) and keys the read model. ``end_to_end_id`` is ISO 8583's RRN (field 37)
    or ISO 20022's EndToEndId; ``stan`` and ``terminal_id`` are fields 11 and 41; ``uetr``
    the ISO 20022 UETR. An event names what it knows; later events may add ids.
    """

    transaction_id: str
    end_to_end_id: str | None = None
    stan: str | None = None
    terminal_id: str | None = None
    uetr: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """One state change of one transaction, as the hub records it."""

    kind: EventKind
    tenant: str
    ids: TransactionIds
    at: dt.datetime
    body: JsonObject = field(default_factory=dict)
    personal: JsonObject | None = None


class Sealed(StrEnum):
    """Why a stored event's personal part is not given in clear."""

    ERASED = "erased"
    """Its tenant's journal key was destroyed (crypto-shredding): it is gone for good."""
    NOT_DECRYPTED = "not decrypted"
    """It was read without keys (verification, projection)."""
    UNREADABLE = "unreadable"
    """Its key exists but it does not decrypt: the ciphertext was altered."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as read back from the journal, with its place in the chain.

    ``personal`` is the decrypted personal part, ``None`` if the event had none, or a
    :class:`Sealed` value saying why it is not available in clear.
    """

    seq: int
    kind: EventKind
    tenant: str
    ids: TransactionIds
    at: dt.datetime
    body: JsonObject
    personal: JsonObject | Sealed | None
    prev_hash: str
    hash: str


def format_time(at: dt.datetime) -> str:
    """``at`` in UTC as ``2026-11-29T05:00:00.000000Z``: the form that is hashed.

    A naive time (SQLite gives them back) is UTC: the journal writes nothing else.
    """
    if at.tzinfo is not dt.UTC:
        at = at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)
    if at.year < 1000:
        # The form was defined by strftime, which does not pad such years; isoformat does.
        return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # isoformat writes "2026-11-29T05:00:00.000000+00:00": up to the offset, the strftime
    # form above, in half the time.
    return at.isoformat(timespec="microseconds")[:26] + "Z"


# Encoders built once: json.dumps builds one per call when given any option.
_BODY_JSON: Final = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_CANONICAL_JSON: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_OPTIONAL_INT: Final = frozenset({int, type(None)})


def body_text(body: JsonObject) -> str:
    """The canonical JSON text of a body or personal part (sorted keys, no spaces)."""
    return _BODY_JSON.encode(body)


def _flat_body_encoder() -> Callable[[JsonObject], str]:
    """:func:`body_text` for a flat body (:func:`_is_flat_json`), without the encoder's
    per-call set-up (half its time): the C encoder built once, with no cycle check (a flat
    body holds no container). :func:`body_text` itself where the C encoder is missing or
    writes another text."""
    make: Any = getattr(json.encoder, "c_make_encoder", None)
    try:
        encode = make(None, None, encode_basestring, None, ":", ",", True, False, True)
    except TypeError:  # no C encoder, or one with another signature
        return body_text
    sample = {"b": 'é"\n', "a": 1, "c": True, "d": None, "e": 0.1, "f": 1e16, "g": False}
    if "".join(encode(sample, 0)) != body_text(sample):
        return body_text

    def flat_body_text(body: JsonObject) -> str:
        return "".join(encode(body, 0))

    return flat_body_text


_flat_body_text: Final = _flat_body_encoder()


class Hashed(Protocol):
    """What :func:`canonical_bytes` reads of an event (an :class:`Event`, a stored row)."""

    @property
    def kind(self) -> str: ...
    @property
    def tenant(self) -> str: ...
    @property
    def ids(self) -> TransactionIds: ...
    @property
    def at(self) -> dt.datetime: ...


def canonical_bytes(
    seq: int,
    event: Hashed,
    body: str,
    personal_ciphertext: bytes | None,
    key_version: int | None,
) -> bytes:
    """The bytes an event's hash covers: every stored column but the hashes themselves.

    They are the compact JSON array (``json.dumps(..., separators=(",", ":"),
    ensure_ascii=False)``, UTF-8) of the sequence number, the time (:func:`format_time`),
    kind, tenant, the five ids, the body text, the personal ciphertext in base64 and its
    key version.
    """
    ids = event.ids
    texts = (
        format_time(event.at),
        str(event.kind),  # an EventKind is its value
        event.tenant,
        ids.transaction_id,
        ids.end_to_end_id,
        ids.stan,
        ids.terminal_id,
        ids.uetr,
        body,
        None if personal_ciphertext is None else base64.b64encode(personal_ciphertext).decode(),
    )
    try:
        # What the encoder writes for strings and nulls, without its per-call set-up.
        strings = ",".join(["null" if text is None else encode_basestring(text) for text in texts])
    except TypeError:  # not a string: a row altered to hold another type (audit)
        strings = None
    if strings is not None and seq.__class__ is int and key_version.__class__ in _OPTIONAL_INT:
        array = f"[{seq},{strings},{'null' if key_version is None else key_version}]"
    else:
        array = _CANONICAL_JSON.encode([seq, *texts, key_version])
    return array.encode()


def chain_hash(prev_hash: str, canonical: bytes) -> str:
    """SHA-256 of the predecessor's hash (32 bytes) followed by ``canonical``, as hex."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical).hexdigest()


_ID_FIELDS: Final = ("transaction_id", "end_to_end_id", "stan", "terminal_id", "uetr")
_ID_VALUES: Final = attrgetter(*_ID_FIELDS)
_SCALAR_TYPES: Final = frozenset({str, int, bool, type(None)})


def _is_flat_json(value: Any) -> bool:
    """Whether ``value`` is a dict of strings to strings, integers, booleans, nulls and
    finite floats: the usual body, accepted without the recursive walk."""
    if value.__class__ is not dict:
        return False
    for key, item in value.items():
        if key.__class__ is not str or (
            item.__class__ not in _SCALAR_TYPES
            and (item.__class__ is not float or not math.isfinite(item))
        ):
            return False
    return True


def _check_json(value: Any, where: str) -> None:
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} is not a finite number")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json(item, f"{where}[{index}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where} has a key that is not a string: {key!r}")
            _check_json(item, f"{where}.{key}")
        return
    raise ValueError(f"{where} is a {type(value).__name__}, not a JSON value")


def _refused(event: Event, why: str) -> ValueError:
    """The error for an event whose ids hold no card number (they were checked first)."""
    return ValueError(f"event {event.ids.transaction_id[:MAX_ID_LENGTH]} ({event.kind}): {why}")


def check_event(event: Event) -> tuple[str, str | None]:
    """Refuse an event the journal must not store; the message never holds its values.

    Returns the canonical texts (:func:`body_text`) of its body and its personal part.
    """
    body, personal, _ = checked_event(event)
    return body, personal


def checked_event(event: Event) -> tuple[str, str | None, dict[str, Any]]:
    """:func:`check_event`, and the body as it reads back from its text (``json.loads``),
    built without parsing the text when the body is flat (a copy of its items then)."""
    ids = event.ids
    ids_text = " ".join(v for v in (ids.transaction_id, ids.end_to_end_id, ids.uetr) if v)
    if contains_clear_pan(ids_text):
        raise ValueError(f"an event ({event.kind}): its ids hold a clear card number")
    if not isinstance(event.kind, EventKind):
        raise _refused(event, "kind must be an EventKind")
    if not event.tenant or len(event.tenant) > MAX_TENANT_LENGTH:
        raise _refused(event, f"tenant must be 1 to {MAX_TENANT_LENGTH} characters")
    if event.at.tzinfo is None:
        raise _refused(event, "time must be timezone-aware")
    for label, value in zip(_ID_FIELDS, _ID_VALUES(ids), strict=True):
        if value is not None and not 0 < len(value) <= MAX_ID_LENGTH:
            raise _refused(event, f"{label} must be 1 to {MAX_ID_LENGTH} characters")
    flat = _is_flat_json(event.body)
    if not flat:
        _check_json(event.body, "body")
    body = _flat_body_text(event.body) if flat else body_text(event.body)
    if event.personal is None:
        personal = None
    elif _is_flat_json(event.personal):
        personal = _flat_body_text(event.personal)
    else:
        _check_json(event.personal, "personal")
        personal = body_text(event.personal)
    # JSON escapes nothing in a digit run, so a card number in a value is found as is.
    if contains_clear_pan(body):
        raise _refused(event, "its body holds a clear card number")
    if personal is not None and contains_clear_pan(personal):
        raise _refused(event, "its personal part holds a clear card number")
    # A flat body's values are str, int, bool, None and finite floats, which JSON gives back
    # equal (floats by their shortest repr): its items are what json.loads(body) would build.
    return body, personal, dict(event.body) if flat else json.loads(body)
