"""XSD validation in two layers, and the envelope split that comes before it.

**Envelopes.** An ISO 20022 message is a bare ``Document``, or a Business Application Header
(``AppHdr``, head.001) and its ``Document`` inside a wrapper whose name depends on the
network: SWIFT's ``Envelope`` (``urn:swift:xsd:envelope``), ``BizMsg``,
``RequestPayload``, ``Request`` (``SWIFTNetBusinessEnvelope``), ``DataPDU``...
:func:`split_envelope` finds both by local name (and, for ``AppHdr``, a head.001 namespace)
among the wrapper's descendants down to depth 3, whatever the wrapper, and returns
``(app_hdr, document)``: ``(None, root)`` for a bare ``Document``. A header sent on its own (a
bare ``AppHdr``, or an envelope holding only one) comes back as the document, ``(None,
app_hdr)``: its namespace then names head.001. With no ``Document`` at all the root is
returned as the document, so that looking up its namespace reports what was found.

**Validation.** :meth:`SchemaValidator.validate` checks an element (a ``Document``, or an
``AppHdr`` against head.001) against the XSD of its :class:`~.catalog.MessageType`:

1. lxml (libxml2) decides. A valid message costs one C-level validation: the hot path.
2. Only when lxml finds the element invalid, xmlschema explains why: one
   :class:`SchemaProblem` per failure, with the element's ``path`` (``/Document/...``,
   local names, a 1-based index where a name repeats among its siblings, as
   :func:`adapters.iso20022.components.element_path` writes them), a short ``reason``, what
   was ``expected`` there (element names) and the ``line``. Should xmlschema find nothing
   (the two engines' regular expressions differ in corners) or fail, lxml's own error log is
   used instead. An invalid element always gives at least one problem.

Reasons hold element and attribute names, never element text or attribute values (they may
be account numbers): a value that a message would quote is replaced by ``'...'``.

Schemas come from the package's XSDs (:func:`~.catalog.xsd_path`), read with a parser that
does not resolve entities or touch the network; xmlschema is confined to the package's
directory (``allow="sandbox"``) and never follows ``xsi:schemaLocation`` hints in a message.
Both kinds of schema are built once per process, on first use, and shared by every
:class:`SchemaValidator` (:meth:`SchemaValidator.warm_up` builds them ahead of time).

>>> from lxml import etree
>>> from adapters.iso20022.catalog import MESSAGE_TYPES
>>> head = MESSAGE_TYPES["head.001.001.02"]
>>> ns = head.namespace
>>> root = etree.fromstring(
...     f'<Envelope><AppHdr xmlns="{ns}">'
...     "<Fr><FIId><FinInstnId><BICFI>BANKDEFFXXX</BICFI></FinInstnId></FIId></Fr>"
...     "<To><FIId><FinInstnId><BICFI>BANKGB2LXXX</BICFI></FinInstnId></FIId></To>"
...     "<BizMsgIdr>B-1</BizMsgIdr><MsgDefIdr>pacs.008.001.08</MsgDefIdr>"
...     "<CreDt>2026-11-29T10:00:00Z</CreDt></AppHdr></Envelope>"
... )
>>> app_hdr, document = split_envelope(root)
>>> app_hdr is None, etree.QName(document).localname
(True, 'AppHdr')
>>> validator = SchemaValidator()
>>> validator.validate(document, head)
[]
>>> document.remove(document[2])  # BizMsgIdr is mandatory
>>> for problem in validator.validate(document, head):
...     print(problem)
/AppHdr/MsgDefIdr: Unexpected child with tag 'MsgDefIdr' at position 3; expected BizMsgIdr (line 1)
"""

from __future__ import annotations

import contextlib
import itertools
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, cast

import xmlschema
from lxml import etree

from adapters.iso20022.catalog import (
    HEAD_FAMILY,
    ISO20022_NAMESPACE_PREFIX,
    MESSAGE_TYPES,
    MessageType,
    xsd_path,
)

__all__ = [
    "DEFAULT_MAX_PROBLEMS",
    "ENVELOPE_SEARCH_DEPTH",
    "SchemaProblem",
    "SchemaValidator",
    "split_envelope",
]

DEFAULT_MAX_PROBLEMS: Final = 20
"""The most problems :meth:`SchemaValidator.validate` reports for one element."""

ENVELOPE_SEARCH_DEPTH: Final = 3
"""How deep below an envelope's root :func:`split_envelope` looks for AppHdr and Document."""

_HEAD_PREFIX: Final = f"{ISO20022_NAMESPACE_PREFIX}{HEAD_FAMILY}."
_MAX_EXPECTED: Final = 8  # element names listed in SchemaProblem.expected
_HIDDEN: Final = "'...'"

