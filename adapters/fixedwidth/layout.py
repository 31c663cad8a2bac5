"""Parsed entries -> :class:`~adapters.fixedwidth.spec.RecordSpec`: offsets and sizes, once.

Sizes follow IBM Enterprise COBOL Language Reference and Programming Guide ("Formats for
numeric data"): DISPLAY takes one byte per picture symbol that has storage (plus one for
``SIGN ... SEPARATE``); COMP-3 ``digits // 2 + 1``; COMP / COMP-4 / BINARY / COMP-5 2, 4 or 8
bytes. A group is as long as its subordinates; an item with ``OCCURS`` takes its size times
the maximum count; ``REDEFINES`` starts at the redefined item and the area is as long as the
longest alternative. ``OCCURS DEPENDING ON`` tables may be followed by other items (IBM
"variably located" items): their offsets move with the actual count. A table with a
DEPENDING ON inside another OCCURS, and the DEPENDING ON item inside its own table, are
rejected.

Decoded records are keyed by the elementary item's name; a name used more than once in a
record is qualified the COBOL way, ``NAME OF GROUP`` (as many ``OF`` as it takes).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field

from adapters.fixedwidth.binary import binary_size
from adapters.fixedwidth.errors import CopybookSyntaxError
from adapters.fixedwidth.packed import packed_size
from adapters.fixedwidth.parser import Literal_, ParsedItem
from adapters.fixedwidth.picture import PictureError, parse_picture
from adapters.fixedwidth.spec import (
    ConditionSpec,
    Dimension,
    FieldSpec,
    GroupSpec,
    OdoSpec,
    RecordSpec,
    RedefinesSpec,
    Storage,
)

__all__ = ["MAX_RECORD_LENGTH", "layout_record"]

MAX_RECORD_LENGTH = 1 << 20
"""The longest record the compiler accepts (1 MiB; z/OS records stop at 32,760 bytes)."""


def _error(reason: str, item: ParsedItem, column: int | None = None) -> CopybookSyntaxError:
    return CopybookSyntaxError(reason, line=item.line, column=column or item.column)


@dataclass(slots=True)
class _Elementary:
    storage: Storage
    picture: str
    size: int
    digits: int
    scale: int
    signed: bool


def _elementary(item: ParsedItem) -> _Elementary:
    if item.picture is None:
        raise _error(f"elementary item {item.name or 'FILLER'} has no PICTURE", item)
    try:
        pic = parse_picture(item.picture)
    except PictureError as exc:
        raise _error(str(exc), item, item.picture_column + exc.position) from None
    usage = item.usage or "display"
    if pic.category != "numeric":
        if usage != "display":
            raise _error(f"an alphanumeric picture cannot be USAGE {usage.upper()}", item)
        if item.sign_leading is not None:
            raise _error("SIGN applies to signed numeric items only", item)
        return _Elementary(Storage.ALPHANUMERIC, item.picture.upper(), pic.size, 0, 0, False)
    if item.sign_leading is not None and (not pic.signed or usage != "display"):
        raise _error("SIGN applies to signed numeric DISPLAY items only", item)
    picture = item.picture.upper()
    if usage == "packed":
        return _Elementary(
            Storage.PACKED, picture, packed_size(pic.digits), pic.digits, pic.scale, pic.signed
        )
    if usage in ("binary", "comp5"):
        if pic.digits > 18:
            raise _error(f"a binary item holds at most 18 digits, not {pic.digits}", item)
        storage = Storage.BINARY if usage == "binary" else Storage.NATIVE_BINARY
        return _Elementary(
            storage, picture, binary_size(pic.digits), pic.digits, pic.scale, pic.signed
        )
    if item.sign_separate:
        return _Elementary(
            Storage.SEPARATE_SIGN, picture, pic.digits + 1, pic.digits, pic.scale, True
        )
    return _Elementary(Storage.ZONED, picture, pic.digits, pic.digits, pic.scale, pic.signed)


def _size(item: ParsedItem) -> int:
    """One occurrence of ``item``, every DEPENDING ON table at its maximum."""
    if not item.children:
        return _elementary(item).size
    total = 0
    area_start = 0
    area_end = 0
    for child in item.children:
        size = _size(child) * (child.occurs.maximum if child.occurs else 1)
        if child.redefines is not None:
            area_end = max(area_end, area_start + size)
        else:
            area_start = area_end
            area_end = area_start + size
        total = area_end
    return total


@dataclass(slots=True)
class _Builder:
    record: str
    fields: list[FieldSpec] = field(default_factory=list)
    groups: list[GroupSpec] = field(default_factory=list)
    conditions: list[tuple[ParsedItem, ParsedItem]] = field(default_factory=list)
    odos: list[OdoSpec] = field(default_factory=list)
    odo_items: list[ParsedItem] = field(default_factory=list)
    redefines: list[RedefinesSpec] = field(default_factory=list)
    shifts: list[int] = field(default_factory=list)
    keys: dict[int, str] = field(default_factory=dict)

    def walk(
        self,
        item: ParsedItem,
        offset: int,
        path: tuple[str, ...],
        dims: tuple[Dimension, ...],
        choices: tuple[tuple[int, int], ...],
        group_value: bool,
    ) -> None:
        occurs = item.occurs
        own_dims = dims
        size = _size(item)
        if occurs is not None:
            if item.level in (1, 77):
                raise _error("OCCURS is not allowed on level 01 or 77", item)
            odo_index: int | None = None
            if occurs.depending_on is not None:
                if any(d.odo is not None for d in dims) or dims:
                    raise _error("OCCURS DEPENDING ON inside another OCCURS is not supported", item)
                odo_index = len(self.odos)
                self.odos.append(
                    OdoSpec(
                        item.name,
                        occurs.depending_on,
                        occurs.minimum,
                        occurs.maximum,
                        size,
                        offset,
                        tuple(self.shifts),
                    )
                )
                self.odo_items.append(item)
            own_dims = (*dims, Dimension(occurs.maximum, size, odo_index))
        shifted = tuple(self.shifts)
        if not item.children:
            if item.values and group_value:
                raise _error("an item inside a group with VALUE cannot have VALUE", item)
            elem = _elementary(item)
            value: Literal_ | None = item.values[0][0] if item.values else None
            self.fields.append(
                FieldSpec(
                    key=None,
                    name=item.name,
                    path=path,
                    level=item.level,
                    offset=offset,
                    size=elem.size,
                    storage=elem.storage,
                    picture=elem.picture,
                    digits=elem.digits,
                    scale=elem.scale,
                    signed=elem.signed,
                    sign_leading=bool(item.sign_leading),
                    justified_right=item.justified_right,
                    dims=own_dims,
                    shifted_by=shifted,
                    choices=choices,
                    value=value,
                    set_by_group=group_value,
                    line=item.line,
                    column=item.column,
                )
            )
            for condition in item.conditions:
                self.conditions.append((condition, item))
        else:
            if item.picture is not None or item.usage is not None:
                raise _error(
                    f"group item {item.name or 'FILLER'} cannot have PICTURE or USAGE", item
                )
            for condition in item.conditions:
                raise _error("level-88 conditions on group items are not supported", condition)
            group_val: Literal_ | None = item.values[0][0] if item.values else None
            self.groups.append(
                GroupSpec(
                    item.name,
                    path,
                    item.level,
                    offset,
                    size,
                    own_dims,
                    item.redefines,
                    group_val,
                    item.line,
                    item.column,
                )
            )
            child_path = (*path, item.name) if item.name else path
            self.walk_children(
                item, offset, child_path, own_dims, choices, group_value or bool(item.values)
            )
        if occurs is not None and occurs.depending_on is not None:
            self.shifts.append(len(self.odos) - 1)

    def walk_children(
        self,
        item: ParsedItem,
        offset: int,
        path: tuple[str, ...],
        dims: tuple[Dimension, ...],
        choices: tuple[tuple[int, int], ...],
        group_value: bool,
    ) -> None:
        area_start = offset
        area_end = offset
        previous: ParsedItem | None = None
        area_set: int | None = None
        area_names: list[str] = []
        for child in item.children:
            size = _size(child) * (child.occurs.maximum if child.occurs else 1)
            if child.redefines is not None:
                if previous is None or child.redefines not in area_names:
                    raise _error(
                        f"REDEFINES {child.redefines}: not the item just before at this level",
                        child,
                    )
                if child.occurs is not None and child.occurs.depending_on is not None:
                    raise _error("a redefining item cannot have OCCURS DEPENDING ON", child)
                if area_set is None:
                    raise RuntimeError("internal error: expected area_set is not None")
                area_names.append(child.name or "FILLER")
                alt = len(area_names) - 1
                start = area_start
                area_end = max(area_end, start + size)
                self._close_area(area_set, area_names, area_start, area_end)
                self.walk(child, start, path, dims, (*choices, (area_set, alt)), group_value)
            else:
                area_start = area_end
                area_end = area_start + size
                area_set = None
                area_names = [child.name or "FILLER"]
                start = area_start
                child_choices = choices
                if _redefined_next(item.children, child):
                    area_set = len(self.redefines)
                    self.redefines.append(RedefinesSpec((), area_start, size))
                    child_choices = (*choices, (area_set, 0))
                self.walk(child, start, path, dims, child_choices, group_value)
            previous = child

    def _close_area(self, index: int, names: list[str], start: int, end: int) -> None:
        self.redefines[index] = RedefinesSpec(tuple(names), start, end - start)


def _redefined_next(children: list[ParsedItem], child: ParsedItem) -> bool:
    position = children.index(child)
    return position + 1 < len(children) and children[position + 1].redefines is not None


def _assign_keys(fields: list[FieldSpec]) -> list[FieldSpec]:
    named = [f for f in fields if f.name is not None]
    depth = {id(f): 0 for f in named}

    def key_of(f: FieldSpec) -> str:
        if f.name is None:
            raise RuntimeError("internal error: expected f.name is not None")
        parts = (
            [f.name, *reversed(f.path[len(f.path) - depth[id(f)] :])] if depth[id(f)] else [f.name]
        )
        return " OF ".join(parts)

    while True:
        counts = Counter(key_of(f) for f in named)
        clashing = [f for f in named if counts[key_of(f)] > 1]
        if not clashing:
            break
        progressed = False
        for f in clashing:
            if depth[id(f)] < len(f.path):
                depth[id(f)] += 1
                progressed = True
        if not progressed:
            f = clashing[0]
            raise CopybookSyntaxError(
                f"{f.name} is defined twice in the same group", line=f.line, column=f.column
            )
    keyed: list[FieldSpec] = []
    for f in fields:
        if f.name is None:
            keyed.append(f)
        else:
            keyed.append(_replace_key(f, key_of(f)))
    return keyed


def _replace_key(f: FieldSpec, key: str) -> FieldSpec:
    return dataclasses.replace(f, key=key)


def layout_record(root: ParsedItem) -> RecordSpec:
    """The compiled layout of one 01 / 77 level item; CopybookSyntaxError when impossible."""
    if root.occurs is not None:
        raise _error("OCCURS is not allowed on level 01 or 77", root)
    if root.redefines is not None:
        raise _error(
            "a level-01 REDEFINES describes another record: give it its own 01 instead", root
        )
    builder = _Builder(root.name or "RECORD")
    if root.children:
        if root.picture is not None or root.usage is not None:
            raise _error("a group item cannot have PICTURE or USAGE", root)
        builder.groups.append(
            GroupSpec(
                root.name,
                (),
                root.level,
                0,
                _size(root),
                (),
                None,
                root.values[0][0] if root.values else None,
                root.line,
                root.column,
            )
        )
        path = (root.name,) if root.name else ()
        builder.walk_children(root, 0, path, (), (), bool(root.values))
        for condition in root.conditions:
            raise _error("level-88 conditions on group items are not supported", condition)
    else:
        builder.walk(root, 0, (), (), (), False)
    fields = _assign_keys(builder.fields)
    by_item: dict[tuple[int, int], str] = {}
    for f in fields:
        if f.key is not None:
            by_item[(f.line, f.column)] = f.key
    conditions: list[ConditionSpec] = []
    for condition, owner in builder.conditions:
        key = by_item.get((owner.line, owner.column))
        if key is None:
            raise _error("level-88 conditions on FILLER are not supported", condition)
        if condition.name is None:
            raise RuntimeError("internal error: expected condition.name is not None")
        conditions.append(
            ConditionSpec(
                condition.name, key, tuple(condition.values), condition.line, condition.column
            )
        )
    names = Counter(c.name for c in conditions)
    for c in conditions:
        if names[c.name] > 1:
            raise CopybookSyntaxError(
                f"condition name {c.name} is defined twice", line=c.line, column=c.column
            )
    odos = []
    for odo, item in zip(builder.odos, builder.odo_items, strict=True):
        counter = _find_counter(fields, odo.counter)
        if counter is None:
            raise _error(f"DEPENDING ON {odo.counter}: no such elementary item", item)
        if not counter.numeric or counter.dims:
            raise _error(f"DEPENDING ON {odo.counter}: must be a numeric item outside tables", item)
        if counter.offset >= odo.offset:
            raise _error(f"DEPENDING ON {odo.counter}: must come before the table", item)
        odos.append(
            OdoSpec(
                odo.name,
                counter.key or odo.counter,
                odo.minimum,
                odo.maximum,
                odo.stride,
                odo.offset,
                odo.shifted_by,
            )
        )
    length = _size(root)
    if length > MAX_RECORD_LENGTH:
        raise _error(f"record of {length} bytes exceeds {MAX_RECORD_LENGTH}", root)
    min_length = length - sum((o.maximum - o.minimum) * o.stride for o in odos)
    return RecordSpec(
        name=builder.record,
        length=length,
        min_length=min_length,
        fields=tuple(fields),
        groups=tuple(builder.groups),
        conditions=tuple(conditions),
        odos=tuple(odos),
        redefines=tuple(builder.redefines),
        line=root.line,
    )


def _find_counter(fields: list[FieldSpec], name: str) -> FieldSpec | None:
    for f in fields:
        if f.key == name or f.name == name:
            return f
    return None
