"""Ordering keys, shards, and one message at a time per key."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canonical_model.messages import (
    Account,
    CanonicalMessage,
    Card,
    Identifiers,
    MessageFunction,
    MessageKind,
)
from canonical_model.pan import PanToken
from routing.ordering import KeySequencer, ordering_key, shard_of

TOKEN = PanToken("4111110000001112")


def msg(kind: MessageKind = MessageKind.FINANCIAL, **fields: object) -> CanonicalMessage:
    return CanonicalMessage(kind, MessageFunction.REQUEST, "acme", Identifiers("m"), **fields)  # type: ignore[arg-type]


def test_the_card_token_orders_card_messages_and_their_reversals() -> None:
    purchase = msg(card=Card(token=TOKEN), debtor_account=Account(other_id="123"))
    reversal = msg(MessageKind.REVERSAL, card=Card(token=TOKEN))
    assert ordering_key(purchase) == ordering_key(reversal) == "acme/card/4111110000001112"


def test_the_debtor_account_orders_account_messages() -> None:
    assert ordering_key(msg(debtor_account=Account(iban="DE89370400440532013000"))) == (
        "acme/account/DE89370400440532013000"
    )
    assert ordering_key(msg(debtor_account=Account(other_id="00123", scheme="BBAN"))) == (
        "acme/account/BBAN:00123"
    )
    assert ordering_key(msg(debtor_account=Account(other_id="00123"))) == "acme/account/00123"


def test_messages_without_card_or_debtor_account_have_no_order_to_keep() -> None:
    assert ordering_key(msg(MessageKind.NETWORK_MANAGEMENT)) is None
    assert ordering_key(msg(card=Card(expiry="2812"), debtor_account=Account(name="x"))) is None


def test_tenants_do_not_share_keys() -> None:
    other = CanonicalMessage(
        MessageKind.FINANCIAL, MessageFunction.REQUEST, "beta", Identifiers("m"),
        card=Card(token=TOKEN),
    )  # fmt: skip
    assert ordering_key(other) != ordering_key(msg(card=Card(token=TOKEN)))


@given(key=st.text(min_size=1, max_size=40), shards=st.integers(1, 64))
def test_a_shard_is_in_range_and_stable(key: str, shards: int) -> None:
    shard = shard_of(key, shards)
    assert 0 <= shard < shards
    assert shard_of(key, shards) == shard


@given(key=st.text(min_size=1, max_size=40), shards=st.integers(1, 64))
def test_growing_by_one_shard_only_moves_keys_to_the_new_shard(key: str, shards: int) -> None:
    before, after = shard_of(key, shards), shard_of(key, shards + 1)
    assert after in (before, shards)


def test_keys_spread_evenly() -> None:
    counts = Counter(shard_of(f"acme/card/{i:016d}", 8) for i in range(8000))
    assert set(counts) == set(range(8))
    assert max(counts.values()) < 1.15 * min(counts.values())


def test_at_least_one_shard() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        shard_of("k", 0)


def test_the_sequencer_runs_one_key_in_submission_order_and_others_alongside() -> None:
    async def scenario() -> tuple[list[str], int]:
        sequencer = KeySequencer()
        log: list[str] = []
        running = 0
        most = 0

        async def work(name: str, pause: float) -> str:
            nonlocal running, most
            running += 1
            most = max(most, running)
            log.append(f"start {name}")
            await asyncio.sleep(pause)
            log.append(f"end {name}")
            running -= 1
            return name

        tasks = [
            sequencer.submit("a", lambda: work("a1", 0.03)),
            sequencer.submit("b", lambda: work("b1", 0.01)),
            sequencer.submit("a", lambda: work("a2", 0.0)),
            sequencer.submit(None, lambda: work("n1", 0.0)),
        ]
        assert await asyncio.gather(*tasks) == ["a1", "b1", "a2", "n1"]
        assert len(sequencer) == 0  # nothing left waiting
        return log, most

    log, most = asyncio.run(scenario())
    assert log.index("end a1") < log.index("start a2")  # one at a time, in order
    assert log.index("start b1") < log.index("end a1")  # another key alongside
    assert most >= 2


def test_work_that_failed_or_was_cancelled_does_not_hold_up_its_key() -> None:
    async def scenario() -> list[str]:
        sequencer = KeySequencer()
        done: list[str] = []

        async def fail() -> str:
            raise RuntimeError("the core is down")

        async def hang() -> str:
            await asyncio.sleep(3600)
            return "never"

        async def record(name: str) -> str:
            done.append(name)
            return name

        failed = sequencer.submit("a", fail)
        hung = sequencer.submit("a", hang)
        after = sequencer.submit("a", lambda: record("a3"))
        with pytest.raises(RuntimeError, match="the core is down"):
            await failed
        await asyncio.sleep(0)
        hung.cancel()
        assert await after == "a3"
        assert hung.cancelled()
        return done

    assert asyncio.run(scenario()) == ["a3"]
