"""Transactions from the mainframe's end-of-day statement extract (main flow 4).

The extract (``python -m mainframe_sim extract``; FB, LRECL 120, cp037; layouts
``corebank_statement.cpy``, mapping ``corebank_statement.toml``) is read with the
``fixedwidth`` adapter's statement assembler, exactly as ``isobridge convert --to camt.053``
reads it: header, detail and trailer records become canonical statement messages, and the
entries of the account asked for are returned, in file order. Every file named is read
(one per business day); a file that is missing is skipped, one that is damaged is refused
with the record number (an error the gateway answers 503, never a crash).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from pathlib import Path

from adapters.fixedwidth.adapter import builtin_mapping_path
from adapters.fixedwidth.recordformat import read_records
from adapters.fixedwidth.statement import StatementAssembler, load_statement_mapping
from canonical_model.messages import StatementEntry
from canonical_model.pan import random_hex_id

__all__ = ["ExtractStatementSource", "read_extract"]

_RECORD_LENGTH = 120


def read_extract(path: Path, account: str, *, tenant: str = "statement") -> list[StatementEntry]:
    """The entries booked on ``account`` in the extract file ``path``."""
    mapping = load_statement_mapping(
        builtin_mapping_path("corebank-request").parent / "corebank_statement.toml"
    )
    book = mapping.compile()
    assembler = StatementAssembler(
        mapping,
        book,
        tenant=tenant,
        new_message_id=(random_hex_id() for _ in itertools.count()),
    )
    found: list[StatementEntry] = []
    with path.open("rb") as stream:
        for number, raw in read_records(stream, "FB", length=_RECORD_LENGTH):
            name, values = book.decode(raw, record=number)
            message = assembler.feed(name, values, record=number)
            if message is None or message.statement_entry is None or message.statement is None:
                continue
            held = message.statement.account
            if account in (held.iban, held.other_id):
                found.append(message.statement_entry)
    return found


class ExtractStatementSource:
    """:class:`gateway.ports.StatementSource` over extract files (module docstring)."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = tuple(paths)

    async def entries(self, account: str) -> Sequence[StatementEntry]:
        """Every entry of ``account`` in the files, oldest file first."""

        def read() -> list[StatementEntry]:
            entries: list[StatementEntry] = []
            for path in self.paths:
                if path.is_file():
                    entries.extend(read_extract(path, account))
            return entries

        return await asyncio.to_thread(read)
