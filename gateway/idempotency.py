"""``x-idempotency-key``: a repeated POST gets the first answer (OBIE v4.0, FAPI).

OBIE Read/Write API v4.0 ("Idempotency"): a TPP sends ``x-idempotency-key`` (at most 40
characters, not blank) on the POSTs that create resources; within 24 hours, the same key
with the same body gets the response to the first request, unchanged (same resource id,
same status code), and the same key with a different body is an error (400
``UK.OBIE.Resource.ConsentMismatch`` in the v3.1 wording: here ``Field.Invalid`` on the
header). After 24 hours a key may be used again.

Keys are kept per tenant and endpoint, so two TPPs never see each other's answers, in the
gateway's database (``gateway_idempotency``, :mod:`gateway.store`), shared by every gateway
process and kept across restarts. The body is compared by SHA-256 of its bytes.

The first request with a key *claims* it (:meth:`IdempotencyStore.claim`): one
``INSERT ... ON CONFLICT DO NOTHING`` of a row holding the body's digest and a holder token,
so of two requests racing with one key, on one process or two, exactly one runs; the other
sees the claim (:class:`Pending`) and waits for the answer
(:func:`gateway.responses.idempotent_post` asks again every ``poll`` seconds; after ``wait``
seconds it answers 409, retry later). A success is stored in the row
(:meth:`IdempotencyStore.complete`); a refusal or a failure gives the key back
(:meth:`IdempotencyStore.release`), so a corrected retry runs again. A claim whose holder
vanished (its process died) is taken over after ``lease`` seconds. Rows older than the
window are deleted (:meth:`IdempotencyStore.purge`, run every ``purge_every`` claims, and
by whoever meets an expired key).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from sqlalchemy import and_, bindparam, delete, or_, select, update
from sqlalchemy.engine import Connection, Engine

from gateway.store import idempotency_table, insert_or_ignore, transaction

__all__ = [
    "IDEMPOTENCY_WINDOW",
    "Claimed",
    "IdempotencyStore",
    "Pending",
    "StoredAnswer",
    "valid_key",
]

IDEMPOTENCY_WINDOW: Final = 24 * 3600.0
"""Seconds a key and its answer are kept (24 hours)."""

# The statements, built once (SQLAlchemy then finds them compiled in its cache).
_T = idempotency_table
_THIS = and_(
    _T.c.tenant == bindparam("p_tenant"),
    _T.c.endpoint == bindparam("p_endpoint"),
    _T.c.key == bindparam("p_key"),
)
_HOLDING = and_(_THIS, _T.c.holder == bindparam("p_holder"))
_DROP_STALE = (
    delete(_T)
    .where(
        _THIS,
        or_(
            _T.c.stored_at < bindparam("p_window_start"),
            and_(_T.c.status.is_(None), _T.c.stored_at < bindparam("p_lease_start")),
        ),
    )
    .returning(_T.c.key)
)
_ROW = select(_T).where(_THIS)
_STORED = select(_T).where(
    _THIS, _T.c.status.is_not(None), _T.c.stored_at >= bindparam("p_window_start")
)
_COMPLETE = (
    update(_T)
    .where(_HOLDING)
    .values(
        status=bindparam("p_status"),
        body=bindparam("p_body"),
        headers=bindparam("p_headers", type_=_T.c.headers.type),
        stored_at=bindparam("p_stored_at"),
    )
    .returning(_T.c.key)
)
_RELEASE = delete(_T).where(_HOLDING, _T.c.status.is_(None))
_PURGE = delete(_T).where(_T.c.stored_at < bindparam("p_window_start")).returning(_T.c.key)


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """The first answer given to a key, and the digest of the body it answered."""

    body_digest: str
    status: int
    body: bytes
    headers: Mapping[str, str]
    stored_at: float


@dataclass(frozen=True, slots=True)
class Claimed:
    """The key is this request's: run it, then :meth:`IdempotencyStore.complete` or
    :meth:`IdempotencyStore.release` with ``holder``."""

    holder: str


@dataclass(frozen=True, slots=True)
class Pending:
    """Another request (here or in another process) holds the key and is still running."""

    body_digest: str


def valid_key(key: str) -> bool:
    """At most 40 characters, printable, not blank.

    >>> valid_key("abc-123"), valid_key(""), valid_key("x" * 41), valid_key("a\\nb")
    (True, False, False, False)
    """
    return 0 < len(key) <= 40 and key.strip() != "" and key.isprintable()


class IdempotencyStore:
    """See the module docstring."""

    def __init__(
        self,
        engine: Engine,
        *,
        window: float = IDEMPOTENCY_WINDOW,
        lease: float = 120.0,
        wait: float = 30.0,
        poll: float = 0.05,
        purge_every: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.window = window
        self.lease = lease
        self.wait = wait
        self.poll = poll
        self.purge_every = purge_every
        self.clock = clock
        self._claims = 0

    @staticmethod
    def digest(body: bytes) -> str:
        """SHA-256 of a request body."""
        return hashlib.sha256(body).hexdigest()

    def claim(
        self,
        tenant: str,
        endpoint: str,
        key: str,
        body_digest: str,
        *,
        then: Callable[[Connection], object] | None = None,
    ) -> Claimed | Pending | StoredAnswer:
        """Take the key for a request whose body has ``body_digest``: :class:`Claimed` when
        it is this request's to run, :class:`Pending` while another runs, or the answer
        stored within the window (whichever body it was for: the caller compares).

        ``then`` runs in the claim's transaction when the key is this request's (a
        payment's first writes: the consent used, the payment recorded): if it raises, the
        claim is undone with them and the exception propagates."""
        now = self.clock()
        holder = secrets.token_hex(16)
        this = {"p_tenant": tenant, "p_endpoint": endpoint, "p_key": key}
        with transaction(self.engine) as connection:
            values = {
                "tenant": tenant,
                "endpoint": endpoint,
                "key": key,
                "body_digest": body_digest,
                "holder": holder,
                "status": None,
                "body": None,
                "headers": None,
                "stored_at": now,
            }
            keys = ("tenant", "endpoint", "key")
            claimed = insert_or_ignore(connection, _T, values, keys)
            if not claimed:  # taken: unless by an answer past the window or a lost holder
                stale = {"p_window_start": now - self.window, "p_lease_start": now - self.lease}
                if connection.execute(_DROP_STALE, {**this, **stale}).first() is not None:
                    claimed = insert_or_ignore(connection, _T, values, keys)
            if claimed:
                found: Claimed | Pending | StoredAnswer = Claimed(holder)
                if then is not None:
                    then(connection)
            else:
                row = connection.execute(_ROW, this).one()
                found = (
                    Pending(row.body_digest)
                    if row.status is None
                    else StoredAnswer(
                        row.body_digest, row.status, row.body, dict(row.headers), row.stored_at
                    )
                )
        self._claims += 1
        if self._claims % self.purge_every == 0:
            self.purge()
        return found

    def find(self, tenant: str, endpoint: str, key: str) -> StoredAnswer | None:
        """The answer stored for the key within the window."""
        with transaction(self.engine) as connection:
            row = connection.execute(
                _STORED,
                {
                    "p_tenant": tenant,
                    "p_endpoint": endpoint,
                    "p_key": key,
                    "p_window_start": self.clock() - self.window,
                },
            ).first()
        if row is None:
            return None
        return StoredAnswer(row.body_digest, row.status, row.body, dict(row.headers), row.stored_at)

    def complete(
        self,
        tenant: str,
        endpoint: str,
        key: str,
        holder: str,
        *,
        status: int,
        body: bytes,
        headers: Mapping[str, str],
    ) -> bool:
        """Keep the answer to the key for the window; False if the claim was lost (taken
        over after ``lease``)."""
        with transaction(self.engine) as connection:
            stored = connection.execute(
                _COMPLETE,
                {
                    "p_tenant": tenant,
                    "p_endpoint": endpoint,
                    "p_key": key,
                    "p_holder": holder,
                    "p_status": status,
                    "p_body": body,
                    "p_headers": dict(headers),
                    "p_stored_at": self.clock(),
                },
            ).first()
        return stored is not None

    def release(self, tenant: str, endpoint: str, key: str, holder: str) -> None:
        """Give the key back (the request was refused or failed): the next one runs."""
        with transaction(self.engine) as connection:
            connection.execute(
                _RELEASE,
                {"p_tenant": tenant, "p_endpoint": endpoint, "p_key": key, "p_holder": holder},
            )

    def purge(self) -> int:
        """Delete the keys older than the window; how many."""
        with transaction(self.engine) as connection:
            gone = connection.execute(_PURGE, {"p_window_start": self.clock() - self.window}).all()
        return len(gone)
