"""Codecs for the ISO 8583:1987 fields whose content has structure of its own.

- Field 7 (``MMDDhhmmss``, GMT) and field 13 (``MMDD``) carry no year: the year is the one
  that puts the date nearest to the receiver's clock (so a message sent on 31 December and
  read on 1 January keeps its year).
- Field 35 (track 2): PAN, separator ``=`` or ``D``, expiry ``YYMM``, service code,
  discretionary data. Only the PAN (to be tokenized), expiry and service code are kept.
- Field 54 (additional amounts): repeated 20-character blocks: account type (2), amount
  type (2), currency (3, numeric), sign ``C`` / ``D`` (1), amount in minor units (12).
- Field 90 (original data elements, n 42): original MTI (4), STAN (6), transmission date
  and time (10), acquiring institution id (11), forwarding institution id (11).

Every parser raises :class:`FieldFormatError` with the offset inside the field.

>>> import datetime as dt
>>> now = dt.datetime(2027, 1, 1, 0, 5, tzinfo=dt.UTC)
>>> parse_transmission_time("1231235959", now)
datetime.datetime(2026, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc)
>>> t = parse_track2("4111111111111111=29121010000012300000")
>>> t.expiry, t.service_code
('2912', '101')
>>> [str(a.amount) for a in parse_additional_amounts("0002840D000000001000")]
['-10.00 USD']
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from canonical_model.currency import UnknownCurrencyError, currency
from canonical_model.messages import AdditionalAmount, OriginalTransaction
from canonical_model.money import Money

__all__ = [
    "FieldFormatError",
    "Track2",
    "format_additional_amounts",
    "format_mmdd",
    "format_original_data",
    "format_transmission_time",
    "infer_date",
    "parse_additional_amounts",
    "parse_local_time",
    "parse_original_data",
    "parse_track2",
    "parse_transmission_time",
]


class FieldFormatError(ValueError):
    """A field whose content breaks its format; ``offset`` is relative to the field data."""

    def __init__(self, reason: str, offset: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset


def _digits(value: str, what: str, offset: int = 0) -> int:
    if not value.isdigit() or not value.isascii():
        raise FieldFormatError(f"{what} must be digits", offset)
    return int(value)


def infer_date(month: int, day: int, now: dt.datetime) -> dt.date:
    """The date with this month and day nearest to ``now`` (previous, same or next year)."""
    today = now.date()
    try:
        same_year = dt.date(today.year, month, day)
    except ValueError:
        pass
    else:
        # Any other year's date lies at least 365 - 182 days away: this one is nearest.
        if abs((same_year - today).days) <= 182:
            return same_year
    best: dt.date | None = None
    for year in (today.year, today.year - 1, today.year + 1):
        try:
            candidate = dt.date(year, month, day)
        except ValueError:
            continue
        if best is None or abs((candidate - today).days) < abs((best - today).days):
            best = candidate
    if best is None:
        raise FieldFormatError(f"month {month:02d} day {day:02d} is not a calendar date")
    return best


def parse_transmission_time(value: str, now: dt.datetime) -> dt.datetime:
    """Field 7 (and field 90's time): ``MMDDhhmmss`` in GMT, year inferred from ``now``."""
    _digits(value, "date and time")
    if len(value) != 10:
        raise FieldFormatError("date and time must be MMDDhhmmss")
    day = infer_date(int(value[0:2]), int(value[2:4]), now)
    try:
        return dt.datetime(
            day.year, day.month, day.day,
            int(value[4:6]), int(value[6:8]), int(value[8:10]),
            tzinfo=dt.UTC,
        )  # fmt: skip
    except ValueError:
        raise FieldFormatError("time of day out of range", 4) from None


def format_transmission_time(value: dt.datetime) -> str:
    """A timezone-aware datetime as field 7's ``MMDDhhmmss`` in GMT."""
    v = value.astimezone(dt.UTC)
    return f"{v.month:02d}{v.day:02d}{v.hour:02d}{v.minute:02d}{v.second:02d}"


def parse_local_time(value: str) -> dt.time:
    """Field 12: ``hhmmss``."""
    _digits(value, "local time")
    try:
        return dt.time(int(value[0:2]), int(value[2:4]), int(value[4:6]))
    except ValueError:
        raise FieldFormatError("local time out of range") from None


def format_mmdd(value: dt.date) -> str:
    """A date as ``MMDD`` (fields 13, 15)."""
    return f"{value.month:02d}{value.day:02d}"


@dataclass(frozen=True, slots=True)
class Track2:
    """The parts of track 2 that may be kept (the PAN only until it is tokenized)."""

    pan: str
    expiry: str | None
    service_code: str | None


def parse_track2(value: str) -> Track2:
    """Field 35: split track 2; the discretionary data is discarded here."""
    body = value.strip(";?")
    separator = next((i for i, char in enumerate(body) if char in "=D"), -1)
    if separator < 0:
        raise FieldFormatError("track 2 has no field separator ('=' or 'D')")
    pan = body[:separator]
    if not (pan.isdigit() and 12 <= len(pan) <= 19):
        raise FieldFormatError("track 2 PAN must be 12-19 digits")
    rest = body[separator + 1 :]
    expiry = rest[0:4] if len(rest) >= 4 else None
    service_code = rest[4:7] if len(rest) >= 7 else None
    if expiry is not None and not expiry.isdigit():
        raise FieldFormatError("track 2 expiry must be YYMM digits", separator + 1)
    if service_code is not None and not service_code.isdigit():
        raise FieldFormatError("track 2 service code must be digits", separator + 5)
    return Track2(pan, expiry, service_code)


_AMOUNT_BLOCK = 20


def parse_additional_amounts(value: str) -> tuple[AdditionalAmount, ...]:
    """Field 54: every 20-character amount block."""
    if len(value) % _AMOUNT_BLOCK:
        raise FieldFormatError(
            f"additional amounts are 20-character blocks; got {len(value)} characters",
            len(value) - len(value) % _AMOUNT_BLOCK,
        )
    amounts = []
    for start in range(0, len(value), _AMOUNT_BLOCK):
        block = value[start : start + _AMOUNT_BLOCK]
        try:
            ccy = currency(block[4:7])
        except UnknownCurrencyError:
            raise FieldFormatError("unknown currency code", start + 4) from None
        sign = block[7]
        if sign not in "CD":
            raise FieldFormatError("amount sign must be C or D", start + 7)
        units = _digits(block[8:20], "amount", start + 8)
        money = Money.from_minor_units(-units if sign == "D" else units, ccy)
        if sign == "D" and units == 0:
            money = Money(money.amount.copy_negate(), ccy)  # keep "D" for a debit zero
        amounts.append(AdditionalAmount(block[0:2], block[2:4], money))
    return tuple(amounts)


def format_additional_amounts(amounts: tuple[AdditionalAmount, ...]) -> str:
    """The field 54 text for additional amounts."""
    parts = []
    for item in amounts:
        money = item.amount
        sign = "D" if money.amount.is_signed() else "C"
        parts.append(
            f"{item.account_type:>2.2}{item.amount_type:>2.2}{money.currency.numeric}"
            f"{sign}{abs(money.minor_units()):012d}"
        )
    return "".join(parts)


_NO_TIME = "0000000000"


def parse_original_data(value: str, now: dt.datetime) -> OriginalTransaction:
    """Field 90: what a reversal refers to."""
    if len(value) != 42:
        raise FieldFormatError("original data elements must be 42 digits")
    _digits(value, "original data elements")
    transmitted = value[10:20]
    try:
        at = None if transmitted == _NO_TIME else parse_transmission_time(transmitted, now)
    except FieldFormatError as exc:
        raise FieldFormatError(f"original {exc.reason}", 10 + exc.offset) from None
    return OriginalTransaction(
        message_type=value[0:4],
        instruction_id=value[4:10],
        transmitted_at=at,
        acquirer_id=value[20:31],
        forwarder_id=value[31:42],
    )


def format_original_data(original: OriginalTransaction) -> str:
    """The field 90 digits for an original transaction (zeros where a part is unknown)."""
    at = original.transmitted_at
    return (
        f"{original.message_type or '0000':0>4}"
        f"{original.instruction_id or '':0>6}"
        f"{format_transmission_time(at) if at is not None else _NO_TIME}"
        f"{original.acquirer_id or '':0>11}"
        f"{original.forwarder_id or '':0>11}"
    )
