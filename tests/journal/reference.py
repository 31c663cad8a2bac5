"""The journal as its first version wrote it: the references the faster code is held to.

Journals written since the beginning must keep verifying, so ``canonical_bytes``,
``format_time`` and ``body_text`` must give exactly what these plain definitions give, and an
append must store the rows SQLAlchemy Core stores for the same values
(:func:`write_reference_chain` writes them that way).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.engine import Connection

from journal.events import Event
from journal.schema import EVENTS, HEAD


def reference_time(at: dt.datetime) -> str:
    """format_time as first written."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def reference_body(body: Any) -> str:
    """body_text as first written."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def reference_canonical(
    seq: Any, event: Any, body: Any, ciphertext: bytes | None, key_version: Any
) -> bytes:
    """canonical_bytes as first written."""
    ids = event.ids
    fields = [
        seq,
        reference_time(event.at),
        str(event.kind),
        event.tenant,
        ids.transaction_id,
        ids.end_to_end_id,
        ids.stan,
        ids.terminal_id,
        ids.uetr,
        body,
        None if ciphertext is None else base64.b64encode(ciphertext).decode(),
        key_version,
    ]
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()


def event_row(
    seq: int,
    event: Event,
    prev_hash: str,
    ciphertext: bytes | None = None,
    key_version: int | None = None,
) -> dict[str, Any]:
    """The ``journal_events`` row of ``event`` at ``seq``, its hash by the references."""
    body = reference_body(event.body)
    canonical = reference_canonical(seq, event, body, ciphertext, key_version)
    ids = event.ids
    return {
        "seq": seq,
        "at": event.at,
        "kind": event.kind.value,
        "tenant": event.tenant,
        "transaction_id": ids.transaction_id,
        "end_to_end_id": ids.end_to_end_id,
        "stan": ids.stan,
        "terminal_id": ids.terminal_id,
        "uetr": ids.uetr,
        "body": body,
        "personal": ciphertext,
        "key_version": key_version,
        "prev_hash": prev_hash,
        "hash": hashlib.sha256(bytes.fromhex(prev_hash) + canonical).hexdigest(),
    }


def write_reference_chain(
    connection: Connection, events: Sequence[tuple[Event, bytes | None, int | None]]
) -> str:
    """Append ``(event, personal ciphertext, key version)`` to an empty journal with Core
    inserts, as the first version did (no checkpoint, no read model); the last hash."""
    prev_hash = "0" * 64
    rows = []
    for seq, (event, ciphertext, key_version) in enumerate(events, start=1):
        rows.append(event_row(seq, event, prev_hash, ciphertext, key_version))
        prev_hash = rows[-1]["hash"]
    connection.execute(insert(EVENTS), rows)
    connection.execute(update(HEAD).where(HEAD.c.id == 1).values(seq=len(rows), hash=prev_hash))
    return prev_hash
