"""The adapter seam: what an integration engineer implements to bring a format into the hub.

An adapter is one class with a ``name``, its ``variants`` (the first is the default),
``capabilities``, and three pure, synchronous functions:

- ``decode(payload, ctx) -> CanonicalMessage``: wire bytes (already unframed by the edge)
  to the canonical model. ``ctx.tokenize`` replaces a card number by a token.
- ``encode(message, ctx) -> bytes``: the canonical model to wire bytes. ``ctx.detokenize``
  exists only for adapters whose capabilities declare ``needs_clear_pan``.
- ``reject(error, ctx) -> bytes | None``: the answer in the adapter's own protocol to input
  it could not decode (ISO 8583 field 39 = 30, a pacs.002 RJCT...), or ``None`` when the
  protocol has none or the input was too broken to address one.

No I/O inside an adapter, no framing (the edge applies it, see :mod:`adapters.framing`),
and no vault import: the contexts hand in what an adapter may use.

Errors are typed and never carry the payload: :class:`AdapterDecodeError` names the field,
the byte offset and the reason; its text is safe to log.

Registering an adapter is one line in :data:`adapters.registry.BUILTIN_ADAPTERS`, or an
entry point in the group ``isobridge.adapters`` for adapters shipped in other packages.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Protocol, runtime_checkable

from canonical_model.messages import CanonicalMessage, MessageFunction, MessageKind
from canonical_model.pan import PanToken, find_clear_pans, mask_pan
from canonical_model.random_ids import uuid4_text

__all__ = [
    "Adapter",
    "AdapterDecodeError",
    "AdapterEncodeError",
    "AdapterError",
    "BatchAdapter",
    "Capabilities",
    "CapabilityError",
    "DecodeContext",
    "Direction",
    "EncodeContext",
    "FieldView",
    "Inspectable",
    "PanDetokenizer",
    "PanTokenizer",
    "RoundTrip",
    "scrub",
]


class Direction(StrEnum):
    """Which ways an adapter translates."""

    DECODE = "decode"
    ENCODE = "encode"


class RoundTrip(StrEnum):
    """What ``encode(decode(x))`` promises for an adapter's fixtures.

    ``BYTES``: the same bytes. ``CANONICAL``: decoding the re-encoded bytes gives the same
    canonical message (bytes may differ, e.g. where sensitive fields were dropped).
    ``NONE``: no promise (one-way adapters).
    """

    BYTES = "bytes"
    CANONICAL = "canonical"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an adapter can do; the hub and the contract suite read this, not the code."""

    kinds: frozenset[MessageKind]
    functions: frozenset[MessageFunction]
    directions: frozenset[Direction] = frozenset({Direction.DECODE, Direction.ENCODE})
    framings: tuple[str, ...] = ()
    needs_clear_pan: bool = False
    round_trip: RoundTrip = RoundTrip.CANONICAL
    description: str = ""


class PanTokenizer(Protocol):
    """Replaces a clear PAN by a token; the vault implements it.

    Failures come in two kinds, which adapters answer differently: ``ValueError`` for a
    card number the vault refuses (ISO 8583: 14, invalid card number) and ``RuntimeError``
    when the vault cannot serve at all (ISO 8583: 96, system malfunction).
    """

    def tokenize(self, pan: str, *, tenant: str) -> PanToken:
        """The token for ``pan`` in ``tenant`` (convergent: same PAN, same token)."""
        ...


class PanDetokenizer(Protocol):
    """Gives back the clear PAN of a token; audited by the vault."""

    def detokenize(self, token: PanToken, *, tenant: str, purpose: str) -> str:
        """The clear PAN behind ``token``."""
        ...


def _new_message_id() -> str:
    return uuid4_text()


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class DecodeContext:
    """What a decoder may use: the tenant, tokenization, an id source and the clock.

    ``now`` anchors dates that the wire carries without a year (ISO 8583 fields 7, 13).
    """

    tenant: str
    tokenizer: PanTokenizer
    now: Callable[[], dt.datetime] = _utc_now
    new_message_id: Callable[[], str] = _new_message_id

    def tokenize(self, pan: str) -> PanToken:
        """The token that stands for ``pan`` in this context's tenant."""
        return self.tokenizer.tokenize(pan, tenant=self.tenant)


