"""Create or upgrade the vault's schema with its Alembic migrations (:mod:`vault.migrations`).

>>> from sqlalchemy import create_engine, inspect
>>> engine = create_engine("sqlite://")
>>> upgrade(engine)
>>> sorted(t for t in inspect(engine).get_table_names() if t.startswith("vault_"))
['vault_alembic_version', 'vault_audit', 'vault_data_keys', 'vault_tenants', 'vault_tokens']
>>> current_revision(engine) == HEAD
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

__all__ = ["HEAD", "current_revision", "downgrade", "upgrade"]

HEAD: Final = "0002"
"""The newest revision this code knows."""

_LOCATION = Path(__file__).resolve().parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_LOCATION))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema on ``engine`` up to ``revision`` (default: the newest)."""
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema on ``engine`` down to ``revision`` (``"base"``: no vault tables)."""
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    """The schema revision on ``engine``, ``None`` if the vault was never set up there."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"version_table": "vault_alembic_version"}
        )
        return context.get_current_revision()
