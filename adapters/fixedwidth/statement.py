"""Statement extract files (header / detail / trailer records) -> canonical statement messages.

A mainframe end-of-day extract holds, per account, one header record, one detail record per
posting and one trailer record (the shipped ``corebank_statement.cpy``). A *statement
mapping* (TOML, like the record mappings of :mod:`adapters.fixedwidth.mapping`) names the
three 01 levels and the field playing each role::

    [statement]
    copybook = "corebank_statement.cpy"
    header = "STMT-HEADER"
    entry = "STMT-DETAIL"
    trailer = "STMT-TRAILER"

    [statement.fields]
    account = "SH-ACCOUNT-NO"          # header: account id (an IBAN when it is one)
    currency = "SH-CURRENCY"
    statement_date = "SH-STATEMENT-DATE"
    opening_balance = "SH-OPENING-BALANCE"
    account_name = "SH-ACCOUNT-NAME"   # optional
    reference = "SD-POSTING-REF"       # entry: account servicer reference
    booking_date = "SD-BOOKING-DATE"
    value_date = "SD-VALUE-DATE"
    amount = "SD-AMOUNT"
    credit_condition = "SD-IS-CREDIT"  # a level-88 name: true for credits
    transaction_code = "SD-TRAN-CODE"  # optional: bank transaction code (proprietary)
    narrative = "SD-NARRATIVE"         # optional: remittance information
    entry_count = "ST-ENTRY-COUNT"     # trailer
    closing_balance = "ST-CLOSING-BALANCE"

The result is the stream of canonical messages that
:func:`adapters.iso20022.camt053.write_statement` writes (kind ``STATEMENT``, function
``ADVICE``; a header message, then one message per entry): balances ``OPBD`` from the header
and, when the trailer is known in advance (:meth:`StatementMapping.closing_balances`, a first
pass over the file that keeps one balance and count per account), ``CLBD`` and the entry
count. Amounts are written as absolute values with their credit / debit indicator. The
statement id is ``<account>-<statement date>`` (the account's last 26 characters).
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from adapters.fixedwidth.copybook import Copybook, compile_copybook
from adapters.fixedwidth.errors import RecordDecodeError
from adapters.fixedwidth.mapping import MappingError
from canonical_model.messages import (
    Account,
    Balance,
    CanonicalMessage,
    Identifiers,
    MessageFunction,
    MessageKind,
    Statement,
    StatementEntry,
)
from canonical_model.money import Money

__all__ = ["StatementAssembler", "StatementMapping", "load_statement_mapping"]

_REQUIRED: Final = (
    "account",
    "currency",
    "statement_date",
    "opening_balance",
    "reference",
    "booking_date",
    "value_date",
    "amount",
    "credit_condition",
    "entry_count",
    "closing_balance",
)
_OPTIONAL: Final = ("account_name", "transaction_code", "narrative")


@dataclass(frozen=True, slots=True)
class StatementMapping:
    """A loaded statement mapping: the three record names and the role -> field table."""

    copybook: Path
    codepage: str
    header: str
    entry: str
    trailer: str
    fields: Mapping[str, str]
    source: str

    def compile(self, *, codepage: str | None = None) -> Copybook:
        """The copybook, compiled (``codepage`` overrides the mapping's)."""
        return compile_copybook(
            self.copybook.read_text(encoding="utf-8"),
            codepage=codepage or self.codepage,
            source_name=self.copybook.name,
        )

    def closing_balances(
        self, records: Iterable[tuple[str, Mapping[str, Any]]]
    ) -> dict[tuple[str, int], tuple[Decimal, int]]:
        """(account, statement date) -> (closing balance, entry count) from the trailers,
        read in a first pass over the file."""
        closing: dict[tuple[str, int], tuple[Decimal, int]] = {}
        current: tuple[str, int] | None = None
        for name, values in records:
            if name == self.header:
                current = (values[self.fields["account"]], values[self.fields["statement_date"]])
            elif name == self.trailer and current is not None:
                closing[current] = (
                    values[self.fields["closing_balance"]],
                    values[self.fields["entry_count"]],
                )
        return closing


def load_statement_mapping(path: str | Path) -> StatementMapping:
    """Read and check a statement mapping file."""
    path = Path(path)
    source = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"not valid TOML: {exc}", source=source) from None
    section = data.get("statement")
    if not isinstance(section, dict):
        raise MappingError("a statement mapping needs a [statement] table", source=source)
    fields = section.get("fields", {})
    for role in _REQUIRED:
        if role not in fields:
            raise MappingError(f"missing role {role!r}", source=source, key="statement.fields")
    for role in fields:
        if role not in _REQUIRED + _OPTIONAL:
            raise MappingError(f"unknown role {role!r}", source=source, key="statement.fields")
    mapping = StatementMapping(
        copybook=path.parent / str(section.get("copybook", "")),
        codepage=str(section.get("codepage", "cp037")),
        header=str(section.get("header", "")),
        entry=str(section.get("entry", "")),
        trailer=str(section.get("trailer", "")),
        fields=dict(fields),
        source=source,
    )
    book = mapping.compile()
    for role_record in ("header", "entry", "trailer"):
        name = getattr(mapping, role_record)
        if name not in book.records:
            raise MappingError(
                f"no record {name!r} in {mapping.copybook.name}",
                source=source,
                key=f"statement.{role_record}",
            )
    known = {k for codec in book.records.values() for k in codec.keys}
    conditions = {c for codec in book.records.values() for c in codec.conditions}
    for role, name in fields.items():
        pool = conditions if role == "credit_condition" else known
        if name not in pool:
            raise MappingError(
                f"no field or condition {name!r}", source=source, key=f"statement.fields.{role}"
            )
    return mapping


