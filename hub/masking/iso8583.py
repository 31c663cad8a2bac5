"""Masking ISO 8583:1987 captures: a stream of framed messages in, the same stream masked out.

A capture is what an edge sees on the wire: messages behind a length header (any framing of
:mod:`adapters.framing`: ``len2-binary``, ``len4-ascii``, ``len2-tpdu``...) or, for files
kept by hand, one message per line in hex (``hex-lines``). Each message is decoded with the
variant's pyiso8583 spec (:mod:`adapters.iso8583.specs`), its fields masked, encoded again
with the same spec and framed again with the same framing and header (the TPDU is kept), so
the output decodes wherever the input did.

Fields (:data:`DEFAULT_RULES`; a field may be given another rule, ``keep`` or ``drop``)::

    2 PAN                        pan (the BIN kept, Luhn valid)
    34 extended PAN              account
    35 track 2                   the PAN as field 2, expiry and service code kept,
                                 discretionary data (CVV...) masked as digits
    36 track 3                   id (every digit)
    45 track 1                   format B: the PAN as field 2, the name as a name
                                 (SURNAME/GIVEN), expiry and service code kept, the rest
                                 masked
    52 PIN data                  binary (keyed bytes)
    55 ICC data                  BER-TLV rebuilt: 5A (PAN) and 57 (track 2 equivalent) as
                                 fields 2 and 35, 5F20 / 9F0B (cardholder name) as a name,
                                 56, 9F1F, 9F20, 9F6B (track data) as binary; templates (70,
                                 77...) are opened; other tags kept
    98 payee                     name
    102, 103 account ids         account (IBAN, card number or id)
    104 transaction description  text

Every other field of the 1987 directory is kept (amounts, dates, codes, terminal and
merchant ids, institution ids, the acceptor's name and location) except the additional and
private data fields (46-48, 56-63, 105-127), whose content only the network knows: a
message that has one fails unless that field is given a rule. A kept field that holds a
card number or an IBAN fails too, so nothing sensitive goes through unseen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import BinaryIO, Final

import iso8583

from adapters.framing import (
    FRAMERS,
    TPDU_SIZE,
    FrameDecoder,
    Framer,
    FramingError,
    get_framer,
)
from adapters.iso8583.codec import compile_codec
from adapters.iso8583.emv import TlvError, build_tlv_hex, parse_tlv
from adapters.iso8583.specs import SPECS
from canonical_model.messages import EmvTag
from hub.masking.values import (
    RULES,
    Masker,
    MaskingError,
    RecordMaskingError,
    sensitive_content,
)

__all__ = [
    "DEFAULT_RULES",
    "FIELD_RULES",
    "FRAMINGS",
    "HEX_LINES",
    "Iso8583Masker",
    "UNKNOWN_FIELDS",
]

HEX_LINES: Final = "hex-lines"
FRAMINGS: Final = (*FRAMERS, HEX_LINES)
"""The framings a capture may use: those of :mod:`adapters.framing`, and hex lines."""

DEFAULT_RULES: Final[Mapping[str, str]] = {
    "2": "pan",
    "34": "account",
    "35": "track2",
    "36": "id",
    "45": "track1",
    "52": "binary",
    "55": "emv",
    "98": "name",
    "102": "account",
    "103": "account",
    "104": "text",
}
"""The rule of each field that is masked by default (``track1``, ``track2`` and ``emv``
are the structured rules of this module)."""

UNKNOWN_FIELDS: Final = frozenset(str(n) for n in (46, 47, 48, *range(56, 64), *range(105, 128)))
"""Fields whose content only the network defines: a rule must be given for them."""

FIELD_RULES: Final = ("keep", "drop", *RULES, "track1", "track2", "emv")
"""What a field can be given: keep, drop, a rule of :mod:`hub.masking.values`, or a
structured rule of this module."""

_CHUNK: Final = 1 << 16
_BITMAPS: Final = frozenset({"p", "1"})
_STRUCTURED: Final = frozenset({"track1", "track2", "emv"})
_EMV_PAN: Final = "5A"
_EMV_TRACK2: Final = "57"
_EMV_NAMES: Final = frozenset({"5F20", "9F0B"})
_EMV_TRACK_DATA: Final = frozenset({"56", "9F1F", "9F20", "9F6B"})


class Iso8583Masker:
    """Masks the messages of one capture (one variant, one framing)."""

    def __init__(
        self,
        masker: Masker,
        *,
        variant: str = "ascii",
        framing: str = "len2-binary",
        rules: Mapping[str, str] | None = None,
    ) -> None:
        if variant not in SPECS:
            raise ValueError(f"unknown ISO 8583 variant {variant!r} (known: {', '.join(SPECS)})")
        if framing not in FRAMINGS:
            raise ValueError(f"unknown framing {framing!r} (known: {', '.join(FRAMINGS)})")
        self._masker = masker
        self._spec = SPECS[variant]
        self._codec = compile_codec(self._spec)
        self._framing = framing
        self._framer: Framer | None = None if framing == HEX_LINES else _largest_framer(framing)
        for field, rule in (rules or {}).items():
            if not (field.isdigit() and 2 <= int(field) <= 128):
                raise ValueError(f"ISO 8583 field {field!r}: fields are 2 to 128")
            if rule not in FIELD_RULES:
                known = ", ".join(FIELD_RULES)
                raise ValueError(f"ISO 8583 field {field}: unknown rule {rule!r} (rules: {known})")
        self._rules = {**DEFAULT_RULES, **(rules or {})}
        self.messages = 0

    # -- one message --------------------------------------------------------------------

    def mask_message(self, payload: bytes, number: int = 1, offset: int = 0) -> bytes:
        """One unframed message, masked; :class:`RecordMaskingError` names the message,
        the field and the byte offset (``offset`` is where the message starts in the file)."""
        doc = self._decode(payload, number, offset)
        masked: dict[str, str] = {}
        for field, value in doc.items():
            if field in _BITMAPS:
                continue
            rule = self._rules.get(field)
            if rule is None and field in UNKNOWN_FIELDS:
                raise RecordMaskingError(
                    "additional or private data that no rule covers: give the field a rule,"
                    " keep or drop (--field " + field + "=RULE)",
                    record=number,
                    field=field,
                    unit="message",
                )
            try:
                result = self._mask_field(field, value, rule)
            except MaskingError as exc:
                raise RecordMaskingError(
                    str(exc), record=number, field=field, unit="message"
                ) from None
            if result is not None:
                masked[field] = result
        return self._encode(masked, number)

    def _mask_field(self, field: str, value: str, rule: str | None) -> str | None:
        if rule == "drop":
            return None
        if rule is None or rule == "keep":
            if rule is None and field != "t":
                found = sensitive_content(value)
                if found is not None:
                    raise MaskingError(
                        f"holds {found} but is kept: give it a rule (--field {field}=RULE)"
                    )
            return value
        masker = self._masker
        if rule == "track2":
            return self._track2(value)
        if rule == "track1":
            return self._track1(value)
        if rule == "emv":
            return self._emv(value)
        return masker.apply(rule, value)

    def _track2(self, value: str) -> str:
        for separator in ("=", "D"):
            pan, found, rest = value.partition(separator)
            if found:
                break
        else:
            raise MaskingError("track 2 has no separator (= or D) after the PAN")
        kept, discretionary = rest[:7], rest[7:]
        masked_rest = self._masker.text(discretionary) if discretionary else ""
        return self._masker.pan(pan) + separator + kept + masked_rest

    def _track1(self, value: str) -> str:
        parts = value.split("^")
        if len(parts) < 3 or not parts[0][:1].isalpha():
            raise MaskingError("track 1 is not format B (B PAN ^ NAME ^ data)")
        code, pan = parts[0][0], parts[0][1:]
        name = parts[1]
        slash = "/" in name
        if name.strip():
            fake = self._masker.name(name.replace("/", " ").strip()).upper()
            first, _, last = fake.partition(" ")
            fake_name = f"{last}/{first}" if slash else fake
            name = fake_name[:26]
        data = "^".join(parts[2:])
        kept, discretionary = data[:7], data[7:]
        masked = self._masker.text(discretionary) if discretionary else ""
        return f"{code}{self._masker.pan(pan)}^{name}^{kept}{masked}"

    def _emv(self, value: str) -> str:
        try:
            tags = parse_tlv(bytes.fromhex(value))
        except (TlvError, ValueError) as exc:
            raise MaskingError(f"ICC data is not BER-TLV: {exc}") from None
        return build_tlv_hex(self._emv_tags(tags))

    def _emv_tags(self, tags: tuple[EmvTag, ...]) -> list[EmvTag]:
        out = []
        for tag in tags:
            value = tag.value
            if int(tag.tag[:2], 16) & 0x20:  # constructed: a template of more objects
                try:
                    inner = parse_tlv(bytes.fromhex(value))
                except TlvError as exc:
                    raise MaskingError(f"EMV template {tag.tag}: {exc}") from None
                value = build_tlv_hex(self._emv_tags(inner))
            elif tag.tag == _EMV_PAN:
                digits = value.rstrip("F")
                masked = self._masker.pan(digits)
                value = masked + "F" * (len(value) - len(masked))
            elif tag.tag == _EMV_TRACK2:
                digits = value.rstrip("F")
                masked = self._track2(digits)
                value = masked + "F" * (len(value) - len(masked))
            elif tag.tag in _EMV_NAMES:
                text = bytes.fromhex(value).decode("ascii", "replace")
                if text.strip():
                    name = self._masker.name(text.strip().replace("/", " ")).upper()
                    value = name[: len(text)].ljust(len(text)).encode("ascii").hex().upper()
            elif tag.tag in _EMV_TRACK_DATA:
                value = self._masker.binary(value)
            out.append(EmvTag(tag.tag, value))
        return out

    # -- codec --------------------------------------------------------------------------

    def _decode(self, payload: bytes, number: int, offset: int) -> dict[str, str]:
        doc = None if self._codec is None else self._codec.decode(payload)
        if doc is not None:
            return doc
        try:
            decoded, _ = iso8583.decode(payload, self._spec)
        except iso8583.DecodeError as exc:
            field, position, reason = exc.field, exc.pos, exc.msg
        except KeyError:
            field, position, reason = "65", 0, "tertiary bitmap: not ISO 8583:1987"
        else:
            return decoded
        raise RecordMaskingError(
            f"cannot decode: {reason}",
            record=number,
            field=field,
            offset=offset + position,
            unit="message",
        )

    def _encode(self, doc: dict[str, str], number: int) -> bytes:
        raw = None if self._codec is None else self._codec.encode(doc)
        if raw is not None:
            return raw
        try:
            encoded, _ = iso8583.encode(dict(doc), self._spec)
        except iso8583.EncodeError as exc:
            field, reason = exc.field, exc.msg
        else:
            return bytes(encoded)
        raise RecordMaskingError(
            f"masked message does not encode: {reason}", record=number, field=field, unit="message"
        )

    # -- a capture ----------------------------------------------------------------------

    def mask_stream(
        self, source: BinaryIO, sink: BinaryIO, progress: Callable[[int], None] | None = None
    ) -> int:
        """Every message of ``source`` masked into ``sink``; the number of messages.

        ``progress`` gets the bytes read so far now and then."""
        if self._framer is None:
            return self._mask_hex_lines(source, sink, progress)
        framer = self._framer
        decoder = FrameDecoder(framer)
        position = 0
        count = 0
        while chunk := source.read(_CHUNK):
            try:
                frames = decoder.feed(chunk)
            except FramingError as exc:
                raise RecordMaskingError(
                    f"framing {framer.name}: {exc.reason}",
                    record=count + len(exc.frames) + 1,
                    offset=exc.offset,
                    unit="message",
                ) from None
            for frame in frames:
                count += 1
                overhead = len(framer.frame(b"", frame.header))
                masked = self.mask_message(frame.payload, count, position + overhead)
                sink.write(framer.frame(masked, frame.header))
                position += overhead + len(frame.payload)
            if progress is not None:
                progress(position + decoder.pending)
        if decoder.pending:
            raise RecordMaskingError(
                f"the file ends inside a frame ({decoder.pending} bytes left)",
                record=count + 1,
                offset=position,
                unit="message",
            )
        self.messages = count
        return count

    def _mask_hex_lines(
        self, source: BinaryIO, sink: BinaryIO, progress: Callable[[int], None] | None
    ) -> int:
        count = 0
        position = 0
        for line in _lines(source):
            position += len(line)
            text = line.strip()
            if not text:
                sink.write(line)
                continue
            count += 1
            try:
                payload = bytes.fromhex(text.decode("ascii"))
            except (UnicodeDecodeError, ValueError):
                raise RecordMaskingError(
                    "line is not hexadecimal", record=count, unit="message"
                ) from None
            masked = self.mask_message(payload, count)
            sink.write(masked.hex().upper().encode("ascii") + b"\n")
            if progress is not None and count % 1024 == 0:
                progress(position)
        self.messages = count
        return count


def _largest_framer(name: str) -> Framer:
    """The framer ``name`` taking the largest message its length prefix can express."""
    for limit in (0xFFFF, 0xFFFF - TPDU_SIZE, 9999):
        try:
            return get_framer(name, max_payload=limit)
        except ValueError:
            continue
    return get_framer(name)


def _lines(source: BinaryIO) -> Iterator[bytes]:
    yield from source
