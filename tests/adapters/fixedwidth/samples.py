"""Sample records of the core banking layouts, shared by the fixed-width and CLI tests."""

from __future__ import annotations

from decimal import Decimal

from adapters.fixedwidth import load_layout

__all__ = ["broken_detail", "statement_records"]

STATEMENT = load_layout("corebank_statement")
HEADER, DETAIL, TRAILER = (
    STATEMENT.record(name) for name in ("STMT-HEADER", "STMT-DETAIL", "STMT-TRAILER")
)


def statement_records() -> list[bytes]:
    return [
        HEADER.encode(
            {
                "SH-IS-HEADER": True,
                "SH-ACCOUNT-NO": "DE89370400440532013000",
                "SH-CURRENCY": "EUR",
                "SH-STATEMENT-DATE": 20261129,
                "SH-OPENING-BALANCE": Decimal("1000.00"),
                "SH-ACCOUNT-NAME": "ANNA SCHMIDT",
            }
        ),
        DETAIL.encode(
            {
                "SD-IS-DETAIL": True,
                "SD-POSTING-REF": "P-1",
                "SD-BOOKING-DATE": 20261129,
                "SD-VALUE-DATE": 20261129,
                "SD-AMOUNT": Decimal("125.40"),
                "SD-IS-DEBIT": True,
                "SD-TRAN-CODE": "DEBT",
                "SD-NARRATIVE": "POS PURCHASE",
            }
        ),
        DETAIL.encode(
            {
                "SD-IS-DETAIL": True,
                "SD-POSTING-REF": "P-2",
                "SD-BOOKING-DATE": 20261129,
                "SD-VALUE-DATE": 20261130,
                "SD-AMOUNT": Decimal("50.00"),
                "SD-IS-CREDIT": True,
                "SD-TRAN-CODE": "CRDT",
                "SD-NARRATIVE": "SALARY",
            }
        ),
        TRAILER.encode(
            {
                "ST-IS-TRAILER": True,
                "ST-ENTRY-COUNT": 2,
                "ST-TOTAL-DEBITS": Decimal("125.40"),
                "ST-TOTAL-CREDITS": Decimal("50.00"),
                "ST-CLOSING-BALANCE": Decimal("924.60"),
            }
        ),
    ]


def broken_detail() -> bytes:
    """A detail record with a digit nibble 0xA at offset 45 (inside SD-AMOUNT, offset 41)."""
    raw = bytearray(statement_records()[1])
    raw[45] = 0xAB  # a digit nibble 0xA inside SD-AMOUNT (offset 41)
    return bytes(raw)
