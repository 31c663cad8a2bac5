"""Statement extracts -> canonical statement messages (what the camt.053 writer takes)."""

from __future__ import annotations

import itertools
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.fixedwidth.adapter import builtin_mapping_path
from adapters.fixedwidth.errors import RecordDecodeError
from adapters.fixedwidth.mapping import MappingError
from adapters.fixedwidth.statement import StatementAssembler, load_statement_mapping
from canonical_model.messages import MessageFunction, MessageKind
from canonical_model.money import Money
from tests.adapters.fixedwidth.samples import statement_records

MAPPING = builtin_mapping_path("corebank-request").parent / "corebank_statement.toml"


def test_statement_messages() -> None:
    mapping = load_statement_mapping(MAPPING)
    book = mapping.compile()
    decoded = [book.decode(raw) for raw in statement_records()]
    closing = mapping.closing_balances(decoded)
    assert closing == {("DE89370400440532013000", 20261129): (Decimal("924.60"), 2)}
    assembler = StatementAssembler(
        mapping, book, tenant="t", new_message_id=(f"m{i}" for i in itertools.count()),
        closing=closing,
    )  # fmt: skip
    messages = [assembler.feed(name, values) for name, values in decoded]
    header, debit, credit, trailer = messages
    assert trailer is None
    assert header is not None and header.statement is not None
    assert header.kind is MessageKind.STATEMENT
    assert header.function is MessageFunction.ADVICE
    assert header.statement.account.iban == "DE89370400440532013000"
    assert header.statement.statement_id == "DE89370400440532013000-20261129"
    assert header.statement.entry_count == 2
    assert [(b.type_code, b.amount.amount, b.credit) for b in header.statement.balances] == [
        ("OPBD", Decimal("1000.00"), True),
        ("CLBD", Decimal("924.60"), True),
    ]
    assert debit is not None and debit.statement_entry is not None
    assert debit.statement_entry.credit is False
    assert debit.statement_entry.amount == Money.of("125.40", "EUR")
    assert credit is not None and credit.statement_entry is not None
    assert credit.statement_entry.credit is True
    assert credit.statement_entry.remittance == ("SALARY",)


def test_a_detail_before_its_header() -> None:
    mapping = load_statement_mapping(MAPPING)
    book = mapping.compile()
    assembler = StatementAssembler(mapping, book, tenant="t", new_message_id=iter(["m"]))
    name, values = book.decode(statement_records()[1])
    with pytest.raises(RecordDecodeError, match="before any header"):
        assembler.feed(name, values, record=1)


def test_mapping_roles_are_checked(tmp_path: Path) -> None:
    text = MAPPING.read_text().replace('amount = "SD-AMOUNT"', 'amount = "SD-NOPE"')
    (tmp_path / "corebank_statement.cpy").write_text(
        (MAPPING.parent / "corebank_statement.cpy").read_text()
    )
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(MappingError, match="no field or condition 'SD-NOPE'"):
        load_statement_mapping(path)
