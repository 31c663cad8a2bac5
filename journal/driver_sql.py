"""The append's SQL as the database driver runs it: written once per dialect, run on tuples.

SQLAlchemy Core spends more Python on each row (``construct_params``, bind processors) and
on each statement (cache lookup, result metadata) than the journal spends on the rest of an
append (``bench/journal_append.py``). The few statements an append runs are therefore
written out here, once per dialect (its quoting, its placeholder style), from the tables of
:mod:`journal.schema`, and executed with :meth:`~sqlalchemy.engine.Connection.exec_driver_sql`:
still in the caller's transaction, with SQLAlchemy's events, logging and error wrapping, but
with nothing done per row beyond what :class:`DriverInsert` converts.

A value the dialect converts on its way to the driver is converted with the dialect's own
bind processor (SQLite stores a ``DateTime`` as text), so the rows are those Core writes:
``tests/journal/test_driver_sql.py`` compares the stored rows on SQLite and PostgreSQL.

>>> from sqlalchemy.dialects import sqlite
>>> from journal.schema import HEAD
>>> insert = DriverInsert.of(sqlite.dialect(), HEAD, ("id", "seq"))
>>> insert.sql
'INSERT INTO journal_head (id, seq) VALUES (?, ?)'
"""

from __future__ import annotations

import datetime as dt
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from sqlalchemy import Table
from sqlalchemy.engine import Connection, Dialect

__all__ = ["DriverInsert", "per_dialect", "placeholders", "quote"]

_T = TypeVar("_T")

# The placeholder of the n-th parameter (from 1) in each DB-API paramstyle that can take
# positional tuples ("named" cannot).
_MARKERS: Final[dict[str, Callable[[int], str]]] = {
    "qmark": lambda _: "?",
    "format": lambda _: "%s",
    "pyformat": lambda _: "%s",
    "numeric": lambda n: f":{n}",
    "numeric_dollar": lambda n: f"${n}",
}


def placeholders(dialect: Dialect, count: int, *, first: int = 1) -> list[str]:
    """The dialect's placeholders for ``count`` positional parameters, from the ``first``."""
    try:
        marker = _MARKERS[dialect.paramstyle]
    except KeyError:
        raise ValueError(
            f"the journal needs a driver taking positional parameters; {dialect.driver} "
            f"uses {dialect.paramstyle!r}"
        ) from None
    return [marker(n) for n in range(first, first + count)]


def quote(dialect: Dialect, name: str) -> str:
    """``name`` (a column, or a table without schema) as the dialect writes it."""
    return str(dialect.identifier_preparer.quote(name))


def per_dialect(build: Callable[[Dialect], _T]) -> Callable[[Dialect], _T]:
    """``build`` run once per dialect object (an engine has one), then remembered."""
    built: weakref.WeakKeyDictionary[Dialect, _T] = weakref.WeakKeyDictionary()

    def cached(dialect: Dialect) -> _T:
        try:
            return built[dialect]
        except KeyError:
            value = built[dialect] = build(dialect)
            return value

    cached.__doc__ = build.__doc__
    return cached


_SAMPLE_TIMES: Final = (
    dt.datetime(2026, 11, 29, 5, 0, 7, 123456, tzinfo=dt.UTC),
    dt.datetime(2026, 1, 2, 3, 4, 5),
    dt.datetime(999, 12, 31, 23, 59, 59, 1, tzinfo=dt.timezone(dt.timedelta(hours=2))),
)


def _faster(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``convert``, or a function giving the same values faster: SQLite's ``DateTime``
    bind processor writes ``2026-11-29 05:00:07.123456`` (the time's fields, whatever its
    zone) with a ``%`` format of seven attributes; ``isoformat`` writes the same text, the
    call in about 40% less time. Taken only where it gives ``convert``'s text for sample
    times (so no private setting of SQLAlchemy's is read)."""

    def from_isoformat(value: Any) -> Any:
        if value.__class__ is dt.datetime:
            return value.isoformat(" ", "microseconds")[:26]
        return convert(value)

    try:
        same = all(from_isoformat(at) == convert(at) for at in _SAMPLE_TIMES)
    except (TypeError, ValueError):  # not a time's processor
        same = False
    return from_isoformat if same else convert


@dataclass(frozen=True, slots=True)
class DriverInsert:
    """An ``INSERT`` of whole rows (tuples in ``columns`` order) in one dialect's SQL."""

    sql: str
    conversions: tuple[tuple[int, Callable[[Any], Any]], ...]
    """(position, the dialect's bind processor) of each column the dialect converts."""

    @classmethod
    def of(
        cls, dialect: Dialect, table: Table, columns: Sequence[str], *, suffix: str = ""
    ) -> DriverInsert:
        """The insert of ``columns`` of ``table``; ``suffix`` follows ``VALUES (...)``."""
        names = ", ".join(quote(dialect, name) for name in columns)
        values = ", ".join(placeholders(dialect, len(columns)))
        conversions = []
        for position, name in enumerate(columns):
            processor = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                conversions.append((position, _faster(processor)))
        into = dialect.identifier_preparer.format_table(table)
        # identifiers quoted by the dialect, values bound as parameters
        return cls(f"INSERT INTO {into} ({names}) VALUES ({values}){suffix}", tuple(conversions))  # noqa: S608

    def execute(self, connection: Connection, rows: Iterable[tuple[Any, ...]]) -> None:
        """Insert ``rows`` (one ``executemany``), converting what the dialect converts."""
        conversions = self.conversions
        if len(conversions) == 1:  # the events' time on SQLite: one slice, no list per row
            ((position, convert),) = conversions
            after = position + 1
            rows = [(*row[:position], convert(row[position]), *row[after:]) for row in rows]
        elif conversions:
            rows = [self._converted(row) for row in rows]
        elif not isinstance(rows, list):
            rows = list(rows)
        if rows:
            connection.exec_driver_sql(self.sql, rows)

    def _converted(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        values = list(row)
        for position, convert in self.conversions:
            values[position] = convert(values[position])
        return tuple(values)
