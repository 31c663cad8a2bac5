"""ISO 20022 <-> canonical, on lxml (parse, XSD) and xmlschema (explanations).

Standard: ISO 20022 financial messages as XML, the message versions of
:mod:`adapters.iso20022.catalog`, optionally behind a head.001 Business Application Header
in an envelope (:mod:`adapters.iso20022.head`). Framing: none (MQ message body, file).

Variants name the message an encoder writes; the decoder reads any supported message
whatever the variant, detecting it from the ``Document`` namespace:

=================  =====================  =================================================
variant            writes                 canonical messages
=================  =====================  =================================================
``pacs.008``       pacs.008.001.08        financial requests (and balance enquiries)
``pacs.008.13``    pacs.008.001.13        the same, 2025 version (structured or hybrid
                                          postal addresses only: the November 2026 rule)
``pacs.002``       pacs.002.001.10        financial responses (status reports)
``pain.001``       pain.001.001.09        customer credit transfer initiations (batches:
                                          ``ids.batch_id`` is the ``PmtInfId``)
``pain.001.03``    pain.001.001.03        the same, legacy SEPA version
``pain.002``       pain.002.001.10        their status reports
``pacs.004``       pacs.004.001.09        returns (and ISO 8583 reversals after settlement)
``pacs.004.10``    pacs.004.001.10        the same, FedNow version
``camt.056``       camt.056.001.08        cancellation requests (and reversals before
                                          settlement)
``reversal``       camt.056 or pacs.004   an ISO 8583 0420/0421: camt.056 before settlement,
                                          pacs.004 after (:func:`.camt056.reversal_message_type`)
``pacs.009``       pacs.009.001.08        financial institution credit transfers
``camt.053``       camt.053.001.08        statements: a header message, then one per entry
                                          (camt.054 decodes to the same; files of any size:
                                          :func:`.camt053.iter_statement`, writer
                                          :func:`.camt053.write_statement`)
=================  =====================  =================================================

Decoding, in order: hardened parsing (:mod:`.safexml`: no DTD, no entities, size and depth
limits), envelope split, version detection (an unsupported version is named, with the
versions supported), XSD validation with lxml, explained by xmlschema when it fails
(:mod:`.validation`), business rules (:mod:`.rules`: IBAN, BIC, totals, code sets,
currency exponents, dates), then the mapping (:mod:`.pacs008`, :mod:`.pacs002`). Any failure
is an :class:`~adapters.base.AdapterDecodeError` naming the element path, with the ISO
20022 reason code in ``context["reason_code"]``; :meth:`Iso20022Adapter.reject` turns it
into a pacs.002 (a pain.002 for a pain.001) with group status ``RJCT`` and that reason.

A message may hold several transactions: :meth:`Iso20022Adapter.decode_batch` returns
them all (``decode`` refuses a document with more than one) and
:meth:`Iso20022Adapter.encode_batch` writes several into one document.

Card numbers: a debtor account that is a card token (``SchmeNm/Prtry`` ``TOKEN``) becomes
``card.token``; an account id or remittance text holding a clear card number is tokenized
or masked at decode. Encoding never needs a clear PAN: tokens travel.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from lxml import etree

from adapters.base import (
    AdapterDecodeError,
    AdapterEncodeError,
    Capabilities,
    DecodeContext,
    Direction,
    EncodeContext,
    RoundTrip,
    scrub,
)
from adapters.iso20022 import (
    camt029,
    camt053,
    camt056,
    pacs002,
    pacs004,
    pacs008,
    pacs009,
    pain001,
    pain002,
)
from adapters.iso20022.catalog import (
    MESSAGE_TYPES,
    MessageType,
    UnsupportedMessageError,
    by_namespace,
)
from adapters.iso20022.components import (
    TOKEN_SCHEME,
    Builder,
    ComponentError,
    element_path,
    format_datetime,
)
from adapters.iso20022.head import decode_header, encode_header, envelope
from adapters.iso20022.ordering import NotInSchemaError, SchemaOrder
from adapters.iso20022.rules import check_document
from adapters.iso20022.safexml import XmlInputError, parse_xml
from adapters.iso20022.validation import SchemaValidator, split_envelope
from canonical_model.messages import (
    Account,
    BusinessHeader,
    CanonicalMessage,
    Card,
    MessageFunction,
    MessageKind,
)
from canonical_model.pan import PanToken, contains_clear_pan, luhn_valid

__all__ = ["NAME", "VARIANTS", "Iso20022Adapter", "ValidationReport"]

NAME = "iso20022"
FORMAT_ERROR = "FF01"
NARRATIVE = "NARR"


@dataclass(frozen=True, slots=True)
class _Variant:
    message_id: str
    kinds: frozenset[MessageKind]
    functions: frozenset[MessageFunction]
    structured_addresses: bool = False


_VARIANTS: dict[str, _Variant] = {
    "pacs.008": _Variant(
        "pacs.008.001.08",
        frozenset({MessageKind.FINANCIAL, MessageKind.BALANCE_ENQUIRY}),
        frozenset({MessageFunction.REQUEST, MessageFunction.ADVICE}),
    ),
    "pacs.008.13": _Variant(
        "pacs.008.001.13",
        frozenset({MessageKind.FINANCIAL, MessageKind.BALANCE_ENQUIRY}),
        frozenset({MessageFunction.REQUEST, MessageFunction.ADVICE}),
        structured_addresses=True,
    ),
    "pacs.002": _Variant(
        "pacs.002.001.10",
        frozenset({MessageKind.FINANCIAL, MessageKind.BALANCE_ENQUIRY, MessageKind.STATUS_REPORT}),
        frozenset({MessageFunction.RESPONSE, MessageFunction.ADVICE_RESPONSE}),
    ),
    "pain.001": _Variant(
        "pain.001.001.09",
        frozenset({MessageKind.CREDIT_TRANSFER}),
        frozenset({MessageFunction.REQUEST}),
    ),
    "pain.001.03": _Variant(
        "pain.001.001.03",
        frozenset({MessageKind.CREDIT_TRANSFER}),
        frozenset({MessageFunction.REQUEST}),
    ),
    "pain.002": _Variant(
        "pain.002.001.10",
        frozenset({MessageKind.CREDIT_TRANSFER}),
        frozenset({MessageFunction.RESPONSE}),
    ),
    "pacs.004": _Variant(
        "pacs.004.001.09",
        frozenset({MessageKind.RETURN, MessageKind.REVERSAL}),
        frozenset(MessageFunction),
    ),
    "pacs.004.10": _Variant(
        "pacs.004.001.10",
        frozenset({MessageKind.RETURN, MessageKind.REVERSAL}),
        frozenset(MessageFunction),
    ),
    "camt.056": _Variant(
        "camt.056.001.08",
        frozenset({MessageKind.CANCELLATION, MessageKind.REVERSAL}),
        frozenset(MessageFunction),
    ),
    "reversal": _Variant(
        "camt.056.001.08",  # or pacs.004.001.09 after settlement: see _message_type
        frozenset({MessageKind.REVERSAL, MessageKind.CANCELLATION, MessageKind.RETURN}),
        frozenset(MessageFunction),
    ),
    "pacs.009": _Variant(
        "pacs.009.001.08",
        frozenset({MessageKind.FINANCIAL}),
        frozenset({MessageFunction.REQUEST, MessageFunction.ADVICE}),
    ),
    "camt.053": _Variant(
        "camt.053.001.08",
        frozenset({MessageKind.STATEMENT}),
        frozenset(MessageFunction),
    ),
}
VARIANTS: tuple[str, ...] = tuple(_VARIANTS)


class _Decoder(Protocol):
    def __call__(
        self,
        document: etree._Element,
        namespace: str,
        *,
        tenant: str,
        new_message_id: Callable[[], str],
        header: BusinessHeader | None,
        tokenize_account: Callable[[Account, str], Card | None],
    ) -> list[CanonicalMessage]: ...


class _Encoder(Protocol):
    def __call__(
        self,
        messages: Sequence[CanonicalMessage],
        namespace: str,
        *,
        now: Callable[[], dt.datetime],
    ) -> etree._Element: ...


def _without_tokens(decode: Callable[..., list[CanonicalMessage]]) -> _Decoder:
    """A decoder for messages that hold no card account (returns, cancellations, FI
    transfers): the tokenizer is not needed."""

    def run(
        document: etree._Element,
        namespace: str,
        *,
        tenant: str,
        new_message_id: Callable[[], str],
        header: BusinessHeader | None,
        tokenize_account: Callable[[Account, str], Card | None],
    ) -> list[CanonicalMessage]:
        return decode(
            document, namespace, tenant=tenant, new_message_id=new_message_id, header=header
        )

    return run


# The message family -> its mapping module: one line each.
_DECODERS: dict[str, _Decoder] = {
    "pacs.008": pacs008.decode_transactions,
    "pacs.002": _without_tokens(pacs002.decode_reports),
    "pain.001": pain001.decode_initiations,
    "pain.002": pain002.decode_reports,
    "pacs.004": _without_tokens(pacs004.decode_returns),
    "camt.056": _without_tokens(camt056.decode_cancellations),
    "camt.029": _without_tokens(camt029.decode_resolutions),
    "pacs.009": _without_tokens(pacs009.decode_transfers),
    "camt.053": _without_tokens(camt053.decode_statements),
    "camt.054": _without_tokens(camt053.decode_statements),
}
_ENCODERS: dict[str, _Encoder] = {
    "pacs.008": pacs008.encode_document,
    "pacs.002": pacs002.encode_document,
    "pain.001": pain001.encode_document,
    "pain.002": pain002.encode_document,
    "pacs.004": pacs004.encode_document,
    "camt.056": camt056.encode_document,
    "pacs.009": pacs009.encode_document,
    "camt.053": camt053.encode_document,
}


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """``isobridge validate``'s verdict on one document."""

    message_type: str | None
    problems: tuple[tuple[str, str], ...] = ()  # (path, reason): the document is refused
    warnings: tuple[tuple[str, str], ...] = ()  # (path, reason): accepted, but flagged
    reason_code: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(slots=True)
