"""``isobridge audit verify``: prove the journal is whole, or name where it is not.

:func:`verify` reads the journal without decrypting anything (the chain covers the personal
parts as ciphertext, so it also verifies after crypto-shredding) and checks:

1. every checkpoint's Ed25519 signature, with the key derived from the master key version
   it names (:func:`journal.keys.signing_key`), and that each checkpoint names its
   predecessor and one exists at every multiple of the interval;
2. every event, in sequence order: numbers from 1 without gaps, its hash recomputed from
   its stored columns and its predecessor's hash, its link to its predecessor;
3. every checkpoint against the event it covers, and the chain head against the last event.

Each problem is a :class:`Problem`: the sequence number, what is wrong
(:class:`ProblemKind`) and why in words. How a problem is classified:

``edited``
    an event whose stored columns no longer hash to its stored hash; or whose successor
    links to a different hash (it was edited and its hash recomputed); or a stretch that
    was rewritten with recomputed hashes and no longer matches the checkpoint that signed
    it (the problem then names the stretch, ``seq`` to ``last_seq``).
``deleted``
    missing sequence numbers (in the middle, or at the end: the chain head or a checkpoint
    says the journal went further), or a missing checkpoint.
``reordered``
    an event whose predecessor link points at another stored event than the one before it
    (events swapped or moved).
``inserted``
    events beyond the chain head.
``bad signature``
    a checkpoint whose signature does not verify (forged or altered), or whose master key
    version is not available to check it.

It reads one snapshot of the database, so hub processes may keep appending meanwhile.
Nothing is repaired: the report is all that changes. Problems after the first are reported
too (up to ``max_problems``); the verifier resynchronizes on the stored hash after each.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import Connection, Row

from journal.events import GENESIS_HASH, TransactionIds, canonical_bytes, chain_hash, format_time
from journal.keys import JournalKeyError, MasterKeys, signing_key
from journal.reading import READ_ONLY
from journal.schema import CHECKPOINTS, EVENTS, HEAD

__all__ = [
    "AuditReport",
    "Problem",
    "ProblemKind",
    "checkpoint_message",
    "verify",
]

VERIFY_CHUNK: Final = 5000
DEFAULT_MAX_PROBLEMS: Final = 100


class ProblemKind(StrEnum):
    """What is wrong at a place in the journal."""

    EDITED = "edited"
    DELETED = "deleted"
    REORDERED = "reordered"
    INSERTED = "inserted"
    BAD_SIGNATURE = "bad signature"


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding: the event (or checkpoint) at ``seq`` (through ``last_seq``), and why."""

    seq: int
    kind: ProblemKind
    detail: str
    last_seq: int | None = None

    def __str__(self) -> str:
        where = f"events {self.seq}..{self.last_seq}" if self.last_seq else f"event {self.seq}"
        return f"{where}: {self.kind}: {self.detail}"


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What :func:`verify` checked and found."""

    events_checked: int
    checkpoints_checked: int
    head_seq: int
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        """Whether the journal is whole."""
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        """The problem with the lowest sequence number."""
        return min(self.problems, key=lambda p: p.seq) if self.problems else None


def checkpoint_message(
    seq: int, hash_: str, at: dt.datetime, previous_seq: int, master_version: int
) -> bytes:
    """The bytes a checkpoint's signature covers."""
    return (
        f"isobridge/journal-checkpoint/1|{seq}|{hash_}|{format_time(at)}|{previous_seq}"
        f"|{master_version}"
    ).encode()


@dataclass(frozen=True, slots=True)
class _RowEvent:
    kind: str
    tenant: str
    ids: TransactionIds
    at: dt.datetime


def _recomputed(row: Row[Any]) -> str:
    event = _RowEvent(
        row.kind,
        row.tenant,
        TransactionIds(row.transaction_id, row.end_to_end_id, row.stan, row.terminal_id, row.uetr),
        row.at,
    )
    return chain_hash(
        row.prev_hash, canonical_bytes(row.seq, event, row.body, row.personal, row.key_version)
    )