def _date(value: int) -> dt.date | None:
    if not value:
        return None
    text = f"{value:08d}"
    return dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))


class StatementAssembler:
    """Turns decoded records (in file order) into canonical statement messages."""

    def __init__(
        self,
        mapping: StatementMapping,
        book: Copybook,
        *,
        tenant: str,
        new_message_id: Iterator[str],
        closing: Mapping[tuple[str, int], tuple[Decimal, int]] | None = None,
    ) -> None:
        self.mapping = mapping
        self.book = book
        self.tenant = tenant
        self.ids = new_message_id
        self.closing = closing or {}
        self._statement: Statement | None = None
        self._currency = ""

    def _message(self, **kwargs: Any) -> CanonicalMessage:
        return CanonicalMessage(
            kind=MessageKind.STATEMENT,
            function=MessageFunction.ADVICE,
            tenant=self.tenant,
            ids=Identifiers(message_id=next(self.ids)),
            **kwargs,
        )

    def feed(
        self, name: str, values: Mapping[str, Any], *, record: int | None = None
    ) -> CanonicalMessage | None:
        """The canonical message for one record (``None`` for a trailer)."""
        try:
            if name == self.mapping.header:
                return self._header(values, record)
            if name == self.mapping.entry:
                return self._entry(values, record)
            if name == self.mapping.trailer:
                self._statement = None
                return None
        except ValueError as exc:
            raise RecordDecodeError(str(exc), record=record, layout=name) from None
        raise RecordDecodeError(f"record {name} has no role in the statement", record=record)

    def _header(self, values: Mapping[str, Any], record: int | None) -> CanonicalMessage:
        f = self.mapping.fields
        account_id = values[f["account"]]
        currency = values[f["currency"]]
        date_value = values[f["statement_date"]]
        date = _date(date_value)
        opening = Money.of(values[f["opening_balance"]], currency)
        balances = [
            Balance("OPBD", Money(abs(opening.amount), opening.currency), opening.amount >= 0, date)
        ]
        trailer = self.closing.get((account_id, date_value))
        entry_count = None
        if trailer is not None:
            closing, entry_count = trailer
            amount = Money.of(closing, currency)
            balances.append(
                Balance(
                    "CLBD", Money(abs(amount.amount), amount.currency), amount.amount >= 0, date
                )
            )
        name = values.get(f["account_name"]) if "account_name" in f else None
        iban = account_id if _looks_like_iban(account_id) else None
        account = Account(
            iban=iban,
            other_id=None if iban else account_id,
            name=name or None,
            currency=currency,
        )
        created = dt.datetime.combine(date, dt.time(), tzinfo=dt.UTC) if date is not None else None
        self._statement = Statement(
            # ISO 20022 Max35Text: the account's last 26 characters and the date
            statement_id=f"{account_id[-26:]}-{date_value:08d}",
            account=account,
            created_at=created,
            balances=tuple(balances),
            entry_count=entry_count,
        )
        self._currency = currency
        return self._message(statement=self._statement)

    def _entry(self, values: Mapping[str, Any], record: int | None) -> CanonicalMessage:
        if self._statement is None:
            raise RecordDecodeError("a detail record before any header", record=record)
        f = self.mapping.fields
        codec = self.book.record(self.mapping.entry)
        amount = Money.of(values[f["amount"]], self._currency)
        narrative = values.get(f["narrative"], "") if "narrative" in f else ""
        code = values.get(f["transaction_code"], "") if "transaction_code" in f else ""
        entry = StatementEntry(
            amount=Money(abs(amount.amount), amount.currency),
            credit=codec.condition(f["credit_condition"], values),
            booking_date=_date(values[f["booking_date"]]),
            value_date=_date(values[f["value_date"]]),
            account_servicer_reference=values[f["reference"]] or None,
            bank_transaction_code=code or None,
            remittance=(narrative,) if narrative else (),
        )
        header = Statement(self._statement.statement_id, self._statement.account)
        return self._message(amount=entry.amount, statement=header, statement_entry=entry)


def _looks_like_iban(text: str) -> bool:
    compact = text.replace(" ", "")
    if not compact.isascii() or not compact.isalnum():
        return False
    if not (15 <= len(compact) <= 34 and compact[:2].isalpha() and compact[2:4].isdigit()):
        return False
    digits = "".join(str(int(c, 36)) for c in compact[4:] + compact[:4])
    return int(digits) % 97 == 1
