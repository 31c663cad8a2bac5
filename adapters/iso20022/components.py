"""ISO 20022 message components shared by every message: read into and written from the
canonical model.

============================  ===============================================================
component (XSD type family)   canonical
============================  ===============================================================
PartyIdentification135/272   :class:`~canonical_model.messages.Party` (``Nm``, ``PstlAdr``,
                              ``Id``: ``OrgId/AnyBIC``, ``OrgId/LEI``, ``.../Othr/Id``)
PostalAddress24/27           :class:`~canonical_model.messages.PostalAddress`: structured,
                              unstructured (``AdrLine``) or hybrid (both)
CashAccount38/40             :class:`~canonical_model.messages.Account` (``IBAN`` or
                              ``Othr/Id`` with ``SchmeNm``; a card token is ``Othr/Id`` with
                              ``SchmeNm/Prtry`` = ``TOKEN``, ours)
BranchAndFinancialInstit...  :class:`~canonical_model.messages.Agent` (``BICFI``,
                              ``ClrSysMmbId`` (``ClrSysId/Cd`` + ``MmbId``), ``Nm``,
                              ``Othr/Id`` as a member id with clearing system ``OTHER``)
ActiveCurrencyAndAmount      :class:`~canonical_model.money.Money` (``Ccy`` + decimal text)
============================  ===============================================================

:class:`Reader` finds elements by local path in one namespace; :class:`Builder` creates
them; the schema order of children is fixed afterwards (:mod:`adapters.iso20022.ordering`).

>>> from lxml import etree
>>> ns = "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"
>>> b = Builder(ns)
>>> party = b.element("Cdtr")
>>> address = PostalAddress(town_name="Bern", country="CH", address_lines=("Gasse 1",))
>>> write_party(b, party, Party(name="ACME", postal_address=address))
>>> print(etree.tostring(party).decode().replace(f' xmlns="{ns}"', ""))  # doctest: +ELLIPSIS
<Cdtr><Nm>ACME</Nm><PstlAdr><TwnNm>Bern</TwnNm><Ctry>CH</Ctry><AdrLine>Gasse 1</AdrLine>...
>>> read_party(Reader(ns), party) == Party(name="ACME", postal_address=address)
True
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from lxml import etree

from canonical_model.currency import UnknownCurrencyError, currency
from canonical_model.messages import Account, Agent, CanonicalMessage, Party, PostalAddress
from canonical_model.money import AmountError, Money

__all__ = [
    "TOKEN_SCHEME",
    "Builder",
    "ComponentError",
    "Reader",
    "default_namespace",
    "identity_and_time",
    "max35",
    "message_body",
    "parse_datetime",
    "read_account",
    "read_agent",
    "read_amount",
    "read_party",
    "read_postal_address",
    "start_document",
    "write_account",
    "write_agent",
    "write_amount",
    "write_party",
    "write_postal_address",
]

_MAX35 = 35

# a scheme name (Othr/SchmeNm/Prtry), not a secret
TOKEN_SCHEME = "TOKEN"  # noqa: S105
"""``SchmeNm/Prtry`` of an account identifier that is a card token (ours)."""

OTHER_CLEARING = "OTHER"
"""Clearing system of an agent identified by ``FinInstnId/Othr/Id`` (ours)."""

# PostalAddress24/27 element <-> PostalAddress attribute, in schema order.
_ADDRESS_FIELDS = (
    ("Dept", "department"),
    ("SubDept", "sub_department"),
    ("StrtNm", "street_name"),
    ("BldgNb", "building_number"),
    ("BldgNm", "building_name"),
    ("Flr", "floor"),
    ("PstBx", "post_box"),
    ("Room", "room"),
    ("PstCd", "post_code"),
    ("TwnNm", "town_name"),
    ("TwnLctnNm", "town_location_name"),
    ("DstrctNm", "district_name"),
    ("CtrySubDvsn", "country_sub_division"),
    ("Ctry", "country"),
)


class ComponentError(ValueError):
    """A component that does not map: where (element path) and why."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class Reader:
    """Element lookup by local path (``"PmtId/EndToEndId"``) in one namespace.

    Each element's children are grouped by local name once, on first use; a path lookup
    is then one dictionary read per step (lxml's ``find`` compiles and walks a path each
    time, which dominated decoding). Use one reader per document: the cache holds the
    elements it has seen.
    """

    def __init__(self, namespace: str) -> None:
        self.ns = namespace
        self._prefix = f"{{{namespace}}}"
        self._children: dict[etree._Element, dict[str, list[etree._Element]]] = {}
        self._steps: dict[str, tuple[str, ...]] = {}

    def _grouped(self, element: etree._Element) -> dict[str, list[etree._Element]]:
        grouped = self._children.get(element)
        if grouped is None:
            grouped = {}
            namespace = self._prefix
            cut = len(namespace)
            for child in element:
                tag = child.tag
                if isinstance(tag, str) and tag.startswith(namespace):
                    name = tag[cut:]
                    found = grouped.get(name)
                    if found is None:
                        grouped[name] = [child]
                    else:
                        found.append(child)
            self._children[element] = grouped
        return grouped

    def children(self, element: etree._Element) -> dict[str, list[etree._Element]]:
        """``element``'s children by local name (read-only: it is the reader's cache)."""
        return self._grouped(element)

    def findall(self, element: etree._Element | None, path: str) -> list[etree._Element]:
        """Every element at ``path`` under ``element``, in document order."""
        if element is None:
            return []
        steps = self._steps.get(path)
        if steps is None:
            steps = self._steps[path] = tuple(path.split("/"))
        current = [element]
        for step in steps:
            following: list[etree._Element] = []
            for node in current:
                found = self._grouped(node).get(step)
                if found:
                    following.extend(found)
            if not following:
                return []
            current = following
        return current

    def find(self, element: etree._Element | None, path: str) -> etree._Element | None:
        """The first element at ``path`` under ``element``, or ``None``."""
        if element is None:
            return None
        steps = self._steps.get(path)
        if steps is None:
            steps = self._steps[path] = tuple(path.split("/"))
        node = element
        for step in steps:
            found = self._grouped(node).get(step)
            if not found:
                return None
            node = found[0]
        return node

    def text(self, element: etree._Element | None, path: str) -> str | None:
        """The text at ``path`` (stripped), or ``None`` when absent or empty."""
        found = self.find(element, path)
        if found is None or found.text is None:
            return None
        return found.text.strip() or None

    def texts(self, element: etree._Element | None, path: str) -> tuple[str, ...]:
        """The texts of every element at ``path``."""
        return tuple(
            e.text.strip() for e in self.findall(element, path) if e.text and e.text.strip()
        )


