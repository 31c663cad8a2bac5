"""A compiled copybook: one :class:`RecordCodec` per 01 level, and which one a record uses.

``compile_copybook(source)`` parses, lays out and builds converters once; the result decodes
and encodes any number of records. A copybook with several 01 levels describes a multi-record
file (IBM: several record descriptions under one FD, implicitly redefining each other); a
*record rule* (a level-88 name per 01 level) tells which layout a record uses. When no rules
are given and every 01 level starts with a field that has exactly one level-88 condition at
the same offset and length (``SH-REC-TYPE ... 88 SH-IS-HEADER VALUE 'H'``), those conditions
are the rules.

>>> from decimal import Decimal
>>> book = load_layout("corebank_request")
>>> codec = book.record("CB-REQUEST")
>>> codec.length
200
>>> raw = codec.encode({"CB-DEBIT-POSTING": True, "CB-AMOUNT": Decimal("12.34")})
>>> values = codec.decode(raw)
>>> values["CB-TRAN-CODE"], values["CB-AMOUNT"], codec.condition("CB-DEBIT-POSTING", values)
('DEBT', Decimal('12.34'), True)
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from adapters import codepages
from adapters.fixedwidth.codec import CodecOptions, RecordCodec
from adapters.fixedwidth.errors import CopybookSyntaxError, RecordDecodeError
from adapters.fixedwidth.layout import layout_record
from adapters.fixedwidth.parser import ParsedItem, parse_entries
from adapters.fixedwidth.source import SourceFormat, tokenize
from adapters.fixedwidth.zoned import Overpunch, is_ebcdic

__all__ = [
    "CODEPAGES",
    "Copybook",
    "compile_copybook",
    "layout_names",
    "load_copybook",
    "load_layout",
]

CODEPAGES = ("cp037", "cp500", "cp1047", "cp273", "ascii")
"""The code pages a copybook can be compiled for (the EBCDIC ones and ASCII)."""


class Copybook:
    """Every 01-level record of a copybook, compiled for one code page."""

    def __init__(
        self,
        records: Mapping[str, RecordCodec],
        *,
        record_rules: Mapping[str, str] | None = None,
        source_name: str | None = None,
    ) -> None:
        self._records = dict(records)
        self.source_name = source_name
        self._rules: list[tuple[RecordCodec, str]] = []
        rules = dict(record_rules) if record_rules else self._derived_rules()
        for record_name, condition in rules.items():
            codec = self.record(record_name)
            if condition not in codec.conditions:
                raise KeyError(f"record rule for {record_name}: no condition {condition!r}")
            self._rules.append((codec, condition))
        self._byte_rules = self._compile_byte_rules()

    @property
    def records(self) -> Mapping[str, RecordCodec]:
        """The record codecs by 01-level name, in copybook order."""
        return self._records

    @property
    def record_rules(self) -> Mapping[str, str]:
        """01-level name -> the level-88 name that identifies its records."""
        return {codec.name: condition for codec, condition in self._rules}

    def record(self, name: str | None = None) -> RecordCodec:
        """The codec of 01 level ``name`` (``None``: the only one, or the first)."""
        if name is None:
            return next(iter(self._records.values()))
        codec = self._records.get(name.upper())
        if codec is None:
            known = ", ".join(self._records)
            raise KeyError(f"no record {name!r} in the copybook (records: {known})")
        return codec

    def __repr__(self) -> str:
        return f"Copybook({list(self._records)!r})"

    def _derived_rules(self) -> dict[str, str]:
        if len(self._records) < 2:
            return {}
        rules: dict[str, str] = {}
        position: tuple[int, int] | None = None
        for codec in self._records.values():
            named = [f for f in codec.fields if f.key is not None]
            if not named:
                return {}
            first = named[0]
            conditions = [c for c in codec.conditions.values() if c.field == first.key]
            if len(conditions) != 1 or first.dims:
                return {}
            if position is None:
                position = (first.offset, first.size)
            elif position != (first.offset, first.size):
                return {}
            rules[codec.name] = conditions[0].name
        return rules

    def _compile_byte_rules(self) -> list[tuple[RecordCodec, int, int, frozenset[bytes]]] | None:
        """The rules as byte comparisons, when every one tests a PIC X field for text values
        (the usual record-type byte): no decoding at all to pick a layout."""
        compiled = []
        for codec, condition in self._rules:
            spec = codec.conditions[condition]
            field = next(f for f in codec.fields if f.key == spec.field)
            if field.numeric or field.dims or field.shifted_by or field.justified_right:
                return None
            expected = set()
            for low, high in spec.values:
                if high is not None or not isinstance(low, str) or len(low) > field.size:
                    return None
                try:
                    expected.add(low.ljust(field.size).encode(codec.options.codepage))
                except UnicodeEncodeError:
                    return None
            compiled.append((codec, field.offset, field.offset + field.size, frozenset(expected)))
        return compiled

    def select(self, data: bytes, *, record: int | None = None) -> RecordCodec:
        """The layout a record uses: by the record rules, else by length, else the first."""
        if len(self._records) == 1:
            return next(iter(self._records.values()))
        if self._byte_rules:
            for codec, start, end, expected in self._byte_rules:
                if data[start:end] in expected:
                    return codec
        for codec, condition in self._rules:
            spec = codec.conditions[condition]
            field = next(f for f in codec.fields if f.key == spec.field)
            end = field.offset + field.size
            if len(data) < end:
                continue
            try:
                value = codec.decode_field(spec.field, data)
            except RecordDecodeError:
                continue
            if codec.condition(condition, {spec.field: value}):
                return codec
        if self._rules:
            codec, condition = self._rules[0]
            key = codec.conditions[condition].field
            raise RecordDecodeError(
                "no record rule matches: "
                + ", ".join(f"{c.name} needs {cond}" for c, cond in self._rules),
                record=record,
                field=key,
                offset=next(f.offset for f in codec.fields if f.key == key),
            )
        by_length = [c for c in self._records.values() if c.length == len(data)]
        if len(by_length) == 1:
            return by_length[0]
        return next(iter(self._records.values()))

    def decode(self, data: bytes, *, record: int | None = None) -> tuple[str, dict[str, Any]]:
        """(01-level name, fields) of one record of a single- or multi-record file."""
        codec = self.select(data, record=record)
        return codec.name, codec.decode(data, record=record)


def compile_copybook(
    source: str,
    *,
    codepage: str = "cp037",
    overpunch: Overpunch | None = None,
    native_byteorder: Literal["big", "little"] = "big",
    source_format: SourceFormat = "auto",
    redefines: Mapping[str, str] | None = None,
    record_rules: Mapping[str, str] | None = None,
    source_name: str | None = None,
) -> Copybook:
    """Compile copybook text into a :class:`Copybook` for ``codepage``.

    ``overpunch`` is the zoned-decimal sign convention (default: ``"ebcdic"``, which on
    ASCII means ``{A-I}J-R``; ``"ascii"`` for GnuCOBOL / Micro Focus zone-7 negatives).
    ``redefines`` maps a REDEFINES alternative to the level-88 name that selects it;
    ``record_rules`` maps a 01-level name to the level-88 name that identifies its records.
    Raises :class:`CopybookSyntaxError` with the line and column.
    """
    codepages.ensure_codecs()
    codepage = _check_codepage(codepage)
    options = CodecOptions(
        codepage=codepage,
        overpunch=overpunch or "ebcdic",
        native_byteorder=native_byteorder,
        redefines=redefines,
    )
    if overpunch == "ascii" and is_ebcdic(codepage):
        raise ValueError("the ascii overpunch convention needs the ascii code page")
    try:
        roots = parse_entries(tokenize(source, source_format))
    except CopybookSyntaxError as exc:
        raise CopybookSyntaxError(
            exc.reason, line=exc.line, column=exc.column, source=source_name
        ) from None
    if not roots:
        raise CopybookSyntaxError("the copybook describes no record", line=1, column=1)
    if redefines:
        alternatives = {name for root in roots for name in _redefining_names(root)}
        unknown = sorted(set(redefines) - alternatives)
        if unknown:
            raise ValueError(f"REDEFINES rules name no redefined area: {', '.join(unknown)}")
    records: dict[str, RecordCodec] = {}
    for root in roots:
        try:
            spec = layout_record(root)
        except CopybookSyntaxError as exc:
            raise CopybookSyntaxError(
                exc.reason, line=exc.line, column=exc.column, source=source_name
            ) from None
        if spec.name in records:
            raise CopybookSyntaxError(
                f"record {spec.name} is defined twice", line=root.line, column=root.column
            )
        records[spec.name] = RecordCodec(spec, options)
    return Copybook(records, record_rules=record_rules, source_name=source_name)


def _redefining_names(item: ParsedItem) -> set[str]:
    names: set[str] = set()
    for child in item.children:
        if child.redefines is not None:
            names.update({child.redefines, child.name or "FILLER"})
        names.update(_redefining_names(child))
    return names


def _check_codepage(codepage: str) -> str:
    name = codepage.lower().replace("_", "").replace("-", "")
    aliases = {"cp037": "cp037", "cp500": "cp500", "cp1047": "cp1047", "cp273": "cp273"}
    aliases.update({"ibm037": "cp037", "ibm500": "cp500", "ibm1047": "cp1047"})
    aliases.update({"ibm273": "cp273", "ascii": "ascii", "usascii": "ascii"})
    resolved = aliases.get(name)
    if resolved is None:
        raise ValueError(f"unsupported code page {codepage!r} (use one of {', '.join(CODEPAGES)})")
    return resolved


def load_copybook(path: str | Path, **options: Any) -> Copybook:
    """Compile the copybook file at ``path`` (options as for :func:`compile_copybook`)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    return compile_copybook(text, source_name=str(path), **options)


def layout_names() -> list[str]:
    """The built-in layouts (``adapters/fixedwidth/layouts/*.cpy``)."""
    folder = resources.files("adapters.fixedwidth") / "layouts"
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".cpy"))


def load_layout(name: str, *, codepage: str = "cp037", **options: Any) -> Copybook:
    """A built-in layout by name (``corebank_request``, ``corebank_reply``, ...)."""
    if name not in layout_names():
        raise KeyError(f"no built-in layout {name!r} (known: {', '.join(layout_names())})")
    text = (resources.files("adapters.fixedwidth") / "layouts" / f"{name}.cpy").read_text(
        encoding="utf-8"
    )
    return compile_copybook(text, codepage=codepage, source_name=f"{name}.cpy", **options)
