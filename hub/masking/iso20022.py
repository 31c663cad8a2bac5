"""Masking ISO 20022 XML files (pacs, pain, camt, any version), streamed element by element.

The document is read with :func:`adapters.iso20022.safexml.iterparse_safe` (no DTD, no
entities, the same limits as the adapter) and written again with lxml's incremental writer
as it is read, each element cleared once written, so a statement file of any size is masked
in a few megabytes. Element names, namespaces, attributes and the white space between
elements are kept; comments are dropped (they could hold anything); the output is UTF-8.

Which element gets which rule (:func:`element_rule`, by local name and ancestors, for every
message and version)::

    IBAN                                     iban (check digits recomputed)
    PAN (card data)                          pan
    Nm                                       name        (parties, accounts, contacts)
    Othr/Id under an account's Id            account     (DbtrAcct, CdtrAcct, Acct...)
    Othr/Id under OrgId, PrvtId, CtctDtls    id          (national, tax, customer ids)
    CardData/DbtrAcctId                      account     (the hub's card data envelope:
                                                          ISO 8583 field 102)
    Prxy/Id                                  id          (phone or e-mail proxies)
    PstlAdr: StrtNm, BldgNb, BldgNm, Flr,    text        (TwnNm, CtrySubDvsn and Ctry
      PstBx, Room, PstCd, DstrctNm,                       are kept: tests route by
      TwnLctnNm, Dept, SubDept, AdrLine                   country and town)
    BirthDt                                  date        (a day of the same year)
    CityOfBirth, PrvcOfBirth                 text
    CtctDtls: PhneNb, MobNb, FaxNb,          text
      EmailAdr, URLAdr, JobTitl
    Ustrd, AddtlRmtInf, AddtlNtryInf,        text        (free text: names hide there)
      AddtlTxInf, InstrInf

Financial institutions are kept whole: anything under ``FinInstnId`` or ``BrnchId`` (BICs,
clearing member ids, bank names and addresses) is no personal data, and the routing of a
test environment needs it. Everything else is kept too (amounts, dates, codes, message and
transaction references), but every kept text and attribute is checked: one that holds a card
number or a valid IBAN fails the run, naming the element. A rule given for an element local
name (``AddtlInf``) or a path suffix (``Cdtr/Nm``) overrides the table, ``keep`` and
``drop`` (the element left out) included.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Final

from lxml import etree

from adapters.iso20022.safexml import XmlInputError, iterparse_safe
from hub.masking.values import (
    RULES,
    Masker,
    MaskingError,
    RecordMaskingError,
    sensitive_content,
)

__all__ = ["FIELD_RULES", "Iso20022Masker", "element_rule"]

FIELD_RULES: Final = ("keep", "drop", *RULES)
"""What an element can be given: keep, drop (left out) or a rule of :mod:`hub.masking.values`."""

_INSTITUTION: Final = frozenset({"FinInstnId", "BrnchId"})
_PARTY_IDS: Final = frozenset({"OrgId", "PrvtId", "CtctDtls"})
_ADDRESS: Final = frozenset(
    {"StrtNm", "BldgNb", "BldgNm", "Flr", "PstBx", "Room", "PstCd", "DstrctNm", "TwnLctnNm",
     "Dept", "SubDept", "AdrLine"}
)  # fmt: skip
_CONTACT: Final = frozenset({"PhneNb", "MobNb", "FaxNb", "EmailAdr", "URLAdr", "JobTitl"})
_FREE_TEXT: Final = frozenset({"Ustrd", "AddtlRmtInf", "AddtlNtryInf", "AddtlTxInf", "InstrInf"})
_PROGRESS_EVERY: Final = 4096


def element_rule(path: tuple[str, ...]) -> str | None:
    """The default rule of the element at ``path`` (local names from the root), or None
    when it is kept.

    >>> element_rule(("Document", "FIToFICstmrCdtTrf", "CdtTrfTxInf", "Dbtr", "Nm"))
    'name'
    >>> element_rule(("Document", "FIToFICstmrCdtTrf", "CdtTrfTxInf", "DbtrAgt", "FinInstnId",
    ...               "Nm")) is None
    True
    """
    name = path[-1]
    parent = path[-2] if len(path) > 1 else ""
    ancestors = path[:-1]
    if any(step in _INSTITUTION for step in ancestors):
        return None
    if name == "IBAN":
        return "iban"
    if name == "PAN":
        return "pan"
    if name == "Nm":
        return "name"
    if name == "Id" and parent == "Othr":
        return "id" if any(step in _PARTY_IDS for step in ancestors) else "account"
    if name == "Id" and parent == "Prxy":
        return "id"
    if name == "DbtrAcctId" and parent == "CardData":
        return "account"
    if name in _ADDRESS and "PstlAdr" in ancestors:
        return "text"
    if name == "BirthDt":
        return "date"
    if name in ("CityOfBirth", "PrvcOfBirth"):
        return "text"
    if name in _CONTACT and "CtctDtls" in ancestors:
        return "text"
    if name in _FREE_TEXT:
        return "text"
    return None


def _local(tag: Any) -> str:
    text = str(tag)
    return text.rpartition("}")[2]


@dataclass(slots=True)
class _Open:
    element: Any
    writer: Any
    path: tuple[str, ...]
    rule: str | None
    nsmap: Mapping[str | None, str] = field(default_factory=dict)


class Iso20022Masker:
    """Masks ISO 20022 documents under one :class:`~hub.masking.values.Masker`."""

    def __init__(self, masker: Masker, *, rules: Mapping[str, str] | None = None) -> None:
        for name, rule in (rules or {}).items():
            if rule not in FIELD_RULES:
                raise ValueError(
                    f"element {name}: unknown rule {rule!r} (rules: {', '.join(FIELD_RULES)})"
                )
        self._masker = masker
        self._overrides = [(tuple(name.strip("/").split("/")), rule) for name, rule in
                           (rules or {}).items()]  # fmt: skip
        self.elements = 0
        self.masked = 0

    def rule(self, path: tuple[str, ...]) -> str | None:
        """The rule of the element at ``path``: an override, else :func:`element_rule`."""
        for suffix, rule in self._overrides:
            if path[-len(suffix) :] == suffix:
                return rule
        return element_rule(path)

    def mask_stream(
        self, source: BinaryIO, sink: BinaryIO, progress: Callable[[int], None] | None = None
    ) -> int:
        """The document of ``source`` masked into ``sink``; the number of values masked."""
        stack: list[_Open] = []
        skipping = 0
        sink.write(b'<?xml version="1.0" encoding="UTF-8"?>\n')
        try:
            with etree.xmlfile(sink, encoding="utf-8") as out:
                for event, element in iterparse_safe(source, events=("start", "end")):
                    if event == "start":
                        if skipping:
                            skipping += 1
                            continue
                        skipping = self._start(out, element, stack)
                    else:
                        if skipping:
                            skipping -= 1
                            if not skipping:
                                self._release(element)
                            continue
                        self._end(out, element, stack.pop())
                        self.elements += 1
                        if progress is not None and self.elements % _PROGRESS_EVERY == 0:
                            progress(source.tell())
            sink.write(b"\n")
        except XmlInputError as exc:
            line = exc.line or 0
            raise RecordMaskingError(f"not accepted XML: {exc}", record=line, unit="line") from None
        if progress is not None:
            progress(source.tell())
        return self.masked

    def _start(self, out: Any, element: Any, stack: list[_Open]) -> int:
        """Opens ``element`` in the output; 1 when it is dropped (skip its subtree)."""
        parent = stack[-1] if stack else None
        path = (*(parent.path if parent else ()), _local(element.tag))
        rule = self.rule(path)
        if parent is not None:
            previous = element.getprevious()
            gap = previous.tail if previous is not None else parent.element.text
            if gap:
                self._check_kept(gap, path[:-1], element)
                out.write(gap)
        if rule == "drop":
            return 1
        for name, value in element.attrib.items():
            self._check_kept(value, (*path, "@" + _local(name)), element)
        inherited = parent.nsmap if parent else {}
        nsmap = dict(element.nsmap)
        declared = {prefix: uri for prefix, uri in nsmap.items() if inherited.get(prefix) != uri}
        writer = out.element(element.tag, dict(element.attrib), nsmap=declared or None)
        writer.__enter__()
        stack.append(_Open(element, writer, path, rule, nsmap))
        return 0

    def _end(self, out: Any, element: Any, opened: _Open) -> None:
        if len(element):
            last_tail = element[-1].tail
            if last_tail:
                self._check_kept(last_tail, opened.path, element)
                out.write(last_tail)
        else:
            text = element.text or ""
            if opened.rule is not None and opened.rule != "keep" and text.strip():
                try:
                    text = self._masker.apply(opened.rule, text)
                except MaskingError as exc:
                    raise RecordMaskingError(
                        str(exc), record=_line(element), field=_path(opened.path), unit="line"
                    ) from None
                self.masked += 1
            elif opened.rule is None:
                self._check_kept(text, opened.path, element)
            if text:
                out.write(text)
        opened.writer.__exit__(None, None, None)
        self._release(element)

    def _check_kept(self, text: str, path: tuple[str, ...], element: Any) -> None:
        found = sensitive_content(text)
        if found is not None and self.rule(path) != "keep":
            raise RecordMaskingError(
                f"holds {found} but no rule masks it: give the element a rule"
                f" (--field {path[-1]}=RULE)",
                record=_line(element),
                field=_path(path),
                unit="line",
            )

    @staticmethod
    def _release(element: Any) -> None:
        """Frees what has been written: the element's content and its earlier siblings."""
        element.clear(keep_tail=True)
        parent = element.getparent()
        if parent is not None:
            while element.getprevious() is not None:
                del parent[0]


def _line(element: Any) -> int:
    line = getattr(element, "sourceline", None)
    return line if isinstance(line, int) else 0


def _path(path: tuple[str, ...]) -> str:
    return "/" + "/".join(path)
