"""Money: an exact decimal amount in an ISO 4217 currency.

Amounts are :class:`decimal.Decimal`, never floats, and always carry exactly the
currency's number of decimal places, so ``Money`` compares and round-trips exactly.
ISO 8583 carries minor units (field 4 ``000000001050`` with field 49 ``840`` is 10.50 USD);
ISO 20022 and open banking carry the decimal amount.

>>> from canonical_model.currency import currency
>>> m = Money.from_minor_units(1050, currency("840"))
>>> m
Money(amount=Decimal('10.50'), currency=Currency(alpha='USD', numeric='840', exponent=2))
>>> m.minor_units()
1050
>>> Money.of("5", "JPY").amount
Decimal('5')
>>> Money.of("1.005", "USD")
Traceback (most recent call last):
...
canonical_model.money.AmountError: 1.005 has more decimal places than USD allows (2)
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from canonical_model.currency import Currency, currency

__all__ = ["AmountError", "Money"]


class AmountError(ValueError):
    """An amount that its currency cannot represent exactly."""


_QUANTA: dict[int, Decimal] = {e: Decimal(1).scaleb(-e) for e in range(5)}


@dataclass(frozen=True, slots=True)
class Money:
    """An amount (may be negative for signed balances) in a currency."""

    amount: Decimal
    currency: Currency

    def __post_init__(self) -> None:
        amount = self.amount
        if not isinstance(amount, Decimal) or not amount.is_finite():
            raise AmountError(f"{amount!r} is not a finite Decimal")
        quantum = _QUANTA[self.currency.exponent]
        if amount.as_tuple().exponent != -self.currency.exponent:
            try:
                exact = amount.quantize(quantum)
            except InvalidOperation as exc:
                raise AmountError(f"{amount} is too large") from exc
            if exact != amount:
                raise AmountError(
                    f"{amount} has more decimal places than {self.currency.alpha} allows "
                    f"({self.currency.exponent})"
                )
            object.__setattr__(self, "amount", exact)

    @classmethod
    def of(cls, amount: str | Decimal | int, currency_code: str) -> Money:
        """Money from a decimal string (or Decimal / int) and a currency code."""
        try:
            value = Decimal(amount)
        except InvalidOperation as exc:
            raise AmountError(f"{amount!r} is not a decimal amount") from exc
        return cls(value, currency(currency_code))

    @classmethod
    def from_minor_units(cls, units: int, ccy: Currency) -> Money:
        """Money from an integer count of minor units (ISO 8583 field 4 style)."""
        return cls(Decimal(units).scaleb(-ccy.exponent), ccy)

    def minor_units(self) -> int:
        """The amount as an integer count of minor units."""
        return int(self.amount.scaleb(self.currency.exponent))

    def __str__(self) -> str:
        return f"{self.amount} {self.currency.alpha}"
