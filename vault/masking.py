"""Masking card numbers for logs and displays, and a logging filter that does it for you.

PCI DSS allows a masked card number to show at most the first six (BIN) and the last four
digits. This module gives the display forms and scrubs free text:

- :func:`mask_first6_last4` (``411111******1111``) and :func:`mask_fully` (``************1111``
  keeps only the last four; ``keep_last=0`` hides everything);
- :func:`mask_text`: every Luhn-valid run of 13-19 digits in a text, also when written in
  groups separated by spaces or dashes (``4111 1111 1111 1111``), replaced by its masked
  form; other digits are left alone;
- :class:`PanMaskingFilter`: a :class:`logging.Filter` that runs :func:`mask_text` over the
  formatted message, the exception text and the stack text of every record it sees. Put it
  on the handlers (``install_pan_masking()`` does that for the root logger's handlers), so
  records from every logger are masked before they are written.

>>> mask_text("card 4111 1111 1111 1111 declined, ref 12345678")
'card 411111******1111 declined, ref 12345678'
>>> mask_fully("4111111111111111")
'************1111'
"""

from __future__ import annotations

import logging
import re
from typing import Final

from canonical_model.pan import luhn_valid

__all__ = [
    "PanMaskingFilter",
    "install_pan_masking",
    "mask_first6_last4",
    "mask_fully",
    "mask_text",
]

_PLAIN_RUN: Final = re.compile(r"(?<!\d)\d{13,19}(?!\d)")
# Digit groups joined by single spaces or dashes: "4111 1111 1111 1111", "3782-822463-10005".
_GROUPED_RUN: Final = re.compile(r"(?<!\d)\d+(?:[ -]\d+)+(?!\d)")
_SEPARATOR: Final = re.compile(r"([ -])")


def mask_first6_last4(pan: str) -> str:
    """The first six and last four digits shown, the rest as ``*`` (all ``*`` if too short)."""
    if len(pan) <= 10:
        return "*" * len(pan)
    return pan[:6] + "*" * (len(pan) - 10) + pan[-4:]


def mask_fully(pan: str, keep_last: int = 4) -> str:
    """Every digit as ``*`` but the last ``keep_last`` (0 to 4)."""
    if not 0 <= keep_last <= 4:
        raise ValueError("keep_last must be 0 to 4 (PCI DSS shows at most the last four)")
    if len(pan) <= keep_last:
        return "*" * len(pan)
    return "*" * (len(pan) - keep_last) + (pan[-keep_last:] if keep_last else "")


def _mask_plain(match: re.Match[str]) -> str:
    digits = match.group()
    return mask_first6_last4(digits) if luhn_valid(digits) else digits


def _mask_grouped(match: re.Match[str]) -> str:
    parts = _SEPARATOR.split(match.group())
    groups, separators = parts[0::2], [*parts[1::2], ""]
    out: list[str] = []
    start = 0
    while start < len(groups):
        # The longest run of at least two groups, from here, that spells a card number.
        for end in range(len(groups), start + 1, -1):
            digits = "".join(groups[start:end])
            if 13 <= len(digits) <= 19 and luhn_valid(digits):
                out.append(mask_first6_last4(digits) + separators[end - 1])
                start = end
                break
        else:
            out.append(groups[start] + separators[start])
            start += 1
    return "".join(out)


def mask_text(text: str) -> str:
    """``text`` with every card number in it masked (first six and last four kept)."""
    return _GROUPED_RUN.sub(_mask_grouped, _PLAIN_RUN.sub(_mask_plain, text))


class PanMaskingFilter(logging.Filter):
    """Masks card numbers in a record's message, exception and stack text; drops nothing."""

    _formatter: Final = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        return True


def install_pan_masking(logger: logging.Logger | None = None) -> PanMaskingFilter:
    """Put one :class:`PanMaskingFilter` on every handler of ``logger`` (root by default)."""
    target = logger or logging.getLogger()
    masking = PanMaskingFilter()
    for handler in target.handlers:
        if not any(isinstance(f, PanMaskingFilter) for f in handler.filters):
            handler.addFilter(masking)
    return masking