# An expanded name's namespace part: "{urn:...}" (not a regex quantifier like "{3,3}").
_CLARK = re.compile(r"\{[A-Za-z][A-Za-z0-9+.-]*:[^{}\s]*\}")
# A quoted prefixed name: 'pacs:CdtrAgt' -> 'CdtrAgt'.
_PREFIXED = re.compile(r"'[A-Za-z_][\w.-]*:([A-Za-z_][\w.-]*)'")
_TAG_EXPECTED = re.compile(r"\s*Tag (?:\(.*\)|'[^']*'|from .*) expected\.?\s*$")
_PARTICLE = re.compile(r"The particle (\w+)\((?:name='([^']*)'|model='(\w+)')[^)]*\)")
_LXML_ELEMENT = re.compile(r"^Element '([^']*)'(?:, attribute '([^']*)')?: (.*)$", re.DOTALL)
_LXML_EXPECTED = re.compile(r"\s*Expected is (?:one of )?\(\s*(.*?)\s*\)\.?\s*$", re.DOTALL)
_LXML_VALUES = (
    (re.compile(r"The value '[^']*'"), "The value"),
    (re.compile(r"'[^']*' is not a valid value"), "the value is not a valid value"),
)


@dataclass(frozen=True, slots=True)
class SchemaProblem:
    """Why an element does not validate against its XSD.

    ``path``: the element (``/Document/FIToFICstmrCdtTrf/CdtTrfTxInf[2]/Cdtr``, from the
    validated element; for an unexpected child, the child itself). ``reason``: what is
    wrong, without element text. ``expected``: the element names allowed there, if the
    schema says (``"Cdtr"``, ``"InstrId, EndToEndId"``). ``line``: the source line.
    """

    path: str
    reason: str
    expected: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        expected = f"; expected {self.expected}" if self.expected else ""
        line = f" (line {self.line})" if self.line is not None else ""
        return f"{self.path}: {self.reason}{expected}{line}"


# -- schemas, built once per process ----------------------------------------------------

_LXML_SCHEMAS: dict[str, etree.XMLSchema] = {}
# lxml keeps a validator's error log on the schema object: the fallback explanation
# (validate, then read the log) uses schemas of its own, under a lock.
_LXML_LOGGING_SCHEMAS: dict[str, etree.XMLSchema] = {}
_XMLSCHEMA_SCHEMAS: dict[str, xmlschema.XMLSchema] = {}
_BUILD_LOCK = threading.Lock()
_LOG_LOCK = threading.Lock()


def _lxml_schema(
    message_type: MessageType, cache: dict[str, etree.XMLSchema] = _LXML_SCHEMAS
) -> etree.XMLSchema:
    schema = cache.get(message_type.id)
    if schema is None:
        with _BUILD_LOCK:
            schema = cache.get(message_type.id)
            if schema is None:
                parser = etree.XMLParser(
                    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
                )
                tree = etree.parse(str(xsd_path(message_type)), parser)
                schema = etree.XMLSchema(tree)
                cache[message_type.id] = schema
    return schema


def _xmlschema_schema(message_type: MessageType) -> xmlschema.XMLSchema:
    schema = _XMLSCHEMA_SCHEMAS.get(message_type.id)
    if schema is None:
        with _BUILD_LOCK:
            schema = _XMLSCHEMA_SCHEMAS.get(message_type.id)
            if schema is None:
                path = xsd_path(message_type)
                schema = xmlschema.XMLSchema(
                    str(path),
                    base_url=str(path.parent),
                    allow="sandbox",
                    defuse="always",
                )
                _XMLSCHEMA_SCHEMAS[message_type.id] = schema
    return schema


