"""The in-memory vault: the embedded default and the tests' vault, with the real token semantics.

:class:`InMemoryVault` satisfies the ``PanTokenizer`` and ``PanDetokenizer`` protocols of
:mod:`adapters.base` (structurally: it imports nothing from :mod:`adapters`)::

    tokenize(pan, *, tenant) -> PanToken
    detokenize(token, *, tenant, purpose) -> str

Everything lives in the process's memory and is gone when it ends: a token issued by one
process cannot be resolved by another. The persistent vault is a later issue; it keeps these
semantics (:mod:`vault.tokens`) and these errors (:mod:`vault.errors`).

Keys
----
Two HMAC keys of at least 32 bytes: the *fingerprint key* (lookup of a card number) and the
*token key* (derivation of token digits). Each is drawn with :mod:`secrets` when the vault is
built, unless it is passed in; passing both makes tokens reproducible across runs (tests).
Neither key is ever shown: not by ``repr``, not in an error.

Tokenization
------------
``tokenize(pan, tenant=t)`` validates the card number (:func:`vault.tokens.validate_pan`,
:class:`~vault.errors.InvalidPanError` otherwise), then under the vault's lock:

1. looks its fingerprint up in tenant ``t``: a card number tokenized before gets its token
   back (convergence);
2. otherwise derives candidates for attempt 0, 1, ... and issues the first one that no other
   card number holds in ``t``;
3. raises :class:`~vault.errors.TokenSpaceExhaustedError` when ``max_attempts`` (64 by
   default) candidates were all taken.

Why step 3 does not happen with a real key: the card numbers competing for the tokens of one
(tenant, length, kept digits) are at most a ninth of those tokens, and the Luhn fix-up sends
at most two derived values to one token, so a candidate is taken with probability at most
1/5; 64 independent candidates are all taken with probability below ``10 ** -44``. The bound
is there so that a broken derivation fails loudly instead of looping forever.

Threads tokenizing the same card number at once get one token: look-up and issue happen
under one lock.

Detokenization
--------------
``detokenize(token, tenant=t, purpose=p)`` answers the clear card number of a token issued in
tenant ``t``. A token unknown in ``t``, including one issued in another tenant, raises
:class:`~vault.errors.UnknownTokenError` with the masked token in its text. ``purpose`` (why
the clear number is needed, e.g. ``"encode:iso8583"``) must be non-empty.

Every call with a non-empty purpose is audited, granted or refused: :meth:`audit_log` answers
a tuple of :class:`DetokenizationRecord` (tenant, masked token, purpose, UTC time, granted),
oldest first. A record never holds a card number: the token is masked and any card number
written into the purpose is masked too. The audit trail grows with the process, like the
token tables.

``forget_tenant(t)`` deletes every token of tenant ``t`` (its audit records stay: they hold
no card data).

>>> vault = InMemoryVault(fingerprint_key=bytes(32), token_key=bytes(range(32)))
>>> token = vault.tokenize("4111111111111111", tenant="acme")
>>> token.value
'4111114314561111'
>>> vault.tokenize("4111111111111111", tenant="acme") == token
True
>>> vault.detokenize(token, tenant="acme", purpose="encode:iso8583")
'4111111111111111'
>>> vault.detokenize(token, tenant="other", purpose="encode:iso8583")
Traceback (most recent call last):
...
vault.errors.UnknownTokenError: no token 411111******1111 in tenant 'other'
>>> for record in vault.audit_log():
...     print(record.tenant, record.token_masked, record.purpose, record.granted)
acme 411111******1111 encode:iso8583 True
other 411111******1111 encode:iso8583 False
>>> vault
InMemoryVault(policy=TokenPolicy(keep_first=6, keep_last=4), tenants=1, tokens=1, audit_records=2)
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from canonical_model.pan import PanToken, find_clear_pans, mask_pan
from vault.errors import TokenSpaceExhaustedError, UnknownTokenError
from vault.tokens import (
    DEFAULT_POLICY,
    MIN_KEY_BYTES,
    HmacSha256,
    TokenPolicy,
    _derive,
    _fingerprint,
    validate_key,
    validate_pan,
    validate_tenant,
)

__all__ = ["DEFAULT_MAX_ATTEMPTS", "DetokenizationRecord", "InMemoryVault"]

DEFAULT_MAX_ATTEMPTS: Final = 64
"""Candidates tried for one card number before :class:`TokenSpaceExhaustedError`."""


@dataclass(frozen=True, slots=True)
class DetokenizationRecord:
    """One detokenization request: who (tenant), what (masked token), why, when, granted.

    Never the card number. ``at`` is timezone-aware, in UTC.
    """

    tenant: str
    token_masked: str
    purpose: str
    at: dt.datetime
    granted: bool = True


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _mask_card_numbers(text: str) -> str:
    for pan in find_clear_pans(text):
        text = text.replace(pan, mask_pan(pan))
    return text


class _TenantTokens:
    """The two tables of one tenant: fingerprint -> token, token digits -> card number."""

    __slots__ = ("by_fingerprint", "by_token")

    def __init__(self) -> None:
        self.by_fingerprint: dict[str, PanToken] = {}
        self.by_token: dict[str, str] = {}


class InMemoryVault:
    """Tokenizes card numbers per tenant and resolves tokens, audited; thread-safe.

    See the module documentation. Keys default to fresh random ones (:mod:`secrets`).
    """

    __slots__ = (
        "_audit",
        "_clock",
        "_fingerprint_key",
        "_lock",
        "_max_attempts",
        "_policy",
        "_tenants",
        "_token_key",
    )

    def __init__(
        self,
        *,
        fingerprint_key: bytes | None = None,
        token_key: bytes | None = None,
        policy: TokenPolicy = DEFAULT_POLICY,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        clock: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        if not isinstance(policy, TokenPolicy):
            raise TypeError(f"policy must be a TokenPolicy, got {type(policy).__name__}")
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int):
            raise TypeError(f"max_attempts must be an int, got {type(max_attempts).__name__}")
        if not 1 <= max_attempts <= 2**32:
            raise ValueError(f"max_attempts must be between 1 and 2**32, got {max_attempts}")
        self._fingerprint_key = HmacSha256(
            secrets.token_bytes(MIN_KEY_BYTES)
            if fingerprint_key is None
            else validate_key(fingerprint_key, "fingerprint key")
        )
        self._token_key = HmacSha256(
            secrets.token_bytes(MIN_KEY_BYTES)
            if token_key is None
            else validate_key(token_key, "token key")
        )
        self._policy = policy
        self._max_attempts = max_attempts
        self._clock = clock
        self._lock = threading.Lock()
        self._tenants: dict[str, _TenantTokens] = {}
        self._audit: list[DetokenizationRecord] = []

    @property
    def policy(self) -> TokenPolicy:
        """Which digits of a card number its tokens keep."""
        return self._policy

    @property
    def max_attempts(self) -> int:
        """Candidates tried for one card number before giving up."""
        return self._max_attempts

    def tokenize(self, pan: str, *, tenant: str) -> PanToken:
        """The token for ``pan`` in ``tenant``: the one issued before, or a new one.

        Raises :class:`~vault.errors.InvalidPanError` for an invalid card number and
        :class:`~vault.errors.TokenSpaceExhaustedError` when no free token was found.
        """
        validate_pan(pan)
        validate_tenant(tenant)
        key = _fingerprint(pan, tenant, self._fingerprint_key)
        with self._lock:
            tables = self._tenants.get(tenant)
            if tables is not None:
                issued = tables.by_fingerprint.get(key)
                if issued is not None:
                    return issued
            for attempt in range(self._max_attempts):
                candidate = self._candidate(pan, tenant, attempt)
                if tables is None or candidate.value not in tables.by_token:
                    if tables is None:
                        tables = self._tenants[tenant] = _TenantTokens()
                    tables.by_fingerprint[key] = candidate
                    tables.by_token[candidate.value] = pan
                    return candidate
        raise TokenSpaceExhaustedError(
            f"no free token for card number {mask_pan(pan)} in tenant {tenant!r}: "
            f"{self._max_attempts} candidate(s) all held by other card numbers"
        )

    def detokenize(self, token: PanToken, *, tenant: str, purpose: str) -> str:
        """The card number behind ``token`` in ``tenant``; audited, granted or refused.

        Raises :class:`~vault.errors.UnknownTokenError` for a token not issued in ``tenant``,
        ``ValueError`` for an empty ``purpose``.
        """
        if not isinstance(token, PanToken):
            raise TypeError(f"token must be a PanToken, got {type(token).__name__}")
        validate_tenant(tenant)
        if not isinstance(purpose, str):
            raise TypeError(f"purpose must be a str, got {type(purpose).__name__}")
        if not purpose.strip():
            raise ValueError("a detokenization needs a purpose (it is audited)")
        with self._lock:
            tables = self._tenants.get(tenant)
            pan = None if tables is None else tables.by_token.get(token.value)
            self._audit.append(
                DetokenizationRecord(
                    tenant=tenant,
                    token_masked=token.masked,
                    purpose=_mask_card_numbers(purpose),
                    at=self._now(),
                    granted=pan is not None,
                )
            )
        if pan is None:
            raise UnknownTokenError(f"no token {token.masked} in tenant {tenant!r}")
        return pan

    def audit_log(self, *, tenant: str | None = None) -> tuple[DetokenizationRecord, ...]:
        """Every detokenization request so far, oldest first; only ``tenant``'s if given."""
        with self._lock:
            records = tuple(self._audit)
        if tenant is None:
            return records
        return tuple(record for record in records if record.tenant == tenant)

    def forget_tenant(self, tenant: str) -> int:
        """Delete every token of ``tenant``; answer how many there were. Audit records stay."""
        validate_tenant(tenant)
        with self._lock:
            tables = self._tenants.pop(tenant, None)
        return 0 if tables is None else len(tables.by_token)

    def token_count(self, tenant: str | None = None) -> int:
        """How many tokens are issued: in ``tenant``, or in all tenants."""
        with self._lock:
            if tenant is not None:
                tables = self._tenants.get(tenant)
                return 0 if tables is None else len(tables.by_token)
            return sum(len(tables.by_token) for tables in self._tenants.values())

    def __repr__(self) -> str:
        # Counts only: never a card number, a token or a key.
        with self._lock:
            tenants = len(self._tenants)
            tokens = sum(len(tables.by_token) for tables in self._tenants.values())
            records = len(self._audit)
        return (
            f"{type(self).__name__}(policy={self._policy!r}, tenants={tenants}, "
            f"tokens={tokens}, audit_records={records})"
        )

    def _candidate(self, pan: str, tenant: str, attempt: int) -> PanToken:
        """Candidate token number ``attempt`` for ``pan`` (checked) in ``tenant``.

        :func:`vault.tokens.derive_token` under the token key; a seam for test doubles.
        """
        return _derive(pan, tenant, self._token_key, attempt, self._policy)

    def _now(self) -> dt.datetime:
        now = self._clock()
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("the vault's clock must answer a timezone-aware datetime")
        return now.astimezone(dt.UTC)
