"""ISO 20022 External Code Sets: the codes an XSD accepts as any 1 to 4 characters.

An ISO 20022 schema types a reason or status code as ``ExternalStatusReason1Code`` and the
like: text of 1 to 4 characters, so ``ZZ99`` validates. Which codes exist is published apart
from the schemas, as the External Code Sets, and this module carries a copy of eight of them
(JSON files under ``codesets/`` next to this module, see ``codesets/SOURCE.md`` for where they
come from and of which date). They are read lazily, once, on the first :func:`code_set` call
for each set, through :mod:`importlib.resources` (so they work from a wheel or a zip too)::

    name                            ISO 20022 code set                        used in
    status_reason                   ExternalStatusReason1Code                 StsRsnInf/Rsn/Cd
    payment_transaction_status      ExternalPaymentTransactionStatus1Code     TxSts
    payment_group_status            ExternalPaymentGroupStatus1Code           GrpSts, PmtInfSts
    return_reason                   ExternalReturnReason1Code                 RtrRsnInf/Rsn/Cd
    cancellation_reason             ExternalCancellationReason1Code           CxlRsnInf/Rsn/Cd
    payment_cancellation_rejection  ExternalPaymentCancellationRejection1Code CxlStsRsnInf/Rsn/Cd
    purpose                         ExternalPurpose1Code                      Purp/Cd
    category_purpose                ExternalCategoryPurpose1Code              CtgyPurp/Cd

>>> reasons = code_set("status_reason")
>>> reasons
CodeSet('ExternalStatusReason1Code', 301 codes)
>>> "AC01" in reasons, "ZZ99" in reasons
(True, False)
>>> reasons.definition("AM04")
'Amount of funds available to cover specified message amount is insufficient.'
>>> try:
...     code_set("status_reasons")
... except KeyError as error:  # an UnknownCodeSetError
...     print(error)  # doctest: +ELLIPSIS
unknown code set 'status_reasons'; did you mean 'status_reason'? (known: status_reason, ...)

Codes are case-sensitive, as in the messages (``acsc`` is not a status). The code sets are
updated by ISO every quarter: a code newer than the copy here is reported unknown, so refresh
the JSON files (and SOURCE.md) from the publication when a scheme starts using new codes.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Final

__all__ = [
    "CODE_SET_NAMES",
    "CodeSet",
    "UnknownCodeSetError",
    "code_set",
]

_FILES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "status_reason": "external_status_reason_code.json",
        "payment_transaction_status": "external_payment_transaction_status_code.json",
        "payment_group_status": "external_payment_group_status_code.json",
        "return_reason": "external_return_reason_code.json",
        "cancellation_reason": "external_cancellation_reason_code.json",
        "payment_cancellation_rejection": "external_payment_cancellation_rejection_code.json",
        "purpose": "external_purpose_code.json",
        "category_purpose": "external_category_purpose_code.json",
    }
)

CODE_SET_NAMES: Final[tuple[str, ...]] = tuple(_FILES)
"""The names :func:`code_set` knows, in the order of the table above."""

_DATA_PACKAGE: Final = "adapters.iso20022"
_DATA_FOLDER: Final = "codesets"


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class CodeSet:
    """One external code set: its ISO 20022 name and each code's definition.

    ``codes`` is read-only. ``code in code_set`` tells whether a code exists; iterating gives
    the codes in sorted order. Code sets compare by identity (:func:`code_set` returns the
    same object for a name every time).
    """

    name: str
    codes: Mapping[str, str]
    description: str = field(default="")

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and code in self.codes

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.codes))

    def __len__(self) -> int:
        return len(self.codes)

    def __repr__(self) -> str:
        return f"CodeSet({self.name!r}, {len(self.codes)} codes)"

    def definition(self, code: str) -> str:
        """The definition of ``code``; :class:`KeyError` when the set has no such code."""
        try:
            return self.codes[code]
        except KeyError:
            raise KeyError(f"{code!r} is not a code of {self.name}") from None


class UnknownCodeSetError(KeyError):
    """No code set by that name; ``known`` lists the names, ``suggestions`` the close ones."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        known = tuple(known)
        super().__init__(name)
        self.name = name
        self.known = known
        self.suggestions = tuple(difflib.get_close_matches(name, known, n=3, cutoff=0.6))
        hint = f"; did you mean {self.suggestions[0]!r}?" if self.suggestions else ""
        self.message = f"unknown code set {name!r}{hint} (known: {', '.join(known)})"

    def __str__(self) -> str:
        return self.message


def code_set(name: str) -> CodeSet:
    """The code set called ``name`` (see the module docstring for the names).

    Raises :class:`UnknownCodeSetError` (a :class:`KeyError`) naming the known sets.
    """
    if name not in _FILES:
        raise UnknownCodeSetError(name, CODE_SET_NAMES)
    return _load(name)


@cache
def _load(name: str) -> CodeSet:
    resource = resources.files(_DATA_PACKAGE).joinpath(_DATA_FOLDER, _FILES[name])
    data = json.loads(resource.read_text(encoding="utf-8"))
    codes = data.get("codes") if isinstance(data, dict) else None
    if not isinstance(codes, dict) or not all(
        isinstance(code, str) and isinstance(text, str) for code, text in codes.items()
    ):
        raise ValueError(f"{_FILES[name]}: expected {{'codes': {{code: definition}}}}")
    iso_name = data.get("name")
    description = data.get("description")
    return CodeSet(
        name=iso_name if isinstance(iso_name, str) else name,
        codes=MappingProxyType(dict(codes)),
        description=description if isinstance(description, str) else "",
    )
