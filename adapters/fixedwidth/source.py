"""Copybook source text -> tokens with their line and column (reference format, IBM rules).

IBM Enterprise COBOL Language Reference, "Reference format": in *fixed* format, columns 1-6
are the sequence number area, column 7 the indicator area (``*`` and ``/`` make the line a
comment, ``D`` a debugging line, ``-`` a continuation of a literal), columns 8-72 areas A and
B, and columns 73-80 are ignored. *Free* format (GnuCOBOL ``-free``, many hand-written
copybooks) has no areas: ``*>`` starts a comment anywhere, ``*`` or ``/`` in column 1 comments
the line. ``source_format="auto"`` picks fixed format when every line that is not blank has a
fixed-format indicator (space, ``*``, ``/``, ``-``, ``D``) in column 7 and a numeric or blank
sequence area, and free format otherwise.

Tokens are words (``PIC``, ``CB-AMOUNT``, ``9(5)V99``), alphanumeric literals (``'ABC'``,
``"ABC"``, ``X'C1C2'``) and the separator period. A period ends an entry only when followed by
a space or the end of the line, so ``PIC 9(5).99`` stays one word.

>>> [t.text for t in tokenize("       05  A  PIC X(3) VALUE 'X.Y'.")]
['05', 'A', 'PIC', 'X(3)', 'VALUE', "'X.Y'", '.']
>>> tokenize("       05  A  PIC X(3) VALUE 'X.Y'.")[1].column
12
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from adapters.fixedwidth.errors import CopybookSyntaxError

__all__ = ["SourceFormat", "Token", "detect_format", "tokenize"]

SourceFormat = Literal["fixed", "free", "auto"]

_FIXED_INDICATORS: Final = frozenset(" *-/Dd")
_SEQUENCE_AREA: Final = re.compile(r"^[0-9 ]{0,6}$")
_FIXED_CODE_END: Final = 72


@dataclass(frozen=True, slots=True)
class Token:
    """One word, literal or period of a copybook, at its 1-based line and column."""

    text: str
    line: int
    column: int
    is_literal: bool = False

    @property
    def upper(self) -> str:
        """The token in upper case (COBOL words are case-insensitive)."""
        return self.text.upper()


def detect_format(text: str) -> Literal["fixed", "free"]:
    """``"fixed"`` when every non-blank line looks like reference format, else ``"free"``."""
    for raw in text.splitlines():
        if not raw.strip():
            continue
        if len(raw) < 7:
            return "free"
        if raw[6] not in _FIXED_INDICATORS or not _SEQUENCE_AREA.match(raw[:6]):
            return "free"
    return "fixed"


def _code_lines(text: str, fmt: SourceFormat) -> list[tuple[int, int, str, bool]]:
    """(line, first column, code text, is_continuation) for each line that holds code."""
    lines: list[tuple[int, int, str, bool]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        raw = raw.replace("\t", " ")
        if fmt == "fixed":
            if len(raw) < 7:
                if raw.strip() and not _SEQUENCE_AREA.match(raw):
                    raise CopybookSyntaxError(
                        "line too short for fixed format", line=number, column=1
                    )
                continue
            indicator = raw[6]
            if indicator in "*/":
                continue
            if indicator in "Dd":
                # debugging lines are compiled only WITH DEBUGGING MODE: treated as comments
                continue
            if indicator not in _FIXED_INDICATORS:
                raise CopybookSyntaxError(
                    f"invalid indicator {indicator!r} in column 7", line=number, column=7
                )
            code = raw[7:_FIXED_CODE_END]
            lines.append((number, 8, code, indicator == "-"))
        else:
            stripped = raw.lstrip()
            if stripped.startswith(("*", "/")) and raw[:1] in "*/":
                continue
            comment = raw.find("*>")
            code = raw if comment < 0 else raw[:comment]
            lines.append((number, 1, code, False))
    return lines


_LITERAL_START: Final = re.compile(r"""(?i)(?:[XNGZ])?(['"])""")


@dataclass(slots=True)
class _OpenLiteral:
    text: str
    quote: str
    line: int
    column: int


def tokenize(text: str, source_format: SourceFormat = "auto") -> list[Token]:
    """The tokens of ``text``; raises CopybookSyntaxError for an unclosed literal."""
    fmt = detect_format(text) if source_format == "auto" else source_format
    tokens: list[Token] = []
    pending: _OpenLiteral | None = None
    for number, first_column, code, continuation in _code_lines(text, fmt):
        i = 0
        n = len(code)
        if pending is not None:
            if not continuation:
                raise CopybookSyntaxError(
                    "unclosed literal", line=pending.line, column=pending.column
                )
            stripped = len(code) - len(code.lstrip())
            if stripped >= n or code[stripped] != pending.quote:
                raise CopybookSyntaxError(
                    "a continuation line must resume the literal with a quote",
                    line=number,
                    column=first_column + stripped,
                )
            i = stripped + 1
            i, pending = _scan_literal(code, i, pending, tokens)
        elif continuation:
            raise CopybookSyntaxError(
                "continuation line without an open literal", line=number, column=7
            )
        while i < n and pending is None:
            ch = code[i]
            if ch in " ,;":
                i += 1
                continue
            column = first_column + i
            if ch == "." and (i + 1 >= n or code[i + 1] == " "):
                tokens.append(Token(".", number, column))
                i += 1
                continue
            literal = _LITERAL_START.match(code, i)
            if literal is not None:
                opened = _OpenLiteral(code[i : literal.end()], literal.group(1), number, column)
                i, pending = _scan_literal(code, literal.end(), opened, tokens)
                if pending is not None and fmt == "free":
                    raise CopybookSyntaxError("unclosed literal", line=number, column=column)
                continue
            j = i
            while j < n and code[j] not in " ,;":
                if code[j] == "." and (j + 1 >= n or code[j + 1] == " "):
                    break
                j += 1
            tokens.append(Token(code[i:j], number, column))
            i = j
    if pending is not None:
        raise CopybookSyntaxError("unclosed literal", line=pending.line, column=pending.column)
    return tokens


def _scan_literal(
    code: str, i: int, literal: _OpenLiteral, tokens: list[Token]
) -> tuple[int, _OpenLiteral | None]:
    """Scan ``code`` from ``i`` for the literal's closing quote (a doubled quote is content)."""
    n = len(code)
    j = i
    while True:
        end = code.find(literal.quote, j)
        if end < 0:
            # fixed format: the literal runs to column 72 and continues on a '-' line
            # (an editor may have trimmed the trailing spaces: they belong to the literal)
            literal.text += code[i:].ljust(_FIXED_CODE_END - 7 - i)
            return n, literal
        if end + 1 < n and code[end + 1] == literal.quote:
            j = end + 2
            continue
        literal.text += code[i : end + 1]
        tokens.append(Token(literal.text, literal.line, literal.column, is_literal=True))
        return end + 1, None
