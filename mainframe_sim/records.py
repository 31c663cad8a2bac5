"""The simulator's EBCDIC records, through the copybook codecs of :mod:`adapters.fixedwidth`.

:class:`Records` compiles the built-in core banking copybooks (``corebank_request.cpy``,
``corebank_reply.cpy``, ``corebank_statement.cpy``) for one code page (``cp037`` by default)
and converts between bytes and the field mappings / :class:`~mainframe_sim.transactions.Reply`
that :mod:`mainframe_sim.transactions` works on.

A request that does not decode is not an exception here: :meth:`Records.decode_request`
returns the ``30`` reply to send, its reason naming the field and byte offset the codec
reported (or the record length), and echoing the tran code and posting reference when those
bytes are readable.

>>> records = Records()
>>> reply = Reply("BALQ", "REF-1", "00", "DE89370400440532013000", 112345, 100000, "EUR")
>>> data = records.encode_reply(reply)
>>> len(data), data[:4].decode("cp037")
(200, 'BALQ')
>>> records.decode_reply(data) == reply
True
>>> answer = records.decode_request("DEBT".encode("cp037"))
>>> answer.tran_code, answer.result_code, answer.reason_text
('DEBT', '30', 'record length 4, expected 200')
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from adapters.fixedwidth import load_layout
from mainframe_sim.transactions import REQUEST_FIELD_OFFSETS, Reply

__all__ = ["GARBAGE_MARK_OFFSET", "Records"]

GARBAGE_MARK_OFFSET: Final = 64
"""Offset of CB-RP-LEDGER-BALANCE (COMP-3): a garbage reply has 0xFF there, never packed."""


def _minor(value: Any) -> int:
    return int(Decimal(value).scaleb(2))


class Records:
    """The core banking record codecs for one EBCDIC code page."""

    def __init__(self, codepage: str = "cp037") -> None:
        self.codepage = codepage
        self.request = load_layout("corebank_request", codepage=codepage).record("CB-REQUEST")
        self.reply = load_layout("corebank_reply", codepage=codepage).record("CB-REPLY")
        statement = load_layout("corebank_statement", codepage=codepage)
        self.statement_header = statement.record("STMT-HEADER")
        self.statement_detail = statement.record("STMT-DETAIL")
        self.statement_trailer = statement.record("STMT-TRAILER")

    @property
    def request_length(self) -> int:
        """Bytes in a CB-REQUEST (200)."""
        return int(self.request.length)

    @property
    def reply_length(self) -> int:
        """Bytes in a CB-REPLY (200)."""
        return int(self.reply.length)

    def _text(self, data: bytes, start: int, end: int) -> str:
        chunk = data[start:end].decode(self.codepage, errors="replace").strip()
        return chunk if chunk.isprintable() else ""

    def decode_request(self, data: bytes) -> dict[str, Any] | Reply:
        """The request's fields, or the ``30`` reply for a record that does not decode."""
        if len(data) != self.request_length:
            reason = f"record length {len(data)}, expected {self.request_length}"
            return self._format_error(data, reason)
        try:
            fields: dict[str, Any] = self.request.decode(data)
        except Exception as exc:  # the codec's error names field and offset
            field = getattr(exc, "field", None)
            offset = getattr(exc, "offset", None)
            if offset is None and isinstance(field, str) and field in REQUEST_FIELD_OFFSETS:
                offset = REQUEST_FIELD_OFFSETS[field]
            reason = str(getattr(exc, "reason", exc))
            where = f"{field or 'record'} @{offset}: " if offset is not None else ""
            return self._format_error(data, f"{where}{reason}"[:40])
        return fields

    def _format_error(self, data: bytes, reason: str) -> Reply:
        """The ``30`` reply to a request record, with what can be read of its tran code and
        posting reference."""
        return Reply(self._text(data, 0, 4), self._text(data, 4, 28), "30", reason_text=reason)

    def encode_request(self, fields: Mapping[str, Any]) -> bytes:
        """A CB-REQUEST record from its field values (absent fields blank or zero)."""
        return bytes(self.request.encode(fields))

    def encode_reply(self, reply: Reply) -> bytes:
        """The CB-REPLY record of ``reply``."""
        return bytes(self.reply.encode(reply.fields()))

    def decode_reply(self, data: bytes) -> Reply:
        """A :class:`Reply` from a CB-REPLY record (raises the codec's error if it is none)."""
        fields = self.reply.decode(data)
        posted = int(fields["CB-RP-POSTED-AT"])
        return Reply(
            tran_code=fields["CB-RP-TRAN-CODE"],
            posting_ref=fields["CB-RP-POSTING-REF"],
            result_code=fields["CB-RP-RESULT-CODE"],
            account_no=fields["CB-RP-ACCOUNT-NO"],
            ledger_balance=_minor(fields["CB-RP-LEDGER-BALANCE"]),
            available_balance=_minor(fields["CB-RP-AVAILABLE-BALANCE"]),
            currency=fields["CB-RP-CURRENCY"],
            posted_at=f"{posted:014d}" if posted else "",
            reason_text=fields["CB-RP-REASON-TEXT"],
        )

    def garbage_reply(self, noise: bytes) -> bytes:
        """A reply-sized record of ``noise`` that cannot decode (0xFF in a packed field)."""
        data = bytearray(noise[: self.reply_length].ljust(self.reply_length, b"\xff"))
        data[GARBAGE_MARK_OFFSET] = 0xFF
        return bytes(data)
