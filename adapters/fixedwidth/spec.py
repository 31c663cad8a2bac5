"""The compiled layout of a record: plain, frozen data (offsets, sizes, types), no behaviour.

:mod:`adapters.fixedwidth.layout` computes it from the parsed copybook once; the codec
(:mod:`adapters.fixedwidth.codec`) turns it into converters once; ``isobridge copybook show``
prints it. Offsets are 0-based and are those of the first occurrence in the layout with every
``OCCURS DEPENDING ON`` table at its maximum; :attr:`FieldSpec.shifted_by` names the
variable-length tables in front of a field, which move it when they hold fewer entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from adapters.fixedwidth.parser import Literal_

__all__ = [
    "ConditionSpec",
    "Dimension",
    "FieldSpec",
    "GroupSpec",
    "OdoSpec",
    "RecordSpec",
    "RedefinesSpec",
    "Storage",
]


class Storage(StrEnum):
    """How an elementary item is stored (one converter family each)."""

    ALPHANUMERIC = "alphanumeric"
    ZONED = "zoned"
    SEPARATE_SIGN = "zoned-separate-sign"
    PACKED = "packed"
    BINARY = "binary"
    NATIVE_BINARY = "native-binary"


@dataclass(frozen=True, slots=True)
class Dimension:
    """One OCCURS level around a field: up to ``maximum`` entries ``stride`` bytes apart.

    ``odo`` is the index in :attr:`RecordSpec.odos` when the count comes from a DEPENDING ON
    item, else ``None`` (a fixed table).
    """

    maximum: int
    stride: int
    odo: int | None = None


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """An elementary item. ``key`` is its name in decoded records (``None`` for FILLER)."""

    key: str | None
    name: str | None
    path: tuple[str, ...]
    level: int
    offset: int
    size: int
    storage: Storage
    picture: str
    digits: int
    scale: int
    signed: bool
    sign_leading: bool
    justified_right: bool
    dims: tuple[Dimension, ...]
    shifted_by: tuple[int, ...]
    choices: tuple[tuple[int, int], ...]
    value: Literal_ | None
    set_by_group: bool
    line: int
    column: int

    @property
    def numeric(self) -> bool:
        """True for every storage but alphanumeric."""
        return self.storage is not Storage.ALPHANUMERIC

    @property
    def type_text(self) -> str:
        """The PICTURE and USAGE as a copybook would say them (for layout tables)."""
        usage = {
            Storage.ALPHANUMERIC: "",
            Storage.ZONED: " DISPLAY" + (" SIGN LEADING" if self.sign_leading else ""),
            Storage.SEPARATE_SIGN: (
                " SIGN " + ("LEADING" if self.sign_leading else "TRAILING") + " SEPARATE"
            ),
            Storage.PACKED: " COMP-3",
            Storage.BINARY: " COMP",
            Storage.NATIVE_BINARY: " COMP-5",
        }[self.storage]
        return f"PIC {self.picture}{usage}"


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """A group item (for layout tables and group VALUE clauses)."""

    name: str | None
    path: tuple[str, ...]
    level: int
    offset: int
    size: int
    dims: tuple[Dimension, ...]
    redefines: str | None
    value: Literal_ | None
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class ConditionSpec:
    """A level-88 condition name on the field ``field`` (a key of the decoded record).

    ``values`` holds single values (``(value, None)``) and ``THRU`` ranges (``(low, high)``).
    """

    name: str
    field: str
    values: tuple[tuple[Literal_, Literal_ | None], ...]
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class OdoSpec:
    """An ``OCCURS ... DEPENDING ON`` table: its count lives in the field ``counter``."""

    name: str | None
    counter: str
    minimum: int
    maximum: int
    stride: int
    offset: int
    shifted_by: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RedefinesSpec:
    """An area with several layouts: ``alternatives[0]`` is the redefined item's name, the
    others redefine it, in copybook order."""

    alternatives: tuple[str, ...]
    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class RecordSpec:
    """One 01-level record: every elementary field (FILLER included) in layout order."""

    name: str
    length: int
    min_length: int
    fields: tuple[FieldSpec, ...]
    groups: tuple[GroupSpec, ...]
    conditions: tuple[ConditionSpec, ...]
    odos: tuple[OdoSpec, ...]
    redefines: tuple[RedefinesSpec, ...]
    line: int
