r"""Hardened parsing of untrusted XML: what every ISO 20022 payload goes through first.

An ISO 20022 message arrives from outside (a bank, a network, a customer upload), so its
bytes are hostile until proven otherwise. :func:`parse_xml` turns them into an lxml tree,
and :func:`iterparse_safe` streams a document of any size (a camt.053 statement file) as
``(event, element)`` pairs. Both refuse, never resolving or loading anything (the first
column is :attr:`XmlInputError.kind`)::

    doctype                 <!DOCTYPE ...>: an internal or external DTD
    entity                  entity declarations and references: "billion laughs",
                            SYSTEM "file:///etc/passwd", parameter entities
    xinclude                XInclude elements (xi:include pulls in files; never processed)
    processing-instruction  <?xml-stylesheet?> and <?xml-model?>: they make a consumer
                            fetch or apply an external resource
    too-large               more than max_bytes (len(data), checked before any parsing)
    too-deep                elements nested deeper than max_depth (the root is depth 1)
    text-too-long           a text node or attribute value longer than max_text characters
    syntax                  not well-formed XML, an empty document included
    encoding                UTF-16/32 or EBCDIC input, a declared encoding other than
                            UTF-8 or Latin, bytes invalid in the declared encoding

ISO 20022 messages are UTF-8 by the standard; ASCII-compatible legacy encodings that bank
files still use (US-ASCII, ISO-8859-1 to -15, windows-1252) are accepted as declared.
Comments are dropped; other processing instructions are removed from inside the tree (they
mean nothing to a payment message and would only trip code walking the children).

Defence in depth: the prolog (what comes before the root element) is scanned on the raw
bytes, so a DOCTYPE is refused before libxml2 reads a single declaration; the parser itself
is configured never to substitute entities, load a DTD, validate against one, touch the
network or lift libxml2's size limits (``XMLParser(resolve_entities=False,
no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False)``) with a resolver
that refuses every external resource; and the parsed tree is checked again for a doctype,
entity nodes, XInclude elements, processing instructions, depth and text length.

>>> root = parse_xml(b'<Document xmlns="urn:example"><MsgId>M1</MsgId></Document>')
>>> root[0].text
'M1'
>>> parse_xml(b'<!DOCTYPE d [<!ENTITY x "y">]><d>&x;</d>')
Traceback (most recent call last):
...
adapters.iso20022.safexml.XmlInputError: entity declarations are not accepted (line 1, column 1)
>>> try:
...     parse_xml(b"<a>" * 101 + b"</a>" * 101)
... except XmlInputError as exc:
...     print(exc.kind, exc.line)
too-deep 1

Errors are :class:`XmlInputError` (a :class:`ValueError`) with a ``kind`` from the table, a
short ``reason`` and, when known, the ``line`` and ``column``. Their text never holds
document content beyond an element name (libxml2's "Bytes: 0x.." excerpts are cut off).

Streaming, with the same protections (the caller clears what it has consumed):

>>> import io
>>> stream = io.BytesIO(b"<Stmt><Ntry>1</Ntry><Ntry>2</Ntry></Stmt>")
>>> for event, element in iterparse_safe(stream, "Ntry"):
...     print(event, element.text)
...     element.clear()
end 1
end 2
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, Literal, TypeAlias, cast

from lxml import etree

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_TEXT",
    "KINDS",
    "XmlInputError",
    "iterparse_safe",
    "parse_xml",
]

DEFAULT_MAX_BYTES: Final = 50_000_000
"""The largest document :func:`parse_xml` accepts unless told otherwise, in bytes."""

DEFAULT_MAX_DEPTH: Final = 100
"""The deepest element nesting accepted (the root element is depth 1)."""

DEFAULT_MAX_TEXT: Final = 1_000_000
"""The longest text node or attribute value accepted, in characters."""

Kind: TypeAlias = Literal[
    "doctype",
    "entity",
    "xinclude",
    "processing-instruction",
    "too-large",
    "too-deep",
    "text-too-long",
    "syntax",
    "encoding",
]

KINDS: Final[tuple[Kind, ...]] = (
    "doctype",
    "entity",
    "xinclude",
    "processing-instruction",
    "too-large",
    "too-deep",
    "text-too-long",
    "syntax",
    "encoding",
)
"""Every :attr:`XmlInputError.kind`."""

_XINCLUDE_NAMESPACES: Final = (
    "http://www.w3.org/2001/XInclude",
    "http://www.w3.org/2003/XInclude",
)
# Processing instructions that tell a consumer to fetch or apply something external.
_REFUSED_PI_TARGETS: Final = frozenset({"xml-stylesheet", "xml-model"})
# Declared encodings accepted: normalised (lower case, no "-" or "_").
_ACCEPTED_ENCODINGS: Final = frozenset(
    {"utf8", "usascii", "ascii", "latin1", "windows1252", "cp1252"}
    | {f"iso8859{part}" for part in range(1, 16)}
)
_CHUNK: Final = 64 * 1024

_XML_DECL = re.compile(rb"<\?xml[ \t\r\n]")
_ENCODING_DECL = re.compile(rb"""encoding[ \t\r\n]*=[ \t\r\n]*(["'])([A-Za-z][A-Za-z0-9._-]*)\1""")
_PI_TARGET = re.compile(rb"<\?([^ \t\r\n?]*)")
_LOCATION_SUFFIX = re.compile(r",? line \d+, column \d+\s*$")
_BYTES_EXCERPT = re.compile(r"[\s,]*Bytes:.*$", re.DOTALL)

_Source: TypeAlias = "str | os.PathLike[str] | IO[bytes]"


class XmlInputError(ValueError):
    """Bytes that are not acceptable XML.

    ``kind``: one of :data:`KINDS`. ``reason``: what is wrong, naming at most an element.
    ``line``, ``column``: where (1-based), when known.
    """

    def __init__(
        self,
        kind: Kind,
        reason: str,
        *,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        super().__init__(kind, reason, line, column)
        self.kind: Kind = kind
        self.reason = reason
        self.line = line
        self.column = column

    def __str__(self) -> str:
        if self.line is None:
            return self.reason
        column = f", column {self.column}" if self.column is not None else ""
        return f"{self.reason} (line {self.line}{column})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.kind, self.reason, self.line, self.column))


def _rebuild(kind: Kind, reason: str, line: int | None, column: int | None) -> XmlInputError:
    return XmlInputError(kind, reason, line=line, column=column)


def parse_xml(
    data: bytes | bytearray | memoryview,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_text: int = DEFAULT_MAX_TEXT,
) -> etree._Element:
    """The root element of ``data``, an untrusted XML document, after every check.

    Raises :class:`XmlInputError` (see the module documentation for what is refused).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"parse_xml takes bytes, not {type(data).__name__}")
    if len(data) > max_bytes:
        raise XmlInputError(
            "too-large", f"the document is {len(data)} bytes, more than the maximum of {max_bytes}"
        )
    data = bytes(data)
    _check_prolog(data)
    parser, refusals = _new_parser()
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise _from_syntax_error(exc) from None
    if root is None:  # pragma: no cover - lxml raises for an empty document
        raise XmlInputError("syntax", "the document is empty")
    _check_docinfo(root.getroottree())
    if refusals.attempts:  # pragma: no cover - only a doctype can refer to a resource
        raise XmlInputError("entity", "the document refers to an external resource")
    # Bounds the document itself already gives skip the tree walks: no text is longer than
    # the document, and nothing nests deeper than its number of start tags.
    _check_tree(
        root,
        max_depth=max_depth if data.count(b"<") > max_depth else None,
        max_text=max_text if len(data) > max_text else None,
    )
    return root


def iterparse_safe(
    source: _Source,
    tags: str | Iterable[str] | None = None,
    *,
    events: Iterable[Literal["start", "end"]] = ("end",),
    max_bytes: int | None = None,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_text: int = DEFAULT_MAX_TEXT,
    chunk_size: int = _CHUNK,
) -> Iterator[tuple[str, etree._Element]]:
    """Stream ``source`` (a path or a binary file) as ``(event, element)`` pairs.

    ``tags`` selects elements as lxml does: ``"{ns}name"``, ``"{*}name"`` (any namespace),
    ``"name"`` (no namespace), ``"{ns}*"``, ``"*"``; ``None`` selects every element.
    ``events``: ``"start"`` and/or ``"end"`` (only at ``end`` is an element complete).
    ``max_bytes``: ``None`` (the default) for no size limit, else the bytes read before the
    stream is refused. Depth, text length, doctype, entities, XInclude and processing
    instructions are checked as the stream is read, so a refused document raises
    :class:`XmlInputError` at the point it is found (after the elements before it have been
    yielded). The tree is built as the stream is read: clear each element once consumed
    (``element.clear()``, and delete earlier siblings for a flat memory profile).

    Implemented on :class:`lxml.etree.XMLPullParser` (the machinery of
    ``lxml.etree.iterparse``) with the same parser options as :func:`parse_xml`, fed in
    chunks of ``chunk_size`` bytes so that the size limit holds on what is read. One
    difference: a reference to an undeclared entity (``&x;`` without a DTD) breaks libxml2's
    push parser, and is reported as ``syntax`` rather than ``entity``.
    """
    wanted_events = frozenset(events)
    if not wanted_events or not wanted_events <= {"start", "end"}:
        raise ValueError(f"events must be 'start' and/or 'end', not {sorted(wanted_events)!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, not {chunk_size}")
    limits = _Limits(max_bytes, max_depth, max_text, chunk_size)
    return _stream_source(source, _TagMatcher(tags), wanted_events, limits)


@dataclass(frozen=True, slots=True)
class _Limits:
    max_bytes: int | None
    max_depth: int
    max_text: int
    chunk_size: int


def _stream_source(
    source: _Source, matcher: _TagMatcher, wanted: frozenset[str], limits: _Limits
) -> Iterator[tuple[str, etree._Element]]:
    if isinstance(source, str | os.PathLike):
        with Path(source).open("rb") as stream:
            yield from _stream(stream, matcher, wanted, limits)
    else:
        yield from _stream(source, matcher, wanted, limits)


# -- the parser -------------------------------------------------------------------------


class _RefusingResolver(etree.Resolver):
    """Answers every request for an external resource with nothing, and remembers it."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    def resolve(self, system_url: str, public_id: str, context: Any = None) -> Any:
        self.attempts += 1
        return self.resolve_string("", context, base_url=None)


def _new_parser() -> tuple[etree.XMLParser, _RefusingResolver]:
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=False,  # seen, then refused or removed by the checks
        collect_ids=False,
    )
    resolver = _RefusingResolver()
    parser.resolvers.add(resolver)
    return parser, resolver


def _new_pull_parser() -> tuple[etree.XMLPullParser, _RefusingResolver]:
    parser = etree.XMLPullParser(
        events=("start", "end", "pi"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=False,
        collect_ids=False,
    )
    resolver = _RefusingResolver()
    parser.resolvers.add(resolver)
    return parser, resolver


def _line(node: Any) -> int | None:
    """``sourceline`` (the stubs type it loosely)."""
    line = getattr(node, "sourceline", None)
    return line if isinstance(line, int) else None


def _from_syntax_error(exc: etree.XMLSyntaxError) -> XmlInputError:
    """A libxml2 error as an XmlInputError, classified, without document content."""
    message = _BYTES_EXCERPT.sub("", _LOCATION_SUFFIX.sub("", str(exc.msg or "")))
    message = message.strip().rstrip(".,") or "not well-formed XML"
    if len(message) > 200:
        message = message[:197] + "..."
    lowered = message.lower()
    kind: Kind
    if "depth" in lowered:
        kind = "too-deep"
    elif "too long" in lowered:
        kind = "text-too-long"
    elif "huge input" in lowered or "resource limit" in lowered:
        kind = "too-large"
    elif "entity" in lowered or "amplification" in lowered:
        kind = "entity"
    elif "encoding" in lowered or "utf-8" in lowered:
        kind = "encoding"
    else:
        kind = "syntax"
    line, column = None, None
    position = getattr(exc, "position", None)
    if isinstance(position, tuple) and len(position) == 2:
        line, column = (value if value > 0 else None for value in position)
    return XmlInputError(kind, message, line=line, column=column)


# -- the prolog, on raw bytes -----------------------------------------------------------


def _location(data: bytes, offset: int) -> tuple[int, int]:
    line = data.count(b"\n", 0, offset) + 1
    return line, offset - (data.rfind(b"\n", 0, offset) + 1) + 1


def _check_encoding(data: bytes) -> int:
    """Refuse non-ASCII-compatible input and unaccepted declared encodings.

    Returns the offset after a UTF-8 byte order mark (0 without one).
    """
    if data.startswith(b"\xef\xbb\xbf"):
        start = 3
    elif data[:2] in (b"\xfe\xff", b"\xff\xfe") or b"\x00" in data[:4]:
        raise XmlInputError(
            "encoding", "UTF-16 and UTF-32 are not accepted: ISO 20022 messages are UTF-8"
        )
    elif data[:4] == b"\x4c\x6f\xa7\x94":
        raise XmlInputError("encoding", "EBCDIC is not accepted: ISO 20022 messages are UTF-8")
    else:
        start = 0
    if _XML_DECL.match(data, start):
        end = data.find(b"?>", start)
        declaration = data[start : end if end >= 0 else start + 200]
        found = _ENCODING_DECL.search(declaration)
        if found is not None:
            name = found.group(2).decode("ascii")
            normalised = name.lower().replace("-", "").replace("_", "")
            if normalised not in _ACCEPTED_ENCODINGS:
                raise XmlInputError(
                    "encoding",
                    f"encoding {name[:40]!r} is not accepted: ISO 20022 messages are UTF-8",
                    line=1,
                )
            if start and normalised != "utf8":
                raise XmlInputError(
                    "encoding", f"a UTF-8 byte order mark with encoding {name[:40]!r}", line=1
                )
    return start


def _check_prolog(data: bytes) -> None:
    """Refuse a DOCTYPE or a fetching processing instruction before the root element.

    Scans only what precedes the root element (XML declaration, comments, processing
    instructions, white space); anything else is left to the parser.
    """
    position = _check_encoding(data)
    size = len(data)
    while position < size:
        byte = data[position]
        if byte in b" \t\r\n":
            position += 1
        elif data.startswith(b"<!--", position):
            end = data.find(b"-->", position + 4)
            if end < 0:
                return
            position = end + 3
        elif data.startswith(b"<?", position):
            target = _PI_TARGET.match(data, position)
            name = target.group(1).decode("ascii", "replace") if target else ""
            if name.lower() in _REFUSED_PI_TARGETS:
                line, column = _location(data, position)
                raise XmlInputError(
                    "processing-instruction",
                    f"processing instruction {name!r} is not accepted",
                    line=line,
                    column=column,
                )
            end = data.find(b"?>", position + 2)
            if end < 0:
                return
            position = end + 2
        elif data.startswith(b"<!DOCTYPE", position):
            line, column = _location(data, position)
            if data.find(b"<!ENTITY", position) >= 0:
                raise XmlInputError(
                    "entity", "entity declarations are not accepted", line=line, column=column
                )
            raise XmlInputError(
                "doctype", "a DOCTYPE (DTD) is not accepted", line=line, column=column
            )
        else:
            return


# -- the parsed tree --------------------------------------------------------------------


def _nodes(result: object) -> list[Any]:
    return list(result) if isinstance(result, list) else []


def _check_docinfo(tree: etree._ElementTree) -> None:
    """Refuse a doctype (entity declarations first) and an encoding not accepted."""
    docinfo = cast(Any, tree.docinfo)
    encoding = str(docinfo.encoding or "UTF-8")
    if encoding.lower().replace("-", "").replace("_", "") not in _ACCEPTED_ENCODINGS:
        raise XmlInputError(
            "encoding", f"encoding {encoding[:40]!r} is not accepted: ISO 20022 messages are UTF-8"
        )
    internal = cast(Any, docinfo.internalDTD)
    external = cast(Any, docinfo.externalDTD)
    if internal is not None and any(True for _ in internal.iterentities()):
        raise XmlInputError("entity", "entity declarations are not accepted")
    if docinfo.doctype or internal is not None or external is not None:
        raise XmlInputError("doctype", "a DOCTYPE (DTD) is not accepted")


def _refuse_pi(node: Any) -> None:
    target = str(node.target)
    if target.lower() in _REFUSED_PI_TARGETS:
        raise XmlInputError(
            "processing-instruction",
            f"processing instruction {target[:40]!r} is not accepted",
            line=_line(node),
        )


# Compiled once: compiling an XPath costs more than running it on a message.
_PROCESSING_INSTRUCTIONS: Final = etree.XPath("//processing-instruction()")
_LONG_TEXTS: Final = etree.XPath("//text()[string-length(.) > $n]")
_LONG_ATTRIBUTES: Final = etree.XPath("//@*[string-length(.) > $n]")


@functools.lru_cache(maxsize=8)
def _deeper_than(depth: int) -> etree.XPath:
    return etree.XPath("/*" * (depth + 1))


def _check_tree(root: etree._Element, *, max_depth: int | None, max_text: int | None) -> None:
    tree = root.getroottree()
    entity = next(root.iter(cast(Any, etree).Entity), None)
    if entity is not None:
        raise XmlInputError("entity", "entity references are not accepted", line=_line(entity))
    for namespace in _XINCLUDE_NAMESPACES:
        xinclude = next(root.iter(f"{{{namespace}}}*"), None)
        if xinclude is not None:
            raise XmlInputError("xinclude", "XInclude is not accepted", line=_line(xinclude))
    instructions = _nodes(_PROCESSING_INSTRUCTIONS(tree))
    for instruction in instructions:
        _refuse_pi(instruction)
    if instructions:
        etree.strip_elements(root, cast(Any, etree.PI), with_tail=False)
    deep = _nodes(_deeper_than(max_depth)(root)) if max_depth is not None else []
    if deep:
        element = deep[0]
        raise XmlInputError(
            "too-deep",
            f"elements nest deeper than {max_depth} levels (at {etree.QName(element).localname})",
            line=_line(element),
        )
    for query, what in ((_LONG_TEXTS, "a text"), (_LONG_ATTRIBUTES, "an attribute value")):
        if max_text is None:
            break
        long = _nodes(query(root, n=max_text))
        if long:
            parent = long[0].getparent()
            where = f" (in {etree.QName(parent).localname})" if parent is not None else ""
            raise XmlInputError(
                "text-too-long",
                f"{what} is longer than {max_text} characters{where}",
                line=_line(parent) if parent is not None else None,
            )


# -- streaming --------------------------------------------------------------------------


class _TagMatcher:
    """lxml's tag selection: ``{ns}name``, ``{*}name``, ``{}name``/``name``, ``{ns}*``."""

    def __init__(self, tags: str | Iterable[str] | None) -> None:
        self.everything = tags is None
        chosen = [tags] if isinstance(tags, str) else list(tags or ())
        self.patterns: list[tuple[str | None, str | None]] = []
        for tag in chosen:
            if tag == "*":
                self.everything = True
            elif tag.startswith("{"):
                namespace, _, name = tag[1:].partition("}")
                self.patterns.append(
                    (None if namespace == "*" else namespace, None if name == "*" else name)
                )
            else:
                self.patterns.append(("", tag))

    def __call__(self, element: etree._Element) -> bool:
        if self.everything:
            return True
        qname = etree.QName(element)
        namespace, name = qname.namespace or "", qname.localname
        return any(
            (ns is None or ns == namespace) and (local is None or local == name)
            for ns, local in self.patterns
        )


def _stream(
    stream: IO[bytes], matcher: _TagMatcher, wanted: frozenset[str], limits: _Limits
) -> Iterator[tuple[str, etree._Element]]:
    max_bytes, max_depth, max_text = limits.max_bytes, limits.max_depth, limits.max_text
    parser, refusals = _new_pull_parser()
    depth = 0
    total = 0
    first = True  # no element seen yet: the doctype check is due
    scanned = False  # the prolog byte scan (on the first chunk only: it may end mid-prolog)
    pending_pis: list[Any] = []
    finished = False
    while not finished:
        chunk = stream.read(limits.chunk_size)
        try:
            if chunk:
                total += len(chunk)
                if max_bytes is not None and total > max_bytes:
                    raise XmlInputError(
                        "too-large", f"the document is more than the maximum of {max_bytes} bytes"
                    )
                if not scanned:
                    _check_prolog(chunk)
                    scanned = True
                parser.feed(chunk)
            else:
                parser.close()
                finished = True
            parsed = list(parser.read_events())
        except etree.XMLSyntaxError as exc:
            raise _from_syntax_error(exc) from None
        if refusals.attempts:
            starts = [node for event, node in parsed if event == "start"]
            if starts:
                _check_docinfo(cast(etree._Element, starts[0]).getroottree())
            raise XmlInputError("entity", "the document refers to an external resource")
        for event, node in parsed:
            element = cast(etree._Element, node)
            if event == "pi":
                _refuse_pi(element)
                if element.getparent() is not None:
                    pending_pis.append(element)
                continue
            if event == "start":
                if first:
                    _check_docinfo(element.getroottree())
                    first = False
                depth += 1
                if depth > max_depth:
                    raise XmlInputError(
                        "too-deep",
                        f"elements nest deeper than {max_depth} levels "
                        f"(at {etree.QName(element).localname})",
                        line=_line(element),
                    )
                if etree.QName(element).namespace in _XINCLUDE_NAMESPACES:
                    raise XmlInputError("xinclude", "XInclude is not accepted", line=_line(element))
                previous = element.getprevious()
                _check_text(previous.tail if previous is not None else None, element, max_text)
                for value in element.attrib.values():
                    _check_text(str(value), element, max_text, "an attribute value")
            else:
                depth -= 1
                _check_text(element.text, element, max_text)
                if len(element):
                    _check_text(element[-1].tail, element, max_text)
                if pending_pis:
                    pending_pis = _drop_pis(pending_pis, element)
            if event in wanted and matcher(element):
                yield event, element


def _check_text(
    text: str | None, element: etree._Element, max_text: int, what: str = "a text"
) -> None:
    if text is not None and len(text) > max_text:
        raise XmlInputError(
            "text-too-long",
            f"{what} is longer than {max_text} characters (in {etree.QName(element).localname})",
            line=_line(element),
        )


def _drop_pis(pending: list[Any], ended: etree._Element) -> list[Any]:
    """Remove the processing instructions whose parent has just ended, keeping tail text."""
    keep: list[Any] = []
    for instruction in pending:
        if instruction.getparent() is ended:
            tail = instruction.tail
            previous = instruction.getprevious()
            if tail:
                if previous is not None:
                    previous.tail = (previous.tail or "") + tail
                else:
                    ended.text = (ended.text or "") + tail
            ended.remove(instruction)
        else:
            keep.append(instruction)
    return keep
