"""The errors of the copybook compiler and of the record codecs.

Three kinds, each naming where the problem is:

- :class:`CopybookSyntaxError`: the copybook itself (an unsupported clause, a malformed
  PICTURE, a REDEFINES of an unknown item), with the 1-based line and column.
- :class:`RecordDecodeError`: a record that does not fit its layout (wrong length, an
  invalid packed nibble, an invalid zoned digit, undecodable text), naming the record number
  (1-based, when the record came from a file or stream), the field and the byte offset in the
  record. It is an :class:`adapters.base.AdapterDecodeError`, so its text is scrubbed of card
  numbers and never quotes the record.
- :class:`RecordEncodeError`: a value that the field cannot hold (too long, too many digits,
  more decimals than the PICTURE has), naming the field.

>>> str(RecordDecodeError("invalid packed sign nibble 0x3", field="AMT", offset=12, record=7))
'fixedwidth: cannot decode (record 7, field AMT, offset 12): invalid packed sign nibble 0x3'
>>> str(CopybookSyntaxError("unsupported clause SYNCHRONIZED", line=4, column=30))
'line 4, column 30: unsupported clause SYNCHRONIZED'
"""

from __future__ import annotations

from adapters.base import AdapterDecodeError, AdapterEncodeError, scrub

__all__ = [
    "ADAPTER_NAME",
    "CopybookSyntaxError",
    "FieldValueError",
    "RecordDecodeError",
    "RecordEncodeError",
]

ADAPTER_NAME = "fixedwidth"
"""The adapter name that every fixed-width error carries."""


class CopybookSyntaxError(ValueError):
    """A copybook the compiler cannot accept, with the 1-based line and column."""

    def __init__(self, reason: str, *, line: int, column: int, source: str | None = None) -> None:
        self.reason = reason
        self.line = line
        self.column = column
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}line {line}, column {column}: {reason}")


class FieldValueError(ValueError):
    """Raised by a converter for bytes it cannot decode; ``position`` is within the field.

    The codec turns it into a :class:`RecordDecodeError` with the field name and the offset
    in the record; converters never see either.
    """

    def __init__(self, reason: str, position: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.position = position


class RecordDecodeError(AdapterDecodeError):
    """A record that does not decode: record number, field, byte offset and the reason."""

    def __init__(
        self,
        reason: str,
        *,
        field: str | None = None,
        offset: int | None = None,
        record: int | None = None,
        layout: str | None = None,
    ) -> None:
        self.record = record
        self.layout = layout
        where = []
        if record is not None:
            where.append(f"record {record}")
        if field is not None:
            where.append(f"field {field}")
        if offset is not None:
            where.append(f"offset {offset}")
        AdapterDecodeError.__init__(self, ADAPTER_NAME, reason, field=field, offset=offset)
        location = f" ({', '.join(where)})" if where else ""
        self.args = (f"{ADAPTER_NAME}: cannot decode{location}: {scrub(reason)}",)

    def __str__(self) -> str:
        return str(self.args[0])

    def with_record(self, record: int) -> RecordDecodeError:
        """The same error, numbered as record ``record`` of a file or stream."""
        return RecordDecodeError(
            self.reason, field=self.field, offset=self.offset, record=record, layout=self.layout
        )


class RecordEncodeError(AdapterEncodeError):
    """A value that its field cannot hold, or a record that cannot be built."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(ADAPTER_NAME, reason, field=field)
