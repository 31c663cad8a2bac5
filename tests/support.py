"""Deterministic wiring for tests: a fixed clock, sequential message ids, a keyed vault."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import itertools
from collections.abc import Awaitable, Callable
from typing import ParamSpec

from adapters.base import Adapter, DecodeContext, EncodeContext
from vault.memory import InMemoryVault

P = ParamSpec("P")

TENANT = "test-bank"
NOW = dt.datetime(2026, 11, 28, 16, 30, tzinfo=dt.UTC)


def fixed_vault() -> InMemoryVault:
    """A vault whose keys are fixed, so its tokens are the same in every run."""
    return InMemoryVault(fingerprint_key=b"f" * 32, token_key=b"t" * 32)


def sequential_ids(prefix: str = "msg-") -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter)}"


def decode_context(vault: InMemoryVault, tenant: str = TENANT) -> DecodeContext:
    return DecodeContext(
        tenant=tenant, tokenizer=vault, now=lambda: NOW, new_message_id=sequential_ids()
    )


def encode_context(adapter: Adapter, vault: InMemoryVault, tenant: str = TENANT) -> EncodeContext:
    return EncodeContext.for_adapter(adapter, tenant, vault)


def on_event_loop(test: Callable[P, Awaitable[None]]) -> Callable[P, None]:
    """Run an ``async def`` test on a fresh event loop, within a minute."""

    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        async def bounded() -> None:
            await asyncio.wait_for(test(*args, **kwargs), 60)

        asyncio.run(bounded())

    return run
