"""Masking fixed-width mainframe record files described by a COBOL copybook.

Records are read with :func:`adapters.fixedwidth.recordformat.read_records` (F, FB, V, VB,
GnuCOBOL variable) through a bounded buffer, decoded with the copybook's codec, their
sensitive fields masked, and written in the same record format. Only the bytes of the masked
fields change: every other byte (FILLER, unmasked fields, signs) is copied as it was read,
so the file still converts (``isobridge convert``) wherever it did.

Which fields are sensitive is data: :func:`field_rule` gives a default by the field's name
(its words, split at ``-``), a policy (TOML, or ``--field NAME=RULE`` on the command line)
overrides it per field::

    words in the name                               rule
    PAN, CARD (with NO / NUM / NUMBER)              pan
    IBAN                                            iban
    ACCOUNT, ACCT, CONTRA (not with NAME / TYPE)    account (IBAN, card number or id)
    NAME, NM, SURNAME, FORENAME                     name
    SSN, NATL, NATIONAL, TAX, TIN, NIN, PASSPORT,
      CUSTOMER-ID, CUST-ID, LICENCE, LICENSE        id
    ADDR, ADDRESS, STREET, POSTCODE, ZIP, PHONE,
      EMAIL, MOBILE                                 text
    NARRATIVE, DESCRIPTION, DESC, MEMO, TEXT,
      REMARK, REMARKS, COMMENT, NOTE, NOTES          text
    BIRTH, DOB                                      date

A field whose words say it holds nothing personal (CODE, CURRENCY, DATE, TIME, AMOUNT,
BALANCE, REF, TYPE, STATUS, COUNT, BRANCH...: :data:`SAFE_WORDS`) is kept; FILLER is kept.
Any other field has no rule, and the run refuses to start until it gets one (``keep``
included): a layout with a field nobody looked at is not masked by guesswork.

The policy file::

    [fields]
    CB-NARRATIVE = "text"
    CM-LEGACY-KEY = "keep"
    CM-OLD-PIN = "drop"          # spaces (alphanumeric) or zeros (numeric)

Numeric fields (zoned, packed, binary) can take ``pan``, ``account``, ``id`` and ``date``
(their digits are masked at their full width, so the value keeps its size); alphanumeric
fields take every rule. A kept alphanumeric field that holds a card number or an IBAN fails
the run, naming the record and the field.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final

from adapters.fixedwidth import Copybook, RecordCodec
from adapters.fixedwidth.errors import RecordDecodeError, RecordEncodeError
from adapters.fixedwidth.recordformat import RecordFormatError, RecordWriter, read_records
from adapters.fixedwidth.spec import FieldSpec, Storage
from hub.masking.values import (
    RULES,
    Masker,
    MaskingError,
    RecordMaskingError,
    sensitive_content,
)

__all__ = [
    "FIELD_RULES",
    "SAFE_WORDS",
    "FixedWidthMasker",
    "field_rule",
    "load_policy",
    "unclassified_fields",
]

FIELD_RULES: Final = ("keep", "drop", *RULES)
"""What a field can be given: keep, drop (blanked) or a rule of :mod:`hub.masking.values`."""

_NUMERIC_RULES: Final = frozenset({"keep", "drop", "pan", "account", "id", "date"})
_RULES_BY_WORD: Final[tuple[tuple[frozenset[str], str], ...]] = (
    (frozenset({"PAN"}), "pan"),
    (frozenset({"IBAN"}), "iban"),
    (frozenset({"NAME", "NM", "SURNAME", "FORENAME"}), "name"),
    (
        frozenset(
            {"SSN", "NATL", "NATIONAL", "TAX", "TIN", "NIN", "PASSPORT", "LICENCE", "LICENSE"}
        ),
        "id",
    ),
    (
        frozenset({"ADDR", "ADDRESS", "STREET", "POSTCODE", "ZIP", "PHONE", "EMAIL", "MOBILE"}),
        "text",
    ),
    (
        frozenset(
            {
                "NARRATIVE",
                "DESCRIPTION",
                "DESC",
                "MEMO",
                "TEXT",
                "REMARK",
                "REMARKS",
                "COMMENT",
                "NOTE",
                "NOTES",
            }
        ),
        "text",
    ),
    (frozenset({"BIRTH", "DOB"}), "date"),
)
_ACCOUNT_WORDS: Final = frozenset({"ACCOUNT", "ACCT", "CONTRA"})
_CARD_WORDS: Final = frozenset({"CARD"})
_NUMBER_WORDS: Final = frozenset({"NO", "NUM", "NUMBER", "NBR", "NR"})
_CUSTOMER_WORDS: Final = frozenset({"CUSTOMER", "CUST"})
_ID_WORDS: Final = frozenset({"ID", "IDENT", "IDENTIFIER"})
_NOT_AN_ACCOUNT: Final = frozenset({"TYPE", "STATUS", "CLASS", "COUNT", "CCY", "CURRENCY"})

SAFE_WORDS: Final = frozenset(
    {"CODE", "CD", "CURRENCY", "CCY", "DATE", "DT", "TIME", "TS", "TIMESTAMP", "AT",
     "AMOUNT", "AMT", "BALANCE", "BAL", "LIMIT", "TOTAL", "TOTALS", "DEBITS", "CREDITS",
     "DEBIT", "CREDIT", "FEE", "RATE", "REF", "REFERENCE", "TYPE", "TYP", "STATUS", "STAT",
     "COUNT", "CNT", "SEQ", "FLAG", "IND", "INDICATOR", "BRANCH", "CHANNEL", "RESULT",
     "CC", "YY", "MM", "DD", "HH", "SS", "YEAR", "MONTH", "DAY", "VERSION", "FILLER"}
)  # fmt: skip
"""Words of a field name that say the field holds nothing personal (kept by default)."""


def _words(name: str) -> set[str]:
    return {word for word in re.split(r"[-_]", name.upper()) if word}


def field_rule(name: str) -> str | None:
    """The default rule of a field by its name: a rule, ``keep``, or None (unclassified).

    >>> field_rule("SH-ACCOUNT-NAME"), field_rule("CB-CONTRA-ACCOUNT"), field_rule("CB-AMOUNT")
    ('name', 'account', 'keep')
    >>> field_rule("CM-SECRET") is None
    True
    """
    words = _words(name)
    if words & _CARD_WORDS and words & _NUMBER_WORDS:
        return "pan"
    for trigger, rule in _RULES_BY_WORD:
        if words & trigger:
            return rule
    if words & _ACCOUNT_WORDS and not words & _NOT_AN_ACCOUNT:
        return "account"
    if words & _CUSTOMER_WORDS and words & (_ID_WORDS | _NUMBER_WORDS):
        return "id"
    if words & SAFE_WORDS:
        return "keep"
    return None


def load_policy(path: str | Path) -> dict[str, str]:
    """``[fields]`` of a TOML policy file: field name -> rule."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not TOML: {exc}") from None
    fields = data.get("fields", {})
    unknown = sorted(set(data) - {"fields"})
    if unknown or not isinstance(fields, dict):
        raise ValueError(f"{path}: a policy has one table, [fields] (found {unknown or 'no'})")
    policy: dict[str, str] = {}
    for name, rule in fields.items():
        if not isinstance(rule, str):
            raise ValueError(f"{path}: fields.{name}: a rule is a string")
        policy[name.upper()] = rule
    return policy