class _Findings:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.items: list[Problem] = []

    def add(self, seq: int, kind: ProblemKind, detail: str, last_seq: int | None = None) -> None:
        if len(self.items) < self.limit:
            self.items.append(Problem(seq, kind, detail, last_seq))

    def has(self, seq: int) -> bool:
        return any(problem.seq == seq for problem in self.items)

    @property
    def full(self) -> bool:
        return len(self.items) >= self.limit


def _check_checkpoints(
    checkpoints: list[Row[Any]], keys: MasterKeys, findings: _Findings
) -> dict[int, Row[Any]]:
    """The checkpoints whose signatures verify, by seq."""
    good: dict[int, Row[Any]] = {}
    previous = 0
    public: dict[int, Any] = {}
    for row in checkpoints:
        if row.previous_seq != previous:
            findings.add(
                row.seq,
                ProblemKind.DELETED,
                f"checkpoint {row.seq} follows checkpoint {row.previous_seq}, which is not "
                f"stored (the checkpoint before it is {previous or 'none'})",
            )
        previous = row.seq
        try:
            if row.master_version not in public:
                public[row.master_version] = signing_key(keys, row.master_version).public_key()
            public[row.master_version].verify(
                row.signature,
                checkpoint_message(row.seq, row.hash, row.at, row.previous_seq, row.master_version),
            )
        except InvalidSignature:
            findings.add(
                row.seq,
                ProblemKind.BAD_SIGNATURE,
                f"checkpoint {row.seq}: its signature does not verify (forged or altered)",
            )
            continue
        except (JournalKeyError, LookupError, ValueError) as exc:
            findings.add(
                row.seq,
                ProblemKind.BAD_SIGNATURE,
                f"checkpoint {row.seq} cannot be checked: master key version "
                f"{row.master_version} is not available ({type(exc).__name__})",
            )
            continue
        good[row.seq] = row
    return good


def _seq_of_hash(connection: Connection, hash_: str) -> int | None:
    return connection.execute(
        select(EVENTS.c.seq).where(EVENTS.c.hash == hash_).limit(1)
    ).scalar_one_or_none()


