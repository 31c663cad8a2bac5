"""The message catalogue: every ISO 20022 message version the hub knows, as plain data.

An ISO 20022 message is identified by its namespace,
``urn:iso:std:iso:20022:tech:xsd:<id>``, where ``<id>`` is ``<family>.<version>``:
``pacs.008.001.08`` is family ``pacs.008`` (FI to FI customer credit transfer), variant
``001``, version ``08``. :data:`MESSAGE_TYPES` maps each supported id to a
:class:`MessageType`: its namespace, the element under ``Document`` (``root``), and the XSD
shipped in this package (``adapters/iso20022/xsd/``, read with :func:`xsd_path`; the
installed package needs nothing else).

=========  ============================  ==================================================
family     root element                  versions (``*``: mapped to the canonical model)
=========  ============================  ==================================================
pacs.008   ``FIToFICstmrCdtTrf``         001.08*, 001.13*
pacs.002   ``FIToFIPmtStsRpt``           001.10*
pacs.004   ``PmtRtr``                    001.09, 001.10
pacs.009   ``FICdtTrf``                  001.08
pain.001   ``CstmrCdtTrfInitn``          001.03, 001.08, 001.09
pain.002   ``CstmrPmtStsRpt``            001.03, 001.10
camt.029   ``RsltnOfInvstgtn``           001.09
camt.053   ``BkToCstmrStmt``             001.02, 001.04, 001.08
camt.054   ``BkToCstmrDbtCdtNtfctn``     001.02, 001.04, 001.08
camt.056   ``FIToFIPmtCxlReq``           001.08
head.001   ``AppHdr`` (no ``Document``)  001.02*, 001.03, 001.04
=========  ============================  ==================================================

:attr:`MessageType.support` tells the two apart: :attr:`Support.MAPPED` versions are decoded
to and encoded from the canonical model by :mod:`adapters.iso20022.adapter` (head.001.001.02
is the header it writes); :attr:`Support.VALIDATED` versions are recognised and validated
against their XSD (and business rules) only.

head.001 is the Business Application Header: its XSD declares ``AppHdr`` as its top element,
where every other message has ``Document`` (:attr:`MessageType.element`).

>>> pacs008 = by_namespace("urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08")
>>> pacs008.family, pacs008.version, pacs008.root, pacs008.xsd
('pacs.008', '001.08', 'FIToFICstmrCdtTrf', 'pacs.008.001.08.xsd')
>>> xsd_path(pacs008).is_file()
True
>>> try:
...     by_namespace("urn:iso:std:iso:20022:tech:xsd:pacs.008.001.12")
... except UnsupportedMessageError as exc:
...     print(exc)
pacs.008.001.12 is not supported; supported pacs.008 versions: 001.08, 001.13
>>> by_id("pacs.007.001.09")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
adapters.iso20022.catalog.UnsupportedMessageError: pacs.007.001.09 is not supported; ...
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import functools
import importlib.resources
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final

__all__ = [
    "HEAD_FAMILY",
    "ISO20022_NAMESPACE_PREFIX",
    "MESSAGE_TYPES",
    "MessageType",
    "Support",
    "UnsupportedMessageError",
    "by_id",
    "by_namespace",
    "families",
    "namespace_for",
    "xsd_path",
]

ISO20022_NAMESPACE_PREFIX: Final = "urn:iso:std:iso:20022:tech:xsd:"
"""What every ISO 20022 message namespace starts with; the message id follows."""

HEAD_FAMILY: Final = "head.001"
"""The Business Application Header's family."""

_MESSAGE_ID = re.compile(r"([a-z]{4}\.\d{3})\.(\d{3}\.\d{2})")


class Support(enum.Enum):
    """What the hub does with a message version."""

    MAPPED = "mapped"
    """Decoded to and encoded from the canonical model (and validated)."""

    VALIDATED = "validated"
    """Recognised and validated (XSD, business rules); not mapped to the canonical model."""


