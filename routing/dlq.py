"""Dead-letter tooling: list, show, replay and purge parked messages, with filters.

Parked messages live on each destination's dead-letter queue (``isobridge.<name>.dlq``) and,
for unroutable ones, on ``isobridge.unroutable`` (name ``unroutable``). Each carries its reason,
attempt count and original exchange and routing key (:class:`~routing.transport.DeadLetter`;
from RabbitMQ's ``x-death`` header when the broker dead-lettered it).

**Replay** publishes a message as it was first published, to its original exchange and routing
key (the Camel "dead letter channel" round trip), confirmed, and only then removes it from the
dead-letter queue: nothing is lost if the replay fails half-way, and a message is removed
once. The replayed copy starts again at attempt 1, so if it fails again it goes through its
retries and back to the dead-letter queue, rather than vanishing. Consumers are idempotent
(inbox by message id), so replaying a message that was in fact processed applies nothing twice.
Note: a topic routing key may be bound by several destinations; replay to the original
exchange reaches them all, which their inboxes make harmless.

**Dry run** (``dry_run=True``) says what would be replayed or purged and touches nothing.

>>> f = DeadLetterFilter(reason_contains="closed", tenant="acme")
>>> f.describe()
"reason contains 'closed', tenant 'acme'"
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from routing.transport import DeadLetter, Transport, replay_copy
from routing.wire import KIND, TENANT, header_str

__all__ = [
    "DeadLetterFilter",
    "list_dead_letters",
    "purge_dead_letters",
    "replay_dead_letters",
]


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    """Which parked messages to act on; every given criterion must hold."""

    message_ids: frozenset[str] = frozenset()
    reason_contains: str | None = None
    kind: str | None = None
    tenant: str | None = None
    routing_key: str | None = None
    since: dt.datetime | None = None
    before: dt.datetime | None = None

    def __call__(self, dead: DeadLetter) -> bool:
        headers = dead.envelope.headers
        if self.message_ids and dead.message_id not in self.message_ids:
            return False
        if self.reason_contains is not None and (
            self.reason_contains.lower() not in dead.reason.lower()
        ):
            return False
        if self.kind is not None and header_str(headers, KIND) != self.kind:
            return False
        if self.tenant is not None and header_str(headers, TENANT) != self.tenant:
            return False
        if self.routing_key is not None and dead.original_routing_key != self.routing_key:
            return False
        if self.since is not None or self.before is not None:
            at = _parse_time(dead.dead_lettered_at)
            if at is None:
                return False
            if self.since is not None and at < self.since:
                return False
            if self.before is not None and at >= self.before:
                return False
        return True

    def describe(self) -> str:
        """The criteria in words (for confirmations and dry runs)."""
        parts = []
        if self.message_ids:
            parts.append(f"message id in {sorted(self.message_ids)}")
        if self.reason_contains is not None:
            parts.append(f"reason contains {self.reason_contains!r}")
        if self.kind is not None:
            parts.append(f"kind {self.kind!r}")
        if self.tenant is not None:
            parts.append(f"tenant {self.tenant!r}")
        if self.routing_key is not None:
            parts.append(f"routing key {self.routing_key!r}")
        if self.since is not None:
            parts.append(f"parked since {self.since.isoformat()}")
        if self.before is not None:
            parts.append(f"parked before {self.before.isoformat()}")
        return ", ".join(parts) or "all"


def _parse_time(text: str) -> dt.datetime | None:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def list_dead_letters(
    transport: Transport,
    name: str,
    select: DeadLetterFilter | None = None,
    limit: int | None = None,
) -> list[DeadLetter]:
    """The parked messages of destination ``name`` (or ``unroutable``) that ``select`` picks."""
    found = [d for d in transport.dead_letters(name) if select is None or select(d)]
    return found if limit is None else found[:limit]


def _limited(
    select: Callable[[DeadLetter], bool], limit: int | None
) -> Callable[[DeadLetter], bool]:
    picked = 0

    def pick(dead: DeadLetter) -> bool:
        nonlocal picked
        if limit is not None and picked >= limit:
            return False
        if select(dead):
            picked += 1
            return True
        return False

    return pick


def replay_dead_letters(
    transport: Transport,
    name: str,
    select: DeadLetterFilter | None = None,
    *,
    dry_run: bool = False,
    limit: int | None = None,
) -> list[DeadLetter]:
    """Replay the picked messages to their original exchange and routing key; returns them."""
    chosen = select or DeadLetterFilter()
    if dry_run:
        return list_dead_letters(transport, name, chosen, limit)
    replayed: list[DeadLetter] = []

    def replay(dead: DeadLetter) -> None:
        transport.publish_batch([replay_copy(dead)])
        replayed.append(dead)

    transport.take_dead_letters(name, _limited(chosen, limit), replay)
    return replayed


def purge_dead_letters(
    transport: Transport,
    name: str,
    select: DeadLetterFilter | None = None,
    *,
    dry_run: bool = False,
    limit: int | None = None,
) -> list[DeadLetter]:
    """Delete the picked messages for good; returns them."""
    chosen = select or DeadLetterFilter()
    if dry_run:
        return list_dead_letters(transport, name, chosen, limit)
    purged: list[DeadLetter] = []
    transport.take_dead_letters(name, _limited(chosen, limit), purged.append)
    return purged