def _stripped(text: str | None) -> str | None:
    return (text.strip() or None) if text is not None else None


def default_namespace(namespace: str) -> Any:
    """An ``nsmap`` making ``namespace`` the default (lxml-stubs types keys as ``str``)."""
    return {None: namespace}


class Builder:
    """Creates elements in one namespace.

    ``unqualified=True`` makes bare-named elements for a streaming writer
    (:func:`lxml.etree.xmlfile`) whose open root declares ``namespace`` as the default: they
    take it from there when the document is read, instead of every written element
    repeating the ``xmlns`` declaration.
    """

    def __init__(self, namespace: str, *, unqualified: bool = False) -> None:
        self.ns = namespace
        self._prefix = "" if unqualified else f"{{{namespace}}}"
        self._nsmap = None if unqualified else default_namespace(namespace)

    def element(self, name: str) -> etree._Element:
        """A new detached element ``name``."""
        return etree.Element(self._prefix + name, nsmap=self._nsmap)

    def child(self, parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
        """A new child ``name`` of ``parent``, with ``text`` if given."""
        element = etree.SubElement(parent, self._prefix + name)
        if text is not None:
            element.text = text
        return element

    def path(self, parent: etree._Element, path: str, text: str | None = None) -> etree._Element:
        """The element at ``path`` under ``parent``, created as needed; ``text`` on the last."""
        current = parent
        for part in path.split("/"):
            found = current.find(self._prefix + part)
            current = found if found is not None else self.child(current, part)
        if text is not None:
            current.text = text
        return current

    def optional(self, parent: etree._Element, path: str, text: str | None) -> None:
        """``path`` with ``text`` under ``parent``, only when ``text`` is not ``None``."""
        if text is not None:
            self.path(parent, path, text)


def element_path(element: etree._Element) -> str:
    """``/Document/A/B[2]``: the element's path, 1-based index where a name repeats."""
    parts = []
    current: etree._Element | None = element
    while current is not None:
        name = etree.QName(current).localname
        parent = current.getparent()
        if parent is not None:
            same = [
                c for c in parent if isinstance(c.tag, str) and etree.QName(c).localname == name
            ]
            if len(same) > 1:
                name = f"{name}[{same.index(current) + 1}]"
        parts.append(name)
        current = parent
    return "/" + "/".join(reversed(parts))


def parse_datetime(text: str, path: str) -> dt.datetime:
    """An ISODateTime; without an offset it is taken as UTC (ISO 20022 allows local time,
    the hub works in UTC)."""
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ComponentError(path, "not an ISO 8601 date and time") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def message_body(reader: Reader, document: etree._Element, name: str) -> etree._Element:
    """The message element ``name`` under ``Document``; a ComponentError when absent."""
    body = reader.find(document, name)
    if body is None:
        raise ComponentError("/Document", f"{name} is missing")
    return body


def identity_and_time(
    reader: Reader, header: etree._Element | None, path: str, id_name: str = "MsgId"
) -> tuple[str | None, dt.datetime | None]:
    """A group header's (or assignment's) id and ``CreDtTm``; ``path`` names the header."""
    created = reader.text(header, "CreDtTm")
    when = parse_datetime(created, f"{path}/CreDtTm") if created else None
    return reader.text(header, id_name), when


def max35(text: str) -> str:
    """``text`` as a Max35Text: a longer id loses dashes from the left, only as many as it
    must, then what is still too long is cut. A UUID (36 characters) loses its first dash
    only, so its runs of decimal digits stay as short as its groups: with all four dashes
    gone, about one UUID in 60 holds 13 digits in a row, one in 600 a Luhn-valid run that
    every card number scan (the journal's, the logs') takes for a clear PAN.

    >>> max35("12345678-1234-4123-8123-123456789012")
    '123456781234-4123-8123-123456789012'
    >>> max35("x" * 40), max35("short-id")
    ('xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx', 'short-id')
    """
    if len(text) <= _MAX35:
        return text
    return text.replace("-", "", len(text) - _MAX35)[:_MAX35]


def start_document(
    b: Builder, body_name: str, first: CanonicalMessage, now: Callable[[], dt.datetime]
) -> tuple[etree._Element, etree._Element, etree._Element]:
    """``Document``, its message body ``body_name`` and the body's ``GrpHdr``, as every
    message the hub writes begins: ``MsgId`` is the first message's ``source_message_id``
    (else its hub id), ``CreDtTm`` its ``transmitted_at`` (else ``now()``)."""
    document = b.element("Document")
    body = b.child(document, body_name)
    group = b.child(body, "GrpHdr")
    b.child(group, "MsgId", max35(first.ids.source_message_id or first.ids.message_id))
    b.child(group, "CreDtTm", format_datetime(first.transmitted_at or now()))
    return document, body, group


def parse_date(text: str, path: str) -> dt.date:
    """An ISODate."""
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        raise ComponentError(path, "not an ISO 8601 date") from None


def format_datetime(value: dt.datetime) -> str:
    """An aware datetime as ISODateTime with its offset, seconds precision (or finer)."""
    text = value.isoformat()
    return text.replace("+00:00", "Z") if value.utcoffset() == dt.timedelta(0) else text


def read_amount(element: etree._Element | None, path: str) -> Money | None:
    """An ``...CurrencyAndAmount`` element as Money, or ``None`` when absent."""
    if element is None:
        return None
    code = element.get("Ccy")
    text = (element.text or "").strip()
    if code is None:
        raise ComponentError(path, "amount without a Ccy attribute")
    try:
        ccy = currency(code)
    except UnknownCurrencyError:
        raise ComponentError(path, "unknown currency code") from None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ComponentError(path, "amount is not a decimal number") from None
    try:
        return Money(value, ccy)
    except AmountError as exc:
        raise ComponentError(path, str(exc)) from None


def write_amount(builder: Builder, parent: etree._Element, name: str, money: Money) -> None:
    """``name`` with ``Ccy`` and the decimal amount (ISO 20022 allows no sign)."""
    element = builder.child(parent, name, format(money.amount, "f"))
    element.set("Ccy", money.currency.alpha)


def read_postal_address(reader: Reader, element: etree._Element | None) -> PostalAddress | None:
    """``PstlAdr`` as a PostalAddress (structured, unstructured or hybrid)."""
    if element is None:
        return None
    children = reader.children(element)
    values = {
        attribute: _stripped(children[name][0].text) if name in children else None
        for name, attribute in _ADDRESS_FIELDS
    }
    return PostalAddress(address_lines=reader.texts(element, "AdrLine"), **values)


def write_postal_address(
    builder: Builder, parent: etree._Element, address: PostalAddress, name: str = "PstlAdr"
) -> None:
    """``PstlAdr`` from a PostalAddress."""
    element = builder.child(parent, name)
    for tag, attribute in _ADDRESS_FIELDS:
        builder.optional(element, tag, getattr(address, attribute))
    for line in address.address_lines:
        builder.child(element, "AdrLine", line)


def read_party(reader: Reader, element: etree._Element | None) -> Party | None:
    """A party identification as a Party (``None`` when absent)."""
    if element is None:
        return None
    identification = (
        reader.text(element, "Id/OrgId/AnyBIC")
        or reader.text(element, "Id/OrgId/LEI")
        or reader.text(element, "Id/OrgId/Othr/Id")
        or reader.text(element, "Id/PrvtId/Othr/Id")
    )
    return Party(
        name=reader.text(element, "Nm"),
        postal_address=read_postal_address(reader, reader.find(element, "PstlAdr")),
        identification=identification,
    )


def write_party(builder: Builder, element: etree._Element, party: Party) -> None:
    """Fill ``element`` (``Dbtr``, ``Cdtr``...) from a Party."""
    builder.optional(element, "Nm", party.name)
    if party.postal_address is not None:
        write_postal_address(builder, element, party.postal_address)
    builder.optional(element, "Id/OrgId/Othr/Id", party.identification)


def read_account(reader: Reader, element: etree._Element | None) -> Account | None:
    """A cash account as an Account (``None`` when absent)."""
    if element is None:
        return None
    scheme = reader.text(element, "Id/Othr/SchmeNm/Cd") or reader.text(
        element, "Id/Othr/SchmeNm/Prtry"
    )
    return Account(
        iban=reader.text(element, "Id/IBAN"),
        other_id=reader.text(element, "Id/Othr/Id"),
        scheme=scheme,
        name=reader.text(element, "Nm"),
        currency=reader.text(element, "Ccy"),
    )


_ACCOUNT_SCHEME_CODES = frozenset({"AIIN", "BBAN", "CUID", "UPIC"})


def write_account(builder: Builder, element: etree._Element, account: Account) -> None:
    """Fill a cash account element from an Account."""
    if account.iban is not None:
        builder.path(element, "Id/IBAN", account.iban)
    elif account.other_id is not None:
        builder.path(element, "Id/Othr/Id", account.other_id)
        if account.scheme is not None:
            kind = "Cd" if account.scheme in _ACCOUNT_SCHEME_CODES else "Prtry"
            builder.path(element, f"Id/Othr/SchmeNm/{kind}", account.scheme)
    else:
        raise ComponentError(element_path(element), "an account needs an IBAN or an id")
    builder.optional(element, "Ccy", account.currency)
    builder.optional(element, "Nm", account.name)


def read_agent(reader: Reader, element: etree._Element | None) -> Agent | None:
    """A financial institution as an Agent (``None`` when absent)."""
    if element is None:
        return None
    institution = reader.find(element, "FinInstnId")
    member = reader.text(institution, "ClrSysMmbId/MmbId")
    clearing = reader.text(institution, "ClrSysMmbId/ClrSysId/Cd") or reader.text(
        institution, "ClrSysMmbId/ClrSysId/Prtry"
    )
    other = reader.text(institution, "Othr/Id")
    if member is None and other is not None:
        member, clearing = other, OTHER_CLEARING
    return Agent(
        bic=reader.text(institution, "BICFI"),
        member_id=member,
        clearing_system=clearing,
        name=reader.text(institution, "Nm"),
    )


def write_agent(builder: Builder, element: etree._Element, agent: Agent) -> None:
    """Fill an agent element (``DbtrAgt``...) from an Agent."""
    institution = builder.child(element, "FinInstnId")
    builder.optional(institution, "BICFI", agent.bic)
    if agent.member_id is not None:
        if agent.clearing_system == OTHER_CLEARING or (
            agent.bic is None and agent.clearing_system is None
        ):
            builder.path(institution, "Othr/Id", agent.member_id)
        else:
            builder.optional(institution, "ClrSysMmbId/ClrSysId/Cd", agent.clearing_system)
            builder.path(institution, "ClrSysMmbId/MmbId", agent.member_id)
    builder.optional(institution, "Nm", agent.name)
    if len(institution) == 0:
        builder.path(institution, "Othr/Id", "NOTPROVIDED")
