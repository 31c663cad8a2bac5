"""The composition root: the one place where adapters, the vault and contexts are wired.

Domain code (canonical model, adapters) knows no infrastructure; the hub builds what they
need here and hands it in. The hub holds the adapter registry and the tokenization vault:
the persistent :class:`~vault.sql.SqlVault` (SQLite by default, PostgreSQL by URL), or an
:class:`~vault.memory.InMemoryVault` for fast tests. Each adapter that declares
``needs_clear_pan`` detokenizes as caller ``adapter:<name>`` under the vault's policy.
The event journal (:func:`open_journal`) gets the vault's master key provider: one set of
master keys wraps the journal's tenant keys and derives its checkpoint signing key.
With :class:`~observability.metrics.HubMetrics`, the adapters the hub hands out
(:meth:`Hub.adapter`) and the vault calls of its contexts are counted and timed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TextIO

from adapters.base import Adapter, DecodeContext, EncodeContext, PanDetokenizer, PanTokenizer
from adapters.registry import AdapterRegistry, default_registry
from canonical_model.pan import time_ordered_hex_id
from hub.config import Settings
from journal.store import Journal
from observability.metrics import HubMetrics
from vault.keys import FileKeyProvider
from vault.memory import InMemoryVault
from vault.policy import adapter_caller
from vault.sql import SqlVault

__all__ = ["Hub", "build_hub", "open_journal", "open_vault"]

Vault = SqlVault | InMemoryVault


@dataclass(frozen=True, slots=True)
class Hub:
    """The wired parts of one hub process."""

    registry: AdapterRegistry
    vault: Vault
    metrics: HubMetrics | None = None

    def adapter(self, spec: str) -> Adapter:
        """The adapter ``spec`` names (``iso8583:ascii``), instrumented if metrics are on."""
        adapter = self.registry.get(spec)
        return self.metrics.instrument_adapter(adapter) if self.metrics is not None else adapter

    def decode_context(self, tenant: str) -> DecodeContext:
        """A decode context for ``tenant``, tokenizing through the hub's vault. The
        messages it decodes get time-ordered ids, which key their journal's indexes
        (:func:`canonical_model.pan.time_ordered_hex_id`)."""
        tokenizer: PanTokenizer = self.vault
        if self.metrics is not None:
            tokenizer = self.metrics.tokenizer(tokenizer)
        return DecodeContext(tenant=tenant, tokenizer=tokenizer, new_message_id=time_ordered_hex_id)

    def encode_context(self, adapter: Adapter, tenant: str) -> EncodeContext:
        """An encode context for ``adapter``: detokenization only if it declared the need,
        as caller ``adapter:<name>``."""
        detokenizer: PanDetokenizer = (
            self.vault.for_caller(adapter_caller(adapter.name))
            if isinstance(self.vault, SqlVault)
            else self.vault
        )
        if self.metrics is not None:
            detokenizer = self.metrics.detokenizer(detokenizer)
        return EncodeContext.for_adapter(adapter, tenant, detokenizer)


def open_vault(
    settings: Settings, *, create: bool = False, notes: TextIO | None = None
) -> SqlVault:
    """The vault ``settings`` name. ``create`` sets it up (``isobridge vault init``).

    The embedded default (SQLite and a key file in the state directory) is set up on first
    use, with a note on ``notes`` (stderr): a first ``isobridge translate`` just works.
    """
    notes = notes or sys.stderr
    first_use = (
        settings.embedded
        and not settings.keys_from_environment
        and not settings.key_file.exists()
        and not (settings.home / "vault.db").exists()
    )
    wants_keys = (create or first_use) and not settings.keys_from_environment
    if wants_keys and not settings.key_file.exists():
        settings.home.mkdir(parents=True, exist_ok=True)
        FileKeyProvider.create(settings.key_file)
        notes.write(f"isobridge: created master key file {settings.key_file}\n")
    if settings.embedded:
        settings.home.mkdir(parents=True, exist_ok=True)
    vault = SqlVault.open(
        settings.vault_url,
        settings.key_provider(),
        create=create or first_use,
        mode=settings.token_mode,
    )
    if first_use:
        notes.write(f"isobridge: created vault {settings.vault_url}\n")
    return vault


def open_journal(
    settings: Settings, *, create: bool = False, notes: TextIO | None = None
) -> Journal:
    """The journal ``settings`` name, keyed by the vault's master keys.

    ``create`` sets it up (``isobridge journal init``): the key file if the keys do not
    come from the environment, then the schema. The embedded default is set up on first use.
    """
    notes = notes or sys.stderr
    first_use = settings.journal_embedded and not (settings.home / "journal.db").exists()
    wants_keys = (create or first_use) and not settings.keys_from_environment
    if wants_keys and not settings.key_file.exists():
        settings.home.mkdir(parents=True, exist_ok=True)
        FileKeyProvider.create(settings.key_file)
        notes.write(f"isobridge: created master key file {settings.key_file}\n")
    if settings.journal_embedded:
        settings.home.mkdir(parents=True, exist_ok=True)
    journal = Journal.open(
        settings.journal_url, settings.key_provider(), create=create or first_use
    )
    if first_use and not create:
        notes.write(f"isobridge: created journal {settings.journal_url}\n")
    return journal


def build_hub(
    registry: AdapterRegistry | None = None,
    vault: Vault | None = None,
    metrics: HubMetrics | None = None,
) -> Hub:
    """Wire a hub: the given parts, else the registry and the vault the settings name."""
    if vault is None:
        vault = open_vault(Settings.from_environment())
    return Hub(registry=registry or default_registry(), vault=vault, metrics=metrics)
