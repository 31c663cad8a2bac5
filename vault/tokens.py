"""The token format: pure functions from (card number, tenant, key) to fingerprint and token.

Nothing here keeps state. A vault (:class:`vault.memory.InMemoryVault` today, a persistent
one later) stores what these functions compute. They are the token *semantics*: a vault
that uses them issues the same tokens for the same keys, whatever its storage.

Card numbers
------------
:func:`validate_pan` accepts 12 to 19 ASCII decimal digits that pass the Luhn check, and
refuses anything else with :class:`~vault.errors.InvalidPanError`. The error text shows the
card number masked (:func:`canonical_model.pan.mask_pan`) or not at all.

Tenants
-------
A tenant is a non-empty string (:func:`validate_tenant`). Tokens and fingerprints are
computed per tenant: the same card number gets independent tokens in two tenants (equal only
by chance, one in ``9 * 10 ** (m - 1)`` for ``m`` derived digits: one in 900 000 for 16
digits), and a token is resolved only in the tenant that it was issued in.

Token format
------------
A token is a :class:`canonical_model.pan.PanToken`:

- it has the card number's length;
- it keeps the card number's first ``keep_first`` and last ``keep_last`` digits
  (:class:`TokenPolicy`, 6 and 4 by default; at most 8 and 4, the most PCI DSS lets a masked
  card number show);
- its *middle* digits, those in between, are derived from an HMAC (below);
- it fails the Luhn check, always: if the derived digits happen to pass it, the last middle
  digit ``d`` becomes ``(d + 1) mod 10``. Changing one digit always changes the Luhn sum
  modulo 10, so the result fails. A token can therefore never be taken for a card number,
  and :class:`~canonical_model.pan.PanToken` refuses a value that passes Luhn.

Short card numbers. A token has at least ``MIN_MIDDLE_DIGITS`` (2) middle digits. When the
card number is too short for that (``length - keep_first - keep_last < 2``), fewer leading
digits are kept: ``kept_first = min(keep_first, length - keep_last - 2)``. The trailing
digits are never cut: with ``keep_first <= 8``, ``keep_last <= 4`` and ``length >= 12`` the
leading digits alone always make room (a policy keeping more than 6 never drops below 6
leading digits). So the default policy keeps
6 + 4 digits for every length; ``TokenPolicy(keep_first=8)`` keeps 6 + 4 of a 12-digit card
number, 7 + 4 of a 13-digit one, and 8 + 4 from 14 digits on. See :meth:`TokenPolicy.kept`.

Token space. For a given length, tenant and kept digits there are ``10 ** m`` middle values
(``m`` middle digits) of which exactly one in ten passes Luhn, so ``9 * 10 ** (m - 1)``
tokens (:meth:`TokenPolicy.token_space`). Only ``10 ** (m - 1)`` card numbers share those
kept digits (the check digit is fixed by the others): there are always nine times more
tokens than card numbers that compete for them, whatever the policy.

Fingerprint
-----------
:func:`fingerprint` is HMAC-SHA256, under the *fingerprint key*, of the tenant and the card
number, in hex. A vault looks a card number up by it (convergence: the same card number in
the same tenant gets the same token) without using the card number itself as a key.

Derivation
----------
:func:`derive_token` computes the middle digits as HMAC-SHA256, under the *token key*, of
the tenant, the card number and an *attempt* counter, read as a big-endian integer modulo
``10 ** m`` (the bias is below ``2 ** -190``). Different attempts give independent
candidates. The protocol a vault follows:

1. if the tenant already has a token for the card number's fingerprint, answer that token;
2. otherwise derive the candidate for attempt 0, 1, 2, ... and issue the first one that no
   other card number of the tenant holds (a *collision*, rare: at most one in five
   candidates can be taken, see the token space above);
3. give up with :class:`~vault.errors.TokenSpaceExhaustedError` after a fixed number of
   attempts, never loop forever.

Same keys and the same order of first tokenizations give the same tokens.

Keyed state. A vault computes an HMAC for every card number it sees (the fingerprint). The
one-shot ``hmac.digest`` makes OpenSSL 3 look the digest up and key it on every call;
:class:`HmacSha256` keys SHA-256 once (RFC 2104's inner and outer states) and copies
those states per message: the same bytes, a fraction of the work.

Domain separation. Every HMAC message is a sequence of length-prefixed fields (4-byte
big-endian length, then the bytes), the first being a label that names the use and its
version (``isobridge/vault/fingerprint/v1``, ``isobridge/vault/token/v1``). No fingerprint
message equals a token message, and no two different (tenant, card number, attempt) give
the same message, even if one key serves both uses. Keys are at least 32 bytes.

>>> key = bytes(range(32))
>>> token = derive_token("4111111111111111", "acme", key)
>>> token.value
'4111114314561111'
>>> token.value[:6], token.value[-4:], luhn_valid(token.value)
('411111', '1111', False)
>>> derive_token("4111111111111111", "acme", key) == token
True
>>> derive_token("4111111111111111", "acme", key, attempt=1).value
'4111112878021111'
>>> derive_token("4111111111111111", "other-bank", key).value
'4111114395441111'
>>> fingerprint("4111111111111111", "acme", key)[:16]
'4ddc01e5daf27660'
>>> TokenPolicy(keep_first=8).kept(13)
(7, 4)
>>> validate_pan("4111111111111112")
Traceback (most recent call last):
...
vault.errors.InvalidPanError: card number 411111******1112 fails the Luhn check
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from canonical_model.pan import PanToken, luhn_valid, mask_pan
from vault.errors import InvalidPanError

__all__ = [
    "DEFAULT_POLICY",
    "HmacSha256",
    "MAX_KEEP_FIRST",
    "MAX_KEEP_LAST",
    "MAX_PAN_LENGTH",
    "MIN_KEY_BYTES",
    "MIN_MIDDLE_DIGITS",
    "MIN_PAN_LENGTH",
    "TokenPolicy",
    "derive_token",
    "fingerprint",
    "validate_key",
    "validate_pan",
    "validate_tenant",
]

MIN_PAN_LENGTH: Final = 12
"""The shortest card number accepted (ISO/IEC 7812 allows 8, no scheme issues under 12)."""
MAX_PAN_LENGTH: Final = 19
"""The longest card number accepted (ISO/IEC 7812)."""
MIN_MIDDLE_DIGITS: Final = 2
"""The fewest derived digits a token has; kept leading digits shrink to leave room."""
MAX_KEEP_FIRST: Final = 8
"""The most leading digits a policy may keep (PCI DSS: a masked PAN shows at most BIN 8)."""
MAX_KEEP_LAST: Final = 4
"""The most trailing digits a policy may keep (PCI DSS: at most the last four)."""
MIN_KEY_BYTES: Final = 32
"""The shortest fingerprint or token key accepted, in bytes (256 bits)."""

_FINGERPRINT_LABEL: Final = b"isobridge/vault/fingerprint/v1"
_TOKEN_LABEL: Final = b"isobridge/vault/token/v1"
_MAX_ATTEMPT: Final = 2**32 - 1


def _check_keep(name: str, value: int, most: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= value <= most:
        raise ValueError(f"{name} must be between 0 and {most}, got {value}")


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    """Which digits of the card number a token keeps: the first ``keep_first``, the last
    ``keep_last`` (at most 8 and 4). Too short a card number keeps fewer leading digits."""

    keep_first: int = 6
    keep_last: int = 4

    def __post_init__(self) -> None:
        _check_keep("keep_first", self.keep_first, MAX_KEEP_FIRST)
        _check_keep("keep_last", self.keep_last, MAX_KEEP_LAST)

    def kept(self, length: int) -> tuple[int, int]:
        """(leading, trailing) digits kept in a token of ``length`` digits.

        >>> TokenPolicy().kept(12), TokenPolicy(keep_first=8).kept(12)
        ((6, 4), (6, 4))
        >>> TokenPolicy(keep_first=8).kept(16)
        (8, 4)
        """
        if isinstance(length, bool) or not isinstance(length, int):
            raise TypeError(f"length must be an int, got {type(length).__name__}")
        if not MIN_PAN_LENGTH <= length <= MAX_PAN_LENGTH:
            raise ValueError(
                f"a card number is {MIN_PAN_LENGTH}-{MAX_PAN_LENGTH} digits, got length {length}"
            )
        first = min(self.keep_first, length - self.keep_last - MIN_MIDDLE_DIGITS)
        return first, self.keep_last

    def middle_digits(self, length: int) -> int:
        """How many digits of a token of ``length`` digits are derived (at least 2)."""
        first, last = self.kept(length)
        return length - first - last

    def token_space(self, length: int) -> int:
        """How many tokens exist for one tenant, length and set of kept digits.

        >>> TokenPolicy().token_space(12), TokenPolicy().token_space(16)
        (90, 900000)
        """
        space: int = 9 * 10 ** (self.middle_digits(length) - 1)
        return space


DEFAULT_POLICY: Final = TokenPolicy()
"""First six and last four digits kept."""


def validate_pan(pan: str, *, check_luhn: bool = True) -> str:
    """``pan`` itself if it is 12-19 ASCII digits passing Luhn; else :class:`InvalidPanError`.

    ``check_luhn=False`` accepts a card number that fails the Luhn check (some private-label
    and test cards do). The error text never holds the card number: it is masked, or only
    its length is told.
    """
    if not isinstance(pan, str):
        raise TypeError(f"a card number is a str, got {type(pan).__name__}")
    if not (pan.isascii() and pan.isdigit()):
        raise InvalidPanError(
            f"a card number is {MIN_PAN_LENGTH}-{MAX_PAN_LENGTH} decimal digits; "
            f"got {len(pan)} characters, not all of them digits"
        )
    if not MIN_PAN_LENGTH <= len(pan) <= MAX_PAN_LENGTH:
        raise InvalidPanError(
            f"a card number is {MIN_PAN_LENGTH}-{MAX_PAN_LENGTH} digits, got {len(pan)} digits"
        )
    if check_luhn and not luhn_valid(pan):
        raise InvalidPanError(f"card number {mask_pan(pan)} fails the Luhn check")
    return pan


def validate_tenant(tenant: str) -> str:
    """``tenant`` itself if it is a non-empty string; else ``TypeError`` / ``ValueError``."""
    if not isinstance(tenant, str):
        raise TypeError(f"a tenant is a str, got {type(tenant).__name__}")
    if not tenant:
        raise ValueError("a tenant is a non-empty string")
    return tenant


def validate_key(key: bytes, name: str = "key") -> bytes:
    """``key`` itself if it is at least 32 bytes; else ``TypeError`` / ``ValueError``.

    The error text tells the length only, never the key.
    """
    if not isinstance(key, bytes):
        raise TypeError(f"{name} must be bytes, got {type(key).__name__}")
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"{name} must be at least {MIN_KEY_BYTES} bytes, got {len(key)}")
    return key


_SHA256_BLOCK: Final = 64
_INNER_PAD: Final = bytes(x ^ 0x36 for x in range(256))
_OUTER_PAD: Final = bytes(x ^ 0x5C for x in range(256))


class HmacSha256:
    """HMAC-SHA256 (RFC 2104, FIPS 198-1) under one key, keyed once.

    SHA-256's state after the key's inner block and after its outer block is computed here,
    and copied for each message: :meth:`digest` gives what ``hmac.digest(key, message,
    "sha256")`` gives, without keying the hash again (OpenSSL 3 also looks the digest up
    anew on each one-shot call). The object holds key material; the key itself is not
    kept.

    >>> HmacSha256(b"Jefe").digest(b"what do ya want for nothing?").hex()[:16]
    '5bdcc146bf60754e'
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes):
            raise TypeError(f"an HMAC key is bytes, got {type(key).__name__}")
        if len(key) > _SHA256_BLOCK:
            key = hashlib.sha256(key).digest()
        block = key.ljust(_SHA256_BLOCK, b"\0")
        self._inner = hashlib.sha256(block.translate(_INNER_PAD))
        self._outer = hashlib.sha256(block.translate(_OUTER_PAD))

    def __repr__(self) -> str:
        return "HmacSha256(<key>)"

    def digest(self, message: bytes) -> bytes:
        """The 32-byte HMAC-SHA256 of ``message``."""
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