@dataclass(frozen=True, slots=True)
class _Masked:
    spec: FieldSpec
    rule: str


def unclassified_fields(book: Copybook, policy: Mapping[str, str]) -> list[str]:
    """``LAYOUT.FIELD`` of every field with no rule from the policy or by its name."""
    missing = []
    for codec in book.records.values():
        for spec in codec.fields:
            if spec.key is None:
                continue
            if spec.key not in policy and field_rule(spec.key) is None:
                missing.append(f"{codec.name}.{spec.key}")
    return missing


class FixedWidthMasker:
    """Masks the records of one copybook's files."""

    def __init__(
        self,
        masker: Masker,
        book: Copybook,
        *,
        policy: Mapping[str, str] | None = None,
        record: str | None = None,
    ) -> None:
        policy = {name.upper(): rule for name, rule in (policy or {}).items()}
        keys = {spec.key for codec in book.records.values() for spec in codec.fields}
        for name, rule in policy.items():
            if name not in keys:
                raise ValueError(f"policy: no field {name} in the copybook")
            if rule not in FIELD_RULES:
                raise ValueError(
                    f"policy: {name}: unknown rule {rule!r} (rules: {', '.join(FIELD_RULES)})"
                )
        missing = unclassified_fields(book, policy)
        if missing:
            raise ValueError(
                f"no masking rule for {', '.join(missing)}: give each a rule, keep or drop"
                " (--field NAME=RULE or a --policy file)"
            )
        self._masker = masker
        self._book = book
        self._record = record
        self._plans: dict[str, tuple[list[_Masked], list[FieldSpec]]] = {}
        for codec in book.records.values():
            masked: list[_Masked] = []
            checked: list[FieldSpec] = []
            for spec in codec.fields:
                if spec.key is None:
                    continue
                rule = policy.get(spec.key) or field_rule(spec.key) or "keep"
                if rule == "keep":
                    if spec.key not in policy and spec.storage is Storage.ALPHANUMERIC:
                        checked.append(spec)
                    continue
                if spec.numeric and (rule not in _NUMERIC_RULES or spec.scale):
                    raise ValueError(
                        f"{codec.name}.{spec.key} is numeric ({spec.type_text}): rule {rule!r}"
                        " does not fit it (numeric fields without decimals take pan, account,"
                        " id, date, keep or drop)"
                    )
                masked.append(_Masked(spec, rule))
            self._plans[codec.name] = (masked, checked)
        self.records = 0

    # -- one record ---------------------------------------------------------------------

    def mask_record(self, raw: bytes, number: int = 1) -> bytes:
        """One record masked; :class:`RecordMaskingError` names the record and field."""
        codec = self._book.record(self._record) if self._record else self._book.select(raw)
        try:
            values = codec.decode(raw, record=number)
        except RecordDecodeError as exc:
            raise RecordMaskingError(
                f"cannot decode: {exc.reason}", record=number, field=exc.field, offset=exc.offset
            ) from None
        plan, checked = self._plans[codec.name]
        for spec in checked:
            for text in _flat(values.get(spec.key or "")):
                found = sensitive_content(str(text))
                if found is not None:
                    raise RecordMaskingError(
                        f"holds {found} but is kept: give it a rule (--field {spec.key}=RULE)",
                        record=number,
                        field=spec.key,
                        offset=spec.offset,
                    )
        if not plan:
            return raw
        masked = dict(values)
        for item in plan:
            key = item.spec.key
            if key is None:
                raise RuntimeError("internal error: expected key is not None")
            try:
                masked[key] = self._mask_values(item, values.get(key))
            except MaskingError as exc:
                raise RecordMaskingError(
                    str(exc), record=number, field=key, offset=item.spec.offset
                ) from None
        try:
            before = codec.encode(values)
            after = codec.encode(masked)
        except RecordEncodeError as exc:
            raise RecordMaskingError(
                f"masked record does not encode: {exc.reason}", record=number, field=exc.field
            ) from None
        return _splice(raw, before, after, plan, codec)

    def _mask_values(self, item: _Masked, value: Any) -> Any:
        """``value`` masked, or each entry of it under OCCURS."""
        if isinstance(value, list):
            return [self._mask_values(item, entry) for entry in value]
        return self._mask_value(item, value)

    def _mask_value(self, item: _Masked, value: Any) -> Any:
        spec = item.spec
        rule = item.rule
        if rule == "drop":
            return 0 if spec.numeric else ""
        if spec.numeric:
            negative = value < 0
            digits = str(abs(value)).zfill(spec.digits)
            masked = int(self._masker.apply(rule, digits))
            return -masked if negative else masked
        text = str(value)
        if not text.strip():
            return value
        result = self._masker.apply(rule, text)
        if rule == "name":
            result = result[: spec.size]
        return result

    # -- a file -------------------------------------------------------------------------

    def mask_stream(
        self,
        source: BinaryIO,
        sink: BinaryIO,
        record_format: str,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Every record of ``source`` masked into ``sink``; the number of records."""
        length = max(codec.length for codec in self._book.records.values())
        if self._record:
            length = self._book.record(self._record).length
        writer = RecordWriter(sink, record_format)
        count = 0
        try:
            for number, raw in read_records(source, record_format, length=length):
                writer.write(self.mask_record(raw, number))
                count = number
                if progress is not None and number % 4096 == 0:
                    progress(source.tell())
        except RecordFormatError as exc:
            raise RecordMaskingError(
                f"{exc.reason} (the file cannot be read past this point)",
                record=exc.record or count + 1,
                offset=exc.offset,
            ) from None
        writer.close()
        self.records = count
        if progress is not None:
            progress(source.tell())
        return count


def _flat(value: Any) -> Iterable[Any]:
    if isinstance(value, list):
        return itertools.chain.from_iterable(_flat(v) for v in value)
    return () if value is None else (value,)


def _splice(
    raw: bytes, before: bytes, after: bytes, plan: list[_Masked], codec: RecordCodec
) -> bytes:
    """``raw`` with the masked fields' bytes taken from ``after``.

    A field at a fixed position is copied whole; under OCCURS or behind OCCURS DEPENDING ON
    its bytes are those where the record encoded before and after masking differ."""
    if len(after) != len(raw) or len(before) != len(raw):
        return after
    out = bytearray(raw)
    diff = False
    for item in plan:
        spec = item.spec
        if spec.dims or spec.shifted_by:
            diff = True
            continue
        out[spec.offset : spec.offset + spec.size] = after[spec.offset : spec.offset + spec.size]
    if diff:
        for index, (old, new) in enumerate(zip(before, after, strict=True)):
            if old != new:
                out[index] = new
    return bytes(out)