@dataclass(frozen=True, slots=True)
class MessageType:
    """One ISO 20022 message version.

    ``id``: ``"pacs.008.001.08"``; ``family``: ``"pacs.008"``; ``version``: ``"001.08"``;
    ``namespace``: the XML namespace of its ``Document`` (or ``AppHdr``); ``root``: the
    element directly under ``Document`` (``"AppHdr"`` itself for head.001); ``xsd``: the
    schema's file name in the package (:func:`xsd_path`); ``support``: see :class:`Support`.
    """

    id: str
    family: str
    version: str
    namespace: str
    root: str
    xsd: str
    support: Support = Support.VALIDATED

    @property
    def element(self) -> str:
        """The XSD's top element, the one validated: ``AppHdr`` for head.001, else
        ``Document``."""
        return "AppHdr" if self.family == HEAD_FAMILY else "Document"

    @property
    def is_header(self) -> bool:
        """Whether this is a Business Application Header (head.001)."""
        return self.family == HEAD_FAMILY


def namespace_for(message_id: str) -> str:
    """The namespace of ``message_id``: ``urn:iso:std:iso:20022:tech:xsd:<id>``."""
    return ISO20022_NAMESPACE_PREFIX + message_id


def _message(message_id: str, root: str, support: Support = Support.VALIDATED) -> MessageType:
    matched = _MESSAGE_ID.fullmatch(message_id)
    if matched is None:
        raise RuntimeError(message_id)
    family, version = matched.groups()
    return MessageType(
        id=message_id,
        family=family,
        version=version,
        namespace=namespace_for(message_id),
        root=root,
        xsd=f"{message_id}.xsd",
        support=support,
    )


_MAPPED = Support.MAPPED

MESSAGE_TYPES: Final[Mapping[str, MessageType]] = MappingProxyType(
    {
        message.id: message
        for message in sorted(
            (
                _message("pacs.008.001.08", "FIToFICstmrCdtTrf", _MAPPED),
                _message("pacs.008.001.13", "FIToFICstmrCdtTrf", _MAPPED),
                _message("pacs.002.001.10", "FIToFIPmtStsRpt", _MAPPED),
                _message("pacs.004.001.09", "PmtRtr"),
                _message("pacs.004.001.10", "PmtRtr"),
                _message("pacs.009.001.08", "FICdtTrf"),
                _message("pain.001.001.03", "CstmrCdtTrfInitn"),
                _message("pain.001.001.08", "CstmrCdtTrfInitn"),
                _message("pain.001.001.09", "CstmrCdtTrfInitn"),
                _message("pain.002.001.03", "CstmrPmtStsRpt"),
                _message("pain.002.001.10", "CstmrPmtStsRpt"),
                _message("camt.029.001.09", "RsltnOfInvstgtn"),
                _message("camt.053.001.02", "BkToCstmrStmt"),
                _message("camt.053.001.04", "BkToCstmrStmt"),
                _message("camt.053.001.08", "BkToCstmrStmt"),
                _message("camt.054.001.02", "BkToCstmrDbtCdtNtfctn"),
                _message("camt.054.001.04", "BkToCstmrDbtCdtNtfctn"),
                _message("camt.054.001.08", "BkToCstmrDbtCdtNtfctn"),
                _message("camt.056.001.08", "FIToFIPmtCxlReq"),
                _message("head.001.001.02", "AppHdr", _MAPPED),
                _message("head.001.001.03", "AppHdr"),
                _message("head.001.001.04", "AppHdr"),
            ),
            key=lambda message: message.id,
        )
    }
)
"""Every supported message version, by id, in id order."""

_BY_NAMESPACE: Final[Mapping[str, MessageType]] = MappingProxyType(
    {message.namespace: message for message in MESSAGE_TYPES.values()}
)


