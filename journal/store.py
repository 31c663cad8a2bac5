"""The journal: events appended in the caller's transaction, hash-chained, checkpointed.

Appending
    :meth:`Journal.append` takes the caller's connection, inside the transaction that makes
    the change the events record: the events commit with the change or not at all. A batch
    of events costs two statements on the chain head (reserve, then advance), one insert
    for the events, one upsert for the read model (:mod:`journal.read_model`), and a key
    query when a batch holds personal parts: hot paths hand in whole batches (group commit,
    ``ARCHITECTURE.md`` field notes; ``bench/journal_append.py`` measures the cost). These
    statements are written once per dialect and run as driver SQL on tuples
    (:mod:`journal.driver_sql`): the rows SQLAlchemy Core would write, for a fraction of its
    per-row cost. Rows are never updated or deleted; only the read model is rewritten.

Serializing appenders
    The first statement of an append is ``UPDATE journal_head SET seq = seq + n ...
    RETURNING``: it reserves ``n`` sequence numbers and reads the chain head in one step,
    and holds the head row until the transaction ends (a row lock on PostgreSQL, the
    database write lock on SQLite). Several hub processes on one PostgreSQL database
    therefore append one transaction after another, and a rolled-back append gives its
    numbers back. On SQLite use :meth:`Journal.create_engine` (``BEGIN IMMEDIATE``, WAL):
    a transaction that read before appending would otherwise fail to upgrade its lock.

Checkpoints
    Every ``checkpoint_every`` events (the sequence numbers that are multiples of it; 1000
    by default, kept in the head row) the append signs a checkpoint in the same
    transaction; :meth:`Journal.checkpoint` signs one on demand (say, at shutdown or from a
    timer). A checkpoint is (seq, hash, time, previous checkpoint) signed with Ed25519
    (:func:`journal.keys.signing_key`). Events after the newest checkpoint are protected by
    the chain alone: someone who can write the database could rewrite them consistently,
    so the interval bounds what can be altered undetected.

Personal parts
    Encrypted under the tenant's journal key (:mod:`journal.keys`); :meth:`shred_tenant`
    destroys that key. Reading (:meth:`events`, :meth:`trace`) decrypts what it can and
    marks the rest with :class:`~journal.events.Sealed`.

>>> import datetime as dt
>>> from journal.events import Event, EventKind, TransactionIds
>>> from journal.keys import StaticMasterKeys
>>> journal = Journal.open("sqlite://", StaticMasterKeys({1: bytes(32)}), create=True)
>>> at = dt.datetime(2026, 11, 29, 5, 0, tzinfo=dt.UTC)
>>> ids = TransactionIds("m-1", end_to_end_id="633305123456", stan="000123", terminal_id="T1")
>>> with journal.engine.begin() as connection:  # the transaction of the change itself
...     stored = journal.append(connection, [
...         Event(EventKind.RECEIVED, "acme", ids, at, {"amount": "10.00", "currency": "EUR"},
...               personal={"debtor": "A. Customer"}),
...         Event(EventKind.ANSWERED, "acme", ids, at + dt.timedelta(milliseconds=42),
...               {"status": "ACSC"}),
...     ])
>>> [(e.seq, e.kind.value) for e in stored]
[(1, 'received'), (2, 'answered')]
>>> journal.status("m-1").status
'ACSC'
>>> journal.verify().ok
True
>>> journal.shred_tenant("acme")
1
>>> [e.personal for e in journal.events()]
[<Sealed.ERASED: 'erased'>, None]
>>> journal.verify().ok
True
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from hashlib import sha256
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, create_engine, event, func, insert, select, update
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from journal import read_model
from journal.audit import AuditReport, checkpoint_message, verify
from journal.driver_sql import DriverInsert, per_dialect, placeholders
from journal.events import (
    Event,
    StoredEvent,
    canonical_bytes,
    checked_event,
)
from journal.keys import (
    NONCE_SIZE,
    MasterKeys,
    TenantKeyring,
    personal_aad,
    shred_tenant_keys,
    signing_key,
)
from journal.migrate import HEAD as SCHEMA_HEAD
from journal.migrate import current_revision, upgrade
from journal.read_model import TransactionView
from journal.reading import READ_CHUNK, READ_ONLY, read_events
from journal.schema import CHECKPOINTS, EVENTS, HEAD, TENANT_KEYS
from journal.trace import TransactionTrace, trace

__all__ = ["Checkpoint", "Journal", "JournalError"]


# The columns of an event row, in the order append() builds its tuples.
_EVENT_COLUMNS: Final = (
    "seq", "at", "kind", "tenant", "transaction_id", "end_to_end_id", "stan", "terminal_id",
    "uetr", "body", "personal", "key_version", "prev_hash", "hash",
)  # fmt: skip
_INSERT_CHECKPOINTS: Final = insert(CHECKPOINTS)


@dataclass(frozen=True, slots=True)
class _AppendSql:
    """The statements every append runs, in one dialect's SQL (:mod:`journal.driver_sql`)."""

    reserve: str
    """Reserve ``n`` sequence numbers and read the chain head (locks the head row)."""
    advance: str
    """Move the chain head to the last hash and checkpoint."""
    insert_events: DriverInsert