def _fields(*fields: bytes) -> bytes:
    return b"".join(len(field).to_bytes(4, "big") + field for field in fields)


def _fingerprint(pan: str, tenant: str, key: HmacSha256) -> str:
    """:func:`fingerprint` without the checks, for callers that made them."""
    message = _fields(_FINGERPRINT_LABEL, tenant.encode(), pan.encode("ascii"))
    return key.digest(message).hex()


def _derive(pan: str, tenant: str, key: HmacSha256, attempt: int, policy: TokenPolicy) -> PanToken:
    """:func:`derive_token` without the checks, for callers that made them."""
    length = len(pan)
    first, last = policy.kept(length)
    middle = length - first - last
    message = _fields(
        _TOKEN_LABEL, tenant.encode(), pan.encode("ascii"), attempt.to_bytes(4, "big")
    )
    value = int.from_bytes(key.digest(message), "big") % 10**middle
    candidate = pan[:first] + str(value).zfill(middle) + pan[length - last :]
    if luhn_valid(candidate):
        # One changed digit changes the Luhn sum mod 10: the candidate now fails the check.
        at = first + middle - 1
        candidate = candidate[:at] + str((int(candidate[at]) + 1) % 10) + candidate[at + 1 :]
    return PanToken(candidate)


def fingerprint(pan: str, tenant: str, key: bytes) -> str:
    """HMAC-SHA256 under ``key`` of ``tenant`` and ``pan`` (domain-separated), hex.

    The vault's lookup key for a card number in a tenant. Raises :class:`InvalidPanError`
    for an invalid ``pan``.
    """
    return _fingerprint(
        validate_pan(pan),
        validate_tenant(tenant),
        HmacSha256(validate_key(key, "fingerprint key")),
    )


def derive_token(
    pan: str,
    tenant: str,
    key: bytes,
    *,
    attempt: int = 0,
    policy: TokenPolicy = DEFAULT_POLICY,
) -> PanToken:
    """The candidate token number ``attempt`` (0, 1, ...) for ``pan`` in ``tenant``.

    Deterministic; see the module documentation for the format and the collision protocol.
    Raises :class:`InvalidPanError` for an invalid ``pan``.
    """
    if isinstance(attempt, bool) or not isinstance(attempt, int):
        raise TypeError(f"attempt must be an int, got {type(attempt).__name__}")
    if not 0 <= attempt <= _MAX_ATTEMPT:
        raise ValueError(f"attempt must be between 0 and {_MAX_ATTEMPT}, got {attempt}")
    if not isinstance(policy, TokenPolicy):
        raise TypeError(f"policy must be a TokenPolicy, got {type(policy).__name__}")
    return _derive(
        validate_pan(pan),
        validate_tenant(tenant),
        HmacSha256(validate_key(key, "token key")),
        attempt,
        policy,
    )