@dataclass(frozen=True, slots=True)
class EncodeContext:
    """What an encoder may use. ``detokenize`` works only if the adapter declared the need."""

    tenant: str
    detokenizer: PanDetokenizer | None = None
    purpose: str = "encode"

    @classmethod
    def for_adapter(
        cls, adapter: Adapter, tenant: str, detokenizer: PanDetokenizer, purpose: str = "encode"
    ) -> EncodeContext:
        """The context for ``adapter``: with ``detokenizer`` only if it declared the need."""
        granted = detokenizer if adapter.capabilities.needs_clear_pan else None
        return cls(tenant, granted, f"{purpose}:{adapter.name}")

    def detokenize(self, token: PanToken) -> str:
        """The clear PAN behind ``token`` (audited); refused without ``needs_clear_pan``."""
        if self.detokenizer is None:
            raise CapabilityError(
                "this encode context holds no detokenizer: the adapter must declare "
                "needs_clear_pan to receive clear card numbers"
            )
        return self.detokenizer.detokenize(token, tenant=self.tenant, purpose=self.purpose)


@runtime_checkable
class Adapter(Protocol):
    """One wire format <-> the canonical model. See the module docstring."""

    name: ClassVar[str]
    variants: ClassVar[tuple[str, ...]]

    def __init__(self, variant: str | None = None) -> None:
        """An adapter for ``variant`` (``None``: the first of ``variants``)."""
        ...

    @property
    def variant(self) -> str:
        """The variant this instance speaks (one of ``variants``)."""
        ...

    @property
    def capabilities(self) -> Capabilities:
        """What this adapter does."""
        ...

    def decode(self, payload: bytes, ctx: DecodeContext) -> CanonicalMessage:
        """Wire bytes (unframed) to a canonical message; raises AdapterDecodeError."""
        ...

    def encode(self, message: CanonicalMessage, ctx: EncodeContext) -> bytes:
        """A canonical message to wire bytes (unframed); raises AdapterEncodeError."""
        ...

    def reject(self, error: AdapterDecodeError, ctx: EncodeContext) -> bytes | None:
        """The protocol's own answer to undecodable input, when one can be addressed."""
        ...


@runtime_checkable
class BatchAdapter(Protocol):
    """An adapter whose wire messages can hold several transactions (pacs.008, pain.001)."""

    def decode_batch(self, payload: bytes, ctx: DecodeContext) -> list[CanonicalMessage]:
        """Every transaction of one wire message, in order."""
        ...

    def encode_batch(self, messages: Sequence[CanonicalMessage], ctx: EncodeContext) -> bytes:
        """Several canonical messages as one wire message."""
        ...


@dataclass(frozen=True, slots=True)
class FieldView:
    """One field of a wire message as ``isobridge inspect`` shows it (sensitive data masked)."""

    field: str
    description: str
    value: str
    offset: int | None = None


@runtime_checkable
class Inspectable(Protocol):
    """An adapter that can show a wire message field by field, masked."""

    def describe(self, payload: bytes) -> tuple[list[FieldView], AdapterDecodeError | None]:
        """The fields decoded (masked), and the error that stopped decoding, if any."""
        ...


def scrub(text: str) -> str:
    """``text`` with every Luhn-valid 13-19 digit run masked: error texts pass through here."""
    for pan in find_clear_pans(text):
        text = text.replace(pan, mask_pan(pan))
    return text


class AdapterError(Exception):
    """Base of every adapter error. Its text never holds the payload or a clear PAN."""


class AdapterDecodeError(AdapterError):
    """Input that could not be decoded: which adapter, which field, at which byte offset, why.

    ``context`` carries the few header values that let the edge address an answer
    (for ISO 8583: the MTI, fields 11 and 41), never the payload or card data.
    """

    def __init__(
        self,
        adapter: str,
        reason: str,
        *,
        field: str | None = None,
        offset: int | None = None,
        context: Mapping[str, str] | None = None,
    ) -> None:
        self.adapter = adapter
        self.reason = scrub(reason)
        self.field = field
        self.offset = offset
        self.context: Mapping[str, str] = dict(context or {})
        where = []
        if field is not None:
            where.append(f"field {field}")
        if offset is not None:
            where.append(f"offset {offset}")
        location = f" ({', '.join(where)})" if where else ""
        super().__init__(f"{adapter}: cannot decode{location}: {self.reason}")


class AdapterEncodeError(AdapterError):
    """A canonical message that the adapter cannot express in its format."""

    def __init__(self, adapter: str, reason: str, *, field: str | None = None) -> None:
        self.adapter = adapter
        self.reason = scrub(reason)
        self.field = field
        location = f" (field {field})" if field is not None else ""
        super().__init__(f"{adapter}: cannot encode{location}: {self.reason}")


class CapabilityError(AdapterError):
    """An adapter asked for something its capabilities do not grant."""
