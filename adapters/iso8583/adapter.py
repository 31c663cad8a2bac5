"""ISO 8583:1987 <-> canonical, on pyiso8583.

Standard: ISO 8583-1:1987 (financial transaction card originated messages), as spoken by
most acquirer / switch links. Framing: none here; the edge applies a length header or TPDU
from :mod:`adapters.framing`. Specs (ASCII with hex or binary bitmap, EBCDIC cp037 / cp500 /
cp1047) are plain data in :mod:`adapters.iso8583.specs`.

Field mapping (``design/CANONICAL.md``):

=====  ====================================  =============================================
field  meaning                               canonical
=====  ====================================  =============================================
MTI    class / function / origin             ``kind``, ``function``, ``repeat``
2      PAN                                   ``card.token`` (tokenized at decode)
3      processing code                       ``processing`` (31 on 02xx: balance enquiry)
4, 49  amount (minor units), currency        ``amount`` (Decimal, ISO 4217 exponent)
7      transmission date and time (GMT)      ``transmitted_at`` (year inferred)
11     STAN                                  ``ids.instruction_id``
12/13  local time / date                     ``local_time`` / ``local_date``
14/23  expiry (YYMM) / card sequence         ``card.expiry`` / ``card.sequence_number``
15     settlement date                       ``settlement_date``
18     merchant category code                ``acceptor.category_code``
22/25  POS entry mode / condition code       ``acceptor.pos_entry_mode`` / ``pos_condition_code``
32/33  acquiring / forwarding institution    ``agents.acquirer`` / ``agents.forwarder``
35     track 2                               PAN tokenized, expiry and service code kept,
                                             discretionary data dropped
40     service (restriction) code            ``card.service_code`` (also from track 2;
                                             encoded here, as track 2 cannot be rebuilt)
37     retrieval reference number            ``ids.end_to_end_id``
38/39  approval code / response code         ``approval_code`` / ``status``
41/42  terminal id / merchant id             ``acceptor.terminal_id`` / ``merchant_id``
43     acceptor name and location            ``acceptor.name_location``
54     additional amounts                    ``additional_amounts``
55     EMV chip data (BER-TLV)               ``card.emv`` (PAN-bearing tags dropped)
70     network management information code   ``network``
90     original data elements                ``original``
100    receiving institution                 ``agents.receiver``
102/3  account identification 1 / 2          ``debtor_account`` / ``creditor_account``
=====  ====================================  =============================================

PIN block (52), track 1 (45), track 3 (36) and extended PAN (34) never reach the canonical
message: the adapter records in ``card.dropped`` that they arrived. Any other field travels
as an :class:`~canonical_model.messages.Extension` ``iso8583:<n>``, unless its value looks
like a card number, in which case it is dropped too. The correlation key is MTI class +
field 41 + field 11 (``"02:TERM0001:000123"``).

Encoding needs the clear PAN (the issuer does), so this adapter declares
``needs_clear_pan``; ``encode(decode(x))`` gives back ``x`` when ``x`` held nothing that
is dropped, and otherwise a message that decodes to the same canonical message.

Bytes are read and written by :mod:`adapters.iso8583.codec`, pyiso8583 compiled for the
variant's spec (same fields, same bytes, several times faster); whatever that codec leaves
to pyiso8583 (bad input above all) goes to pyiso8583 itself, so errors are pyiso8583's.

Bad input raises :class:`~adapters.base.AdapterDecodeError` naming the field and the byte
offset; :meth:`Iso8583Adapter.reject` turns it into the response MTI with field 39 = 30
(format error), echoing the request's addressing fields, when the MTI was readable.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping
from typing import ClassVar, TypeVar

import iso8583
from iso8583.decoder import DecodedDict, EncodedDict

from adapters.base import (
    AdapterDecodeError,
    AdapterEncodeError,
    AdapterError,
    Capabilities,
    DecodeContext,
    Direction,
    EncodeContext,
    FieldView,
    RoundTrip,
    scrub,
)
from adapters.framing import FRAMERS
from adapters.iso8583.codec import CompiledCodec, compile_codec
from adapters.iso8583.emv import TlvError, build_tlv_hex, parse_tlv
from adapters.iso8583.fields import (
    FieldFormatError,
    format_additional_amounts,
    format_mmdd,
    format_original_data,
    format_transmission_time,
    infer_date,
    parse_additional_amounts,
    parse_local_time,
    parse_original_data,
    parse_track2,
    parse_transmission_time,
)
from adapters.iso8583.mti import (
    BALANCE_ENQUIRY_PROCESSING,
    UnsupportedMtiError,
    build_mti,
    correlation_class,
    parse_mti,
    response_mti,
)
from adapters.iso8583.specs import FIELDS, SPECS, VARIANTS
from canonical_model.codes import (
    ISO8583_FORMAT_ERROR,
    iso8583_response_code,
    status_from_iso8583,
)
from canonical_model.construct import fast_constructor
from canonical_model.currency import Currency, UnknownCurrencyError, currency
from canonical_model.messages import (
    Acceptor,
    Account,
    AdditionalAmount,
    Agent,
    Agents,
    CanonicalMessage,
    Card,
    EmvTag,
    Extension,
    Identifiers,
    MessageFunction,
    MessageKind,
    NetworkAction,
    NetworkManagement,
    ProcessingCode,
)
from canonical_model.money import Money
from canonical_model.pan import PanToken, contains_clear_pan, luhn_valid, mask_pan

__all__ = ["ADDRESSING_FIELDS", "Iso8583Adapter"]

NAME = "iso8583"
_T = TypeVar("_T")

_NETWORK_CODES: dict[str, NetworkAction] = {
    "001": NetworkAction.SIGN_ON,
    "002": NetworkAction.SIGN_OFF,
    "301": NetworkAction.ECHO,
    "101": NetworkAction.KEY_CHANGE,
    "161": NetworkAction.KEY_CHANGE,
    "201": NetworkAction.CUTOVER,
}
_NETWORK_DEFAULT_CODES: dict[NetworkAction, str] = {
    NetworkAction.SIGN_ON: "001",
    NetworkAction.SIGN_OFF: "002",
    NetworkAction.ECHO: "301",
    NetworkAction.KEY_CHANGE: "161",
    NetworkAction.CUTOVER: "201",
}

# Sensitive fields: dropped at decode, never stored, logged or routed.
_DROPPED_FIELDS: dict[str, str] = {
    "34": "field34",
    "36": "track3",
    "45": "track1",
    "52": "pin_block",
}
# EMV tags that carry the PAN, track data or the cardholder's name.
_DROPPED_EMV_TAGS = frozenset({"56", "57", "5A", "5F20", "9F1F", "9F20", "9F6B"})

_MAPPED_FIELDS = frozenset(
    [
        "t",
        "p",
        "1",
        "2",
        "3",
        "4",
        "7",
        "11",
        "12",
        "13",
        "14",
        "15",
        "18",
        "22",
        "23",
        "25",
        "32",
        "33",
        "35",
        "37",
        "38",
        "39",
        "40",
        "41",
        "42",
        "43",
        "49",
        "54",
        "55",
        "70",
        "90",
        "100",
        "102",
        "103",
    ]
) | frozenset(_DROPPED_FIELDS)

_MAPPED_FIELDS_BUT_70 = _MAPPED_FIELDS - {"70"}
"""Field 70 is canonical only on 08xx; elsewhere it travels as an extension."""

SYSTEM_MALFUNCTION = "96"

ADDRESSING_FIELDS = ("3", "4", "7", "11", "12", "13", "32", "37", "41", "42", "49")
"""Fields a format-error response echoes; none of them is sensitive."""

# pyiso8583 does not check that numeric (n) fields hold digits: the adapter does.
_NUMERIC_FIELDS = frozenset(str(number) for number, f in FIELDS.items() if f.type == "n")

# The same instances as calling the classes, built faster (see canonical_model.construct).
_new_message = fast_constructor(CanonicalMessage)
_new_identifiers = fast_constructor(Identifiers)
_new_processing_code = fast_constructor(ProcessingCode)
_new_card = fast_constructor(Card)
_new_acceptor = fast_constructor(Acceptor)
_new_agents = fast_constructor(Agents)
_new_agent = fast_constructor(Agent)

_FIELD_NAMES = {"h": "header", "t": "MTI", "p": "primary bitmap", "1": "secondary bitmap"}
_EXTENSION_PREFIX = f"{NAME}:"


def _field_label(field: str) -> str:
    return _FIELD_NAMES.get(field, field)


def _field_offset(encoded: EncodedDict, field: str) -> int:
    """Byte offset of ``field``'s data in the message, from pyiso8583's encoded parts."""
    offset = 0
    for key, part in encoded.items():
        if key == field:
            return offset + len(part["len"])
        offset += len(part["len"]) + len(part["data"])
    return offset


class _FieldError(Exception):
    def __init__(self, field: str, reason: str, offset: int = 0, response_code: str = "") -> None:
        self.field = field
        self.reason = reason
        self.offset = offset
        self.response_code = response_code or ISO8583_FORMAT_ERROR


def _addressing(doc: Mapping[str, str]) -> dict[str, str]:
    context = {name: doc[name] for name in ADDRESSING_FIELDS if name in doc}
    if "t" in doc:
        context["mti"] = doc["t"]
    return context


class Iso8583Adapter:
    """ISO 8583:1987 messages <-> canonical messages. See the module docstring."""

    name: ClassVar[str] = NAME
    variants: ClassVar[tuple[str, ...]] = VARIANTS

    def __init__(self, variant: str | None = None) -> None:
        chosen = VARIANTS[0] if variant is None else variant
        if chosen not in SPECS:
            raise ValueError(f"unknown {NAME} variant {chosen!r} (known: {', '.join(VARIANTS)})")
        self._variant = chosen
        self._spec = SPECS[chosen]
        self._codec = _compiled_codec(chosen)
        self._capabilities = Capabilities(
            kinds=frozenset(
                {
                    MessageKind.AUTHORIZATION,
                    MessageKind.FINANCIAL,
                    MessageKind.BALANCE_ENQUIRY,
                    MessageKind.REVERSAL,
                    MessageKind.NETWORK_MANAGEMENT,
                }
            ),
            functions=frozenset(MessageFunction),
            directions=frozenset({Direction.DECODE, Direction.ENCODE}),
            framings=tuple(FRAMERS),
            needs_clear_pan=True,
            round_trip=RoundTrip.CANONICAL,
            description=f"ISO 8583:1987 ({chosen}) on pyiso8583",
        )

    @property
    def variant(self) -> str:
        return self._variant

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    def __repr__(self) -> str:
        return f"Iso8583Adapter({self._variant!r})"

    # -- decode ---------------------------------------------------------------------------

    def decode(self, payload: bytes, ctx: DecodeContext) -> CanonicalMessage:
        """ISO 8583 bytes (unframed) to a canonical message, the PAN tokenized."""
        doc = None if self._codec is None else self._codec.decode(payload)
        if doc is None:
            doc = self._decode_with_pyiso8583(payload)
        try:
            return self._to_canonical(doc, ctx)
        except _FieldError as problem:
            # The MTI is kept even when it is the problem: "0300" is still answered "0310".
            context = _addressing({k: v for k, v in doc.items() if k != problem.field or k == "t"})
            context["response_code"] = problem.response_code
            _, encoded = iso8583.decode(payload, self._spec)
            failure = AdapterDecodeError(
                NAME,
                problem.reason,
                field=_field_label(problem.field),
                offset=_field_offset(encoded, problem.field) + problem.offset,
                context=context,
            )
        raise failure

    def _decode_with_pyiso8583(self, payload: bytes) -> DecodedDict:
        """The fields of ``payload`` by pyiso8583 itself: what names the byte at fault."""
        failure: AdapterDecodeError | None = None
        try:
            doc, _ = iso8583.decode(payload, self._spec)
        except iso8583.DecodeError as exc:
            # Built outside the except block, so the error does not chain pyiso8583's
            # exception, which holds the raw bytes and the partially decoded PAN.
            failure = AdapterDecodeError(
                NAME,
                exc.msg,
                field=_field_label(exc.field),
                offset=exc.pos,
                context=_addressing({k: v for k, v in exc.doc_dec.items() if k != exc.field}),
            )
        except KeyError:
            # Bit 65 set: pyiso8583 reads a tertiary bitmap, whose fields 129-192 a 1987
            # spec does not define.
            failure = AdapterDecodeError(
                NAME,
                "bit 65 announces a tertiary bitmap (fields 129-192), which ISO 8583:1987"
                " does not define",
                field="65",
            )
        if failure is not None:
            raise failure
        return doc

    def _to_canonical(self, doc: DecodedDict, ctx: DecodeContext) -> CanonicalMessage:
        for field, text in doc.items():
            if field in _NUMERIC_FIELDS and not (text.isdigit() and text.isascii()):
                bad = next((i for i, char in enumerate(text) if not "0" <= char <= "9"), 0)
                raise _FieldError(field, "numeric field holds a non-digit", bad)
        get = doc.get
        mti = doc["t"]
        try:
            meaning = parse_mti(mti)
        except UnsupportedMtiError as exc:
            raise _FieldError("t", str(exc)) from None
        kind = meaning.kind

        processing = None
        code = get("3")
        if code is not None:
            processing = _new_processing_code(code[0:2], code[2:4], code[4:6])
            if kind is MessageKind.FINANCIAL and code[0:2] == BALANCE_ENQUIRY_PROCESSING:
                kind = MessageKind.BALANCE_ENQUIRY

        amount = None
        units = get("4")
        if units is not None:
            amount = Money.from_minor_units(int(units), self._currency(get("49")))

        now = None
        transmitted_at = None
        value = get("7")
        if value is not None:
            now = ctx.now()
            transmitted_at = self._parse("7", parse_transmission_time, value, now)
        local_time = None
        value = get("12")
        if value is not None:
            local_time = self._parse("12", parse_local_time, value)
        local_date = settlement_date = None
        value = get("13")
        if value is not None:
            now = now or ctx.now()
            local_date = self._parse("13", _parse_mmdd, value, now)
        value = get("15")
        if value is not None:
            now = now or ctx.now()
            settlement_date = self._parse("15", _parse_mmdd, value, now)

        status = None
        value = get("39")
        if value is not None:
            status = status_from_iso8583(value, settled=kind is not MessageKind.AUTHORIZATION)

        network = None
        if kind is MessageKind.NETWORK_MANAGEMENT:
            value = get("70")
            action = (
                _NETWORK_CODES.get(value, NetworkAction.OTHER) if value else NetworkAction.OTHER
            )
            network = NetworkManagement(action, value)

        original = None
        value = get("90")
        if value is not None:
            now = now or ctx.now()
            original = self._parse("90", parse_original_data, value, now)

        additional: tuple[AdditionalAmount, ...] = ()
        value = get("54")
        if value is not None:
            additional = self._parse("54", parse_additional_amounts, value)

        mapped = _MAPPED_FIELDS if network is not None else _MAPPED_FIELDS_BUT_70
        extensions, dropped = self._extensions(doc, mapped)
        card = self._card(doc, ctx, dropped)

        acceptor = None
        if "41" in doc or "42" in doc or "43" in doc or "18" in doc or "22" in doc:
            acceptor = _new_acceptor(
                terminal_id=get("41"),
                merchant_id=get("42"),
                name_location=get("43"),
                category_code=get("18"),
                pos_entry_mode=get("22"),
                pos_condition_code=get("25"),
            )
        elif "25" in doc:
            acceptor = _new_acceptor(pos_condition_code=get("25"))

        agents = None
        if "32" in doc or "33" in doc or "100" in doc:
            agents = _new_agents(
                acquirer=_member(get("32")),
                forwarder=_member(get("33")),
                receiver=_member(get("100")),
            )

        stan = get("11")
        terminal = get("41")
        return _new_message(
            kind=kind,
            function=meaning.function,
            tenant=ctx.tenant,
            ids=_new_identifiers(
                message_id=ctx.new_message_id(),
                end_to_end_id=get("37"),
                instruction_id=stan,
                correlation_key=f"{correlation_class(mti)}:{terminal or ''}:{stan or ''}",
            ),
            repeat=meaning.repeat,
            transmitted_at=transmitted_at,
            local_time=local_time,
            local_date=local_date,
            settlement_date=settlement_date,
            processing=processing,
            amount=amount,
            additional_amounts=additional,
            card=card,
            acceptor=acceptor,
            debtor_account=self._account(get("102"), "102", ctx),
            creditor_account=self._account(get("103"), "103", ctx),
            agents=agents,
            original=original,
            status=status,
            approval_code=get("38"),
            network=network,
            extensions=extensions,
        )

    @staticmethod
    def _parse(field: str, parser: Callable[..., _T], *args: object) -> _T:
        try:
            return parser(*args)
        except FieldFormatError as exc:
            raise _FieldError(field, exc.reason, exc.offset) from None

    @staticmethod
    def _currency(code: str | None) -> Currency:
        if code is None:
            raise _FieldError("49", "currency code (field 49) is required with an amount")
        try:
            return currency(code)
        except UnknownCurrencyError as exc:
            raise _FieldError("49", str(exc)) from None

    @staticmethod
    def _tokenize(pan: str, field: str, ctx: DecodeContext) -> PanToken:
        if not luhn_valid(pan):
            raise _FieldError(field, "card number fails the Luhn check", response_code="14")
        try:
            return ctx.tokenize(pan)
        except AdapterError:
            raise
        except ValueError as exc:
            raise _FieldError(field, f"card number refused: {exc}", response_code="14") from None
        except RuntimeError as exc:
            # The message is fine but the vault cannot serve it: 96, system malfunction.
            raise _FieldError(
                field, f"card number not tokenized: {exc}", response_code=SYSTEM_MALFUNCTION
            ) from None

    def _card(self, doc: DecodedDict, ctx: DecodeContext, dropped: list[str]) -> Card | None:
        get = doc.get
        pan = get("2")
        expiry = get("14")
        service_code = get("40")
        track2 = get("35")
        if track2 is not None:
            parsed = self._parse("35", parse_track2, track2)
            if pan is not None and pan != parsed.pan:
                raise _FieldError("35", "track 2 PAN differs from field 2", response_code="14")
            pan = parsed.pan
            expiry = expiry or parsed.expiry
            if service_code is not None and service_code != parsed.service_code:
                raise _FieldError("40", "service code differs from track 2's")
            service_code = parsed.service_code
            dropped.append("track2")
        for field, label in _DROPPED_FIELDS.items():
            if field in doc:
                dropped.append(label)
        emv: tuple[EmvTag, ...] = ()
        chip = get("55")
        if chip is not None:
            try:
                tags = parse_tlv(bytes.fromhex(chip))
            except TlvError as exc:
                raise _FieldError("55", f"EMV data: {exc.reason}", exc.offset) from None
            emv = tuple(tag for tag in tags if tag.tag not in _DROPPED_EMV_TAGS)
            if len(emv) != len(tags):
                dropped.extend(f"emv:{t.tag}" for t in tags if t.tag in _DROPPED_EMV_TAGS)
        sequence = get("23")
        if (
            pan is None
            and expiry is None
            and not emv
            and sequence is None
            and service_code is None
            and not dropped
        ):
            return None
        return _new_card(
            token=None if pan is None else self._tokenize(pan, "2" if "2" in doc else "35", ctx),
            expiry=expiry,
            sequence_number=sequence,
            service_code=service_code,
            emv=emv,
            dropped=tuple(dropped),
        )

    def _account(self, value: str | None, field: str, ctx: DecodeContext) -> Account | None:
        """An account identification; a card number in it (card-funded accounts) is
        tokenized like field 2, and one inside other characters is refused: it can neither
        be tokenized on its own nor carried in clear."""
        if value is None:
            return None
        if contains_clear_pan(value):
            if not (value.isascii() and value.isdigit()):
                raise _FieldError(field, "holds a card number among other characters")
            return Account(other_id=self._tokenize(value, field, ctx).value, scheme="TOKEN")
        return Account(other_id=value)

    @staticmethod
    def _extensions(
        doc: DecodedDict, mapped: frozenset[str]
    ) -> tuple[tuple[Extension, ...], list[str]]:
        extensions = []
        dropped: list[str] = []
        for field, value in doc.items():
            if field in mapped:
                continue
            if contains_clear_pan(value):
                dropped.append(f"field{field}")
            else:
                extensions.append(Extension(_EXTENSION_PREFIX + field, value))
        return tuple(extensions), dropped

    # -- encode ---------------------------------------------------------------------------

    def encode(self, message: CanonicalMessage, ctx: EncodeContext) -> bytes:
        """A canonical message to ISO 8583 bytes (unframed); the token detokenized."""
        doc = self._to_fields(message, ctx)
        for field, value in doc.items():
            if field in _NUMERIC_FIELDS and not (value.isdigit() and value.isascii()):
                raise AdapterEncodeError(NAME, "numeric field needs digits only", field=field)
        if self._codec is not None:
            raw = self._codec.encode(doc)
            if raw is not None:
                return raw
        return self._encode_with_pyiso8583(doc)

    def _encode_with_pyiso8583(self, doc: dict[str, str]) -> bytes:
        """``doc`` encoded by pyiso8583 itself: what names the field at fault."""
        failure: AdapterEncodeError | None = None
        try:
            raw, _ = iso8583.encode(doc, self._spec)
        except iso8583.EncodeError as exc:
            failure = AdapterEncodeError(NAME, exc.msg, field=_field_label(exc.field))
        if failure is not None:
            raise failure
        return bytes(raw)

    def _to_fields(self, message: CanonicalMessage, ctx: EncodeContext) -> dict[str, str]:
        kind = message.kind
        try:
            mti = build_mti(
                MessageKind.FINANCIAL if kind is MessageKind.BALANCE_ENQUIRY else kind,
                message.function,
                repeat=message.repeat,
            )
        except ValueError as exc:
            raise AdapterEncodeError(NAME, str(exc), field="MTI") from None
        doc: dict[str, str] = {"t": mti}
        ids = message.ids
        if ids.instruction_id is not None:
            doc["11"] = ids.instruction_id
        if ids.end_to_end_id is not None:
            doc["37"] = ids.end_to_end_id
        if message.processing is not None:
            p = message.processing
            doc["3"] = f"{p.transaction_type}{p.from_account_type}{p.to_account_type}"
        elif kind is MessageKind.BALANCE_ENQUIRY:
            doc["3"] = f"{BALANCE_ENQUIRY_PROCESSING}0000"
        if message.amount is not None:
            units = message.amount.minor_units()
            if units < 0:
                raise AdapterEncodeError(NAME, "amount must not be negative", field="4")
            doc["4"] = f"{units:012d}"
            doc["49"] = message.amount.currency.numeric
        if message.transmitted_at is not None:
            doc["7"] = format_transmission_time(message.transmitted_at)
        if message.local_time is not None:
            t = message.local_time
            doc["12"] = f"{t.hour:02d}{t.minute:02d}{t.second:02d}"
        if message.local_date is not None:
            doc["13"] = format_mmdd(message.local_date)
        if message.settlement_date is not None:
            doc["15"] = format_mmdd(message.settlement_date)
        if message.card is not None:
            self._card_fields(message.card, doc, ctx)
        acceptor = message.acceptor
        if acceptor is not None:
            _put(doc, "18", acceptor.category_code)
            _put(doc, "22", acceptor.pos_entry_mode)
            _put(doc, "25", acceptor.pos_condition_code)
            _put(doc, "41", acceptor.terminal_id)
            _put(doc, "42", acceptor.merchant_id)
            _put(doc, "43", acceptor.name_location)
        agents = message.agents
        if agents is not None:
            _put(doc, "32", _member_id(agents.acquirer, "32"))
            _put(doc, "33", _member_id(agents.forwarder, "33"))
            _put(doc, "100", _member_id(agents.receiver, "100"))
        _put(doc, "38", message.approval_code)
        if message.status is not None:
            doc["39"] = iso8583_response_code(message.status)
        if message.additional_amounts:
            doc["54"] = format_additional_amounts(message.additional_amounts)
        if message.network is not None:
            network = message.network
            code = network.information_code or _NETWORK_DEFAULT_CODES.get(network.action)
            _put(doc, "70", code)
        if message.original is not None:
            doc["90"] = format_original_data(message.original)
        _put(doc, "102", self._account_id(message.debtor_account, "102", ctx))
        _put(doc, "103", self._account_id(message.creditor_account, "103", ctx))
        for extension in message.extensions:
            if extension.key.startswith(_EXTENSION_PREFIX):
                doc[extension.key[len(_EXTENSION_PREFIX) :]] = extension.value
        return doc

    @staticmethod
    def _clear_pan(token: PanToken, field: str, ctx: EncodeContext) -> str:
        try:
            return ctx.detokenize(token)
        except (AdapterError, LookupError, ValueError) as exc:
            raise AdapterEncodeError(NAME, f"cannot detokenize: {exc}", field=field) from None

    def _card_fields(self, card: Card, doc: dict[str, str], ctx: EncodeContext) -> None:
        if card.token is not None:
            doc["2"] = self._clear_pan(card.token, "2", ctx)
        _put(doc, "14", card.expiry)
        _put(doc, "23", card.sequence_number)
        _put(doc, "40", card.service_code)
        if card.emv:
            try:
                doc["55"] = build_tlv_hex(card.emv)
            except TlvError as exc:
                raise AdapterEncodeError(NAME, f"EMV data: {exc}", field="55") from None

    def _account_id(self, account: Account | None, field: str, ctx: EncodeContext) -> str | None:
        if account is None:
            return None
        if account.scheme == "TOKEN" and account.other_id is not None:
            return self._clear_pan(PanToken(account.other_id), field, ctx)
        return account.iban or account.other_id

    # -- inspect --------------------------------------------------------------------------

    def describe(self, payload: bytes) -> tuple[list[FieldView], AdapterDecodeError | None]:
        """Every field with its spec description and byte offset, sensitive data masked."""
        error: AdapterDecodeError | None = None
        try:
            doc, encoded = iso8583.decode(payload, self._spec)
        except iso8583.DecodeError as exc:
            doc, encoded = dict(exc.doc_dec), dict(exc.doc_enc)
            error = AdapterDecodeError(NAME, exc.msg, field=_field_label(exc.field), offset=exc.pos)
        views = []
        offset = 0
        for field, part in encoded.items():
            if field in doc:
                description = str(self._spec[field].get("desc", ""))
                views.append(
                    FieldView(
                        field, description, _masked(field, doc[field]), offset + len(part["len"])
                    )
                )
            offset += len(part["len"]) + len(part["data"])
        return views, error

    # -- reject ---------------------------------------------------------------------------

    def reject(self, error: AdapterDecodeError, ctx: EncodeContext) -> bytes | None:
        """The response to undecodable input: response MTI, field 39 = 30, echoed addressing.

        ``None`` when the MTI was unreadable or is itself a response (nothing to answer).
        """
        context = error.context
        mti = context.get("mti")
        answer_mti = response_mti(mti) if mti is not None else None
        if answer_mti is None:
            return None
        code = context.get("response_code", ISO8583_FORMAT_ERROR)
        doc = {name: context[name] for name in ADDRESSING_FIELDS if name in context}
        for attempt in (doc, {}):
            fields = {"t": answer_mti, "39": code, **attempt}
            try:
                raw, _ = iso8583.encode(fields, self._spec)
            except iso8583.EncodeError:
                continue
            return bytes(raw)
        return None


@functools.cache
def _compiled_codec(variant: str) -> CompiledCodec | None:
    """The codec compiled for ``variant``'s spec, once per process (about a millisecond)."""
    return compile_codec(SPECS[variant])