def verify(
    engine: Engine,
    keys: MasterKeys,
    *,
    progress: Callable[[int, int], None] | None = None,
    max_problems: int = DEFAULT_MAX_PROBLEMS,
    chunk: int = VERIFY_CHUNK,
) -> AuditReport:
    """Check the journal on ``engine``; see the module documentation. Writes nothing."""
    findings = _Findings(max_problems)
    options: dict[str, Any] = dict(READ_ONLY)
    if engine.dialect.name == "postgresql":
        # One snapshot for the head, the checkpoints and every chunk of events: appends that
        # commit meanwhile are not seen (SQLite's read transaction is a snapshot already).
        options["isolation_level"] = "REPEATABLE READ"
    with engine.connect().execution_options(**options) as connection:
        head = connection.execute(select(HEAD).where(HEAD.c.id == 1)).one_or_none()
        stored_count = connection.execute(select(func.count()).select_from(EVENTS)).scalar_one()
        checkpoint_rows = list(connection.execute(select(CHECKPOINTS).order_by(CHECKPOINTS.c.seq)))
        if head is None:
            findings.add(0, ProblemKind.DELETED, "the chain head row is missing")
        every = head.checkpoint_every if head is not None else 0
        checkpoints = _check_checkpoints(checkpoint_rows, keys, findings)
        expected, prev_hash, checked = 1, GENESIS_HASH, 0
        # Stretches whose checkpoint disagrees; reported at the end unless a problem found
        # inside the stretch already explains the disagreement.
        rewritten: list[tuple[int, int]] = []
        after = 0
        while not findings.full:
            rows = connection.execute(
                select(EVENTS).where(EVENTS.c.seq > after).order_by(EVENTS.c.seq).limit(chunk)
            ).all()
            for row in rows:
                if row.seq > expected:
                    missing_last = row.seq - 1
                    findings.add(
                        expected,
                        ProblemKind.DELETED,
                        "missing from the journal",
                        missing_last if missing_last > expected else None,
                    )
                    prev_hash = row.prev_hash
                self_consistent = _recomputed(row) == row.hash
                linked = row.prev_hash == prev_hash
                if self_consistent and not linked:
                    # The hash covers the seq, so this event is where it was written: the
                    # event before it changed (its hash recomputed) or was moved away.
                    if not findings.has(row.seq - 1):
                        findings.add(
                            row.seq - 1,
                            ProblemKind.EDITED,
                            f"changed and its hash recomputed: event {row.seq} was chained "
                            "to a different hash",
                        )
                elif not self_consistent and linked:
                    findings.add(
                        row.seq, ProblemKind.EDITED, "its columns no longer match its hash"
                    )
                elif not self_consistent:
                    other = _seq_of_hash(connection, row.prev_hash)
                    if other is not None and other != row.seq - 1:
                        findings.add(
                            row.seq,
                            ProblemKind.REORDERED,
                            f"stored at {row.seq}, but the chain puts it after event {other}",
                        )
                    else:
                        findings.add(
                            row.seq,
                            ProblemKind.EDITED,
                            "its columns and its link to its predecessor were changed",
                        )
                checkpoint = checkpoints.get(row.seq)
                if checkpoint is not None and checkpoint.hash != row.hash and self_consistent:
                    start = max((s for s in checkpoints if s < row.seq), default=0) + 1
                    rewritten.append((start, row.seq))
                prev_hash, expected = row.hash, row.seq + 1
                checked += 1
            if progress is not None:
                progress(checked, max(stored_count, checked))
            if len(rows) < chunk:
                break
            after = rows[-1].seq
        last = expected - 1
        stored_checkpoints = {row.seq for row in checkpoint_rows}
        _check_end(findings, head, last, prev_hash, checkpoints, stored_checkpoints, every)
        for start, end in rewritten:
            if not any(start <= p.seq <= end for p in findings.items):
                findings.add(
                    start,
                    ProblemKind.EDITED,
                    f"rewritten with recomputed hashes: checkpoint {end} signed a different hash",
                    end if end > start else None,
                )
    problems = tuple(sorted(findings.items, key=lambda p: (p.seq, p.kind)))
    return AuditReport(
        events_checked=checked,
        checkpoints_checked=len(checkpoint_rows),
        head_seq=head.seq if head is not None else 0,
        problems=problems,
    )


def _check_end(
    findings: _Findings,
    head: Row[Any] | None,
    last: int,
    last_hash: str,
    checkpoints: dict[int, Row[Any]],
    stored_checkpoints: set[int],
    every: int,
) -> None:
    if findings.full:
        return
    claimed = max([head.seq if head is not None else 0, *checkpoints])
    if claimed > last:
        who = "the chain head" if head is not None and head.seq == claimed else "a checkpoint"
        findings.add(
            last + 1,
            ProblemKind.DELETED,
            f"missing from the end of the journal: {who} says it reaches {claimed}",
            claimed if claimed > last + 1 else None,
        )
    elif head is not None and head.seq < last:
        findings.add(
            head.seq + 1,
            ProblemKind.INSERTED,
            f"beyond the chain head ({head.seq})",
            last if last > head.seq + 1 else None,
        )
    elif head is not None and head.seq == last and head.hash != last_hash:
        findings.add(last, ProblemKind.EDITED, "its hash differs from the chain head's")
    if every > 0:
        for seq in range(every, min(last, claimed) + 1, every):
            if seq not in stored_checkpoints and not findings.full:
                findings.add(
                    seq, ProblemKind.DELETED, f"the checkpoint at {seq} (every {every}) is missing"
                )
