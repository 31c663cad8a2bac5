"""Seeded account numbers and decoded requests for the simulator's tests."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from mainframe_sim.seed import SEED_ACCOUNTS

ANNA = SEED_ACCOUNTS[0].number  # EUR 1,123.45
OVERDRAFT = SEED_ACCOUNTS[1].number  # EUR 2,123.45, limit 1,000.00
JONAS = SEED_ACCOUNTS[2].number  # EUR 3,123.45
EMPTY = SEED_ACCOUNTS[11].number
CLOSED = SEED_ACCOUNTS[12].number
OLIVER = SEED_ACCOUNTS[16].number  # GBP
GBP_IS_NOT_EUR = "currency GBP is not the account's EUR"
BAD_DATE = "CB-VALUE-DATE @131: 20261345 is no date"


def request(
    tran: str,
    ref: str,
    account: str = ANNA,
    amount: str = "0",
    *,
    orig: str = "",
    contra: str = "",
    currency: str = "EUR",
    value_date: int = 0,
) -> dict[str, Any]:
    """A decoded CB-REQUEST, as the copybook codec gives it."""
    return {
        "CB-TRAN-CODE": tran, "CB-POSTING-REF": ref, "CB-ORIG-POSTING-REF": orig,
        "CB-ACCOUNT-NO": account, "CB-CONTRA-ACCOUNT": contra, "CB-AMOUNT": Decimal(amount),
        "CB-CURRENCY": currency, "CB-VALUE-DATE": value_date, "CB-CHANNEL": "TEST",
        "CB-NARRATIVE": f"{tran} {ref}",
    }  # fmt: skip