@per_dialect
def _append_sql(dialect: Dialect) -> _AppendSql:
    head = dialect.identifier_preparer.format_table(HEAD)
    (count,) = placeholders(dialect, 1)
    last_hash, last_checkpoint = placeholders(dialect, 2)
    return _AppendSql(
        # the quoted table name and bind-parameter markers only, no values
        reserve=f"UPDATE {head} SET seq = seq + {count} WHERE id = 1 "  # noqa: S608
        "RETURNING seq, hash, checkpoint_seq, checkpoint_every",
        # the quoted table name and bind-parameter markers only, no values
        advance=f"UPDATE {head} SET hash = {last_hash}, checkpoint_seq = {last_checkpoint} "  # noqa: S608
        "WHERE id = 1",
        insert_events=DriverInsert.of(dialect, EVENTS, _EVENT_COLUMNS),
    )


class JournalError(Exception):
    """The journal cannot be used as asked (no schema, unreachable database, bad setting)."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement that the chain up to ``seq`` hashes to ``hash``."""

    seq: int
    hash: str
    at: dt.datetime
    previous_seq: int
    master_version: int
    signature: bytes


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: object) -> None:
        # Every transaction starts with BEGIN IMMEDIATE (below): two appenders wait for each
        # other instead of failing with "database is locked" when one upgrades its lock.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        if connection.get_execution_options().get("isobridge_journal_read_only"):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


