"""Databases for the persistent vault's tests: SQLite (a file) and PostgreSQL (a schema each).

PostgreSQL comes from ``ISOBRIDGE_TEST_POSTGRES_URL``, which ``./scripts/test`` sets after
starting the server. Without it the PostgreSQL cases are skipped on a developer's machine
and fail under CI (``CI=true``), where the test command must have provided it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.support import migrated_database
from vault.keys import EnvKeyProvider, KeyProvider
from vault.migrate import upgrade
from vault.sql import SqlVault

MASTER_KEY_1 = bytes(range(32))
MASTER_KEY_2 = bytes(range(32, 64))

VaultFactory = Callable[..., SqlVault]


def master_keys(*versions: int) -> EnvKeyProvider:
    """A provider holding test master keys of ``versions`` (1 and/or 2); the highest is current."""
    keys = {1: MASTER_KEY_1, 2: MASTER_KEY_2}
    value = EnvKeyProvider.format({v: keys[v] for v in versions or (1,)})
    return EnvKeyProvider(environ={"ISOBRIDGE_MASTER_KEYS": value})


@pytest.fixture(params=["sqlite", "postgresql"])
def database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(url, engine options) of an empty database with the vault's schema."""
    with migrated_database(request.param, tmp_path, "vault", SqlVault.create_engine, upgrade) as db:
        yield db


@pytest.fixture
def make_vault(database: tuple[str, dict[str, Any]]) -> Iterator[VaultFactory]:
    """Builds vaults on the test's database (several may share it, like processes)."""
    url, options = database
    opened: list[SqlVault] = []

    def build(keys: KeyProvider | None = None, **vault_options: Any) -> SqlVault:
        engine: Engine = SqlVault.create_engine(url, **options)
        vault = SqlVault(engine, keys or master_keys(1), **vault_options)
        opened.append(vault)
        return vault

    yield build
    for vault in opened:
        vault.close()
