"""The gateway's tests read the OBIE specification from the shared collection too.

The store tests run on SQLite (a file) and PostgreSQL (a schema each, from
``ISOBRIDGE_TEST_POSTGRES_URL`` as for the vault's and the journal's tests): the
``gateway_engine`` fixture is an engine on an empty, migrated database of each kind.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from gateway.store import create_engine, upgrade
from tests.support import migrated_database

SHARED_SPECS = (
    Path(__file__).resolve().parents[3] / "shared" / "specs" / "openbanking" / "uk-obie-v4.0"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def gateway_database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, dict[str, object]]]:
    """(url, engine options) of an empty database with the gateway's tables."""
    with migrated_database(request.param, tmp_path, "gateway", create_engine, upgrade) as db:
        yield db


@pytest.fixture
def gateway_engine(gateway_database: tuple[str, dict[str, object]]) -> Iterator[Engine]:
    """An engine on :func:`gateway_database` (several may share it, like gateway processes)."""
    url, options = gateway_database
    engine = create_engine(url, **options)
    yield engine
    engine.dispose()
