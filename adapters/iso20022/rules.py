"""Business rules of ISO 20022 messages that the XSD cannot see.

An XSD checks shape and lexical form: that an ``IBAN`` is two letters, two digits and up to
30 letters or digits, that ``NbOfTxs`` is 1 to 15 digits, that a reason code is 1 to 4
characters. It cannot check that the IBAN's check digits verify, that ``NbOfTxs`` counts the
transactions that are there, or that ``ZZ99`` is no reason code. This module does, on a
document that has already been parsed (and, in the adapter, validated against its XSD).
Everything here is a pure function: no I/O, no clock unless no date is given.

:func:`check_document` walks a ``Document`` (any version: elements are compared by local
name) and returns a :class:`Violation` per problem, in document order, each with the path of
the element, the ExternalStatusReason1Code a pacs.002 / pain.002 rejecting it would carry
(:data:`REASON_CODES`), and a message that never holds an account number::

    rule            elements                                             reason code
    iban            every IBAN (ISO 13616, :func:`iban_problem`)         AC01
    bic             every BICFI, BIC, AnyBIC, BICOrBEI (ISO 9362)        RC01
    group_count     GrpHdr/NbOfTxs (camt.056: CtrlData/NbOfTxs) against  AM19
                    the transactions in the message
    payment_count   pain.001 PmtInf/NbOfTxs against the PmtInf's own     AM20
                    transactions
    control_sum     CtrlSum (group, and pain.001 PmtInf) against the     AM10
                    sum of the amounts; TtlIntrBkSttlmAmt and
                    TtlRtrdIntrBkSttlmAmt against the sum of the
                    settlement amounts
    currency        every amount's Ccy is an active ISO 4217 currency    AM11
                    with a minor unit (:mod:`canonical_model.currency`:
                    historic codes such as DEM are refused); pacs.008
                    / pacs.009 / pacs.004: every settlement amount in the
                    currency of the group total, when there is one
    amount          every amount is a decimal number with no more        AM12
                    decimal places than its currency's exponent (a
                    price, camt's DealPric/Val/Amt, may have up to 13)
    code            StsRsnInf/Rsn/Cd, TxSts, GrpSts, PmtInfSts,          CH16
                    RtrRsnInf/Rsn/Cd, RtrInf/Rsn/Cd, CxlRsnInf/Rsn/Cd,
                    CxlStsRsnInf/Rsn/Cd, Purp/Cd, CtgyPurp/Cd are in
                    their external code set (:mod:`.codesets`)
    date            IntrBkSttlmDt, ReqdExctnDt (the date or the Dt /     DT01
                    DtTm in it) are real dates, not before 1990, not
                    more than a year after ``today``
    creation_time   CreDtTm is a date and time, not more than a day      DT02
                    after ``now`` (checked only when ``now`` is given)
    format          the element is no ``Document``, or its message       FF01
                    element is not the one ``message_id`` names

AM19 and AM20 are the level-specific codes for a wrong count (AM18 is the generic one, for
when the level cannot be told: here it always can).

Which transactions a count and a sum cover depends on the message (``message_id``, e.g.
``pacs.008.001.08``; any version)::

    message   count in                 transactions                amount summed
    pacs.008  GrpHdr/NbOfTxs           CdtTrfTxInf                 IntrBkSttlmAmt
    pacs.009  GrpHdr/NbOfTxs           CdtTrfTxInf                 IntrBkSttlmAmt
    pacs.004  GrpHdr/NbOfTxs           TxInf                       RtrdIntrBkSttlmAmt
    camt.056  CtrlData/NbOfTxs         Undrlyg/TxInf               OrgnlIntrBkSttlmAmt
    pain.001  GrpHdr/NbOfTxs,          PmtInf/CdtTrfTxInf          Amt/InstdAmt or
              PmtInf/NbOfTxs                                       Amt/EqvtAmt/Amt

pacs.002 and pain.002 carry no count of their own (``OrgnlNbOfTxs`` counts the original
message, which is not there), nor do camt.053 / camt.054; their IBANs, BICs, amounts, codes
and dates are checked all the same. A ``CtrlSum`` is the sum "irrespective of currencies"
(the ISO definition), so it adds the amounts' values whatever their ``Ccy``.

>>> from lxml import etree
>>> document = etree.fromstring(
...     '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"><FIToFICstmrCdtTrf>'
...     "<GrpHdr><NbOfTxs>2</NbOfTxs></GrpHdr>"
...     '<CdtTrfTxInf><IntrBkSttlmAmt Ccy="EUR">10.5</IntrBkSttlmAmt>'
...     "<CdtrAcct><Id><IBAN>DE89370400440532013001</IBAN></Id></CdtrAcct></CdtTrfTxInf>"
...     "</FIToFICstmrCdtTrf></Document>"
... )
>>> violations = check_document(document, "pacs.008.001.08")
>>> for violation in violations:
...     print(violation.reason_code, violation.path)
AM19 /Document/FIToFICstmrCdtTrf/GrpHdr/NbOfTxs
AC01 /Document/FIToFICstmrCdtTrf/CdtTrfTxInf/CdtrAcct/Id/IBAN
>>> violations[0].message
'NbOfTxs is 2 but the message holds 1 CdtTrfTxInf'
>>> violations[1].message
'invalid IBAN: check digits do not verify (mod 97)'
>>> iban_problem("GB82WEST12345698765432") is None
True
>>> iban_problem("GB82 WEST 1234 5698 7654 32")
'must be in electronic format: no spaces'
>>> bic_problem("DEUTDEFF500") is None, bic_problem("DEUTXYFF")
(True, "characters 5-6 ('XY') are not an ISO 3166 country code")

Paths start at ``/Document`` even when the document sits in an envelope, and give a 1-based
index to an element that has siblings of the same name (``CdtTrfTxInf[2]``), as
:func:`adapters.iso20022.components.element_path` does.

IBANs and BICs are taken as written, in electronic form: upper-case letters and digits only.
A lower-case letter or a space (the paper form ``GB82 WEST ...``) is a violation, not
something to repair: the hub forwards what it was given, so it must be right as given. Amounts
count decimal places by value (``10.50`` and ``10.500`` are both two-decimal EUR amounts, as
for :class:`canonical_model.money.Money`; ``10.505`` is not). Dates and times without an
offset are taken as UTC.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Final, cast

from lxml import etree

from adapters.iso20022.codesets import code_set
from canonical_model.currency import Currency, UnknownCurrencyError, currency

__all__ = [
    "COUNTRY_CODES",
    "EARLIEST_DATE",
    "IBAN_LENGTHS",
    "MARKET_PRACTICE_CODES",
    "REASON_CODES",
    "Violation",
    "bic_problem",
    "check_document",
    "iban_problem",
]

REASON_CODES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "iban": "AC01",  # Account number is invalid or missing
        "bic": "RC01",  # Bank identifier code ... has an incorrect format
        "group_count": "AM19",  # Number of transactions at the Group level is invalid
        "payment_count": "AM20",  # Number of transactions at the Payment Information level
        "control_sum": "AM10",  # Sum of instructed amounts does not equal the control sum
        "currency": "AM11",  # Transaction currency is invalid or missing
        "amount": "AM12",  # Amount is invalid or missing
        "code": "CH16",  # Content is incorrect (ElementContentFormallyIncorrect)
        "date": "DT01",  # Invalid date (eg, wrong or missing settlement date)
        "creation_time": "DT02",  # Invalid creation date and time in Group Header
        "format": "FF01",  # File Format incomplete or invalid
    }
)
"""The ExternalStatusReason1Code each rule reports, by rule name (see the module docstring)."""

EARLIEST_DATE: Final = dt.date(1990, 1, 1)
"""No settlement or execution date before this one is plausible."""

# ISO 13616 IBAN registry: the length of an IBAN, by country (89 countries, SWIFT IBAN
# registry as published in 2025: the SEPA countries, their territories that have their own
# code, and the other countries that adopted the IBAN).
IBAN_LENGTHS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
        "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
        "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
        "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
        "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
        "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
        "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20,
        "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
        "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
        "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
        "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
        "YE": 30,
    }
)  # fmt: skip
"""IBAN length by country code, for every country in the IBAN registry."""

# ISO 3166-1 alpha-2: the 249 officially assigned codes, plus XK (Kosovo, a user-assigned
# code that SWIFT uses in BICs and the IBAN registry uses for Kosovo's IBANs).
_ISO_3166_ALPHA_2: Final = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ
    BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ
    CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ
    DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR
    GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY
    HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP
    KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY
    MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ
    NA NC NE NF NG NI NL NO NP NR NU NZ OM
    PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW
    SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ
    TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ
    VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
    XK
"""
COUNTRY_CODES: Final[frozenset[str]] = frozenset(_ISO_3166_ALPHA_2.split())
"""Country codes a BIC may carry in characters 5 and 6."""