class SchemaValidator:
    """Validates ``Document`` and ``AppHdr`` elements against the package's XSDs.

    Cheap to create (the schemas are shared process-wide) and safe to share between
    threads. ``max_problems``: the most problems reported for one element.
    """

    def __init__(self, *, max_problems: int = DEFAULT_MAX_PROBLEMS) -> None:
        if max_problems < 1:
            raise ValueError(f"max_problems must be at least 1, not {max_problems}")
        self.max_problems = max_problems

    def __repr__(self) -> str:
        return f"SchemaValidator(max_problems={self.max_problems})"

    def is_valid(self, element: etree._Element, message_type: MessageType) -> bool:
        """Whether ``element`` is valid against ``message_type``'s XSD (lxml only)."""
        return bool(_lxml_schema(message_type).validate(element))

    def validate(self, document: etree._Element, message_type: MessageType) -> list[SchemaProblem]:
        """The problems of ``document`` against ``message_type``'s XSD: ``[]`` when valid.

        ``document`` is the element the XSD declares at the top: a ``Document``, or an
        ``AppHdr`` for head.001 (see :attr:`~.catalog.MessageType.element`); it may sit
        inside an envelope. At most ``max_problems`` are returned, in the order found.
        """
        if self.is_valid(document, message_type):
            return []
        qname = etree.QName(document)
        if qname.localname != message_type.element or qname.namespace != message_type.namespace:
            found = (qname.namespace or "no namespace")[:80]
            return [
                SchemaProblem(
                    _path(document, document),
                    f"{qname.localname} in {found} is not the {message_type.element} of "
                    f"{message_type.id}",
                    f"{message_type.element} in {message_type.namespace}",
                    _line(document),
                )
            ]
        problems = self._explain_with_xmlschema(document, message_type)
        if not problems:
            problems = self._explain_with_lxml(document, message_type)
        if not problems:
            problems = [
                SchemaProblem(
                    _path(document, document),
                    f"does not validate against {message_type.xsd}",
                    line=_line(document),
                )
            ]
        return problems

    def warm_up(
        self, message_types: Iterable[MessageType] | None = None, *, explanations: bool = False
    ) -> None:
        """Build the lxml schemas (and the xmlschema ones, with ``explanations``) now, for
        ``message_types`` (default: every one in the catalogue), instead of on first use."""
        for message_type in MESSAGE_TYPES.values() if message_types is None else message_types:
            _lxml_schema(message_type)
            if explanations:
                _xmlschema_schema(message_type)

    # -- explanations -------------------------------------------------------------------

    def _explain_with_xmlschema(
        self, document: etree._Element, message_type: MessageType
    ) -> list[SchemaProblem]:
        problems: list[SchemaProblem] = []
        # The explanation must not hide lxml's verdict: whatever xmlschema cannot do, falls back.
        with contextlib.suppress(Exception):
            schema = _xmlschema_schema(message_type)
            errors: Iterator[xmlschema.XMLSchemaValidationError] = schema.iter_errors(
                cast(Any, document), use_location_hints=False
            )
            for error in itertools.islice(errors, self.max_problems):
                problems.append(_from_xmlschema(error, document))
        return problems

    def _explain_with_lxml(
        self, document: etree._Element, message_type: MessageType
    ) -> list[SchemaProblem]:
        schema = _lxml_schema(message_type, _LXML_LOGGING_SCHEMAS)
        with _LOG_LOCK:
            schema.validate(document)
            entries: list[Any] = list(cast(Any, schema.error_log))
        problems: list[SchemaProblem] = []
        for entry in entries[: self.max_problems]:
            problems.append(_from_lxml(str(entry.message), _int(entry.line), document))
        return problems


# -- turning errors into problems -------------------------------------------------------


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def _line(node: object) -> int | None:
    return _int(getattr(node, "sourceline", None))


def _localname(node: etree._Element) -> str:
    return etree.QName(node).localname


def _path(node: etree._Element, top: etree._Element) -> str:
    """``/Document/A/B[2]`` from ``top`` down to ``node``: local names, 1-based index where
    a name repeats among the siblings (``top`` itself is never indexed)."""
    steps: list[str] = []
    current: etree._Element | None = node
    while current is not None:
        name = _localname(current)
        parent = current.getparent()
        if current is not top and parent is not None:
            same = [
                child
                for child in parent
                if isinstance(child.tag, str) and _localname(child) == name
            ]
            if len(same) > 1:
                name = f"{name}[{same.index(current) + 1}]"
        steps.append(name)
        if current is top:
            break
        current = parent
    return "/" + "/".join(reversed(steps))


def _names(text: str) -> str:
    """Expanded and prefixed names in a message as local names."""
    return _PREFIXED.sub(r"'\1'", _CLARK.sub("", text))


def _hide_values(text: str, values: Iterable[str]) -> str:
    """``text`` with every quoted occurrence of ``values`` replaced by ``'...'``."""
    for value in sorted({v for v in values if v}, key=len, reverse=True):
        for quoted in (repr(value), f"'{value}'", f'"{value}"'):
            text = text.replace(quoted, _HIDDEN)
    return text


def _expected_names(tags: Iterable[str]) -> str | None:
    names: list[str] = []
    for tag in tags:
        name = _names(tag).strip("'")
        if ":" in name and not name.startswith("from "):
            name = name.rsplit(":", 1)[1]
        if name and name not in names:
            names.append(name)
    if not names:
        return None
    if len(names) > _MAX_EXPECTED:
        hidden = len(names) - _MAX_EXPECTED
        return f"{', '.join(names[:_MAX_EXPECTED])} (or {hidden} more)"
    return ", ".join(names)


