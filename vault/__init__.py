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

In-memory vault (:mod:`vault.memory`), built now
    :class:`InMemoryVault`: the embedded default of the hub and the vault of the tests.
    Thread-safe, keys drawn with :mod:`secrets` (or passed in), tokens kept in dictionaries,
    every detokenization audited as a :class:`DetokenizationRecord` (never the card number),
    ``forget_tenant`` to drop a tenant's tokens. Everything is lost when the process ends.

Not built yet (a later issue)
    A persistent vault: tokens stored with SQLAlchemy, card numbers encrypted with AES-256-GCM
    under per-record data keys wrapped by a key-encryption key (envelope encryption), and
    format-preserving encryption (NIST FF1 / FF3-1) as an alternative token scheme. None of
    it exists in this package today; the token semantics and errors here are the ones it
    will keep, so callers will not change.

Errors (:mod:`vault.errors`): :class:`InvalidPanError` (a ``ValueError``),
:class:`UnknownTokenError` (a ``LookupError``), :class:`TokenSpaceExhaustedError`
(a ``RuntimeError``), all :class:`VaultError`; their texts never hold a card number.

>>> vault = InMemoryVault()
>>> token = vault.tokenize("5500005555555559", tenant="acme")
>>> token.masked
'550000******5559'
>>> vault.detokenize(token, tenant="acme", purpose="doctest")
'5500005555555559'
"""

from __future__ import annotations

from vault.errors import (
    InvalidPanError,
    TokenSpaceExhaustedError,
    UnknownTokenError,
    VaultError,
)
from vault.memory import DEFAULT_MAX_ATTEMPTS, DetokenizationRecord, InMemoryVault
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
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_POLICY",
    "MAX_KEEP_FIRST",
    "MAX_KEEP_LAST",
    "MAX_PAN_LENGTH",
    "MIN_KEY_BYTES",
    "MIN_MIDDLE_DIGITS",
    "MIN_PAN_LENGTH",
    "DetokenizationRecord",
    "InMemoryVault",
    "InvalidPanError",
    "TokenPolicy",
    "TokenSpaceExhaustedError",
    "UnknownTokenError",
    "VaultError",
    "derive_token",
    "fingerprint",
    "validate_key",
    "validate_pan",
    "validate_tenant",
]