class Journal:
    """The event journal on one database. See the module documentation."""

    def __init__(
        self, engine: Engine, keys: MasterKeys, *, now: Callable[[], dt.datetime] = _utc_now
    ) -> None:
        self.engine = engine
        self.keys = keys
        self.keyring = TenantKeyring(keys)
        self._now = now
        self._signers: dict[int, Ed25519PrivateKey] = {}

    # -- construction -------------------------------------------------------------------

    @staticmethod
    def create_engine(url: str, **options: Any) -> Engine:
        """An engine for ``url`` set up for the journal (SQLite: WAL, ``BEGIN IMMEDIATE``)."""
        if url.startswith("sqlite"):
            if url in ("sqlite://", "sqlite:///:memory:"):
                options.setdefault("poolclass", StaticPool)
                options.setdefault("connect_args", {"check_same_thread": False})
            else:
                options.setdefault("connect_args", {"timeout": 30})
            engine = create_engine(url, **options)
            _configure_sqlite(engine)
            return engine
        options.setdefault("pool_pre_ping", True)
        return create_engine(url, **options)

    @classmethod
    def open(
        cls,
        url: str,
        keys: MasterKeys,
        *,
        create: bool = False,
        checkpoint_every: int | None = None,
        **options: Any,
    ) -> Journal:
        """The journal at ``url``; ``create=True`` runs the migrations first.

        ``checkpoint_every`` sets the checkpoint interval of a journal that has no event
        yet; on a journal with events it must be the interval it has (or ``None``).
        ``options`` go to :meth:`create_engine`.
        """
        engine = cls.create_engine(url, **options)
        try:
            if create:
                upgrade(engine)
            revision = current_revision(engine)
        except SQLAlchemyError as exc:
            engine.dispose()
            raise JournalError(f"journal database unreachable: {_reason(exc)}") from None
        if revision != SCHEMA_HEAD:
            engine.dispose()
            found = "no journal schema" if revision is None else f"schema revision {revision}"
            raise JournalError(
                f"the journal database has {found}, this code needs {SCHEMA_HEAD}: "
                "run `isobridge journal init`"
            )
        journal = cls(engine, keys)
        if checkpoint_every is not None:
            journal.set_checkpoint_interval(checkpoint_every)
        return journal

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Journal({self.engine.url.render_as_string(hide_password=True)!r})"

    def set_checkpoint_interval(self, every: int) -> None:
        """Sign a checkpoint every ``every`` events; only before the first event."""
        if every < 1:
            raise JournalError(f"the checkpoint interval must be at least 1, not {every}")
        with self.engine.begin() as connection:
            head = connection.execute(select(HEAD).where(HEAD.c.id == 1)).one()
            if head.checkpoint_every == every:
                return
            if head.seq:
                raise JournalError(
                    f"the journal has {head.seq} events and checkpoints every "
                    f"{head.checkpoint_every}: the interval cannot change now"
                )
            connection.execute(update(HEAD).where(HEAD.c.id == 1).values(checkpoint_every=every))

    # -- writing ----------------------------------------------------------------------------

    def _signer(self, master_version: int) -> Ed25519PrivateKey:
        signer = self._signers.get(master_version)
        if signer is None:
            signer = self._signers[master_version] = signing_key(self.keys, master_version)
        return signer

    def _sign(self, seq: int, hash_: str, previous_seq: int) -> dict[str, Any]:
        at = self._now()
        version = self.keys.current_version
        message = checkpoint_message(seq, hash_, at, previous_seq, version)
        return {
            "seq": seq,
            "hash": hash_,
            "at": at,
            "previous_seq": previous_seq,
            "master_version": version,
            "signature": self._signer(version).sign(message),
        }

    def append(self, connection: Connection, events: Sequence[Event]) -> list[StoredEvent]:
        """Append ``events``, in order, inside the caller's transaction on ``connection``.

        Returns them as stored (sequence numbers, hashes). The read model is updated in the
        same transaction. Raises ``ValueError`` for an event the journal refuses (a clear
        card number, a naive time, an id too long); nothing is written then.
        """
        if not events:
            return []
        checked = [checked_event(item) for item in events]
        count = len(events)
        sql = _append_sql(connection.dialect)
        head = connection.exec_driver_sql(sql.reserve, (count,)).one()
        first = head.seq - count + 1
        every = head.checkpoint_every
        tenants = {item.tenant for item in events if item.personal is not None}
        keys = self.keyring.current_keys(connection, tenants, self._now()) if tenants else {}
        prev_hash = head.hash
        # chain_hash, with the predecessor's digest carried as bytes from one event to the next
        prev_digest = bytes.fromhex(prev_hash)
        last_checkpoint = head.checkpoint_seq
        rows: list[tuple[Any, ...]] = []
        checkpoints: list[dict[str, Any]] = []
        stored: list[StoredEvent] = []
        for seq, item, (body, personal, body_value) in zip(
            range(first, first + count), events, checked, strict=True
        ):
            ciphertext: bytes | None = None
            key_version: int | None = None
            if personal is not None:
                key_version, cipher = keys[item.tenant]
                nonce = secrets.token_bytes(NONCE_SIZE)
                ciphertext = nonce + cipher.encrypt(
                    nonce,
                    personal.encode(),
                    personal_aad(item.tenant, seq, key_version),
                )
            prev_digest = sha256(
                prev_digest + canonical_bytes(seq, item, body, ciphertext, key_version)
            ).digest()
            hash_ = prev_digest.hex()
            ids = item.ids
            at = item.at
            rows.append(
                (
                    seq,
                    at,
                    item.kind.value,
                    item.tenant,
                    ids.transaction_id,
                    ids.end_to_end_id,
                    ids.stan,
                    ids.terminal_id,
                    ids.uetr,
                    body,
                    ciphertext,
                    key_version,
                    prev_hash,
                    hash_,
                )
            )
            stored.append(
                StoredEvent(
                    seq,
                    item.kind,
                    item.tenant,
                    ids,
                    at if at.tzinfo is dt.UTC else _aware(at),
                    body_value,
                    None if item.personal is None else dict(item.personal),
                    prev_hash,
                    hash_,
                )
            )
            if seq % every == 0:
                checkpoints.append(self._sign(seq, hash_, last_checkpoint))
                last_checkpoint = seq
            prev_hash = hash_
        sql.insert_events.execute(connection, rows)
        if checkpoints:
            connection.execute(_INSERT_CHECKPOINTS, checkpoints)
        connection.exec_driver_sql(sql.advance, (prev_hash, last_checkpoint))
        read_model.apply(connection, stored, in_seq_order=True)
        return stored

    def record(self, events: Sequence[Event]) -> list[StoredEvent]:
        """Append ``events`` in a transaction of their own (when there is no other change)."""
        with self.engine.begin() as connection:
            return self.append(connection, events)

    def checkpoint(self, connection: Connection | None = None) -> Checkpoint | None:
        """Sign a checkpoint of the chain head now; ``None`` if the head is checkpointed."""
        if connection is None:
            with self.engine.begin() as own:
                return self.checkpoint(own)
        head = connection.execute(
            update(HEAD)
            .where(HEAD.c.id == 1)
            .values(seq=HEAD.c.seq)
            .returning(HEAD.c.seq, HEAD.c.hash, HEAD.c.checkpoint_seq)
        ).one()
        if head.seq == head.checkpoint_seq:
            return None
        values = self._sign(head.seq, head.hash, head.checkpoint_seq)
        connection.execute(insert(CHECKPOINTS), [values])
        connection.execute(update(HEAD).where(HEAD.c.id == 1).values(checkpoint_seq=head.seq))
        return Checkpoint(**values)

    def shred_tenant(self, tenant: str) -> int:
        """Destroy ``tenant``'s journal keys (crypto-shredding); returns key versions destroyed.

        Its events stay and the chain still verifies; their personal parts read as
        :attr:`~journal.events.Sealed.ERASED` from now on, in every copy of the database.
        """
        with self.engine.begin() as connection:
            destroyed = shred_tenant_keys(connection, tenant, self._now())
        self.keyring.forget(tenant)
        return destroyed

    def tenant_keys(self) -> list[tuple[str, int, dt.datetime]]:
        """Each tenant's live journal key: (tenant, version, created), for rotation
        schedules (``hub.rotation``). A shredded tenant has none until its next event."""
        with self.engine.begin() as connection:
            rows = connection.execute(
                select(TENANT_KEYS.c.tenant, TENANT_KEYS.c.version, TENANT_KEYS.c.created_at)
                .where(TENANT_KEYS.c.wrapped.is_not(None))
                .order_by(TENANT_KEYS.c.tenant, TENANT_KEYS.c.version.desc())
            ).all()
        latest: dict[str, tuple[str, int, dt.datetime]] = {}
        for row in rows:
            created = row.created_at
            if created.tzinfo is None:
                created = created.replace(tzinfo=dt.UTC)
            latest.setdefault(row.tenant, (row.tenant, int(row.version), created))
        return list(latest.values())

    def rotate_tenant_key(self, tenant: str, *, if_current: int) -> int | None:
        """Start version n+1 of ``tenant``'s journal key if its newest is still
        ``if_current`` (``None``: another process rotated first); older versions keep
        decrypting their events. Runs with the chain head locked, as an append does, so it
        never races an append creating a key."""
        with self.engine.begin() as connection:
            connection.execute(update(HEAD).where(HEAD.c.id == 1).values(seq=HEAD.c.seq))
            latest = connection.execute(
                select(func.max(TENANT_KEYS.c.version)).where(TENANT_KEYS.c.tenant == tenant)
            ).scalar_one()
            if latest is None or int(latest) != if_current:
                return None
            self.keyring.add_version(connection, tenant, if_current + 1, self._now())
        return if_current + 1

    # -- reading ----------------------------------------------------------------------------

    def events(self, *, after: int = 0, chunk: int = READ_CHUNK) -> Iterator[StoredEvent]:
        """Every event after ``after``, by sequence number, personal parts decrypted."""
        while True:
            with self.engine.connect().execution_options(**READ_ONLY) as connection:
                batch = read_events(connection, self.keyring, after=after, limit=chunk)
            yield from batch
            if len(batch) < chunk:
                return
            after = batch[-1].seq

    def status(self, transaction_id: str) -> TransactionView | None:
        """The read model's row of ``transaction_id``."""
        with self.engine.connect().execution_options(**READ_ONLY) as connection:
            return read_model.transaction(connection, transaction_id)

    def transactions(self) -> list[TransactionView]:
        """Every row of the read model, by transaction id."""
        with self.engine.connect().execution_options(**READ_ONLY) as connection:
            return read_model.transactions(connection)

    def rebuild(self, *, chunk: int = READ_CHUNK) -> int:
        """Recompute the read model from the events; returns the number of transactions.

        Runs in one transaction with the chain head locked: appends wait, readers see the
        old table until it commits.
        """
        with self.engine.begin() as connection:
            connection.execute(update(HEAD).where(HEAD.c.id == 1).values(seq=HEAD.c.seq))

            def chunks() -> Iterator[list[StoredEvent]]:
                after = 0
                while True:
                    batch = read_events(connection, None, after=after, limit=chunk)
                    if batch:
                        yield batch
                    if len(batch) < chunk:
                        return
                    after = batch[-1].seq

            return read_model.rebuild(connection, chunks())

    def verify(self, *, progress: Callable[[int, int], None] | None = None) -> AuditReport:
        """Check the chain and the checkpoints (:func:`journal.audit.verify`)."""
        return verify(self.engine, self.keys, progress=progress)

    def trace(self, identifier: str) -> list[TransactionTrace]:
        """The transactions ``identifier`` names, with their events (:mod:`journal.trace`)."""
        with self.engine.connect().execution_options(**READ_ONLY) as connection:
            return trace(connection, self.keyring, identifier)


def _reason(exc: SQLAlchemyError) -> str:
    original = getattr(exc, "orig", None)
    text = str(original if original is not None else exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
