"""Where the hub keeps its state and finds its keys: settings from flags and the environment.

=========================  ========================================  ==========================
setting                    environment variable                      default
=========================  ========================================  ==========================
state directory            ``ISOBRIDGE_HOME``                        ``$XDG_DATA_HOME/isobridge``
                                                                     (``~/.local/share/...``)
vault database             ``ISOBRIDGE_VAULT_URL``                   ``sqlite:///<home>/vault.db``
journal database           ``ISOBRIDGE_JOURNAL_URL``                 ``sqlite:///<home>/journal.db``
hub store (reversals)      ``ISOBRIDGE_STORE_URL``                   ``sqlite:///<home>/hub.db``
master keys                ``ISOBRIDGE_MASTER_KEYS`` (the keys)      the key file
master key file            ``ISOBRIDGE_KEY_FILE``                    ``<home>/master-keys.json``
token mode                 ``ISOBRIDGE_TOKEN_MODE``                  ``random`` (``ff1``, ``ff3-1``)
=========================  ========================================  ==========================

A PostgreSQL vault is ``postgresql+psycopg://user:password@host/db``. The embedded default
(SQLite and a key file in the state directory) is created on first use; anything else is
created by ``isobridge vault init``. The hub store (:mod:`hub.store`: the reversals still to
forward) is migrated by the hub as it starts, on SQLite or PostgreSQL; several hub instances
on more than one machine share it on PostgreSQL (it may be the vault's or the journal's
database: its tables and version table are its own).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vault.keys import ENV_MASTER_KEYS, EnvKeyProvider, FileKeyProvider, KeyProvider
from vault.sql import TOKEN_MODES, TokenMode

__all__ = ["Settings"]


@dataclass(frozen=True, slots=True)
class Settings:
    """The hub's state and key locations."""

    home: Path
    vault_url: str
    key_file: Path
    keys_from_environment: bool
    token_mode: TokenMode
    journal_url: str
    store_url: str

    @classmethod
    def from_environment(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        vault_url: str | None = None,
        key_file: str | None = None,
        journal_url: str | None = None,
        store_url: str | None = None,
    ) -> Settings:
        """Settings from ``environ`` (default ``os.environ``); flags win over variables."""
        env = os.environ if environ is None else environ
        home_text = env.get("ISOBRIDGE_HOME")
        if home_text:
            home = Path(home_text)
        else:
            data = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
            home = Path(data) / "isobridge"
        mode = env.get("ISOBRIDGE_TOKEN_MODE", "random")
        if mode not in TOKEN_MODES:
            raise ValueError(
                f"ISOBRIDGE_TOKEN_MODE={mode!r} is not a token mode ({', '.join(TOKEN_MODES)})"
            )
        return cls(
            home=home,
            vault_url=vault_url
            or env.get("ISOBRIDGE_VAULT_URL")
            or f"sqlite:///{home / 'vault.db'}",
            key_file=Path(key_file or env.get("ISOBRIDGE_KEY_FILE") or home / "master-keys.json"),
            keys_from_environment=bool(env.get(ENV_MASTER_KEYS)) and key_file is None,
            token_mode=mode,
            journal_url=journal_url
            or env.get("ISOBRIDGE_JOURNAL_URL")
            or f"sqlite:///{home / 'journal.db'}",
            store_url=store_url or env.get("ISOBRIDGE_STORE_URL") or f"sqlite:///{home / 'hub.db'}",
        )

    @property
    def embedded(self) -> bool:
        """Whether the vault is the default SQLite file in the state directory."""
        return self.vault_url == f"sqlite:///{self.home / 'vault.db'}"

    @property
    def journal_embedded(self) -> bool:
        """Whether the journal is the default SQLite file in the state directory."""
        return self.journal_url == f"sqlite:///{self.home / 'journal.db'}"

    @property
    def store_embedded(self) -> bool:
        """Whether the hub store is the default SQLite file in the state directory."""
        return self.store_url == f"sqlite:///{self.home / 'hub.db'}"

    def key_provider(self, environ: Mapping[str, str] | None = None) -> KeyProvider:
        """The master keys: from ``ISOBRIDGE_MASTER_KEYS`` if set, else the key file."""
        if self.keys_from_environment:
            return EnvKeyProvider(environ=os.environ if environ is None else environ)
        return FileKeyProvider(self.key_file)
