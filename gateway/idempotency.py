"""``x-idempotency-key``: a repeated POST gets the first answer (OBIE v4.0, FAPI).

OBIE Read/Write API v4.0 ("Idempotency"): a TPP sends ``x-idempotency-key`` (at most 40
characters, not blank) on the POSTs that create resources; within 24 hours, the same key
with the same body gets the response to the first request, unchanged (same resource id,
same status code), and the same key with a different body is an error (400
``UK.OBIE.Resource.ConsentMismatch`` in the v3.1 wording: here ``Field.Invalid`` on the
header). After 24 hours a key may be used again.

Keys are kept per tenant and endpoint, so two TPPs never see each other's answers. A
request with a key that is still being processed waits for the first to finish (one
``asyncio.Lock`` per key) and then gets its answer, so a retry racing the original cannot
create the resource twice. The body is compared by SHA-256 of its bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

__all__ = ["IDEMPOTENCY_WINDOW", "IdempotencyStore", "StoredAnswer", "valid_key"]

IDEMPOTENCY_WINDOW: Final = 24 * 3600.0
"""Seconds a key and its answer are kept (24 hours)."""


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """The first answer given to a key, and the digest of the body it answered."""

    body_digest: str
    status: int
    body: bytes
    headers: Mapping[str, str]
    stored_at: float


def valid_key(key: str) -> bool:
    """At most 40 characters, printable, not blank.

    >>> valid_key("abc-123"), valid_key(""), valid_key("x" * 41), valid_key("a\\nb")
    (True, False, False, False)
    """
    return 0 < len(key) <= 40 and key.strip() != "" and key.isprintable()


class IdempotencyStore:
    """See the module docstring."""

    def __init__(
        self, *, window: float = IDEMPOTENCY_WINDOW, clock: Callable[[], float] = time.time
    ) -> None:
        self.window = window
        self.clock = clock
        self._answers: dict[tuple[str, str, str], StoredAnswer] = {}
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}

    @staticmethod
    def digest(body: bytes) -> str:
        """SHA-256 of a request body."""
        return hashlib.sha256(body).hexdigest()

    def lock(self, tenant: str, endpoint: str, key: str) -> asyncio.Lock:
        """The lock that serializes requests with this key."""
        return self._locks.setdefault((tenant, endpoint, key), asyncio.Lock())

    def find(self, tenant: str, endpoint: str, key: str) -> StoredAnswer | None:
        """The answer stored for the key within the window."""
        found = self._answers.get((tenant, endpoint, key))
        if found is not None and self.clock() - found.stored_at > self.window:
            del self._answers[(tenant, endpoint, key)]
            return None
        return found

    def store(
        self,
        tenant: str,
        endpoint: str,
        key: str,
        *,
        body_digest: str,
        status: int,
        body: bytes,
        headers: Mapping[str, str],
    ) -> None:
        """Keep the answer to the key for the window."""
        self._answers[(tenant, endpoint, key)] = StoredAnswer(
            body_digest, status, body, dict(headers), self.clock()
        )
        if len(self._answers) % 1000 == 0:
            now = self.clock()
            for entry, answer in list(self._answers.items()):
                if now - answer.stored_at > self.window:
                    del self._answers[entry]
                    self._locks.pop(entry, None)
