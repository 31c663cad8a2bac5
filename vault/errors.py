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

A card number in a message is masked with :func:`canonical_model.pan.mask_pan` (the first
six and last four digits, which a token shows anyway) or left out.

>>> issubclass(InvalidPanError, ValueError) and issubclass(UnknownTokenError, LookupError)
True
"""

from __future__ import annotations

__all__ = [
    "InvalidPanError",
    "TokenSpaceExhaustedError",
    "UnknownTokenError",
    "VaultError",
]


class VaultError(Exception):
    """Base of every vault error. Its text never holds a clear card number."""


class InvalidPanError(VaultError, ValueError):
    """A value handed to ``tokenize`` that is not a valid card number."""


class UnknownTokenError(VaultError, LookupError):
    """A token that this vault did not issue in the given tenant."""


class TokenSpaceExhaustedError(VaultError, RuntimeError):
    """No free token could be found for a card number within the attempt budget."""
