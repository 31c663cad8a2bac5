"""Hypothesis strategies: valid field values for the core banking layouts (and their bytes)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from adapters.fixedwidth import RecordCodec

__all__ = ["reply_values", "request_values", "text"]

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -/.abcxyz"
_LONG_DIGITS = re.compile(r"\d{13}")
CURRENCIES = ("EUR", "USD", "GBP", "CHF")


def text(size: int) -> st.SearchStrategy[str]:
    """Text that fits a PIC X(size) field (no run of digits that could be a card number)."""
    return st.text(_ALPHABET, max_size=size).filter(lambda s: not _LONG_DIGITS.search(s))


def amounts(digits: int) -> st.SearchStrategy[Decimal]:
    """Decimals with two places that fit ``digits`` digits."""
    limit = 10**digits - 1
    return st.integers(-limit, limit).map(lambda n: Decimal(n).scaleb(-2))


def dates() -> st.SearchStrategy[int]:
    """YYYYMMDD as a number, or 0 (no date)."""
    real = st.dates(dt.date(1990, 1, 1), dt.date(2099, 12, 31)).map(
        lambda d: int(d.strftime("%Y%m%d"))
    )
    return st.one_of(st.just(0), real)


@st.composite
def request_values(draw: st.DrawFn, codec: RecordCodec) -> dict[str, Any]:
    """Field values of a valid CB-REQUEST record."""
    condition = draw(st.sampled_from(sorted(codec.conditions)))
    with_amount = draw(st.booleans())
    return {
        condition: True,
        "CB-POSTING-REF": draw(text(24)),
        "CB-ORIG-POSTING-REF": draw(text(24)),
        "CB-ACCOUNT-NO": draw(text(34)),
        "CB-CONTRA-ACCOUNT": draw(text(34)),
        "CB-AMOUNT": draw(amounts(15)) if with_amount else Decimal(0),
        "CB-CURRENCY": draw(st.sampled_from(CURRENCIES)) if with_amount else "",
        "CB-VALUE-DATE": draw(dates()),
        "CB-CHANNEL": draw(text(4)),
        "CB-NARRATIVE": draw(text(35)),
    }


@st.composite
def reply_values(draw: st.DrawFn) -> dict[str, Any]:
    """Field values of a valid CB-REPLY record."""
    with_amount = draw(st.booleans())
    posted = draw(
        st.one_of(
            st.just(0),
            st.datetimes(dt.datetime(1990, 1, 1), dt.datetime(2099, 12, 31)).map(
                lambda d: int(d.strftime("%Y%m%d%H%M%S"))
            ),
        )
    )
    return {
        "CB-RP-TRAN-CODE": draw(
            st.sampled_from(["BALQ", "DEBT", "CRDT", "XFER", "REVS", "HOLD", "RELS"])
        ),
        "CB-RP-POSTING-REF": draw(text(24)),
        "CB-RP-RESULT-CODE": draw(
            st.sampled_from(["", "00", "12", "13", "14", "30", "51", "62", "25", "96"])
        ),
        "CB-RP-ACCOUNT-NO": draw(text(34)),
        "CB-RP-LEDGER-BALANCE": draw(amounts(15)) if with_amount else Decimal(0),
        "CB-RP-AVAILABLE-BALANCE": draw(amounts(15)) if with_amount else Decimal(0),
        "CB-RP-CURRENCY": draw(st.sampled_from(CURRENCIES)) if with_amount else "",
        "CB-RP-POSTED-AT": posted,
        "CB-RP-REASON-TEXT": draw(text(40)),
    }
