"""Status and reason codes, and the mapping between ISO 8583 field 39 and ISO 20022.

The canonical status is ISO 20022's transaction status (``ACSC``, ``RJCT``, ...) with an
ISO 20022 reason code (``AM04``, ...). The original code of the source protocol always
travels next to the mapped one, so a round trip never loses it. No published field 39 <->
ISO 20022 table exists; the one below is the project's (``CANONICAL.md``).

>>> s = status_from_iso8583("51")
>>> s.code, s.reason, s.original
(<TransactionStatus.RJCT: 'RJCT'>, 'AM04', OriginalCode(scheme='iso8583', code='51'))
>>> iso8583_response_code(s)
'51'
>>> iso8583_response_code(Status(TransactionStatus.RJCT, reason="AM04"))
'51'
>>> status_from_iso8583("00", settled=False).code
<TransactionStatus.ACSP: 'ACSP'>
>>> status_from_iso8583("N7").reason, status_from_iso8583("N7").additional_info
('NARR', 'ISO 8583 response code N7')
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "ISO8583_APPROVAL_CODES",
    "ISO8583_FORMAT_ERROR",
    "OriginalCode",
    "Status",
    "TransactionStatus",
    "iso8583_response_code",
    "status_from_iso8583",
]


class TransactionStatus(StrEnum):
    """ISO 20022 ExternalPaymentTransactionStatus1Code values."""

    ACCC = "ACCC"
    ACCP = "ACCP"
    ACFC = "ACFC"
    ACIS = "ACIS"
    ACPD = "ACPD"
    ACSC = "ACSC"
    ACSP = "ACSP"
    ACTC = "ACTC"
    ACWC = "ACWC"
    ACWP = "ACWP"
    BLCK = "BLCK"
    CANC = "CANC"
    PATC = "PATC"
    PDNG = "PDNG"
    PRES = "PRES"
    RCVD = "RCVD"
    RJCT = "RJCT"

    @property
    def is_rejection(self) -> bool:
        return self in (TransactionStatus.RJCT, TransactionStatus.CANC, TransactionStatus.BLCK)


@dataclass(frozen=True, slots=True)
class OriginalCode:
    """The status code exactly as the source protocol carried it."""

    scheme: str
    code: str


@dataclass(frozen=True, slots=True)
class Status:
    """Outcome of a transaction: ISO 20022 status, reason, and the source protocol's code."""

    code: TransactionStatus
    reason: str | None = None
    original: OriginalCode | None = None
    additional_info: str | None = None


ISO8583_FORMAT_ERROR = "30"
ISO8583_APPROVAL_CODES = frozenset({"00", "08", "10", "11", "16"})
"""Field 39 values that approve (00 approved, 08 honour with id, 10 partial, 11 VIP, 16 update)."""

_ISO8583_TO_REASON: dict[str, str] = {
    "13": "AM12",
    "14": "AC01",
    "30": "FF01",
    "51": "AM04",
    "96": "AB09",
    "57": "AG01",
    "58": "AG03",
    "61": "AM02",
    "62": "AC06",
    "36": "AC06",
    "91": "AB08",
    "68": "AB05",
    "94": "AM05",
}
# AC06 comes from 62 and from 36: the reverse direction picks 62 unless the original says 36.
_REASON_TO_ISO8583: dict[str, str] = {}
for _rc, _reason in _ISO8583_TO_REASON.items():
    _REASON_TO_ISO8583.setdefault(_reason, _rc)

_DO_NOT_HONOUR = "05"
_IN_PROGRESS = frozenset({TransactionStatus.PDNG, TransactionStatus.RCVD, TransactionStatus.PRES})
_ISO8583 = "iso8583"


def status_from_iso8583(response_code: str, *, settled: bool = True) -> Status:
    """Canonical status for a field 39 response code."""
    original = OriginalCode(_ISO8583, response_code)
    if response_code in ISO8583_APPROVAL_CODES:
        code = TransactionStatus.ACSC if settled else TransactionStatus.ACSP
        return Status(code, original=original)
    reason = _ISO8583_TO_REASON.get(response_code)
    if reason is None:
        return Status(
            TransactionStatus.RJCT,
            reason="NARR",
            original=original,
            additional_info=f"ISO 8583 response code {response_code}",
        )
    return Status(TransactionStatus.RJCT, reason=reason, original=original)


def iso8583_response_code(status: Status) -> str:
    """Field 39 for a canonical status: the original code when it came from ISO 8583."""
    if status.original is not None and status.original.scheme == _ISO8583:
        return status.original.code
    if status.code in _IN_PROGRESS:
        return "09"
    if not status.code.is_rejection:
        return "00"
    if status.reason is not None:
        return _REASON_TO_ISO8583.get(status.reason, _DO_NOT_HONOUR)
    return _DO_NOT_HONOUR