def families() -> tuple[str, ...]:
    """The supported families, sorted: ``("camt.029", ..., "pain.002")``."""
    return tuple(sorted({message.family for message in MESSAGE_TYPES.values()}))


class UnsupportedMessageError(LookupError):
    """A namespace or message id that is not in the catalogue.

    The text names what was found and what is supported: the versions of the same family, or
    every family for an unknown one. ``namespace``: the namespace looked up (``None`` for a
    lookup by id); ``message_id``: the id found in it (``None`` when it is not an ISO 20022
    namespace); ``supported``: the versions (``"001.08"``) or families named in the text.
    """

    def __init__(
        self,
        reason: str,
        *,
        namespace: str | None = None,
        message_id: str | None = None,
        supported: tuple[str, ...] = (),
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.namespace = namespace
        self.message_id = message_id
        self.supported = supported

    def __str__(self) -> str:
        return self.reason

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_error,
            (self.reason, self.namespace, self.message_id, self.supported),
        )


def _rebuild_error(
    reason: str, namespace: str | None, message_id: str | None, supported: tuple[str, ...]
) -> UnsupportedMessageError:
    return UnsupportedMessageError(
        reason, namespace=namespace, message_id=message_id, supported=supported
    )


def _shown(text: str, limit: int = 80) -> str:
    """An untrusted string for an error text: repr'd, cut short."""
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _unsupported(message_id: str, namespace: str | None) -> UnsupportedMessageError:
    matched = _MESSAGE_ID.fullmatch(message_id)
    family = matched.group(1) if matched else None
    versions = tuple(
        message.version for message in MESSAGE_TYPES.values() if message.family == family
    )
    if versions:
        return UnsupportedMessageError(
            f"{message_id} is not supported; supported {family} versions: {', '.join(versions)}",
            namespace=namespace,
            message_id=message_id,
            supported=versions,
        )
    known = families()
    shown = message_id if matched else _shown(message_id)
    return UnsupportedMessageError(
        f"{shown} is not supported; supported message families: {', '.join(known)}",
        namespace=namespace,
        message_id=message_id,
        supported=known,
    )


def by_namespace(namespace: str) -> MessageType:
    """The message type whose namespace is ``namespace``.

    Raises :class:`UnsupportedMessageError` naming the namespace's message and the versions
    supported for its family (or every family, for an unknown family or a namespace that is
    not an ISO 20022 one).
    """
    found = _BY_NAMESPACE.get(namespace)
    if found is not None:
        return found
    if namespace.startswith(ISO20022_NAMESPACE_PREFIX):
        raise _unsupported(namespace[len(ISO20022_NAMESPACE_PREFIX) :], namespace)
    known = families()
    if not namespace:
        reason = "the message has no namespace; ISO 20022 messages are namespaced"
    else:
        reason = f"namespace {_shown(namespace)} is not an ISO 20022 message namespace"
    raise UnsupportedMessageError(
        f"{reason}; supported message families: {', '.join(known)}",
        namespace=namespace,
        supported=known,
    )


def by_id(message_id: str) -> MessageType:
    """The message type ``message_id`` (``"pacs.008.001.08"``); raises
    :class:`UnsupportedMessageError` like :func:`by_namespace`."""
    found = MESSAGE_TYPES.get(message_id)
    if found is not None:
        return found
    raise _unsupported(message_id, None)


_extracted = contextlib.ExitStack()
atexit.register(_extracted.close)


@functools.cache
def xsd_path(message_type: MessageType) -> Path:
    """The file system path of ``message_type``'s XSD, from this package's data.

    Read through :mod:`importlib.resources`; from a zipped install the file is extracted
    once to a temporary file kept until the process ends.
    """
    package = importlib.resources.files(__package__ or "adapters.iso20022")
    resource = package / "xsd" / message_type.xsd
    if isinstance(resource, Path):
        return resource.resolve()
    return Path(_extracted.enter_context(importlib.resources.as_file(resource)))  # pragma: no cover
