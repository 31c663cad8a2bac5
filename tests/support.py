"""Deterministic wiring for tests: a fixed clock, sequential message ids, a keyed vault."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import itertools
import os
import secrets
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, ParamSpec

import pytest
import sqlalchemy
from sqlalchemy.engine import Engine

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


POSTGRES_URL_VARIABLE = "ISOBRIDGE_TEST_POSTGRES_URL"


def postgres_url() -> str:
    """The test PostgreSQL (``./scripts/test`` starts it); skipped locally without it, a
    failure under CI."""
    url = os.environ.get(POSTGRES_URL_VARIABLE)
    if not url:
        reason = f"{POSTGRES_URL_VARIABLE} is not set (./scripts/test starts PostgreSQL)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return url


@contextlib.contextmanager
def migrated_database(
    kind: str,
    tmp_path: Path,
    name: str,
    create_engine: Callable[..., Engine],
    upgrade: Callable[[Engine], None],
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(url, engine options) of an empty database of ``kind`` (``sqlite`` or ``postgresql``)
    migrated by ``upgrade``: a file in ``tmp_path``, or a PostgreSQL schema of its own,
    dropped afterwards."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / f'{name}.db'}"
        engine = create_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url, {}
        return
    url = postgres_url()
    schema = f"{name}_t_{secrets.token_hex(6)}"
    admin = sqlalchemy.create_engine(url)
    with admin.begin() as connection:
        connection.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    options: dict[str, Any] = {"connect_args": {"options": f"-csearch_path={schema}"}}
    engine = create_engine(url, **options)
    upgrade(engine)
    engine.dispose()
    try:
        yield url, options
    finally:
        with admin.begin() as connection:
            connection.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