class _Parsed:
    message_type: MessageType
    document: etree._Element
    header: BusinessHeader | None
    context: dict[str, str] = field(default_factory=dict)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def unstructured_only_addresses(document: etree._Element) -> list[str]:
    """Paths of postal addresses given as address lines only (no town, no country)."""
    found = []
    for address in document.iter("{*}PstlAdr"):
        names = {etree.QName(child).localname for child in address if isinstance(child.tag, str)}
        if names and names <= {"AdrLine", "AdrTp"}:
            found.append(element_path(address))
    return found


class Iso20022Adapter:
    """ISO 20022 XML <-> canonical messages. See the module docstring."""

    name: ClassVar[str] = NAME
    variants: ClassVar[tuple[str, ...]] = VARIANTS

    def __init__(self, variant: str | None = None) -> None:
        chosen = VARIANTS[0] if variant is None else variant
        if chosen not in _VARIANTS:
            raise ValueError(f"unknown {NAME} variant {chosen!r} (known: {', '.join(VARIANTS)})")
        self._variant = chosen
        self._target = _VARIANTS[chosen]
        self._type = MESSAGE_TYPES[self._target.message_id]
        self._validator = SchemaValidator()
        self._capabilities = Capabilities(
            kinds=self._target.kinds,
            functions=self._target.functions,
            directions=frozenset({Direction.DECODE, Direction.ENCODE}),
            framings=(),
            needs_clear_pan=False,
            round_trip=RoundTrip.CANONICAL,
            description=f"ISO 20022 {self._target.message_id} (decodes every supported message)",
        )
        self.now: Callable[[], dt.datetime] = _utc_now

    @property
    def variant(self) -> str:
        return self._variant

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    def __repr__(self) -> str:
        return f"Iso20022Adapter({self._variant!r})"

    # -- decode ---------------------------------------------------------------------------

    def _parse(self, payload: bytes) -> _Parsed:
        failure: AdapterDecodeError | None = None
        try:
            root = parse_xml(payload)
        except XmlInputError as exc:
            failure = AdapterDecodeError(
                NAME,
                f"not acceptable XML ({exc.kind}): {exc.reason}",
                field=f"line {exc.line}" if exc.line else None,
                context={"reason_code": FORMAT_ERROR},
            )
        if failure is not None:
            raise failure
        app_hdr, document = split_envelope(root)
        namespace = etree.QName(document).namespace or ""
        try:
            message_type = by_namespace(namespace)
        except UnsupportedMessageError as exc:
            failure = AdapterDecodeError(
                NAME, str(exc), field="/Document", context={"reason_code": FORMAT_ERROR}
            )
        if failure is not None:
            raise failure
        header = decode_header(app_hdr) if app_hdr is not None else None
        parsed = _Parsed(message_type, document, header)
        group_id = document.find(f".//{{{namespace}}}GrpHdr/{{{namespace}}}MsgId")
        if group_id is None:  # camt.056 has an assignment instead of a group header
            group_id = document.find(f".//{{{namespace}}}Assgnmt/{{{namespace}}}Id")
        if group_id is not None and group_id.text:
            parsed.context["message_id"] = group_id.text.strip()[:35]
        parsed.context["message_type"] = message_type.id
        return parsed

    def _check(self, parsed: _Parsed) -> None:
        problems = self._validator.validate(parsed.document, parsed.message_type)
        if problems:
            first = problems[0]
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            reason = first.reason + (f"; expected {first.expected}" if first.expected else "")
            raise AdapterDecodeError(
                NAME,
                f"{parsed.message_type.id} does not validate: {reason}{more}",
                field=first.path,
                offset=None,
                context={**parsed.context, "reason_code": FORMAT_ERROR},
            )
        violations = check_document(parsed.document, parsed.message_type.id)
        if violations:
            first_violation = violations[0]
            more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
            raise AdapterDecodeError(
                NAME,
                f"{first_violation.message}{more}",
                field=first_violation.path,
                context={**parsed.context, "reason_code": first_violation.reason_code},
            )

    def decode(self, payload: bytes, ctx: DecodeContext) -> CanonicalMessage:
        """One ISO 20022 message holding one transaction, as a canonical message."""
        messages = self.decode_batch(payload, ctx)
        if len(messages) != 1:
            raise AdapterDecodeError(
                NAME,
                f"the document holds {len(messages)} transactions; decode_batch reads them all",
                field="/Document",
            )
        return messages[0]

    def decode_batch(self, payload: bytes, ctx: DecodeContext) -> list[CanonicalMessage]:
        """Every transaction of an ISO 20022 message, as canonical messages, in order."""
        parsed = self._parse(payload)
        self._check(parsed)
        family = parsed.message_type.family
        failure: AdapterDecodeError | None = None
        try:
            decoder = _DECODERS.get(family)
            if decoder is None:
                raise ComponentError(
                    "/Document",
                    f"{parsed.message_type.id} validates, but this hub does not map it to the"
                    f" canonical model yet (mapped: {', '.join(sorted(_DECODERS))})",
                )
            messages = decoder(
                parsed.document,
                parsed.message_type.namespace,
                tenant=ctx.tenant,
                new_message_id=ctx.new_message_id,
                header=parsed.header,
                tokenize_account=lambda account, path: self._card(account, path, ctx),
            )
        except ComponentError as exc:
            failure = AdapterDecodeError(
                NAME,
                exc.reason,
                field=exc.path,
                context={**parsed.context, "reason_code": NARRATIVE},
            )
        if failure is not None:
            raise failure
        return [self._scrubbed(message, ctx) for message in messages]

    @staticmethod
    def _card(account: Account, path: str, ctx: DecodeContext) -> Card | None:
        value = account.other_id
        if value is None:
            return None
        if account.scheme == TOKEN_SCHEME:
            try:
                return Card(token=PanToken(value))
            except ValueError:
                raise ComponentError(path, "a TOKEN account id is not a card token") from None
        if value.isdigit() and 12 <= len(value) <= 19 and luhn_valid(value):
            return Card(token=ctx.tokenize(value))
        return None

    @staticmethod
    def _scrubbed(message: CanonicalMessage, ctx: DecodeContext) -> CanonicalMessage:
        if any(contains_clear_pan(line) for line in message.remittance):
            message = dataclasses.replace(
                message, remittance=tuple(scrub(line) for line in message.remittance)
            )
        account = message.creditor_account
        if account is not None and account.other_id and contains_clear_pan(account.other_id):
            token = ctx.tokenize(account.other_id)
            message = dataclasses.replace(
                message, creditor_account=Account(other_id=token.value, scheme=TOKEN_SCHEME)
            )
        return message

    def validate(self, payload: bytes) -> ValidationReport:
        """The verdict ``isobridge validate`` prints: problems refuse, warnings flag."""
        try:
            parsed = self._parse(payload)
        except AdapterDecodeError as exc:
            return ValidationReport(
                exc.context.get("message_type"),
                ((exc.field or "/", exc.reason),),
                reason_code=exc.context.get("reason_code"),
            )
        problems = tuple(
            (p.path, p.reason + (f"; expected {p.expected}" if p.expected else ""))
            for p in self._validator.validate(parsed.document, parsed.message_type)
        )
        reason_code = FORMAT_ERROR if problems else None
        if not problems:
            violations = check_document(parsed.document, parsed.message_type.id)
            problems = tuple((v.path, f"{v.reason_code}: {v.message}") for v in violations)
            reason_code = violations[0].reason_code if violations else None
        warnings = tuple(
            (path, "postal address given as address lines only: from November 2026 the"
             " market rule needs a structured or hybrid address (town and country)")
            for path in unstructured_only_addresses(parsed.document)
        )  # fmt: skip
        return ValidationReport(parsed.message_type.id, problems, warnings, reason_code)

    # -- encode ---------------------------------------------------------------------------

    def encode(self, message: CanonicalMessage, ctx: EncodeContext) -> bytes:
        """A canonical message as this variant's ISO 20022 message (UTF-8 XML)."""
        return self.encode_batch([message], ctx)

    def _message_type(self, messages: Sequence[CanonicalMessage]) -> MessageType:
        """What this variant writes; ``reversal`` picks camt.056 before settlement and
        pacs.004 after (``CANONICAL.md``), the same for the whole batch."""
        if self._variant != "reversal":
            return self._type
        chosen = {camt056.reversal_message_type(message) for message in messages}
        if len(chosen) != 1:
            raise AdapterEncodeError(
                NAME, "a batch mixes reversals before and after settlement: encode them apart"
            )
        return MESSAGE_TYPES[chosen.pop()]

    def encode_batch(self, messages: Sequence[CanonicalMessage], ctx: EncodeContext) -> bytes:
        """Several canonical messages as one ISO 20022 message of this variant."""
        if not messages:
            raise AdapterEncodeError(NAME, "nothing to encode")
        for message in messages:
            if (
                message.kind not in self._target.kinds
                or message.function not in self._target.functions
            ):
                raise AdapterEncodeError(
                    NAME,
                    f"{self._target.message_id} does not carry a {message.kind.value} "
                    f"{message.function.value}",
                    field="/Document",
                )
        message_type = self._message_type(messages)
        namespace = message_type.namespace
        failure: AdapterEncodeError | None = None
        try:
            document = _ENCODERS[message_type.family](messages, namespace, now=self.now)
            SchemaOrder.for_message(message_type).arrange(document)
        except (ComponentError, NotInSchemaError) as exc:
            failure = AdapterEncodeError(NAME, str(exc))
        if failure is not None:
            raise failure
        if self._target.structured_addresses:
            unstructured = unstructured_only_addresses(document)
            if unstructured:
                raise AdapterEncodeError(
                    NAME,
                    f"{message_type.id} needs structured or hybrid postal addresses (town and"
                    " country; the November 2026 market rule); unstructured only at "
                    + ", ".join(unstructured),
                    field=unstructured[0],
                )
        problems = self._validator.validate(document, message_type)
        if problems:
            first = problems[0]
            raise AdapterEncodeError(
                NAME,
                f"the {message_type.id} built from this message does not validate: "
                f"{first.path}: {first.reason}",
                field=first.path,
            )
        root = document
        header = messages[0].business_header
        if header is not None:
            header = dataclasses.replace(header, message_definition=message_type.id)
            root = envelope(encode_header(header, now=self.now), document)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    # -- reject ---------------------------------------------------------------------------

    def reject(self, error: AdapterDecodeError, ctx: EncodeContext) -> bytes | None:
        """A pacs.002 (a pain.002 for a pain.001) with group status RJCT, the reason code,
        and where and why in ``AddtlInf``, answering the message named in the error."""
        context = error.context
        text = f"{error.field}: {error.reason}" if error.field else error.reason
        if context.get("message_type", "").startswith("pain.001"):
            document = pain002.encode_reject(
                context.get("message_id"),
                context.get("message_type"),
                context.get("reason_code", NARRATIVE),
                text,
                now=self.now,
            )
            return etree.tostring(document, xml_declaration=True, encoding="UTF-8")
        namespace = MESSAGE_TYPES["pacs.002.001.10"].namespace

        b = Builder(namespace)
        document = b.element("Document")
        body = b.child(document, "FIToFIPmtStsRpt")
        now = self.now()
        original_id = error.context.get("message_id")
        b.path(body, "GrpHdr/MsgId", f"RJCT{now:%Y%m%d%H%M%S%f}"[:35])
        b.path(body, "GrpHdr/CreDtTm", format_datetime(now))
        group = b.child(body, "OrgnlGrpInfAndSts")
        b.child(group, "OrgnlMsgId", original_id or "NOTPROVIDED")
        b.child(group, "OrgnlMsgNmId", error.context.get("message_type", "NOTPROVIDED"))
        b.child(group, "GrpSts", "RJCT")
        info = b.child(group, "StsRsnInf")
        b.path(info, "Rsn/Cd", error.context.get("reason_code", NARRATIVE))
        for start in range(0, min(len(text), 105 * 3), 105):
            b.child(info, "AddtlInf", text[start : start + 105])
        SchemaOrder.for_message(MESSAGE_TYPES["pacs.002.001.10"]).arrange(document)
        return etree.tostring(document, xml_declaration=True, encoding="UTF-8")
