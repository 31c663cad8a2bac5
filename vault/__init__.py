"""The tokenization vault: card numbers in, tokens out, and back only on an audited request.

The hub replaces every primary account number (PAN) by a token at the edge
(:class:`adapters.base.DecodeContext` calls ``tokenize``); only an adapter that declares
``needs_clear_pan`` gets a card number back (``detokenize``, audited). The vault is what
answers both calls, per tenant.

Token format (:mod:`vault.tokens`)
    A :class:`~canonical_model.pan.PanToken` of the card number's length that keeps its first
    6 and last 4 digits (:class:`TokenPolicy`; at most 8 and 4, fewer leading digits for a
    card number too short to leave 2 derived digits), whose other digits come from
    HMAC-SHA256 of (tenant, card number, attempt), and that fails the Luhn check on purpose.
    Tokens converge within a tenant (same card number, same token, found by an HMAC
    fingerprint) and are independent between tenants. A collision with another card number's token
    moves on to the next attempt; a bounded number of attempts, then
    :class:`TokenSpaceExhaustedError`.

Persistent vault (:mod:`vault.sql`)
    :class:`SqlVault`: the hub's vault. Tokens stored with SQLAlchemy (SQLite embedded,
    PostgreSQL by URL; schema by Alembic migrations, :mod:`vault.migrate`); each card number
    as AES-256-GCM ciphertext bound to its tenant, token and key version; a key hierarchy
    (:mod:`vault.keys`: master keys from a :class:`KeyProvider` wrap per-tenant data and
    index keys, all versioned), online rotation, retirement, master re-wrap; detokenization
    by :class:`Caller` and purpose under a :class:`DetokenizationPolicy`, audited every time;
    time to live, deletion, crypto-shredding of a tenant; format-preserving token modes
    (NIST FF1 / FF3-1, :mod:`vault.fpe`).

In-memory vault (:mod:`vault.memory`)
    :class:`InMemoryVault`: the same token semantics in dictionaries, for fast unit tests.
    Everything is lost when the process ends.

Masking (:mod:`vault.masking`)
    Display forms (first 6 / last 4, fully masked) and a logging filter that masks every
    card number in log records.

>>> vault = InMemoryVault()
>>> token = vault.tokenize("5500005555555559", tenant="acme")
>>> token.masked
'550000******5559'
>>> vault.detokenize(token, tenant="acme", purpose="doctest")
'5500005555555559'
"""

from __future__ import annotations

from vault.errors import (
    DetokenizationDeniedError,
    ExpiredTokenError,
    InvalidPanError,
    KeyProviderError,
    MissingKeyError,
    TokenSpaceExhaustedError,
    UnknownTokenError,
    VaultError,
    VaultUnavailableError,
    WrongKeyError,
)
from vault.keys import EnvKeyProvider, FileKeyProvider, KeyProvider
from vault.masking import (
    PanMaskingFilter,
    install_pan_masking,
    mask_first6_last4,
    mask_fully,
    mask_text,
)
from vault.memory import DEFAULT_MAX_ATTEMPTS, DetokenizationRecord, InMemoryVault
from vault.policy import DEFAULT_POLICY as DEFAULT_DETOKENIZATION_POLICY
from vault.policy import Caller, DetokenizationPolicy, PolicyRule, adapter_caller
from vault.sql import AuditRecord, SqlVault
from vault.tokens import (
    DEFAULT_POLICY,
    MAX_KEEP_FIRST,
    MAX_KEEP_LAST,
    MAX_PAN_LENGTH,
    MIN_KEY_BYTES,
    MIN_MIDDLE_DIGITS,
    MIN_PAN_LENGTH,
    TokenPolicy,
    derive_token,
    fingerprint,
    validate_key,
    validate_pan,
    validate_tenant,
)

__all__ = [
    "DEFAULT_DETOKENIZATION_POLICY",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_POLICY",
    "MAX_KEEP_FIRST",
    "MAX_KEEP_LAST",
    "MAX_PAN_LENGTH",
    "MIN_KEY_BYTES",
    "MIN_MIDDLE_DIGITS",
    "MIN_PAN_LENGTH",
    "AuditRecord",
    "Caller",
    "DetokenizationDeniedError",
    "DetokenizationPolicy",
    "DetokenizationRecord",
    "EnvKeyProvider",
    "ExpiredTokenError",
    "FileKeyProvider",
    "InMemoryVault",
    "InvalidPanError",
    "KeyProvider",
    "KeyProviderError",
    "MissingKeyError",
    "PanMaskingFilter",
    "PolicyRule",
    "SqlVault",
    "TokenPolicy",
    "TokenSpaceExhaustedError",
    "UnknownTokenError",
    "VaultError",
    "VaultUnavailableError",
    "WrongKeyError",
    "adapter_caller",
    "derive_token",
    "fingerprint",
    "install_pan_masking",
    "mask_first6_last4",
    "mask_fully",
    "mask_text",
    "validate_key",
    "validate_pan",
    "validate_tenant",
]