_IBAN_MAX_LENGTH: Final = 34
_UPPER_ALNUM: Final = re.compile(r"[A-Z0-9]+")
_BIC_NAMES: Final = frozenset({"BICFI", "BIC", "AnyBIC", "BICOrBEI"})
_CODE_PATTERN: Final = re.compile(r"[A-Za-z0-9]{1,4}")
_CURRENCY_PATTERN: Final = re.compile(r"[A-Z]{3}")
_DECIMAL: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_DATE: Final = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})(?:Z|[+-][0-9]{2}:[0-9]{2})?")
_DATE_TIME: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?"
)
_FUTURE_CREATION_SLACK: Final = dt.timedelta(days=1)

# (parent of Cd, grandparent or None) -> code set name; Rsn/Cd depends on what holds the Rsn.
_REASON_SETS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "StsRsnInf": "status_reason",
        "RtrRsnInf": "return_reason",
        "RtrInf": "return_reason",
        "CxlRsnInf": "cancellation_reason",
        "CxlStsRsnInf": "payment_cancellation_rejection",
    }
)
_CODE_SETS_BY_PARENT: Final[Mapping[str, str]] = MappingProxyType(
    {"Purp": "purpose", "CtgyPurp": "category_purpose"}
)
_STATUS_SETS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "TxSts": "payment_transaction_status",
        "GrpSts": "payment_group_status",
        "PmtInfSts": "payment_group_status",
    }
)

