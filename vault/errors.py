"""The vault's errors. None of their texts ever holds a clear card number.

Every error derives from :class:`VaultError` and also from the built-in exception that
callers already handle for that kind of problem:

- :class:`InvalidPanError` (a ``ValueError``): ``tokenize`` got something that is not a card
  number: not 12-19 ASCII digits, or failing the Luhn check.
- :class:`UnknownTokenError` (a ``LookupError``): ``detokenize`` got a token that the vault
  never issued *in that tenant*. A token of another tenant is refused with the same text as
  a token that does not exist at all, so the answer reveals nothing about other tenants.
- :class:`TokenSpaceExhaustedError` (a ``RuntimeError``): no free token was found within the
  vault's attempt budget. This is the vault's failure, not the card's (see
  :mod:`vault.memory` for why it does not happen with a real key).

- :class:`KeyProviderError` (a ``ValueError``): a key file or variable that is malformed.
- :class:`MissingKeyError` (a ``LookupError``): a key version that the provider does not
  hold, or a tenant whose keys were destroyed (crypto-shredded).
- :class:`WrongKeyError` (a ``ValueError``): a key that does not open what it should: a
  wrong master key, a tampered wrapped key or a tampered PAN ciphertext.
- :class:`DetokenizationDeniedError` (a ``PermissionError``): the policy does not let this
  caller see clear card numbers for this purpose. The refusal is audited.
- :class:`ExpiredTokenError` (an :class:`UnknownTokenError`): a token past its time to live.
- :class:`VaultUnavailableError` (a ``RuntimeError``): the vault's database cannot be reached
  or refused the write; adapters answer it as a system malfunction (ISO 8583: 96).

A card number in a message is masked with :func:`canonical_model.pan.mask_pan` (the first
six and last four digits, which a token shows anyway) or left out.

>>> issubclass(InvalidPanError, ValueError) and issubclass(UnknownTokenError, LookupError)
True
"""

from __future__ import annotations

__all__ = [
    "DetokenizationDeniedError",
    "ExpiredTokenError",
    "InvalidPanError",
    "KeyProviderError",
    "MissingKeyError",
    "TokenSpaceExhaustedError",
    "UnknownTokenError",
    "VaultError",
    "VaultUnavailableError",
    "WrongKeyError",
]


class VaultError(Exception):
    """Base of every vault error. Its text never holds a clear card number."""


class InvalidPanError(VaultError, ValueError):
    """A value handed to ``tokenize`` that is not a valid card number."""


class UnknownTokenError(VaultError, LookupError):
    """A token that this vault did not issue in the given tenant."""


class TokenSpaceExhaustedError(VaultError, RuntimeError):
    """No free token could be found for a card number within the attempt budget."""


class ExpiredTokenError(UnknownTokenError):
    """A token whose time to live has passed; it detokenizes no more."""


class KeyProviderError(VaultError, ValueError):
    """A key file or key variable that cannot be used as it is."""


class MissingKeyError(VaultError, LookupError):
    """A key version that is not available, or a tenant whose keys were destroyed."""


class WrongKeyError(VaultError, ValueError):
    """A key that does not open what it should: wrong key, or altered ciphertext."""


class DetokenizationDeniedError(VaultError, PermissionError):
    """The detokenization policy refuses this caller this purpose (the refusal is audited)."""


class VaultUnavailableError(VaultError, RuntimeError):
    """The vault's store cannot be reached or refused the operation."""
