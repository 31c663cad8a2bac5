"""Reading events back: rows to :class:`~journal.events.StoredEvent`, personal parts decrypted.

What cannot be decrypted is marked, never guessed: :attr:`~journal.events.Sealed.ERASED`
when the tenant's key was shredded (its row is kept with no key), ``UNREADABLE`` when the
key is there but the ciphertext does not open or the key row is missing (damage: run
``isobridge audit verify``), ``NOT_DECRYPTED`` when read without keys. A row that cannot be
read at all raises :class:`CorruptEventError`, naming the event.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy.engine import Connection, Row

from journal.events import EventKind, Sealed, StoredEvent, TransactionIds
from journal.keys import NONCE_SIZE, TenantKeyring, personal_aad
from journal.schema import EVENTS

__all__ = ["READ_CHUNK", "READ_ONLY", "CorruptEventError", "read_events"]

READ_CHUNK: Final = 2000
"""Events read per query when reading the whole journal."""

READ_ONLY: Final = {"isobridge_journal_read_only": True}
"""Execution options of a connection that only reads: on SQLite its transaction starts with
a plain (deferred) ``BEGIN``, so readers neither wait for nor block the writers
(``Journal.create_engine`` starts every other transaction with ``BEGIN IMMEDIATE``)."""


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _decrypt(
    row: Row[Any], keys: dict[tuple[str, int], AESGCM | None] | None
) -> dict[str, Any] | Sealed | None:
    if row.personal is None:
        return None
    if keys is None:
        return Sealed.NOT_DECRYPTED
    cipher = keys.get((row.tenant, row.key_version))
    if cipher is None:
        # A shredded key keeps its row (wrapped NULL); a missing row is damage, not erasure.
        return Sealed.ERASED if (row.tenant, row.key_version) in keys else Sealed.UNREADABLE
    try:
        plain = cipher.decrypt(
            row.personal[:NONCE_SIZE],
            row.personal[NONCE_SIZE:],
            personal_aad(row.tenant, row.seq, row.key_version),
        )
    except (InvalidTag, ValueError):
        return Sealed.UNREADABLE
    value = json.loads(plain)
    return value if isinstance(value, dict) else Sealed.UNREADABLE


class CorruptEventError(Exception):
    """A stored event that cannot be read at all (an unknown kind, a body that is not JSON)."""


def _stored(row: Row[Any], personal: dict[str, Any] | Sealed | None) -> StoredEvent:
    try:
        kind = EventKind(row.kind)
        body = json.loads(row.body)
        if not isinstance(body, dict):
            raise ValueError("not a JSON object")
    except ValueError:
        raise CorruptEventError(
            f"event {row.seq} cannot be read (its kind or body is not valid): the journal is "
            "damaged or was tampered with; run `isobridge audit verify`"
        ) from None
    return StoredEvent(
        seq=row.seq,
        kind=kind,
        tenant=row.tenant,
        ids=TransactionIds(
            row.transaction_id, row.end_to_end_id, row.stan, row.terminal_id, row.uetr
        ),
        at=_aware(row.at),
        body=body,
        personal=personal,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def read_events(
    connection: Connection,
    keyring: TenantKeyring | None,
    *,
    after: int = 0,
    limit: int = READ_CHUNK,
    transaction_ids: Sequence[str] | None = None,
) -> list[StoredEvent]:
    """Up to ``limit`` events with ``seq > after`` (of ``transaction_ids`` if given), by seq.

    Personal parts are decrypted with ``keyring``; without one they are
    :attr:`~journal.events.Sealed.NOT_DECRYPTED`.
    """
    query = select(EVENTS).where(EVENTS.c.seq > after).order_by(EVENTS.c.seq).limit(limit)
    if transaction_ids is not None:
        query = query.where(EVENTS.c.transaction_id.in_(transaction_ids))
    rows = connection.execute(query).all()
    keys: dict[tuple[str, int], AESGCM | None] | None = None
    if keyring is not None:
        keys = keyring.readable_keys(connection, {r.tenant for r in rows if r.personal})
    return [_stored(row, _decrypt(row, keys)) for row in rows]
