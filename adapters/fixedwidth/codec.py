"""The compiled record codec: a :class:`RecordSpec` plus converters built once per field.

Decoding gives a flat ``dict`` keyed by elementary item name (FILLER omitted): PIC X as
``str`` with the padding trimmed, numerics without decimals as ``int``, with ``V`` as
:class:`decimal.Decimal`, items under OCCURS as lists (nested for nested tables). For a
layout of fixed size the decoder is one generated function (a dict display calling one
converter per field), so the per-record work is slicing and converting, nothing else; a
record that fails is decoded again field by field to name the field and offset.

Encoding takes such a mapping; a field that is missing gets its VALUE clause, else spaces
(alphanumeric) or zero (numeric). A level-88 name mapped to ``True`` sets its field to the
condition's first value. Unknown names are refused, values that do not fit are refused
(never truncated or rounded), so ``encode(decode(b)) == b`` for every record written with the
preferred signs.

REDEFINES (IBM Enterprise COBOL Language Reference, "REDEFINES clause"): one area, several
layouts. Decoding uses, per area, the first alternative whose *rule* holds (a rule is a
level-88 name, given as ``redefines={"ALT-NAME": "CONDITION-88"}``), else the redefined item
(the first alternative). Encoding uses the alternative whose fields the values name, else the
one that the rules select on the values, else the first.

OCCURS DEPENDING ON: the count is read from the DEPENDING ON item (which must lie before the
table), checked against the table's bounds, and the items after the table move; the record is
then shorter than :attr:`RecordCodec.length` (:attr:`RecordCodec.min_length` at the least).
When encoding, the count is the DEPENDING ON value if given, else the length of the lists
given for the table's fields.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Literal

from adapters.fixedwidth.alphanumeric import (
    alphanumeric_decoder,
    alphanumeric_encoder,
    text_decoder,
)
from adapters.fixedwidth.binary import binary_decoder, binary_encoder
from adapters.fixedwidth.errors import (
    CopybookSyntaxError,
    FieldValueError,
    RecordDecodeError,
    RecordEncodeError,
)
from adapters.fixedwidth.packed import packed_decoder, packed_encoder
from adapters.fixedwidth.parser import Figurative, Literal_
from adapters.fixedwidth.spec import ConditionSpec, FieldSpec, RecordSpec, Storage
from adapters.fixedwidth.zoned import (
    Overpunch,
    _sign_bytes,
    separate_sign_decoder,
    separate_sign_encoder,
    zoned_decoder,
    zoned_encoder,
)

__all__ = ["CodecOptions", "RecordCodec"]

Decoder = Callable[[bytes], Any]
Encoder = Callable[[Any], bytes]

_Selection = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class CodecOptions:
    """How values are stored: code page, zoned sign convention, COMP-5 byte order, rules."""

    codepage: str = "cp037"
    overpunch: Overpunch = "ebcdic"
    native_byteorder: Literal["big", "little"] = "big"
    redefines: Mapping[str, str] | None = None


def _converters(f: FieldSpec, options: CodecOptions) -> tuple[Decoder, Encoder]:
    cp = options.codepage
    if f.storage is Storage.ALPHANUMERIC:
        return (
            alphanumeric_decoder(codepage=cp, justified_right=f.justified_right),
            alphanumeric_encoder(size=f.size, codepage=cp, justified_right=f.justified_right),
        )
    numeric = {"digits": f.digits, "scale": f.scale}
    if f.storage is Storage.PACKED:
        return (
            packed_decoder(signed=f.signed, **numeric),
            packed_encoder(signed=f.signed, **numeric),
        )
    if f.storage in (Storage.BINARY, Storage.NATIVE_BINARY):
        native = f.storage is Storage.NATIVE_BINARY
        order: Literal["big", "little"] = options.native_byteorder if native else "big"
        return (
            binary_decoder(signed=f.signed, byteorder=order, **numeric),
            binary_encoder(signed=f.signed, native=native, byteorder=order, **numeric),
        )
    if f.storage is Storage.SEPARATE_SIGN:
        return (
            separate_sign_decoder(leading=f.sign_leading, codepage=cp, **numeric),
            separate_sign_encoder(leading=f.sign_leading, codepage=cp, **numeric),
        )
    return (
        zoned_decoder(
            signed=f.signed,
            codepage=cp,
            leading=f.sign_leading,
            overpunch=options.overpunch,
            **numeric,
        ),
        zoned_encoder(
            signed=f.signed,
            codepage=cp,
            leading=f.sign_leading,
            overpunch=options.overpunch,
            **numeric,
        ),
    )


def literal_bytes(value: Literal_, size: int, codepage: str, *, numeric: bool) -> bytes | None:
    """The bytes a figurative constant / text literal fills ``size`` bytes with, or None
    when the literal is a number (converted by the field's encoder instead).

    ValueError for a text literal longer than the item, one the code page cannot encode, a
    text literal for a numeric item, or ``ALL ''``.
    """
    if isinstance(value, Figurative):
        if value.name == "ALL" and value.text is not None:
            pattern = _encode_literal(value.text, codepage)
            if not pattern:
                raise ValueError("ALL needs a non-empty literal")
        elif value.name == "HIGH-VALUE":
            pattern = b"\xff"
        elif value.name == "LOW-VALUE":
            pattern = b"\x00"
        elif value.name == "QUOTE":
            pattern = _encode_literal('"', codepage)
        elif value.name == "SPACE":
            pattern = _encode_literal(" ", codepage)
        else:
            if numeric:
                return None
            pattern = _encode_literal("0", codepage)
        return (pattern * (size // len(pattern) + 1))[:size]
    if isinstance(value, Decimal):
        if not numeric:
            raise ValueError("a numeric literal for an alphanumeric item")
        return None
    if numeric:
        raise ValueError("a text literal for a numeric item")
    raw = value if isinstance(value, bytes) else _encode_literal(value, codepage)
    if len(raw) > size:
        raise ValueError(f"a literal of {len(raw)} characters for an item of {size}")
    return raw + _encode_literal(" ", codepage) * (size - len(raw))


def _encode_literal(text: str, codepage: str) -> bytes:
    try:
        return text.encode(codepage)
    except UnicodeEncodeError as exc:
        raise ValueError(f"{text[exc.start]!r} has no {codepage} byte") from None


@dataclass(frozen=True, slots=True)
class _Field:
    spec: FieldSpec
    decode: Decoder
    encode: Encoder
    default: bytes


def _occurrences(dims_counts: list[tuple[int, int]], base: int) -> Iterable[int]:
    """Every occurrence's offset for (count, stride) dimensions, outermost first."""
    if not dims_counts:
        yield base
        return
    (count, stride), rest = dims_counts[0], dims_counts[1:]
    for index in range(count):
        yield from _occurrences(rest, base + index * stride)


class RecordCodec:
    """Decode and encode one record layout (one 01 level of a copybook)."""

    def __init__(self, spec: RecordSpec, options: CodecOptions | None = None) -> None:
        self.spec = spec
        self.options = options or CodecOptions()
        self._fields: list[_Field] = []
        for f in spec.fields:
            decode, encode = _converters(f, self.options)
            self._fields.append(_Field(f, decode, encode, self._default_bytes(f, encode)))
        for group in spec.groups:
            if group.value is not None:
                try:
                    literal_bytes(group.value, group.size, self.options.codepage, numeric=False)
                except ValueError as exc:
                    raise CopybookSyntaxError(
                        f"VALUE of {group.name or 'FILLER'}: {exc}",
                        line=group.line,
                        column=group.column,
                    ) from None
        self._by_key: dict[str, _Field] = {
            fld.spec.key: fld for fld in self._fields if fld.spec.key is not None
        }
        self._conditions: dict[str, ConditionSpec] = {c.name: c for c in spec.conditions}
        self._ranges: dict[str, tuple[tuple[Any, Any], ...]] = {}
        for condition in spec.conditions:
            field = self._by_key[condition.field]
            try:
                self._ranges[condition.name] = tuple(
                    (
                        _literal_value(low, field, self.options.codepage),
                        None
                        if high is None
                        else _literal_value(high, field, self.options.codepage),
                    )
                    for low, high in condition.values
                )
            except ValueError as exc:
                raise CopybookSyntaxError(
                    f"VALUE of {condition.name}: {exc}",
                    line=condition.line,
                    column=condition.column,
                ) from None
        self._rules = self._compile_rules(self.options.redefines or {})
        self._decoders: dict[_Selection, Callable[[bytes], dict[str, Any]]] = {}
        self._templates: dict[_Selection, bytes] = {}
        self._keys: tuple[str, ...] = tuple(self._by_key)
        # fixed layout, no REDEFINES rules: one generated decoder, no per-record choices
        self._fast: Callable[[bytes], dict[str, Any]] | None = None
        self._fast_length = spec.length
        # ... and for encoding, each plain item's slice and encoder (OCCURS tables go the
        # general way)
        self._fast_slots: dict[str, tuple[int, int, Encoder]] | None = None
        # ... and, where the code page allows, one generated encoder for values naming those
        # items only
        self._fast_encode: Callable[[Mapping[str, Any]], bytes] | None = None
        self._slot_keys: frozenset[str] = frozenset()
        if not spec.odos and not spec.redefines:
            self._fast = self._decoders[()] = self._generate_decoder(())
            self._fast_slots = {
                key: (fld.spec.offset, fld.spec.offset + fld.spec.size, fld.encode)
                for key, fld in self._by_key.items()
                if not fld.spec.dims
            }
            self._slot_keys = frozenset(self._fast_slots)
            self._fast_encode = self._generate_encoder()

    # -- description -------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The 01-level name."""
        return self.spec.name

    @property
    def length(self) -> int:
        """The record length in bytes (the maximum, with OCCURS DEPENDING ON)."""
        return self.spec.length

    @property
    def min_length(self) -> int:
        """The shortest valid record (every DEPENDING ON table at its minimum)."""
        return self.spec.min_length

    @property
    def fields(self) -> tuple[FieldSpec, ...]:
        """Every elementary item, FILLER included, in layout order."""
        return self.spec.fields

    @property
    def keys(self) -> tuple[str, ...]:
        """The names a decoded record may hold, in layout order."""
        return self._keys

    @property
    def conditions(self) -> Mapping[str, ConditionSpec]:
        """The level-88 condition names of this record."""
        return self._conditions

    def __repr__(self) -> str:
        return f"RecordCodec({self.name!r}, length={self.length}, fields={len(self._keys)})"

    # -- conditions ----------------------------------------------------------------------

    def condition(
        self, name: str, values: Mapping[str, Any], *, index: tuple[int, ...] = ()
    ) -> bool:
        """Whether level-88 ``name`` holds for decoded ``values`` (``index`` inside OCCURS)."""
        spec = self._conditions.get(name)
        if spec is None:
            raise KeyError(f"{self.name} has no condition name {name!r}")
        value: Any = values.get(spec.field)
        for i in index:
            value = value[i]
        if isinstance(value, list):
            raise TypeError(f"{spec.field} is under OCCURS: give the index of the entry")
        return _condition_holds(self._ranges[name], value)

    def _compile_rules(self, rules: Mapping[str, str]) -> list[list[tuple[int, str]]]:
        """Per REDEFINES area: (alternative index, condition name) in alternative order."""
        per_area: list[list[tuple[int, str]]] = [[] for _ in self.spec.redefines]
        for alternative, condition in rules.items():
            for area_index, area in enumerate(self.spec.redefines):
                if alternative not in area.alternatives:
                    continue
                if condition not in self._conditions:
                    raise ValueError(
                        f"REDEFINES rule for {alternative}: {self.name} has no condition "
                        f"{condition!r}"
                    )
                per_area[area_index].append((area.alternatives.index(alternative), condition))
        for area_rules in per_area:
            area_rules.sort()
        return per_area

    # -- decoding ------------------------------------------------------------------------

    def decode(self, data: bytes, *, record: int | None = None) -> dict[str, Any]:
        """The record's fields; raises RecordDecodeError naming the record, field, offset."""
        fast = self._fast
        if fast is not None and len(data) == self._fast_length:
            try:
                return fast(data)
            except (FieldValueError, IndexError, ValueError):
                self._diagnose(data, (), record, ())
                raise RecordDecodeError(
                    "record does not decode", record=record, layout=self.name
                ) from None
        if self.spec.odos:
            return self._decode_variable(data, record)
        if len(data) != self.spec.length:
            raise RecordDecodeError(
                f"record is {len(data)} bytes, {self.name} is {self.spec.length}",
                record=record,
                layout=self.name,
            )
        selection = self._select_for_decode(data, record) if self.spec.redefines else ()
        decoder = self._decoders.get(selection)
        if decoder is None:
            decoder = self._decoders[selection] = self._generate_decoder(selection)
        try:
            return decoder(data)
        except (FieldValueError, IndexError, ValueError):
            self._diagnose(data, selection, record, ())
            raise RecordDecodeError(
                "record does not decode", record=record, layout=self.name
            ) from None

    def nest(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Decoded (flat) values as the copybook's groups: a group is a dict of its items, a
        group with OCCURS a list of such dicts; items by their COBOL names, FILLER left out.

        >>> from adapters.fixedwidth import compile_copybook
        >>> codec = compile_copybook(
        ...     "01 R.\\n 05 HEAD.\\n  10 ID PIC X(2).\\n"
        ...     " 05 LINES OCCURS 2.\\n  10 QTY PIC 9.\\n  10 CODE PIC X.\\n",
        ...     codepage="ascii",
        ... ).record()
        >>> codec.nest(codec.decode(b"AB1X2Y"))
        {'HEAD': {'ID': 'AB'}, 'LINES': [{'QTY': 1, 'CODE': 'X'}, {'QTY': 2, 'CODE': 'Y'}]}
        """
        items: list[tuple[int, int, tuple[str, ...], Any]] = [
            (g.line, g.column, g.path, g) for g in self.spec.groups[1:]
        ]
        items += [(f.line, f.column, f.path, f) for f in self.spec.fields if f.key in values]
        items.sort(key=lambda item: (item[0], item[1]))
        root = (self.spec.name,) if self.spec.groups else ()
        return self._nest_level(values, items, root, ())

    def _nest_level(
        self,
        values: Mapping[str, Any],
        items: list[tuple[int, int, tuple[str, ...], Any]],
        path: tuple[str, ...],
        index: tuple[int, ...],
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for _, _, parent, item in items:
            if parent != path:
                continue
            if isinstance(item, FieldSpec):
                if item.key is None:
                    raise RuntimeError("internal error: expected item.key is not None")
                value: Any = values[item.key]
                for i in index:
                    value = value[i]
                out[item.name or item.key] = value
                continue
            if item.name is None:
                continue
            inner = (*path, item.name)
            if len(item.dims) > len(index):
                count = _occurrences_present(values, items, inner, index)
                entries = [
                    self._nest_level(values, items, inner, (*index, i)) for i in range(count)
                ]
                if any(entries):
                    out[item.name] = entries
            else:
                nested = self._nest_level(values, items, inner, index)
                if nested:
                    out[item.name] = nested
        return out

    def decode_field(self, key: str, data: bytes, *, record: int | None = None) -> Any:
        """One field of a record (outside tables and variable-length parts) on its own."""
        fld = self._by_key[key]
        if fld.spec.dims or fld.spec.shifted_by:
            raise ValueError(f"{key} has no fixed position: decode the whole record")
        return self._decode_one(fld, data, fld.spec.offset, record)

    def _selected(self, f: FieldSpec, selection: _Selection) -> bool:
        return all(selection[area] == alt for area, alt in f.choices)

    def _select_for_decode(self, data: bytes, record: int | None) -> _Selection:
        chosen: list[int] = []
        for area_rules in self._rules:
            pick = 0
            for alt, condition in area_rules:
                spec = self._conditions[condition]
                field = self._by_key[spec.field]
                value = self._decode_one(field, data, field.spec.offset, record)
                if _condition_holds(self._ranges[condition], value):
                    pick = alt
                    break
            chosen.append(pick)
        return tuple(chosen)

    def _decode_one(self, field: _Field, data: bytes, offset: int, record: int | None) -> Any:
        try:
            return field.decode(data[offset : offset + field.spec.size])
        except FieldValueError as exc:
            raise RecordDecodeError(
                exc.reason,
                field=field.spec.key or "FILLER",
                offset=offset + exc.position,
                record=record,
                layout=self.name,
            ) from None

    def _generate_decoder(self, selection: _Selection) -> Callable[[bytes], dict[str, Any]]:
        # Text fields of an EBCDIC record are sliced from one translation of the whole
        # record (one C call instead of one per field); ASCII text is decoded per field so
        # that binary bytes elsewhere in the record do not fail it.
        whole_record = self.options.codepage != "ascii"
        namespace: dict[str, Any] = {"_table": _table, "_text": text_decoder(self.options.codepage)}
        items: list[str] = []
        for index, fld in enumerate(self._fields):
            f = fld.spec
            if f.key is None or not self._selected(f, selection):
                continue
            fn = f"d{index}"
            namespace[fn] = fld.decode
            end = f.offset + f.size
            if f.dims:
                dims = tuple((d.maximum, d.stride) for d in f.dims)
                items.append(f"{f.key!r}: _table({fn}, data, {f.offset}, {f.size}, {dims!r})")
            elif f.storage is Storage.ALPHANUMERIC:
                strip = "lstrip" if f.justified_right else "rstrip"
                source = (
                    f"text[{f.offset}:{end}]"
                    if whole_record
                    else (f"data[{f.offset}:{end}].decode('ascii')")
                )
                items.append(f"{f.key!r}: {source}.{strip}(' ')")
            else:
                items.append(f"{f.key!r}: {fn}(data[{f.offset}:{end}])")
        prologue = "    text = _text(data)\n" if whole_record else ""
        source = "def decode(data):\n" + prologue + "    return {" + ", ".join(items) + "}\n"
        # source generated here from the parsed copybook, never from input data
        exec(compile(source, f"<copybook {self.name}>", "exec"), namespace)  # noqa: S102
        decoder: Callable[[bytes], dict[str, Any]] = namespace["decode"]
        return decoder

    def _generate_encoder(self) -> Callable[[Mapping[str, Any]], bytes] | None:
        """One function encoding values that name plain items only (no table), or None when
        the code page is not one-byte-per-character over Latin-1 (or ASCII).

        The record is built as one ``str`` in Latin-1 and turned into the code page by one
        ``encode`` and one ``bytes.translate``: text values go in as they are, zoned digits as
        their characters, packed and binary bytes as the characters that translate back to
        them. A value of another type or shape goes through the item's own encoder; any
        exception sends the whole record to :meth:`_encode_fixed`, which names the field and
        reason exactly as before.
        """
        cp = self.options.codepage
        chars_of_bytes = bytes(range(256)).decode(cp, errors="replace")
        namespace: dict[str, Any] = {"_M": _MISSING, "_Decimal": Decimal, "_fromhex": bytes.fromhex}
        if cp == "ascii":
            finish = ".encode('latin-1')"
            namespace["_c"] = _latin1_text
        elif len(set(chars_of_bytes)) == 256 and max(chars_of_bytes) <= "\xff":
            latin1 = chars_of_bytes.encode("latin-1")
            namespace["_T"] = bytes.maketrans(latin1, bytes(range(256)))
            to_latin1 = bytes.maketrans(bytes(range(256)), latin1)
            namespace["_c"] = lambda raw: raw.translate(to_latin1).decode("latin-1")
            finish = ".encode('latin-1').translate(_T)"
        else:
            return None
        to_chars: Callable[[bytes], str] = namespace["_c"]
        template = to_chars(bytes(self._template((), [], ())))
        slots = sorted(
            (fld for fld in self._fields if fld.spec.key is not None and not fld.spec.dims),
            key=lambda fld: fld.spec.offset,
        )
        lines = ["def encode(values):", "    get = values.get"]
        parts: list[str] = []
        names: list[str] = []
        position = 0
        for index, fld in enumerate(slots):
            f = fld.spec
            start, end = f.offset, f.offset + f.size
            if start > position:
                parts.append(template[position:start].replace("%", "%%"))
            position = end
            name = f"s{index}"
            names.append(name)
            namespace[f"d{index}"] = template[start:end]
            namespace[f"e{index}"] = fld.encode
            lines += [
                f"    v = get({f.key!r}, _M)",
                "    if v is _M:",
                f"        {name} = d{index}",
            ]
            if f.storage is Storage.ALPHANUMERIC:
                ascii_check = " and v.isascii()" if cp == "ascii" else ""
                lines += [
                    f"    elif type(v) is str and len(v) <= {f.size}{ascii_check}:",
                    f"        {name} = v",
                    "    else:",
                    f"        {name} = _c(e{index}(v))",
                ]
                parts.append(f"%{'' if f.justified_right else '-'}{f.size}s")
                continue
            parts.append("%s")
            if f.scale < 0:
                lines += ["    else:", f"        {name} = _c(e{index}(v))"]
                continue
            lines += ["    else:"]
            lines += [
                "        " + line
                for line in self._numeric_encoder_lines(f, name, f"e{index}", namespace)
            ]
        if position < len(template):
            parts.append(template[position:].replace("%", "%%"))
        namespace["_F"] = "".join(parts)
        lines.append(f"    return (_F % ({''.join(name + ', ' for name in names)})){finish}")
        source = "\n".join(lines) + "\n"
        # source generated here from the parsed copybook, never from input data
        exec(compile(source, f"<copybook {self.name} encoder>", "exec"), namespace)  # noqa: S102
        encoder: Callable[[Mapping[str, Any]], bytes] = namespace["encode"]
        return encoder

    def _numeric_encoder_lines(
        self, f: FieldSpec, name: str, encoder: str, namespace: dict[str, Any]
    ) -> list[str]:
        """Source setting ``name`` to the characters of numeric value ``v`` in item ``f``
        (scale >= 0): an int or a Decimal inline, anything else through ``encoder``."""
        digits = f.digits
        signed = f.signed or f.storage is Storage.SEPARATE_SIGN
        if f.storage is Storage.NATIVE_BINARY:
            size = f.size
            digits = len(str(2 ** (8 * size - (1 if f.signed else 0))))
        scaled = f"v * {10**f.scale}" if f.scale else "v"
        low = "0" if not signed else f"-{10**digits}"
        # the sign a negative zero Decimal keeps (as the per-item encoders decide it)
        decimal_sign = {
            Storage.PACKED: f.signed,
            Storage.ZONED: f.signed,
            Storage.SEPARATE_SIGN: True,
        }.get(f.storage, False)
        lines = [
            "t = type(v)",
            "if t is int:",
            f"    u = {scaled}",
            "    n = u < 0",
            f"elif t is _Decimal and {-f.scale} <= v.adjusted() < {digits - f.scale}:",
            "    p, q = v.as_integer_ratio()",
            f"    u, r = divmod(p * {10**f.scale}, q)",
            "    if r:",
            "        raise ArithmeticError",
            "    n = u < 0" + (" or v.is_signed()" if decimal_sign else ""),
            "else:",
            "    u = None",
            "if u is None:",
            f"    {name} = _c({encoder}(v))",
            f"elif not {low} {'<' if signed else '<='} u < {10**digits}:",
            "    raise ArithmeticError",
        ]
        if f.storage is Storage.PACKED:
            nibbles = f.size * 2 - 1
            sign = "('d' if n else 'c')" if f.signed else "'f'"
            digits_format = f"'%0{nibbles}d{{}}'"
            pattern = (
                f"({digits_format.format('d')} if n else {digits_format.format('c')})"
                if f.signed
                else digits_format.format("f")
            )
            return [*lines, "else:", f"    {name} = _c(_fromhex({pattern} % abs(u)))"]
        if f.storage in (Storage.BINARY, Storage.NATIVE_BINARY):
            native = f.storage is Storage.NATIVE_BINARY
            order = self.options.native_byteorder if native else "big"
            call = f"u.to_bytes({f.size}, {order!r}, signed={f.signed})"
            return [*lines, "else:", f"    {name} = _c({call})"]
        if f.storage is Storage.SEPARATE_SIGN:
            body = f"'%0{digits}d' % abs(u)"
            sign = "('-' if n else '+')"
            text = f"{sign} + {body}" if f.sign_leading else f"{body} + {sign}"
            return [*lines, "else:", f"    {name} = {text}"]
        cp = self.options.codepage
        positive = _sign_bytes(cp, self.options.overpunch, 1 if f.signed else 0)
        negative = _sign_bytes(cp, self.options.overpunch, -1)
        to_chars: Callable[[bytes], str] = namespace["_c"]
        positive_chars, negative_chars = to_chars(positive), to_chars(negative)
        if not f.signed and positive_chars == "0123456789":
            return [*lines, "else:", f"    {name} = '%0{digits}d' % u"]
        table = f"({negative_chars!r} if n else {positive_chars!r})"
        if f.sign_leading:
            text = f"{table}[abs(u) // {10 ** (digits - 1)}] + ('%0{digits}d' % abs(u))[1:]"
        elif digits == 1:
            text = f"{table}[abs(u)]"
        else:
            text = f"'%0{digits - 1}d' % (abs(u) // 10) + {table}[abs(u) % 10]"
        return [*lines, "else:", f"    {name} = {text}"]

    def _diagnose(
        self, data: bytes, selection: _Selection, record: int | None, deltas: tuple[int, ...]
    ) -> None:
        for fld in self._fields:
            f = fld.spec
            if f.key is None or not self._selected(f, selection):
                continue
            base = f.offset + sum(deltas[k] for k in f.shifted_by)
            for offset in _occurrences([(d.maximum, d.stride) for d in f.dims], base):
                self._decode_one(fld, data, offset, record)

    def _counts(
        self, data: bytes | None, values: Mapping[str, Any] | None, record: int | None
    ) -> tuple[list[int], tuple[int, ...]]:
        counts: list[int] = []
        deltas: list[int] = []
        for odo in self.spec.odos:
            counter = self._by_key[odo.counter]
            if data is not None:
                offset = counter.spec.offset + sum(deltas[k] for k in counter.spec.shifted_by)
                if offset + counter.spec.size > len(data):
                    raise RecordDecodeError(
                        f"record is {len(data)} bytes, too short for {odo.counter}",
                        record=record,
                        layout=self.name,
                    )
                count = self._decode_one(counter, data, offset, record)
                if not isinstance(count, int) or not odo.minimum <= count <= odo.maximum:
                    raise RecordDecodeError(
                        f"OCCURS DEPENDING ON count {count} outside {odo.minimum} TO {odo.maximum}",
                        field=odo.counter,
                        offset=offset,
                        record=record,
                        layout=self.name,
                    )
            else:
                if values is None:
                    raise RuntimeError("internal error: expected values is not None")
                count = self._count_for_encode(odo.counter, values)
                if not odo.minimum <= count <= odo.maximum:
                    raise RecordEncodeError(
                        f"{count} entries outside OCCURS {odo.minimum} TO {odo.maximum}",
                        field=odo.counter,
                    )
            counts.append(count)
            deltas.append((count - odo.maximum) * odo.stride)
        return counts, tuple(deltas)

    def _count_for_encode(self, counter: str, values: Mapping[str, Any]) -> int:
        if counter in values:
            count = values[counter]
            if isinstance(count, bool) or not isinstance(count, int | Decimal):
                raise RecordEncodeError("a DEPENDING ON count must be an integer", field=counter)
            return int(count)
        index = [o.counter for o in self.spec.odos].index(counter)
        for fld in self._fields:
            f = fld.spec
            if f.key is not None and f.key in values and any(d.odo == index for d in f.dims):
                value = values[f.key]
                if isinstance(value, list):
                    return len(value)
        default = self._by_key[counter]
        value = default.decode(default.default)
        return int(value) if isinstance(value, int) else self.spec.odos[index].minimum

    def _decode_variable(self, data: bytes, record: int | None) -> dict[str, Any]:
        counts, deltas = self._counts(data, None, record)
        expected = self.spec.length + sum(deltas)
        if len(data) != expected:
            raise RecordDecodeError(
                f"record is {len(data)} bytes, {self.name} with these counts is {expected}",
                record=record,
                layout=self.name,
            )
        selection = self._select_for_decode(data, record) if self.spec.redefines else ()
        out: dict[str, Any] = {}
        for fld in self._fields:
            f = fld.spec
            if f.key is None or not self._selected(f, selection):
                continue
            base = f.offset + sum(deltas[k] for k in f.shifted_by)
            dims = [(counts[d.odo] if d.odo is not None else d.maximum, d.stride) for d in f.dims]
            if not dims:
                out[f.key] = self._decode_one(fld, data, base, record)
            else:
                out[f.key] = self._decode_table(fld, data, base, dims, record)
        return out

    def _decode_table(
        self, fld: _Field, data: bytes, base: int, dims: list[tuple[int, int]], record: int | None
    ) -> list[Any]:
        (count, stride), rest = dims[0], dims[1:]
        if not rest:
            return [self._decode_one(fld, data, base + i * stride, record) for i in range(count)]
        return [
            self._decode_table(fld, data, base + i * stride, rest, record) for i in range(count)
        ]

    # -- encoding ------------------------------------------------------------------------

    def _default_bytes(self, f: FieldSpec, encode: Encoder) -> bytes:
        """The item's bytes before any value is given: its VALUE clause, else spaces or 0."""
        cp = self.options.codepage
        if f.value is None:
            return encode(0) if f.numeric else " ".encode(cp) * f.size
        try:
            raw = literal_bytes(f.value, f.size, cp, numeric=f.numeric)
            if raw is not None:
                return raw
            number = f.value if isinstance(f.value, Decimal) else Decimal(0)
            if f.scale <= 0 and number == number.to_integral_value():
                return encode(int(number))
            return encode(number)
        except ValueError as exc:
            raise CopybookSyntaxError(
                f"VALUE of {f.key or 'FILLER'}: {exc}", line=f.line, column=f.column
            ) from None

    def _template(
        self, selection: _Selection, counts: list[int], deltas: tuple[int, ...]
    ) -> bytearray:
        cached = self._templates.get(selection) if not self.spec.odos else None
        if cached is not None:
            return bytearray(cached)
        cp = self.options.codepage
        buffer = bytearray(" ".encode(cp) * (self.spec.length + sum(deltas)))
        for group in self.spec.groups:
            if group.value is None:
                continue
            raw = literal_bytes(group.value, group.size, cp, numeric=False)
            if raw is not None and not group.dims:
                buffer[group.offset : group.offset + group.size] = raw
        for fld in self._fields:
            f = fld.spec
            if f.set_by_group or not self._selected(f, selection):
                continue
            base = f.offset + sum(deltas[k] for k in f.shifted_by)
            dims = [(counts[d.odo] if d.odo is not None else d.maximum, d.stride) for d in f.dims]
            for offset in _occurrences(dims, base):
                buffer[offset : offset + f.size] = fld.default
        if not self.spec.odos:
            self._templates[selection] = bytes(buffer)
        return buffer

    def _select_for_encode(self, values: Mapping[str, Any]) -> _Selection:
        chosen: list[int] = []
        for area_index, area in enumerate(self.spec.redefines):
            named = {
                alt
                for fld in self._fields
                if fld.spec.key in values
                for a, alt in fld.spec.choices
                if a == area_index
            }
            if len(named) > 1:
                names = ", ".join(area.alternatives[i] for i in sorted(named))
                raise RecordEncodeError(f"values given for several REDEFINES alternatives: {names}")
            if named:
                chosen.append(named.pop())
                continue
            pick = 0
            for alt, condition in self._rules[area_index]:
                spec = self._conditions[condition]
                if spec.field in values and _condition_holds(
                    self._ranges[condition], values[spec.field]
                ):
                    pick = alt
                    break
            chosen.append(pick)
        return tuple(chosen)

    def _expand_conditions(self, values: Mapping[str, Any]) -> dict[str, Any]:
        expanded: dict[str, Any] = {}
        for key, value in values.items():
            if key in self._by_key:
                expanded[key] = value
                continue
            spec = self._conditions.get(key)
            if spec is None:
                raise RecordEncodeError(f"{self.name} has no field or condition {key!r}")
            if value is not True:
                raise RecordEncodeError("a condition name can only be set to True", field=key)
            first = spec.values[0][0]
            field = self._by_key[spec.field]
            if isinstance(first, Figurative):
                raise RecordEncodeError("cannot set a condition on a figurative value", field=key)
            literal: Any = first
            if isinstance(first, Decimal) and field.spec.scale <= 0:
                literal = int(first)
            if spec.field in values and values[spec.field] != literal:
                raise RecordEncodeError(
                    f"condition {key} contradicts the value given", field=spec.field
                )
            expanded[spec.field] = literal
        return expanded

    def encode(self, values: Mapping[str, Any]) -> bytes:
        """The record's bytes; RecordEncodeError for unknown names or values that do not fit."""
        fast = self._fast_encode
        if fast is not None:
            slot_keys = self._slot_keys
            given = values if values.keys() <= slot_keys else self._expand_conditions(values)
            if given.keys() <= slot_keys:
                try:
                    return fast(given)
                except Exception:
                    return self._encode_fixed(self._fast_slots or {}, given)
            values = given
        else:
            values = self._expand_conditions(values)
        slots = self._fast_slots
        if slots is not None and slots.keys() >= values.keys():
            return self._encode_fixed(slots, values)
        return self._encode_general(dict(values))

    def _encode_general(self, values: dict[str, Any]) -> bytes:
        """:meth:`encode` of expanded ``values`` with REDEFINES, OCCURS DEPENDING ON or tables."""
        selection = self._select_for_encode(values) if self.spec.redefines else ()
        counts, deltas = self._counts(None, values, None) if self.spec.odos else ([], ())
        for odo, count in zip(self.spec.odos, counts, strict=True):
            values.setdefault(odo.counter, count)
        buffer = self._template(selection, counts, deltas)
        for key, value in values.items():
            fld = self._by_key[key]
            f = fld.spec
            if not self._selected(f, selection):
                raise RecordEncodeError("field of a REDEFINES alternative not in use", field=key)
            base = f.offset + (sum(deltas[k] for k in f.shifted_by) if deltas else 0)
            try:
                if not f.dims:
                    buffer[base : base + f.size] = fld.encode(value)
                else:
                    dims = [
                        (counts[d.odo] if d.odo is not None else d.maximum, d.stride)
                        for d in f.dims
                    ]
                    self._encode_table(fld, buffer, base, dims, value)
            except ValueError as exc:
                raise RecordEncodeError(str(exc), field=key) from None
        return bytes(buffer)

    def _encode_fixed(
        self, slots: dict[str, tuple[int, int, Encoder]], values: Mapping[str, Any]
    ) -> bytes:
        """:meth:`encode` of a layout without REDEFINES or OCCURS DEPENDING ON, whose values
        name no table: each value into its slice of the template."""
        buffer = self._template((), [], ())
        for key, value in values.items():
            start, end, encode = slots[key]
            try:
                buffer[start:end] = encode(value)
            except ValueError as exc:
                raise RecordEncodeError(str(exc), field=key) from None
        return bytes(buffer)

    def _encode_table(
        self, fld: _Field, buffer: bytearray, base: int, dims: list[tuple[int, int]], value: Any
    ) -> None:
        (count, stride), rest = dims[0], dims[1:]
        if not isinstance(value, list | tuple):
            raise ValueError(f"under OCCURS: expected a list, not {type(value).__name__}")
        if len(value) > count:
            raise ValueError(f"{len(value)} entries for a table of {count}")
        for index, item in enumerate(value):
            offset = base + index * stride
            if rest:
                self._encode_table(fld, buffer, offset, rest, item)
            else:
                buffer[offset : offset + fld.spec.size] = fld.encode(item)


def _occurrences_present(
    values: Mapping[str, Any],
    items: list[tuple[int, int, tuple[str, ...], Any]],
    path: tuple[str, ...],
    index: tuple[int, ...],
) -> int:
    """How many entries a group table holds: the length of a field list under it."""
    for _, _, parent, item in items:
        if isinstance(item, FieldSpec) and parent[: len(path)] == path:
            if item.key is None:
                raise RuntimeError("internal error: expected item.key is not None")
            value: Any = values[item.key]
            for i in index:
                value = value[i]
            return len(value)
    return 0


def _table(
    decode: Decoder, data: bytes, base: int, size: int, dims: tuple[tuple[int, int], ...]
) -> list[Any]:
    (count, stride), rest = dims[0], dims[1:]
    if rest:
        return [_table(decode, data, base + i * stride, size, rest) for i in range(count)]
    return [decode(data[base + i * stride : base + i * stride + size]) for i in range(count)]


def _literal_value(literal: Literal_, field: _Field, codepage: str) -> Any:
    """A level-88 literal as the decoded field would hold it; ValueError when it cannot."""
    numeric = field.spec.numeric
    if isinstance(literal, Figurative):
        raw = literal_bytes(literal, field.spec.size, codepage, numeric=numeric)
        if raw is None:
            return 0
        try:
            return field.decode(raw)
        except FieldValueError:
            raise ValueError(f"{literal.name} is not a value of this item") from None
    if isinstance(literal, Decimal):
        return literal if numeric else str(literal)
    if numeric:
        raise ValueError("a text literal for a numeric item")
    text = literal.decode(codepage) if isinstance(literal, bytes) else literal
    return text.rstrip(" ")


def _condition_holds(ranges: tuple[tuple[Any, Any], ...], value: Any) -> bool:
    """Whether a decoded value is one of the values / in one of the THRU ranges."""
    if value is None:
        return False
    if isinstance(value, str):
        value = value.rstrip(" ")
    for low, high in ranges:
        if high is None:
            if value == low:
                return True
            continue
        try:
            if low <= value <= high:
                return True
        except TypeError:
            continue
    return False


_MISSING: Final = object()
"""The generated encoder's marker for an item the values do not name."""


def _latin1_text(raw: bytes) -> str:
    return raw.decode("latin-1")
