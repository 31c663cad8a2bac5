"""The composition root: the one place where adapters, the vault and contexts are wired.

Domain code (canonical model, adapters) knows no infrastructure; the hub builds what they
need here and hands it in. For now the hub holds the adapter registry and the tokenization
vault (the in-memory one: the embedded default until the persistent vault lands).
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.base import Adapter, DecodeContext, EncodeContext
from adapters.registry import AdapterRegistry, default_registry
from vault.memory import InMemoryVault

__all__ = ["Hub", "build_hub"]


@dataclass(frozen=True, slots=True)
class Hub:
    """The wired parts of one hub process."""

    registry: AdapterRegistry
    vault: InMemoryVault

    def decode_context(self, tenant: str) -> DecodeContext:
        """A decode context for ``tenant``, tokenizing through the hub's vault."""
        return DecodeContext(tenant=tenant, tokenizer=self.vault)

    def encode_context(self, adapter: Adapter, tenant: str) -> EncodeContext:
        """An encode context for ``adapter``: detokenization only if it declared the need."""
        return EncodeContext.for_adapter(adapter, tenant, self.vault)


def build_hub(registry: AdapterRegistry | None = None, vault: InMemoryVault | None = None) -> Hub:
    """Wire a hub with the embedded defaults."""
    return Hub(registry=registry or default_registry(), vault=vault or InMemoryVault())
