"""A third-party adapter, as another distribution would ship it: canonical JSON on the wire.

Registered in tests through an ``isobridge.adapters`` entry point, to prove that a new
adapter is one module and one registration line.
"""

from __future__ import annotations

from typing import ClassVar

from adapters.base import (
    AdapterDecodeError,
    Capabilities,
    DecodeContext,
    Direction,
    EncodeContext,
    RoundTrip,
)
from canonical_model import (
    CanonicalJsonError,
    CanonicalMessage,
    MessageFunction,
    MessageKind,
    from_json,
    to_json,
)


class CanonicalJsonWireAdapter:
    """Canonical JSON bytes <-> canonical messages (UTF-8, compact form)."""

    name: ClassVar[str] = "json-wire"
    variants: ClassVar[tuple[str, ...]] = ("compact",)

    def __init__(self, variant: str | None = None) -> None:
        self._variant = variant or self.variants[0]
        self._capabilities = Capabilities(
            kinds=frozenset(MessageKind),
            functions=frozenset(MessageFunction),
            directions=frozenset({Direction.DECODE, Direction.ENCODE}),
            round_trip=RoundTrip.BYTES,
            description="canonical JSON on the wire",
        )

    @property
    def variant(self) -> str:
        return self._variant

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    def decode(self, payload: bytes, ctx: DecodeContext) -> CanonicalMessage:
        try:
            return from_json(payload)
        except CanonicalJsonError as exc:
            raise AdapterDecodeError(self.name, str(exc)) from None

    def encode(self, message: CanonicalMessage, ctx: EncodeContext) -> bytes:
        return to_json(message).encode()

    def reject(self, error: AdapterDecodeError, ctx: EncodeContext) -> bytes | None:
        return None
