"""head.001.001.02: the Business Application Header (``AppHdr``) and the message envelope.

An ISO 20022 message travels either as a bare ``Document``, or as an ``AppHdr`` followed by
its ``Document`` inside an envelope element (SWIFT's ``urn:swift:xsd:envelope``
``Envelope``; other networks use other names, so readers find both by namespace). The
header maps to :class:`~canonical_model.messages.BusinessHeader`: ``Fr``/``To`` (a BIC or
clearing member id) to ``sender``/``receiver``, ``BizMsgIdr``, ``MsgDefIdr``, ``BizSvc``,
``CreDt``, ``PssblDplct`` and ``Prty``.

>>> import dataclasses
>>> header = BusinessHeader(sender="BANKDEFFXXX", receiver="BANKGB2LXXX",
...     business_message_id="B-1", message_definition="pacs.008.001.08")
>>> element = encode_header(header, now=lambda: dt.datetime(2026, 11, 29, tzinfo=dt.UTC))
>>> decode_header(element) == dataclasses.replace(
...     header, created_at=dt.datetime(2026, 11, 29, tzinfo=dt.UTC))
True
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from lxml import etree

from adapters.iso20022.components import (
    Builder,
    Reader,
    default_namespace,
    format_datetime,
    parse_datetime,
)
from canonical_model.messages import BusinessHeader

__all__ = ["ENVELOPE_NAMESPACE", "HEAD_NAMESPACE", "decode_header", "encode_header", "envelope"]

HEAD_NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:head.001.001.02"
ENVELOPE_NAMESPACE = "urn:swift:xsd:envelope"
_BIC = re.compile(r"^[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?$")


def _party(r: Reader, element: etree._Element | None) -> str | None:
    return (
        r.text(element, "FIId/FinInstnId/BICFI")
        or r.text(element, "FIId/FinInstnId/ClrSysMmbId/MmbId")
        or r.text(element, "FIId/FinInstnId/Othr/Id")
        or r.text(element, "OrgId/Id/OrgId/AnyBIC")
        or r.text(element, "OrgId/Nm")
    )


def decode_header(element: etree._Element) -> BusinessHeader:
    """An ``AppHdr`` element as a BusinessHeader (its own namespace, whatever the version)."""
    r = Reader(etree.QName(element).namespace or HEAD_NAMESPACE)
    created = r.text(element, "CreDt")
    return BusinessHeader(
        sender=_party(r, r.find(element, "Fr")),
        receiver=_party(r, r.find(element, "To")),
        business_message_id=r.text(element, "BizMsgIdr"),
        message_definition=r.text(element, "MsgDefIdr"),
        business_service=r.text(element, "BizSvc"),
        created_at=parse_datetime(created, "/AppHdr/CreDt") if created else None,
        duplicate=r.text(element, "PssblDplct") == "true",
        priority=r.text(element, "Prty"),
    )


def _write_party(b: Builder, parent: etree._Element, name: str, value: str | None) -> None:
    institution = b.path(parent, f"{name}/FIId/FinInstnId")
    if value is not None and _BIC.match(value):
        b.child(institution, "BICFI", value)
    else:
        b.path(institution, "Othr/Id", value or "NOTPROVIDED")


def encode_header(header: BusinessHeader, *, now: Callable[[], dt.datetime]) -> etree._Element:
    """An ``AppHdr`` (head.001.001.02) element for ``header``, in schema order."""
    b = Builder(HEAD_NAMESPACE)
    element = b.element("AppHdr")
    _write_party(b, element, "Fr", header.sender)
    _write_party(b, element, "To", header.receiver)
    b.child(element, "BizMsgIdr", header.business_message_id or "NOTPROVIDED")
    b.child(element, "MsgDefIdr", header.message_definition or "NOTPROVIDED")
    b.optional(element, "BizSvc", header.business_service)
    b.child(element, "CreDt", format_datetime(header.created_at or now()))
    if header.duplicate:
        b.child(element, "PssblDplct", "true")
    b.optional(element, "Prty", header.priority)
    return element


def envelope(header: etree._Element, document: etree._Element) -> etree._Element:
    """``Envelope`` (``urn:swift:xsd:envelope``) holding ``header`` then ``document``."""
    wrapper = etree.Element(
        f"{{{ENVELOPE_NAMESPACE}}}Envelope", nsmap=default_namespace(ENVELOPE_NAMESPACE)
    )
    wrapper.append(header)
    wrapper.append(document)
    return wrapper