# The elements :meth:`_Checker.check_element` has a rule for, in lxml's any-namespace form.
_CHECKED_TAGS: Final[tuple[str, ...]] = tuple(
    f"{{*}}{name}"
    for name in sorted(
        {"IBAN", "Cd", "IntrBkSttlmDt", "ReqdExctnDt", "CreDtTm", *_BIC_NAMES, *_STATUS_SETS}
    )
)
_WITH_CURRENCY: Final = etree.XPath("descendant::*[@Ccy]")


# -- IBAN and BIC -------------------------------------------------------------------------


def iban_problem(iban: str) -> str | None:
    """What is wrong with ``iban`` (ISO 13616, electronic format), or None if nothing.

    Checked: upper-case letters and digits only, a country code from the IBAN registry,
    two check digits (02 to 98), the registry's length for the country, and the mod-97
    check. The reason names the country and lengths, never the IBAN or any part of it
    but the country code.
    """
    if not iban:
        return "empty"
    if len(iban) > _IBAN_MAX_LENGTH:
        return f"{len(iban)} characters, longer than any IBAN ({_IBAN_MAX_LENGTH})"
    if not _UPPER_ALNUM.fullmatch(iban):
        if any(character.isspace() for character in iban):
            return "must be in electronic format: no spaces"
        if any(character.islower() for character in iban):
            return "must be in electronic format: upper-case letters only"
        return "holds characters other than letters A-Z and digits"
    country, check_digits = iban[:2], iban[2:4]
    if not country.isalpha():
        return "does not start with a two-letter country code"
    if len(check_digits) < 2 or not check_digits.isdigit():
        return "characters 3 and 4 are not check digits"
    expected = IBAN_LENGTHS.get(country)
    if expected is None:
        return f"country {country} is not in the IBAN registry"
    if len(iban) != expected:
        return f"an IBAN of {country} has {expected} characters, not {len(iban)}"
    if check_digits in ("00", "01", "99"):
        return "check digits 00, 01 and 99 are never issued"
    if _mod97(iban) != 1:
        return "check digits do not verify (mod 97)"
    return None


def _mod97(iban: str) -> int:
    """ISO 7064 MOD 97-10 over the rearranged IBAN (letters as 10 to 35)."""
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(character, 36)) for character in rearranged)) % 97


