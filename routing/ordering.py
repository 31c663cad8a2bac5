"""Per-account and per-card ordering: the key that keeps one account's messages in order.

Most messages may be handled in any order by any number of competing consumers. Some may not:
two postings on one account, or an authorization and its reversal on one card, must be applied
in the order they arrived, or a balance check sees the wrong balance and a reversal overtakes
its original. Order is needed *per account*, never globally, so the hub keeps it per
**ordering key** and still spreads the load:

- :func:`ordering_key` gives a message's key: ``<tenant>/card/<token>`` for a card-rail message
  (the card token is stable for a card, and a reversal carries the card of its original),
  else ``<tenant>/account/<id>`` for the debtor account (IBAN, or the other id and its scheme),
  else ``None``: the message has no order to keep and goes to any consumer.
- The transport spreads keys over N **shards**, one queue each, and every shard queue has
  **one active consumer** (RabbitMQ ``x-single-active-consumer``; a standby takes over when
  it dies, the order held). Either the broker picks the shard (a consistent-hash exchange,
  ``x-consistent-hash``, with the ordering key as routing key; the plugin ships with RabbitMQ
  but is disabled by default), or the publisher does, with :func:`shard_of`: a jump consistent
  hash of the key, so the same key always lands on the same shard and growing from N to N+1
  shards moves only about 1/(N+1) of the keys.
- Within one shard a consumer handles one message at a time per key (prefetch may be larger;
  messages of different keys may interleave): :class:`KeySequencer` runs a consumer's
  handling of each message after that of the previous message of its key. Redelivery
  after a crash keeps the queue's order; the inbox (:mod:`routing.inbox`) drops what was
  already applied.
- Changing the number of shards reorders in-flight messages of the keys that move: drain the
  shards first (stop publishing, let them empty), then change N.

The key holds a token, never a clear card number, so it may travel in AMQP headers and logs.

>>> from canonical_model.messages import Account, CanonicalMessage, Card, Identifiers
>>> from canonical_model.messages import MessageFunction, MessageKind
>>> from canonical_model.pan import PanToken
>>> card = CanonicalMessage(MessageKind.FINANCIAL, MessageFunction.REQUEST, "acme",
...     Identifiers("m-1"), card=Card(token=PanToken("4111110000001112")))
>>> ordering_key(card)
'acme/card/4111110000001112'
>>> transfer = CanonicalMessage(MessageKind.CREDIT_TRANSFER, MessageFunction.REQUEST, "acme",
...     Identifiers("m-2"), debtor_account=Account(iban="DE89370400440532013000"))
>>> ordering_key(transfer)
'acme/account/DE89370400440532013000'
>>> shard_of("acme/card/4111110000001112", 8) == shard_of("acme/card/4111110000001112", 8)
True
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

from canonical_model.messages import CanonicalMessage

__all__ = ["KeySequencer", "ordering_key", "shard_of"]

T = TypeVar("T")


def ordering_key(message: CanonicalMessage) -> str | None:
    """The key whose messages must be handled in order (see the module docstring), or ``None``.

    The card token comes first: a card-rail message may also name an account (field 102),
    but the card is what its reversals and advices carry.
    """
    card = message.card
    if card is not None and card.token is not None:
        return f"{message.tenant}/card/{card.token.value}"
    account = message.debtor_account
    if account is not None:
        if account.iban:
            return f"{message.tenant}/account/{account.iban}"
        if account.other_id:
            scheme = f"{account.scheme}:" if account.scheme else ""
            return f"{message.tenant}/account/{scheme}{account.other_id}"
    return None


def shard_of(key: str, shards: int) -> int:
    """The shard (``0 <= shard < shards``) of ``key``: a jump consistent hash (Lamping and
    Veach, 2014) of the key's BLAKE2b digest, the same in every process and Python version.

    >>> [shard_of(f"k{i}", 4) for i in range(8)]
    [0, 0, 1, 3, 2, 2, 1, 1]
    >>> moved = sum(shard_of(f"k{i}", 10) != shard_of(f"k{i}", 11) for i in range(10_000))
    >>> 700 < moved < 1200  # about 1/11 of the keys move to the new shard
    True
    """
    if shards < 1:
        raise ValueError("shards must be at least 1")
    state = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")
    bucket, candidate = -1, 0
    while candidate < shards:
        bucket = candidate
        state = (state * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        candidate = int((bucket + 1) * ((1 << 31) / ((state >> 33) + 1)))
    return bucket


class KeySequencer:
    """Runs work one at a time per key, in the order it was submitted (on one event loop).

    :meth:`submit` takes the key's turn at once, without waiting, so the order is that of the
    calls; the work of different keys, and of ``None`` (no order to keep), runs concurrently.

    >>> async def demo() -> list[str]:
    ...     done: list[str] = []
    ...     async def work(name: str, pause: float) -> None:
    ...         await asyncio.sleep(pause)
    ...         done.append(name)
    ...     sequencer = KeySequencer()
    ...     await asyncio.gather(
    ...         sequencer.submit("a", lambda: work("a1", 0.02)),
    ...         sequencer.submit("a", lambda: work("a2", 0.0)),
    ...         sequencer.submit("b", lambda: work("b1", 0.01)),
    ...     )
    ...     return done
    >>> asyncio.run(demo())
    ['b1', 'a1', 'a2']
    """

    def __init__(self) -> None:
        self._tails: dict[str, asyncio.Task[object]] = {}

    def submit(self, key: str | None, work: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        """A task running ``work()`` once the work submitted before it under ``key`` has
        finished, however it finished (raised, or was cancelled)."""
        loop = asyncio.get_running_loop()

        async def run() -> T:
            return await work()

        if key is None:
            return loop.create_task(run())
        previous = self._tails.get(key)

        async def in_turn() -> T:
            if previous is not None:
                await asyncio.wait([previous])
            return await work()

        task = loop.create_task(in_turn())
        self._tails[key] = cast("asyncio.Task[object]", task)

        def forget(done: asyncio.Task[T]) -> None:
            if self._tails.get(key) is done:
                del self._tails[key]

        task.add_done_callback(forget)
        return task

    def __len__(self) -> int:
        """Keys with work submitted and not finished."""
        return len(self._tails)