def _particle(found: re.Match[str]) -> str:
    kind, name, model = found.groups()
    if name:
        return f"Element '{_names(name).split(':')[-1]}'"
    if model:
        return f"A {model} group"
    return f"A {kind}"  # pragma: no cover - xmlschema names elements and groups


def _from_xmlschema(
    error: xmlschema.XMLSchemaValidationError, document: etree._Element
) -> SchemaProblem:
    element = cast("etree._Element | None", error.elem)
    expected: str | None = None
    reason = str(error.reason or error.message or "does not validate")
    if isinstance(error, xmlschema.XMLSchemaChildrenValidationError):
        child = cast("etree._Element | None", error.invalid_child)
        expected = _expected_names(error.expected_tags)
        reason = _PARTICLE.sub(_particle, _TAG_EXPECTED.sub("", reason))
        target = child if child is not None else element
    else:
        target = element
        values: list[str] = []
        if element is not None:
            values += [element.text or "", (element.text or "").strip()]
            values += [str(value) for value in element.attrib.values()]
        if isinstance(error.obj, str):
            values.append(error.obj)
        reason = _hide_values(reason, values)
    reason = _names(reason).strip().rstrip(".")
    if target is not None:
        path = _path(target, document)
    else:  # pragma: no cover - xmlschema reports errors on elements
        path = _names(error.path or "/" + _localname(document)).replace("'", "")
    return SchemaProblem(path, reason, expected, _line(target) or _int(error.sourceline))


def _from_lxml(message: str, line: int | None, document: etree._Element) -> SchemaProblem:
    """A libxml2 schema error (``Element '{ns}X': ...``) as a problem."""
    for pattern, replacement in _LXML_VALUES:
        message = pattern.sub(replacement, message)
    target: etree._Element | None = None
    reason = message
    found = _LXML_ELEMENT.match(message.strip())
    if found is not None:
        name = _names(found.group(1)).split(":")[-1]
        attribute = found.group(2)
        reason = found.group(3)
        if attribute:
            reason = f"attribute {_names(attribute)!r}: {reason}"
        target = next(
            (
                candidate
                for candidate in document.iter()
                if isinstance(candidate.tag, str)
                and _line(candidate) == line
                and _localname(candidate) == name
            ),
            None,
        )
    expected: str | None = None
    listed = _LXML_EXPECTED.search(reason)
    if listed is not None:
        expected = _expected_names(part.strip() for part in listed.group(1).split(","))
        reason = reason[: listed.start()]
    reason = _names(reason).strip().rstrip(".") or "does not validate"
    path = _path(target if target is not None else document, document)
    return SchemaProblem(path, reason, expected, line)


# -- envelopes --------------------------------------------------------------------------


def split_envelope(root: etree._Element) -> tuple[etree._Element | None, etree._Element]:
    """``(app_hdr, document)`` of a parsed message, bare or in an envelope.

    A root named ``Document`` or ``AppHdr`` is returned as the document, with no header.
    Otherwise the root is an envelope: its descendants down to
    :data:`ENVELOPE_SEARCH_DEPTH` are searched breadth-first (without entering an
    ``AppHdr`` or ``Document``) for the first ``AppHdr`` in a head.001 namespace and the
    first ``Document`` (one in an ISO 20022 namespace preferred). No ``Document``: the
    header is the document if there is one, else the root.
    """
    if _localname(root) in ("Document", "AppHdr"):
        return None, root
    app_hdr: etree._Element | None = None
    documents: list[etree._Element] = []
    level = [root]
    for _ in range(ENVELOPE_SEARCH_DEPTH):
        below: list[etree._Element] = []
        for parent in level:
            for child in parent:
                tag: object = child.tag  # a comment or processing instruction has no str tag
                if not isinstance(tag, str):
                    continue
                qname = etree.QName(child)
                namespace = qname.namespace or ""
                if qname.localname == "AppHdr" and namespace.startswith(_HEAD_PREFIX):
                    app_hdr = child if app_hdr is None else app_hdr
                elif qname.localname == "Document":
                    documents.append(child)
                else:
                    below.append(child)
        level = below
    if not documents:
        return (None, app_hdr) if app_hdr is not None else (None, root)
    iso = [
        document
        for document in documents
        if (etree.QName(document).namespace or "").startswith(ISO20022_NAMESPACE_PREFIX)
    ]
    return app_hdr, (iso or documents)[0]
