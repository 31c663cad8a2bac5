"""Schema order for encoders: children in the order the XSD's sequences require.

The encoders build a message as a tree in whatever order is convenient; before it is
serialised, :meth:`SchemaOrder.arrange` puts every element's children in the order of its
XSD type's ``xs:sequence`` (descending through ``xs:choice`` and nested sequences), using
the element-to-type map read from the message's own XSD. So one encoder serves several
versions of a message, and an element that the target version does not have is reported
(:class:`NotInSchemaError`) instead of producing a document the schema rejects.

The XSDs are the hub's own package data (trusted); they are read with a parser that does
not resolve entities or touch the network all the same.

>>> from lxml import etree
>>> from adapters.iso20022.catalog import MESSAGE_TYPES
>>> order = SchemaOrder.for_message(MESSAGE_TYPES["pacs.008.001.08"])
>>> ns = MESSAGE_TYPES["pacs.008.001.08"].namespace
>>> hdr = etree.Element(f"{{{ns}}}GrpHdr")
>>> for name in ("SttlmInf", "NbOfTxs", "MsgId", "CreDtTm"):
...     _ = etree.SubElement(hdr, f"{{{ns}}}{name}")
>>> order.arrange(hdr, "GroupHeader93")
>>> [etree.QName(child).localname for child in hdr]
['MsgId', 'CreDtTm', 'NbOfTxs', 'SttlmInf']
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from lxml import etree

from adapters.iso20022.catalog import MessageType, xsd_path

__all__ = ["NotInSchemaError", "SchemaOrder"]

_XS = "{http://www.w3.org/2001/XMLSchema}"


class NotInSchemaError(ValueError):
    """An element the target message version does not define where it was placed."""

    def __init__(self, path: str, element: str, allowed: tuple[str, ...]) -> None:
        self.path = path
        self.element = element
        super().__init__(
            f"{path}: {element} does not exist here in this message version "
            f"(allowed: {', '.join(allowed) or 'nothing'})"
        )


@dataclass(frozen=True, slots=True)
class SchemaOrder:
    """For each complex type of one XSD: its child elements, in order, with their types."""

    root_type: str
    children: dict[str, tuple[tuple[str, str], ...]]
    tables: dict[str, tuple[dict[str, int], dict[str, str]] | None] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )

    @staticmethod
    @functools.cache
    def for_message(message_type: MessageType) -> SchemaOrder:
        """The order map of ``message_type``'s XSD (read once per process)."""
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        tree = etree.parse(str(xsd_path(message_type)), parser)
        children: dict[str, tuple[tuple[str, str], ...]] = {}
        for complex_type in tree.getroot().iter(f"{_XS}complexType"):
            name = complex_type.get("name")
            if name is None:
                continue
            children[name] = tuple(
                (element.get("name", ""), element.get("type", ""))
                for element in complex_type.iter(f"{_XS}element")
            )
        root = tree.getroot().find(f"{_XS}element[@name='Document']")
        if root is None:
            root = tree.getroot().find(f"{_XS}element")
        if root is None:
            raise RuntimeError("an ISO 20022 XSD declares its root element")
        return SchemaOrder(root.get("type", ""), children)

    def _table(self, kind: str) -> tuple[dict[str, int], dict[str, str]] | None:
        """(position, type) of each child of ``kind``, built once per type."""
        if kind not in self.tables:
            declared = self.children.get(kind)
            self.tables[kind] = (
                ({name: i for i, (name, _) in enumerate(declared)}, dict(declared))
                if declared
                else None
            )
        return self.tables[kind]

    def arrange(
        self, element: etree._Element, type_name: str | None = None, path: str = ""
    ) -> None:
        """Sort ``element``'s children (recursively) by the sequence of ``type_name``.

        ``type_name`` defaults to the root type (for a ``Document`` element). Children
        already in order (as encoders mostly write them) are only checked. Raises
        :class:`NotInSchemaError` for a child the type does not declare.
        """
        kind = type_name or self.root_type
        if not len(element):
            return
        here = f"{path}/{etree.QName(element).localname}"
        if kind not in self.children:
            raise NotInSchemaError(here, etree.QName(element[0]).localname, ())
        table = self._table(kind)
        if table is None:  # xs:any (supplementary data envelope), or simple content
            return
        position, types = table
        items = list(element)
        names = [etree.QName(child).localname for child in items]
        last = -1
        ordered = True
        for name in names:
            index = position.get(name)
            if index is None:
                raise NotInSchemaError(here, name, tuple(position))
            ordered = ordered and index >= last
            last = index
        if not ordered:
            pairs = sorted(zip(items, names, strict=True), key=lambda pair: position[pair[1]])
            for child in items:
                element.remove(child)
            for child, _ in pairs:
                element.append(child)
            items, names = [c for c, _ in pairs], [n for _, n in pairs]
        for child, name in zip(items, names, strict=True):
            self.arrange(child, types[name], here)
