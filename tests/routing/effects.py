"""An idempotent consumer for the tests: a SQLite inbox keyed by message id, in the same
transaction as the effect (the pattern of routing's inbox; the real one lives elsewhere).

Each effect counts its applications, so "applied twice" is visible as ``applied = 2``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from routing.transport import Delivery, Outcome

__all__ = ["EffectStore"]


class EffectStore:
    """``handle`` is a batch handler: one transaction per batch, acks after the commit."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS inbox (message_id TEXT PRIMARY KEY)")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS effect (message_id TEXT PRIMARY KEY, applied INTEGER)"
        )
        self._lock = threading.Lock()
        self.deliveries = 0
        self.duplicates = 0

    def handle(self, batch: Sequence[Delivery]) -> list[Outcome]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for delivery in batch:
                    message_id = delivery.message.ids.message_id
                    fresh = self._db.execute(
                        "INSERT INTO inbox VALUES (?) ON CONFLICT DO NOTHING RETURNING message_id",
                        (message_id,),
                    ).fetchall()
                    self.deliveries += 1
                    if not fresh:
                        self.duplicates += 1
                        continue
                    self._db.execute(
                        "INSERT INTO effect VALUES (?, 1)"
                        " ON CONFLICT (message_id) DO UPDATE SET applied = applied + 1",
                        (message_id,),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return [Outcome.ack() for _ in batch]

    def applied(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute("SELECT message_id, applied FROM effect").fetchall())

    def count(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT count(*) FROM effect").fetchone()
            return int(n)

    def close(self) -> None:
        with self._lock:
            self._db.close()
