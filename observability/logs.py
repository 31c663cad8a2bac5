"""Structured, masked log lines: JSON with the trace id, the tenant and the message ids, and a
filter that keeps card data out of every line.

**Masking** (:func:`mask_sensitive`, :class:`MaskingFilter`). PCI DSS forbids storing
sensitive authentication data (track data, PIN blocks) at all, and the card number (PAN)
unmasked; a log line is storage. The filter runs on the handler, so it sees every record
that handler writes, whichever logger made it (the hub's, pika's, uvicorn's): the formatted
message, the exception traceback, the stack, and any string passed in ``extra``. It replaces:

- **track 1** (ISO/IEC 7813 format B: ``%B<PAN>^<NAME>^<YYMM><service code>...?``): the
  PAN masked, the name and the rest starred;
- **track 2** (ISO/IEC 7813 / ISO 8583 field 35: ``;<PAN>=<YYMM>...?``, and the ``D``
  separator of its packed form ``<PAN>D<YYMM>...``): the PAN masked, the rest starred;
- **PIN blocks** (ISO 9564, ISO 8583 field 52: 8 or 16 bytes, written as hex or as a Python
  bytes literal) after a name that says what they are (``pin_block``, ``PIN data``,
  ``field 52``, ``DE52``, ``"52":``): starred;
- **card numbers**: every Luhn-valid run of 13 to 19 digits
  (:func:`canonical_model.pan.luhn_valid`), also written in groups joined by spaces or
  dashes (``4111 1111 1111 1111``), and also
  inside a longer run of digits (the LLVAR field 2 of a raw ISO 8583 message is its length
  then the PAN, in one run with the next fields): a run that is itself a card number shows
  its first six and last four digits (``411111******1111``); otherwise every digit of every
  13-19 digit Luhn-valid stretch in it is starred. A long run of digits is therefore often
  starred in part (one 13-digit stretch in ten passes the Luhn check by chance): in a log
  line, that is the safe side.

**Format** (:class:`JsonFormatter`): one JSON object per line, with ``time`` (UTC, ISO 8601,
milliseconds), ``level``, ``logger``, ``message``, ``trace_id`` / ``span_id`` of the current
OpenTelemetry span (when one is recording), the bound context (:func:`bind_message`:
``tenant``, ``message_id``, ``transaction_id``, ``end_to_end_id``, ``stan``, ``terminal_id``,
``uetr``; or anything given to :func:`bind`), ``extra`` fields, and ``exception`` / ``stack``.

:func:`configure_logging` installs one handler on the root logger with the filter and the
format of a :class:`LoggingConfig` (``[logging]`` in ``hub.toml``).

>>> mask_sensitive("pan 4111 1111 1111 1111, track ;4111111111111111=25121011234567890?")
'pan **** **** **** 1111, track ;411111******1111=*****************?'
>>> mask_sensitive("%B4111111111111111^DOE/JOHN^2512101?")
'%B411111******1111^********^*******?'
>>> mask_sensitive("pin_block=0412AC89ABCDEF67 stan 000042")
'pin_block=**************** stan 000042'
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final, Literal, TextIO

from opentelemetry import trace

from canonical_model.messages import CanonicalMessage
from canonical_model.pan import luhn_valid, mask_pan

__all__ = [
    "JsonFormatter",
    "LOG_FORMATS",
    "LoggingConfig",
    "MaskingFilter",
    "bind",
    "bind_message",
    "bound_fields",
    "configure_logging",
    "install_masking",
    "mask_sensitive",
    "may_hold_card_data",
]

LOG_FORMATS: Final = ("text", "json")
LogFormat = Literal["text", "json"]
TEXT_FORMAT: Final = "isobridge: %(message)s"
"""The readable default (what the demo and the CLI always printed)."""

# -- masking ---------------------------------------------------------------------------------

_TRACK1: Final = re.compile(r"%?B(\d{12,19})\^([^^\n]{1,26})\^([^?\n]*)(\??)")
_TRACK2: Final = re.compile(r"(?<![0-9A-Za-z])(;?)(\d{12,19})([=D])([0-9A-Fa-f=]{4,})(\??)")
_PIN_NAME: Final = (
    r"(?:pin[ _-]?(?:block|data)|pinblock|field[ _#-]?52|de[ _-]?52|bit[ _-]?52|f52"
    r"|['\"]52['\"]|(?<![\w.])52(?![\w.]))"
)
_HEX_PIN: Final = r"[0-9A-Fa-f]{32}(?![0-9A-Fa-f])|[0-9A-Fa-f]{16}(?![0-9A-Fa-f])"
_BYTES_PIN: Final = r"b(?P<q>['\"])(?:\\x[0-9A-Fa-f]{2}|\\.|[^'\"\\]){8,16}(?P=q)"
_PIN_BLOCK: Final = re.compile(
    rf"(?i)({_PIN_NAME}[^\w\n]{{0,8}}?)(?:(b?['\"]?)({_HEX_PIN})|({_BYTES_PIN}))"
)
# Digits, possibly in groups joined by one space or dash: "4111 1111 1111 1111".
_DIGITS: Final = re.compile(r"\d+(?:[ -]\d+)*")
# Quick tests. Whatever the rules above change holds a 13 character stretch of digits,
# spaces, dashes, "=" and "D" starting with a digit (a card number in groups, a track 2), a
# "^" (track 1), a bytes literal, or a PIN block's name and 16 hex digits.
_MAYBE_CARD: Final = re.compile(r"\d(?:[ -]?\d){12}")
_STRETCH: Final = re.compile(r"[0-9][0-9 =D-]{12}")
_MAYBE_TRACK: Final = re.compile(r"\^|\d{12}[=D]|b['\"]")
_HEX16: Final = re.compile(r"[0-9A-Fa-f]{16}")


def _mask_track1(match: re.Match[str]) -> str:
    start = match.group()[: match.start(1) - match.start()]
    name, rest = match.group(2), match.group(3)
    return f"{start}{mask_pan(match.group(1))}^{'*' * len(name)}^{'*' * len(rest)}{match.group(4)}"


def _mask_track2(match: re.Match[str]) -> str:
    sentinel, pan, separator, rest, end = match.groups()
    return f"{sentinel}{mask_pan(pan)}{separator}{'*' * len(rest)}{end}"


def _mask_pin_block(match: re.Match[str]) -> str:
    name, quote, hex_value, bytes_value = (
        match.group(1),
        match.group(2),
        match.group(3),
        match.group(4),
    )
    if hex_value is not None:
        return f"{name}{quote or ''}{'*' * len(hex_value)}"
    return f"{name}b'********'" if bytes_value else name


def _card_stretches(digits: str) -> list[tuple[int, int]]:
    """The (start, end) of every 13-19 digit stretch of ``digits`` that passes the Luhn check."""
    found = []
    for start in range(len(digits) - 12):
        for end in range(start + 13, min(len(digits), start + 19) + 1):
            if luhn_valid(digits[start:end]):
                found.append((start, end))
    return found


def _mask_digits(match: re.Match[str]) -> str:
    text = match.group()
    digits = text.replace(" ", "").replace("-", "")
    if len(digits) < 13:
        return text
    if len(digits) == len(text) and len(digits) <= 19 and luhn_valid(digits):
        return mask_pan(digits)
    hidden = [False] * len(digits)
    for start, end in _card_stretches(digits):
        hidden[start:end] = [True] * (end - start)
    if not any(hidden):
        return text
    if all(hidden):  # a card number in groups: its last four digits may show
        hidden[-4:] = [False] * min(4, len(hidden))
    out = []
    index = 0
    for char in text:
        if char in " -":
            out.append(char)
        else:
            out.append("*" if hidden[index] else char)
            index += 1
    return "".join(out)


def may_hold_card_data(text: str) -> bool:
    """Whether :func:`mask_sensitive` could change ``text`` (a quick test: when False, it
    would not)."""
    if not text.isascii():  # digits of other scripts: the full patterns
        return (
            _MAYBE_CARD.search(text) is not None
            or _MAYBE_TRACK.search(text) is not None
            or (_HEX16.search(text) is not None and _PIN_BLOCK.search(text) is not None)
        )
    return (
        "^" in text
        or "b'" in text
        or 'b"' in text
        or _STRETCH.search(text) is not None
        or (
            ("52" in text or "pin" in text.lower())
            and _HEX16.search(text) is not None
            and _PIN_BLOCK.search(text) is not None
        )
    )


def mask_sensitive(text: str) -> str:
    """``text`` with track data, PIN blocks and card numbers masked (see the module
    docstring). Text that cannot hold any (:func:`may_hold_card_data`) is returned as it is,
    quickly."""
    if not may_hold_card_data(text):
        return text
    if _MAYBE_TRACK.search(text) is not None or _HEX16.search(text) is not None:
        text = _TRACK1.sub(_mask_track1, text)
        text = _TRACK2.sub(_mask_track2, text)
        text = _PIN_BLOCK.sub(_mask_pin_block, text)
    if _MAYBE_CARD.search(text) is None:
        return text
    return _DIGITS.sub(_mask_digits, text)


# LogRecord attributes that are not ``extra`` fields.
_STANDARD: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class MaskingFilter(logging.Filter):
    """Masks (:func:`mask_sensitive`) a record's message, exception and stack text and its
    string ``extra`` fields; drops nothing. Put it on handlers: a filter on a logger does not
    see the records of its children."""

    _traceback: Final = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception as exc:  # a bad format string must not lose the record
            message = f"{record.msg!r} (unformattable: {exc!r})"
        record.msg, record.args = mask_sensitive(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._traceback.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_sensitive(record.exc_text)
        # The traceback is text now; a formatter must not render the raw exception again.
        record.exc_info = None
        if record.stack_info:
            record.stack_info = mask_sensitive(record.stack_info)
        for key, value in record.__dict__.items():
            if key not in _STANDARD and isinstance(value, str):
                record.__dict__[key] = mask_sensitive(value)
        return True


# -- context ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Bound:
    message: CanonicalMessage | None
    fields: Mapping[str, str]


_EMPTY: Final = _Bound(None, {})
_bound: contextvars.ContextVar[_Bound] = contextvars.ContextVar("isobridge_log", default=_EMPTY)


def bind_message(message: CanonicalMessage) -> contextvars.Token[_Bound]:
    """Log lines of this context (this asyncio task, this thread) carry ``message``'s tenant
    and ids from now on. Cheap: the ids are read only when a line is written."""
    return _bound.set(_Bound(message, _bound.get().fields))


@contextmanager
def bind(**fields: str) -> Iterator[None]:
    """Log lines written inside the block carry ``fields`` (say ``tenant="acme"``)."""
    current = _bound.get()
    token = _bound.set(_Bound(current.message, {**current.fields, **fields}))
    try:
        yield
    finally:
        _bound.reset(token)


def bound_fields() -> dict[str, str]:
    """The fields a log line written here would carry (tenant, message ids, bound ones)."""
    current = _bound.get()
    fields: dict[str, str] = {}
    message = current.message
    if message is not None:
        ids = message.ids
        fields["tenant"] = message.tenant
        fields["message_id"] = ids.message_id
        named = (
            ("transaction_id", ids.transaction_id),
            ("end_to_end_id", ids.end_to_end_id),
            ("stan", ids.instruction_id),
            ("uetr", ids.uetr),
            ("terminal_id", message.acceptor.terminal_id if message.acceptor else None),
        )
        fields.update((name, value) for name, value in named if value)
    fields.update(current.fields)
    return fields


# -- format ----------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring); keys in a fixed order."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            line["trace_id"] = f"{context.trace_id:032x}"
            line["span_id"] = f"{context.span_id:016x}"
        line.update((key, mask_sensitive(value)) for key, value in bound_fields().items())
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in line:
                line[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


# -- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """``[logging]``: ``format`` (``text``, readable, the default; or ``json``) and ``level``
    (a :mod:`logging` level name)."""

    format: LogFormat = "text"
    level: str = "WARNING"

    def __post_init__(self) -> None:
        if self.format not in LOG_FORMATS:
            raise ValueError(
                f"unknown log format {self.format!r} (known: {', '.join(LOG_FORMATS)})"
            )
        if not isinstance(logging.getLevelName(self.level.upper()), int):
            raise ValueError(
                f"unknown log level {self.level!r} (known: debug, info, warning, error, critical)"
            )


class _Handler(logging.StreamHandler[TextIO]):
    """The handler :func:`configure_logging` installs (found again to be replaced)."""


def configure_logging(
    config: LoggingConfig, stream: TextIO | None = None, *, force: bool = False
) -> logging.Handler | None:
    """Log every record at ``config.level`` and above to ``stream`` (stderr), masked, in
    ``config.format``; the handler installed (None if none was).

    A handler installed earlier by this function is replaced. Handlers of others on the root
    logger (a test runner's) stay, and then, unless ``force``, no handler is added and the
    level is left alone: they get the masking filter instead. Handlers of other loggers get
    the filter too.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
        old.close()
    handler = _Handler(stream or sys.stderr)
    handler.addFilter(MaskingFilter())
    handler.setFormatter(
        JsonFormatter() if config.format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    added = force or not root.handlers
    if added:
        root.addHandler(handler)
        root.setLevel(config.level.upper())
    install_masking()
    return handler if added else None


def install_masking() -> None:
    """Put one :class:`MaskingFilter` on every handler of every logger that has none yet."""
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, MaskingFilter) for f in handler.filters):
                handler.addFilter(MaskingFilter())