def bic_problem(bic: str) -> str | None:
    """What is wrong with ``bic`` (ISO 9362:2014), or None if nothing.

    8 or 11 upper-case letters and digits: a 4-character institution code (letters or,
    since 2014, digits), an ISO 3166 country code (:data:`COUNTRY_CODES`), a 2-character
    location and an optional 3-character branch.
    """
    if len(bic) not in (8, 11):
        return f"{len(bic)} characters; a BIC has 8 or 11"
    if not _UPPER_ALNUM.fullmatch(bic):
        if any(character.islower() for character in bic):
            return "must be upper case"
        return "holds characters other than letters A-Z and digits"
    country = bic[4:6]
    if country not in COUNTRY_CODES:
        return f"characters 5-6 ({country!r}) are not an ISO 3166 country code"
    return None


# -- Documents ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken business rule in a document.

    ``path``: the element, from ``/Document``, e.g.
    ``/Document/FIToFICstmrCdtTrf/CdtTrfTxInf[2]/CdtrAcct/Id/IBAN``. ``reason_code``: the
    ExternalStatusReason1Code to reject it with. ``message``: what is wrong, for people;
    it never holds an account number.
    """

    path: str
    reason_code: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason_code} {self.message}"


@dataclass(frozen=True, slots=True)
class _Totals:
    """Where one message family keeps its counts, transactions and amounts."""

    message: str  # the element under Document
    header: str  # the child of ``message`` holding NbOfTxs and CtrlSum
    transactions: tuple[str, ...]  # path from ``message`` to each transaction
    amounts: tuple[tuple[str, ...], ...]  # paths from a transaction to its amount, first wins
    total: str | None = None  # a group total amount (in ``header``) that sums the amounts
    payments: str | None = None  # pain.001: the level between message and transactions


_TOTALS: Final[Mapping[str, _Totals]] = MappingProxyType(
    {
        "pacs.008": _Totals(
            "FIToFICstmrCdtTrf",
            "GrpHdr",
            ("CdtTrfTxInf",),
            (("IntrBkSttlmAmt",),),
            total="TtlIntrBkSttlmAmt",
        ),
        "pacs.009": _Totals(
            "FICdtTrf",
            "GrpHdr",
            ("CdtTrfTxInf",),
            (("IntrBkSttlmAmt",),),
            total="TtlIntrBkSttlmAmt",
        ),
        "pacs.004": _Totals(
            "PmtRtr",
            "GrpHdr",
            ("TxInf",),
            (("RtrdIntrBkSttlmAmt",),),
            total="TtlRtrdIntrBkSttlmAmt",
        ),
        "camt.056": _Totals(
            "FIToFIPmtCxlReq",
            "CtrlData",
            ("Undrlyg", "TxInf"),
            (("OrgnlIntrBkSttlmAmt",),),
        ),
        "pain.001": _Totals(
            "CstmrCdtTrfInitn",
            "GrpHdr",
            ("PmtInf", "CdtTrfTxInf"),
            (("Amt", "InstdAmt"), ("Amt", "EqvtAmt", "Amt")),
            payments="PmtInf",
        ),
    }
)

_MESSAGES: Final[Mapping[str, str]] = MappingProxyType(
    {
        **{family: totals.message for family, totals in _TOTALS.items()},
        "pacs.002": "FIToFIPmtStsRpt",
        "pain.002": "CstmrPmtStsRpt",
        "camt.053": "BkToCstmrStmt",
        "camt.054": "BkToCstmrDbtCdtNtfctn",
    }
)


_NONE = re.compile(r"(?!)")

MARKET_PRACTICE_CODES: dict[str, re.Pattern[str]] = {
    # FedNow's published market practice: category purposes CONS (consumer) and BIZZ
    # (business), and its own status reasons E000-E999, carried in the Cd elements.
    "category_purpose": re.compile(r"CONS|BIZZ"),
    "status_reason": re.compile(r"E\d{3}"),
}
"""Codes outside the ISO external code sets that a market practice puts in ``Cd`` and the
hub accepts, by code set name."""


def check_document(
    document: etree._Element,
    message_id: str,
    *,
    today: dt.date | None = None,
    now: dt.datetime | None = None,
) -> list[Violation]:
    """Every business-rule violation in ``document``, in document order (empty: none).

    ``document``: the ``Document`` element (any namespace; it may sit in an envelope).
    ``message_id``: the message definition, e.g. ``pacs.008.001.08``; it says which counts
    and sums to check. ``today``: the date settlement and execution dates are judged
    against (default: ``now``'s UTC date, else the current UTC date). ``now``: when given,
    a ``CreDtTm`` more than a day after it is a violation.
    """
    if now is not None and now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    if today is None:
        today = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).date()
    checker = _Checker(document, today, now)
    return checker.run(message_id)


class _Checker:
    """One run of :func:`check_document`: collects violations, then sorts them."""

    def __init__(self, document: etree._Element, today: dt.date, now: dt.datetime | None) -> None:
        self.document = document
        self.today = today
        self.latest_date = _one_year_after(today)
        self.now = now
        self.found: list[tuple[tuple[int, ...], Violation]] = []

    def run(self, message_id: str) -> list[Violation]:
        name = _local(self.document)
        if name != "Document":
            self.add(self.document, "format", f"expected a Document, not {name}")
            return self.sorted()
        family = ".".join(message_id.split(".")[:2])
        expected = _MESSAGES.get(family)
        message = next(_elements(self.document), None)
        if expected is not None and message is not None and _local(message) != expected:
            self.add(
                message,
                "format",
                f"a {message_id} Document holds {expected}, not {_local(message)}",
            )
        elif message is not None and family in _TOTALS:
            self.check_totals(message, _TOTALS[family])
        # lxml picks the elements that have a rule in C; the rest is never seen from Python.
        for element in self.document.iterdescendants(*_CHECKED_TAGS):
            self.check_element(element)
        for element in cast(list[etree._Element], _WITH_CURRENCY(self.document)):
            self.check_amount(element)
        return self.sorted()

    # -- bookkeeping

    def add(self, element: etree._Element, rule: str, message: str) -> None:
        path, position = _locate(element, self.document)
        self.found.append((position, Violation(path, REASON_CODES[rule], message)))

    def sorted(self) -> list[Violation]:
        return [violation for _, violation in sorted(self.found, key=lambda item: item[0])]

    # -- counts and sums

    def check_totals(self, message: etree._Element, totals: _Totals) -> None:
        header = _child(message, totals.header)
        if header is None:
            return
        transactions = list(_descendants(message, totals.transactions))
        what = "/".join(totals.transactions[1:] if totals.payments else totals.transactions)
        self.check_count(header, transactions, what, "group_count", required=True)
        amounts = [_first_path(tx, totals.amounts) for tx in transactions]
        self.check_sum(header, amounts)
        if totals.total is not None:
            self.check_total(header, totals.total, amounts)
        if totals.payments is not None:
            for payment in _children(message, totals.payments):
                own = list(_descendants(payment, totals.transactions[1:]))
                self.check_count(payment, own, what, "payment_count", required=False)
                self.check_sum(payment, [_first_path(tx, totals.amounts) for tx in own])

    def check_count(
        self,
        holder: etree._Element,
        transactions: Sequence[etree._Element],
        what: str,
        rule: str,
        *,
        required: bool,
    ) -> None:
        count = _child(holder, "NbOfTxs")
        if count is None:
            if required:
                self.add(holder, rule, f"NbOfTxs is missing ({len(transactions)} {what})")
            return
        text = (count.text or "").strip()
        if not text.isascii() or not text.isdigit():
            self.add(count, rule, "NbOfTxs is not a number")
        elif int(text) != len(transactions):
            holder_name = "message" if rule == "group_count" else _local(holder)
            self.add(
                count,
                rule,
                f"NbOfTxs is {int(text)} but the {holder_name} holds {len(transactions)} {what}",
            )

    def check_sum(self, holder: etree._Element, amounts: Sequence[etree._Element | None]) -> None:
        control = _child(holder, "CtrlSum")
        if control is None:
            return
        declared = _decimal(control.text)
        if declared is None:
            self.add(control, "control_sum", "CtrlSum is not a decimal number")
            return
        values = [_decimal(amount.text) for amount in amounts if amount is not None]
        if any(value is None for value in values):
            return  # an amount that is no number: reported where it is
        total = sum((value for value in values if value is not None), Decimal(0))
        if total != declared:
            self.add(
                control,
                "control_sum",
                f"CtrlSum is {declared} but the amounts add up to {total}",
            )

    def check_total(
        self, header: etree._Element, name: str, amounts: Sequence[etree._Element | None]
    ) -> None:
        total = _child(header, name)
        if total is None:
            return
        declared = _decimal(total.text)
        total_currency = total.get("Ccy")
        present = [amount for amount in amounts if amount is not None]
        mismatched = [amount for amount in present if amount.get("Ccy") != total_currency]
        for amount in mismatched:
            self.add(
                amount,
                "currency",
                f"{_local(amount)} is not in the currency of {name}"
                f" ({_shown_currency(amount.get('Ccy'))} vs {_shown_currency(total_currency)})",
            )
        values = [_decimal(amount.text) for amount in present]
        if declared is None or mismatched or any(value is None for value in values):
            return  # not a number: reported by the amount rule
        computed = sum((value for value in values if value is not None), Decimal(0))
        if computed != declared:
            self.add(
                total,
                "control_sum",
                f"{name} is {declared} but the {_local(present[0]) if present else 'amounts'}"
                f" add up to {computed}",
            )

    # -- one element

    def check_element(self, element: etree._Element) -> None:
        name = _local(element)
        if name == "IBAN":
            problem = iban_problem(element.text or "")
            if problem is not None:
                self.add(element, "iban", f"invalid IBAN: {problem}")
        elif name in _BIC_NAMES:
            problem = bic_problem(element.text or "")
            if problem is not None:
                self.add(element, "bic", f"invalid BIC in {name}: {problem}")
        elif name in _STATUS_SETS:
            self.check_code(element, _STATUS_SETS[name], name)
        elif name == "Cd":
            self.check_code_element(element)
        elif name == "IntrBkSttlmDt":
            self.check_date(element, name)
        elif name == "ReqdExctnDt":
            self.check_execution_date(element)
        elif name == "CreDtTm":
            self.check_creation_time(element)

    def check_code_element(self, element: etree._Element) -> None:
        parent = element.getparent()
        if parent is None:
            return
        parent_name = _local(parent)
        if parent_name in _CODE_SETS_BY_PARENT:
            self.check_code(element, _CODE_SETS_BY_PARENT[parent_name], f"{parent_name}/Cd")
        elif parent_name == "Rsn":
            holder = parent.getparent()
            holder_name = _local(holder) if holder is not None else ""
            if holder_name in _REASON_SETS:
                self.check_code(element, _REASON_SETS[holder_name], f"{holder_name}/Rsn/Cd")

    def check_code(self, element: etree._Element, set_name: str, where: str) -> None:
        codes = code_set(set_name)
        value = element.text or ""
        if value in codes or MARKET_PRACTICE_CODES.get(set_name, _NONE).fullmatch(value):
            return
        shown = repr(value) if _CODE_PATTERN.fullmatch(value) else "the value"
        self.add(element, "code", f"{shown} is not in {codes.name} ({where})")

    def check_amount(self, element: etree._Element) -> None:
        code = element.get("Ccy") or ""
        name = _local(element)
        found: Currency | None = None
        if _CURRENCY_PATTERN.fullmatch(code):
            try:
                found = currency(code)
            except UnknownCurrencyError:
                found = None
        if found is None:
            self.add(element, "currency", f"{name}: {_shown_currency(code)} is not an ISO 4217"
                     " currency with a minor unit")  # fmt: skip
        text = (element.text or "").strip()
        if not _DECIMAL.fullmatch(text):
            self.add(element, "amount", f"{name} is not a decimal amount")
            return
        decimals = len(text.partition(".")[2].rstrip("0"))
        parent = element.getparent()
        if name == "Amt" and parent is not None and _local(parent) == "Val":
            return  # a price (camt DealPric/Val/Amt): up to 13 decimals whatever the currency
        if found is not None and decimals > found.exponent:
            self.add(
                element,
                "amount",
                f"{name} has {decimals} decimal places; {found.alpha} has {found.exponent}",
            )

    def check_execution_date(self, element: etree._Element) -> None:
        children = list(_elements(element))
        if not children:
            self.check_date(element, "ReqdExctnDt")  # pain.001.001.03: an ISODate
            return
        for child in children:
            child_name = _local(child)
            if child_name == "Dt":
                self.check_date(child, "ReqdExctnDt/Dt")
            elif child_name == "DtTm":
                moment = _parse_date_time(child.text)
                if moment is None:
                    self.add(child, "date", "ReqdExctnDt/DtTm is not a date and time")
                else:
                    self.check_date_range(child, "ReqdExctnDt/DtTm", moment.date())

    def check_date(self, element: etree._Element, what: str) -> None:
        day = _parse_date(element.text)
        if day is None:
            self.add(element, "date", f"{what} is not a date")
        else:
            self.check_date_range(element, what, day)

    def check_date_range(self, element: etree._Element, what: str, day: dt.date) -> None:
        if day < EARLIEST_DATE:
            self.add(element, "date", f"{what} {day} is before {EARLIEST_DATE}")
        elif day > self.latest_date:
            self.add(
                element,
                "date",
                f"{what} {day} is more than a year after {self.today}",
            )

    def check_creation_time(self, element: etree._Element) -> None:
        moment = _parse_date_time(element.text)
        if moment is None:
            self.add(element, "creation_time", "CreDtTm is not a date and time")
        elif self.now is not None and moment > self.now + _FUTURE_CREATION_SLACK:
            self.add(
                element,
                "creation_time",
                f"CreDtTm {moment.isoformat()} is more than a day after {self.now.isoformat()}",
            )


# -- helpers ------------------------------------------------------------------------------


def _local(element: etree._Element) -> str:
    tag = element.tag
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _elements(parent: etree._Element) -> Iterator[etree._Element]:
    """The child elements (no comments or processing instructions)."""
    return (child for child in parent if isinstance(child.tag, str))


def _children(parent: etree._Element, name: str) -> Iterator[etree._Element]:
    return (child for child in _elements(parent) if _local(child) == name)


def _child(parent: etree._Element, name: str) -> etree._Element | None:
    return next(_children(parent, name), None)


def _descendants(parent: etree._Element, path: Sequence[str]) -> Iterator[etree._Element]:
    """The elements at ``path`` (local names) below ``parent``, every branch, in order."""
    if not path:
        yield parent
        return
    for child in _children(parent, path[0]):
        yield from _descendants(child, path[1:])


def _first_path(parent: etree._Element, paths: Sequence[Sequence[str]]) -> etree._Element | None:
    for path in paths:
        found = next(_descendants(parent, path), None)
        if found is not None:
            return found
    return None


def _locate(element: etree._Element, document: etree._Element) -> tuple[str, tuple[int, ...]]:
    """The element's path from ``/Document`` and its position (child indexes) for sorting."""
    parts: list[str] = []
    position: list[int] = []
    current = element
    while current is not document:
        parent = current.getparent()
        if parent is None:
            break
        name = _local(current)
        same = list(_children(parent, name))
        parts.append(f"{name}[{same.index(current) + 1}]" if len(same) > 1 else name)
        position.append(parent.index(current))
        current = parent
    parts.append(_local(document))
    return "/" + "/".join(reversed(parts)), tuple(reversed(position))


def _decimal(text: str | None) -> Decimal | None:
    value = (text or "").strip()
    return Decimal(value) if _DECIMAL.fullmatch(value) else None


def _shown_currency(code: str | None) -> str:
    if code is None:
        return "no currency"
    return repr(code) if _CURRENCY_PATTERN.fullmatch(code) else "the Ccy value"


def _parse_date(text: str | None) -> dt.date | None:
    match = _DATE.fullmatch((text or "").strip())
    if match is None:
        return None
    try:
        return dt.date(*(int(group) for group in match.groups()))
    except ValueError:
        return None


def _parse_date_time(text: str | None) -> dt.datetime | None:
    """An xs:dateTime; None if it is not one. No offset: UTC. 24:00:00: the next midnight."""
    match = _DATE_TIME.fullmatch((text or "").strip())
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(group) for group in match.groups()[:6])
    fraction, offset = match.group(7), match.group(8)
    end_of_day = hour == 24 and minute == 0 and second == 0 and not (fraction or "").strip("0")
    try:
        moment = dt.datetime(
            year,
            month,
            day,
            0 if end_of_day else hour,
            minute,
            second,
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=_offset(offset),
        )
    except ValueError:
        return None
    return moment + dt.timedelta(days=1) if end_of_day else moment


def _offset(text: str | None) -> dt.tzinfo:
    if text is None or text == "Z":
        return dt.UTC
    sign = -1 if text[0] == "-" else 1
    hours, minutes = int(text[1:3]), int(text[4:6])
    return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))


def _one_year_after(day: dt.date) -> dt.date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year + 1, day=28)