def _masked(field: str, value: str) -> str:
    if field == "2":
        return mask_pan(value)
    if field == "35":
        try:
            return f"{mask_pan(parse_track2(value).pan)} [rest of track 2 hidden]"
        except FieldFormatError:
            return "[track 2 hidden]"
    if field in _DROPPED_FIELDS:
        return f"[{_DROPPED_FIELDS[field]} hidden]"
    if field == "55":
        try:
            tags = parse_tlv(bytes.fromhex(value))
        except (TlvError, ValueError):
            return "[EMV data not BER-TLV]"
        return " ".join(
            f"{t.tag}=[hidden]" if t.tag in _DROPPED_EMV_TAGS else f"{t.tag}={t.value}"
            for t in tags
        )
    return scrub(value)


def _parse_mmdd(value: str, now: dt.datetime) -> dt.date:
    if len(value) != 4 or not value.isdigit():
        raise FieldFormatError("date must be MMDD digits")
    return infer_date(int(value[0:2]), int(value[2:4]), now)


def _member(value: str | None) -> Agent | None:
    return None if value is None else _new_agent(member_id=value)


def _member_id(agent: Agent | None, field: str) -> str | None:
    if agent is None:
        return None
    if agent.member_id is None:
        raise AdapterEncodeError(NAME, "institution needs a member id in ISO 8583", field=field)
    return agent.member_id


def _put(doc: dict[str, str], field: str, value: str | None) -> None:
    if value is not None:
        doc[field] = value
