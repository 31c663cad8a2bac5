"""Copybook tokens -> data description entries, nested by level number (no layout yet).

Supported, per IBM Enterprise COBOL Language Reference, "Data division--data description
entry": level numbers 01-49 and 77 (elementary or group), 88 (condition names), data names and
``FILLER`` (or no name); ``REDEFINES``; ``PICTURE`` / ``PIC`` [``IS``]; ``USAGE`` [``IS``]
``DISPLAY`` / ``COMP`` / ``COMPUTATIONAL`` / ``COMP-4`` / ``BINARY`` / ``COMP-5`` /
``COMP-3`` / ``PACKED-DECIMAL`` (the word ``USAGE`` may be omitted); ``SIGN`` [``IS``]
``LEADING`` / ``TRAILING`` [``SEPARATE`` [``CHARACTER``]]; ``OCCURS`` *n* [``TO`` *m*]
[``TIMES``] [``DEPENDING`` [``ON``] *name*] with ``ASCENDING`` / ``DESCENDING KEY`` and
``INDEXED BY`` accepted and ignored; ``VALUE`` / ``VALUES`` [``IS`` / ``ARE``] with literals
and figurative constants (``ZERO``, ``SPACE``, ``HIGH-VALUE``, ``LOW-VALUE``, ``QUOTE``,
``ALL`` *literal*) and, on level 88, several values and ``THRU`` / ``THROUGH`` ranges;
``JUSTIFIED`` / ``JUST`` [``RIGHT``]; ``BLANK WHEN ZERO``, ``GLOBAL`` and ``EXTERNAL``
(no effect on the layout).

Rejected with the line and column: ``COPY`` / ``REPLACE``, level 66 ``RENAMES``,
``SYNCHRONIZED`` (it inserts slack bytes), ``COMP-1`` / ``COMP-2`` (hexadecimal floating
point), ``INDEX`` / ``POINTER`` / ``NATIONAL`` / ``DISPLAY-1`` usages, edited pictures, and
any word the grammar above does not know.

>>> items = parse_entries(tokenize("       01  R.\\n           05  A  PIC X(2).\\n"))
>>> items[0].name, items[0].children[0].name, items[0].children[0].picture
('R', 'A', 'X(2)')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Final, Literal

from adapters.fixedwidth.errors import CopybookSyntaxError
from adapters.fixedwidth.source import Token, tokenize

__all__ = [
    "Figurative",
    "Literal_",
    "OccursClause",
    "ParsedItem",
    "Usage",
    "parse_copybook",
    "parse_entries",
]

Usage = Literal["display", "binary", "comp5", "packed"]

_USAGES: Final[dict[str, Usage]] = {
    "DISPLAY": "display",
    "COMP": "binary",
    "COMPUTATIONAL": "binary",
    "COMP-4": "binary",
    "COMPUTATIONAL-4": "binary",
    "BINARY": "binary",
    "COMP-5": "comp5",
    "COMPUTATIONAL-5": "comp5",
    "COMP-3": "packed",
    "COMPUTATIONAL-3": "packed",
    "PACKED-DECIMAL": "packed",
}
_UNSUPPORTED_USAGES: Final = frozenset(
    {
        "COMP-1",
        "COMPUTATIONAL-1",
        "COMP-2",
        "COMPUTATIONAL-2",
        "INDEX",
        "POINTER",
        "PROCEDURE-POINTER",
        "FUNCTION-POINTER",
        "NATIONAL",
        "DISPLAY-1",
        "COMP-6",
        "COMP-X",
        "OBJECT",
    }
)
_FIGURATIVES: Final[dict[str, str]] = {
    "ZERO": "ZERO",
    "ZEROS": "ZERO",
    "ZEROES": "ZERO",
    "SPACE": "SPACE",
    "SPACES": "SPACE",
    "HIGH-VALUE": "HIGH-VALUE",
    "HIGH-VALUES": "HIGH-VALUE",
    "LOW-VALUE": "LOW-VALUE",
    "LOW-VALUES": "LOW-VALUE",
    "QUOTE": "QUOTE",
    "QUOTES": "QUOTE",
    "NULL": "LOW-VALUE",
    "NULLS": "LOW-VALUE",
}
_IGNORED_WORDS: Final = frozenset({"GLOBAL", "EXTERNAL"})


@dataclass(frozen=True, slots=True)
class Figurative:
    """A figurative constant (``ZERO``, ``SPACE``, ``HIGH-VALUE``, ``LOW-VALUE``, ``QUOTE``)
    or ``ALL`` *literal* (``text`` set)."""

    name: str
    text: str | None = None


Literal_ = str | Decimal | bytes | Figurative
"""A VALUE literal: text, a number, hexadecimal bytes (``X'..'``) or a figurative constant."""


@dataclass(frozen=True, slots=True)
class OccursClause:
    """``OCCURS minimum TO maximum TIMES DEPENDING ON depending_on``."""

    maximum: int
    minimum: int
    depending_on: str | None


@dataclass(slots=True)
class ParsedItem:
    """One data description entry as written, with its subordinate entries."""

    level: int
    name: str | None
    line: int
    column: int
    picture: str | None = None
    picture_column: int = 0
    usage: Usage | None = None
    sign_leading: bool | None = None
    sign_separate: bool = False
    occurs: OccursClause | None = None
    redefines: str | None = None
    values: list[tuple[Literal_, Literal_ | None]] = field(default_factory=list)
    justified_right: bool = False
    blank_when_zero: bool = False
    children: list[ParsedItem] = field(default_factory=list)
    conditions: list[ParsedItem] = field(default_factory=list)

    @property
    def is_filler(self) -> bool:
        """True for ``FILLER`` and unnamed items (never in decoded records)."""
        return self.name is None


class _Cursor:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def peek_upper(self) -> str:
        token = self.peek()
        return "" if token is None or token.is_literal else token.upper

    def next(self, what: str, after: Token) -> Token:
        token = self.peek()
        if token is None:
            raise CopybookSyntaxError(
                f"expected {what} but the copybook ends", line=after.line, column=after.column
            )
        self.i += 1
        return token

    def accept(self, *words: str) -> Token | None:
        token = self.peek()
        if token is not None and not token.is_literal and token.upper in words:
            self.i += 1
            return token
        return None


def _error(reason: str, token: Token) -> CopybookSyntaxError:
    return CopybookSyntaxError(reason, line=token.line, column=token.column)


def _parse_int(token: Token, what: str) -> int:
    if token.is_literal or not (token.text.isascii() and token.text.isdigit()):
        raise _error(f"expected {what} (an unsigned integer), found {token.text!r}", token)
    return int(token.text)


def _parse_literal(cursor: _Cursor, after: Token) -> Literal_:
    token = cursor.next("a literal", after)
    if token.is_literal:
        text = token.text
        prefix = text[0].upper()
        if prefix == "X":
            body = text[2:-1]
            try:
                return bytes.fromhex(body)
            except ValueError:
                raise _error(f"invalid hexadecimal literal {text}", token) from None
        if prefix in "NGZ":
            raise _error(f"{prefix}-literals are not supported", token)
        quote = text[0]
        return text[1:-1].replace(quote * 2, quote)
    upper = token.upper
    if upper == "ALL":
        inner = _parse_literal(cursor, token)
        if isinstance(inner, Figurative):
            return inner
        if not isinstance(inner, str):
            raise _error("ALL must be followed by an alphanumeric literal", token)
        return Figurative("ALL", inner)
    if upper in _FIGURATIVES:
        return Figurative(_FIGURATIVES[upper])
    try:
        number = Decimal(token.text)
    except InvalidOperation:
        raise _error(f"expected a literal, found {token.text!r}", token) from None
    if not number.is_finite() or "E" in upper:
        raise _error(f"expected a literal, found {token.text!r}", token)
    return number


def _parse_values(cursor: _Cursor, item: ParsedItem, start: Token, many: bool) -> None:
    cursor.accept("IS", "ARE")
    while True:
        low = _parse_literal(cursor, start)
        high: Literal_ | None = None
        if cursor.accept("THRU", "THROUGH"):
            high = _parse_literal(cursor, start)
        item.values.append((low, high))
        if not many:
            return
        nxt = cursor.peek()
        if nxt is None or (not nxt.is_literal and nxt.text == "."):
            return
        if not nxt.is_literal and not _looks_like_literal(nxt):
            return


def _looks_like_literal(token: Token) -> bool:
    upper = token.upper
    if upper in _FIGURATIVES or upper == "ALL":
        return True
    try:
        Decimal(token.text)
    except InvalidOperation:
        return False
    return True


def _parse_entry(cursor: _Cursor, level_token: Token) -> ParsedItem:
    level = _parse_int(level_token, "a level number")
    if level == 66:
        raise _error("level 66 (RENAMES) is not supported", level_token)
    if not (1 <= level <= 49 or level in (77, 88)):
        raise _error(f"invalid level number {level}", level_token)
    item = ParsedItem(level, None, level_token.line, level_token.column)
    token = cursor.peek()
    if token is not None and not token.is_literal and token.text != ".":
        upper = token.upper
        if upper == "FILLER":
            cursor.i += 1
        elif not _is_clause_word(upper):
            item.name = upper
            cursor.i += 1
    if level == 88 and item.name is None:
        raise _error("a level-88 entry needs a condition name", level_token)
    while True:
        token = cursor.next("a clause or a period", level_token)
        if not token.is_literal and token.text == ".":
            return item
        upper = "" if token.is_literal else token.upper
        if level == 88:
            if upper in ("VALUE", "VALUES"):
                _parse_values(cursor, item, token, many=True)
                continue
            raise _error(f"unexpected {token.text!r} in a level-88 entry", token)
        if upper in ("PIC", "PICTURE"):
            cursor.accept("IS")
            pic = cursor.next("a picture string", token)
            if item.picture is not None:
                raise _error("duplicate PICTURE clause", token)
            item.picture = pic.text
            item.picture_column = pic.column
        elif upper == "USAGE":
            cursor.accept("IS")
            usage_token = cursor.next("a usage", token)
            _set_usage(item, usage_token)
        elif upper in _USAGES or upper in _UNSUPPORTED_USAGES:
            _set_usage(item, token)
        elif upper == "REDEFINES":
            target = cursor.next("the name of the redefined item", token)
            item.redefines = target.upper
        elif upper == "SIGN":
            cursor.accept("IS")
            where = cursor.next("LEADING or TRAILING", token)
            _set_sign(cursor, item, where)
        elif upper in ("LEADING", "TRAILING"):
            _set_sign(cursor, item, token)
        elif upper == "OCCURS":
            item.occurs = _parse_occurs(cursor, token)
        elif upper in ("VALUE", "VALUES"):
            _parse_values(cursor, item, token, many=False)
        elif upper in ("JUSTIFIED", "JUST"):
            cursor.accept("RIGHT")
            item.justified_right = True
        elif upper == "BLANK":
            cursor.accept("WHEN")
            if cursor.accept("ZERO", "ZEROS", "ZEROES") is None:
                raise _error("expected BLANK WHEN ZERO", token)
            item.blank_when_zero = True
        elif upper in ("SYNCHRONIZED", "SYNC"):
            raise _error("SYNCHRONIZED is not supported (it inserts slack bytes)", token)
        elif upper in ("COPY", "REPLACE", "RENAMES"):
            raise _error(f"{upper} is not supported: expand the copybook first", token)
        elif upper in _IGNORED_WORDS:
            continue
        else:
            raise _error(f"unsupported clause or word {token.text!r}", token)


def _is_clause_word(upper: str) -> bool:
    return (
        upper
        in {
            "PIC",
            "PICTURE",
            "USAGE",
            "REDEFINES",
            "SIGN",
            "OCCURS",
            "VALUE",
            "VALUES",
            "JUSTIFIED",
            "JUST",
            "BLANK",
            "SYNC",
            "SYNCHRONIZED",
            "LEADING",
            "TRAILING",
            "GLOBAL",
            "EXTERNAL",
        }
        or upper in _USAGES
        or upper in _UNSUPPORTED_USAGES
    )


def _set_usage(item: ParsedItem, token: Token) -> None:
    upper = token.upper
    if upper in _UNSUPPORTED_USAGES:
        raise _error(f"USAGE {upper} is not supported", token)
    usage = _USAGES.get(upper)
    if usage is None:
        raise _error(f"unknown usage {token.text!r}", token)
    item.usage = usage


def _set_sign(cursor: _Cursor, item: ParsedItem, where: Token) -> None:
    if where.upper not in ("LEADING", "TRAILING"):
        raise _error(f"expected LEADING or TRAILING, found {where.text!r}", where)
    item.sign_leading = where.upper == "LEADING"
    if cursor.accept("SEPARATE"):
        cursor.accept("CHARACTER")
        item.sign_separate = True


def _parse_occurs(cursor: _Cursor, start: Token) -> OccursClause:
    first = cursor.next("the number of occurrences", start)
    minimum = maximum = _parse_int(first, "the number of occurrences")
    depending_on: str | None = None
    if cursor.accept("TO"):
        maximum = _parse_int(cursor.next("the maximum occurrences", start), "a maximum")
    cursor.accept("TIMES")
    if cursor.accept("DEPENDING"):
        cursor.accept("ON")
        depending_on = cursor.next("the DEPENDING ON item", start).upper
    elif maximum != minimum:
        raise _error("OCCURS ... TO needs DEPENDING ON", start)
    while True:
        if cursor.accept("ASCENDING", "DESCENDING"):
            cursor.accept("KEY")
            cursor.accept("IS")
            _skip_names(cursor)
        elif cursor.accept("INDEXED"):
            cursor.accept("BY")
            _skip_names(cursor)
        else:
            break
    if maximum < 1 or minimum > maximum:
        raise _error(f"invalid OCCURS range {minimum} TO {maximum}", first)
    return OccursClause(maximum, minimum, depending_on)


def _skip_names(cursor: _Cursor) -> None:
    while True:
        token = cursor.peek()
        if token is None or token.is_literal or token.text == "." or _is_clause_word(token.upper):
            return
        if token.upper in ("ASCENDING", "DESCENDING", "INDEXED"):
            return
        cursor.i += 1


def parse_entries(tokens: list[Token]) -> list[ParsedItem]:
    """The 01 / 77 level items of a copybook, each with its subordinates nested."""
    cursor = _Cursor(tokens)
    roots: list[ParsedItem] = []
    stack: list[ParsedItem] = []
    while cursor.peek() is not None:
        level_token = cursor.next("a level number", tokens[-1])
        if level_token.upper in ("COPY", "REPLACE"):
            raise _error(
                f"{level_token.upper} is not supported: expand the copybook first", level_token
            )
        item = _parse_entry(cursor, level_token)
        if item.level == 88:
            if not stack:
                raise _error("a level-88 entry must follow a data item", level_token)
            stack[-1].conditions.append(item)
            continue
        if item.level in (1, 77):
            roots.append(item)
            stack = [item]
            continue
        if not stack:
            if not roots:
                # a copybook of 05-level items without an 01: wrap them in one record
                wrapper = ParsedItem(1, "RECORD", item.line, item.column)
                roots.append(wrapper)
                stack = [wrapper]
            else:
                raise _error("level number out of sequence", level_token)
        while stack and stack[-1].level >= item.level:
            stack.pop()
        if not stack:
            raise _error(
                f"level {item.level:02d} is not subordinate to any open group", level_token
            )
        parent = stack[-1]
        if parent.level == 77:
            raise _error("a level-77 item cannot have subordinates", level_token)
        siblings = parent.children
        if siblings and siblings[-1].level != item.level:
            raise _error("level number out of sequence", level_token)
        siblings.append(item)
        stack.append(item)
    return roots


def parse_copybook(text: str) -> list[ParsedItem]:
    """Shortcut: tokenize and parse ``text``."""
    return parse_entries(tokenize(text))
