"""Databases for routing's inbox and outbox tests: SQLite (a file) and PostgreSQL (a schema each).

PostgreSQL comes from ``ISOBRIDGE_TEST_POSTGRES_URL`` as in ``tests/vault/conftest.py``: each
test gets a fresh schema of its own (``r_<hex>``), so it never meets the vault's tables.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from routing.store import create_engine as routing_engine
from routing.store import upgrade
from tests.vault.conftest import postgres_url

EngineFactory = Callable[[], Engine]


@pytest.fixture(params=["sqlite", "postgresql"])
def make_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EngineFactory]:
    """Builds engines on one migrated database (several may share it, like processes)."""
    engines: list[Engine] = []
    admin: Engine | None = None
    schema = f"r_{secrets.token_hex(6)}"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'routing.db'}"
        options: dict[str, object] = {}
    else:
        url = postgres_url()
        admin = create_engine(url)
        with admin.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA {schema}"))
        options = {"connect_args": {"options": f"-csearch_path={schema}"}}

    def build() -> Engine:
        engine = routing_engine(url, **options)
        engines.append(engine)
        return engine

    upgrade(build())
    try:
        yield build
    finally:
        for engine in engines:
            engine.dispose()
        if admin is not None:
            with admin.begin() as connection:
                connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()


@pytest.fixture
def engine(make_engine: EngineFactory) -> Engine:
    """One engine on the test's migrated database."""
    return make_engine()
