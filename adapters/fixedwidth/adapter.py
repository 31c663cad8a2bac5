"""The fixed-width adapter: one copybook record <-> one canonical message, via a mapping file.

Variants (built in, from ``layouts/``): ``corebank-request`` (``CB-REQUEST``, the hub's
postings, enquiries, reversals and holds to the core banking mainframe) and
``corebank-reply`` (``CB-REPLY``, its answers). A bank's own layout is a copybook plus a
mapping file (:mod:`adapters.fixedwidth.mapping`): ``FixedWidthAdapter.from_files(copybook,
mapping)``.

The payload is one record, already unframed by the edge (RDW or a length header). Decoding
checks the length and every field; errors are :class:`~adapters.fixedwidth.errors.RecordDecodeError`
naming the field and offset. Unmapped fields travel as extensions, so
``encode(decode(x)) == x`` for every record written with the preferred signs and spaces in
FILLER (``RoundTrip.BYTES``). The built-in layouts hold no card number; a user mapping may
tokenize one (``convert = "pan"``), and a card number in an unmapped field is masked (see
:mod:`adapters.fixedwidth.canonical`).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Final

from adapters.base import (
    AdapterDecodeError,
    AdapterEncodeError,
    Capabilities,
    DecodeContext,
    EncodeContext,
    FieldView,
    RoundTrip,
    scrub,
)
from adapters.fixedwidth.canonical import RecordMapper
from adapters.fixedwidth.codec import RecordCodec
from adapters.fixedwidth.copybook import compile_copybook
from adapters.fixedwidth.errors import ADAPTER_NAME, RecordDecodeError, RecordEncodeError
from adapters.fixedwidth.mapping import RecordMapping, load_mapping
from canonical_model.messages import CanonicalMessage, MessageKind

__all__ = ["FixedWidthAdapter", "NAME", "VARIANTS", "builtin_mapping_path"]

NAME: Final = ADAPTER_NAME
VARIANTS: Final[dict[str, str]] = {
    "corebank-request": "corebank_request.toml",
    "corebank-reply": "corebank_reply.toml",
}
"""Built-in variants -> their mapping file in ``adapters/fixedwidth/layouts``."""

_LAYOUTS: Final = Path(__file__).parent / "layouts"


def builtin_mapping_path(variant: str) -> Path:
    """The mapping file of a built-in variant."""
    return _LAYOUTS / VARIANTS[variant]


def _mapper(mapping: RecordMapping) -> RecordMapper:
    book = compile_copybook(
        mapping.copybook.read_text(encoding="utf-8"),
        codepage=mapping.codepage,
        redefines=mapping.redefines or None,
        source_name=mapping.copybook.name,
    )
    return RecordMapper(book.record(mapping.record), mapping)


class FixedWidthAdapter:
    """Copybook records <-> canonical messages (see the module docstring)."""

    name: ClassVar[str] = NAME
    variants: ClassVar[tuple[str, ...]] = tuple(VARIANTS)

    def __init__(self, variant: str | None = None, *, mapper: RecordMapper | None = None) -> None:
        chosen = variant or self.variants[0]
        if mapper is None:
            if chosen not in VARIANTS:
                raise ValueError(f"unknown fixedwidth variant {chosen!r}")
            mapper = _mapper(load_mapping(builtin_mapping_path(chosen)))
        self._variant = chosen
        self._mapper = mapper
        kinds = frozenset(rule.kind for rule in mapper.mapping.kinds) or frozenset(
            {MessageKind.FINANCIAL}
        )
        self._capabilities = Capabilities(
            kinds=kinds,
            functions=frozenset({mapper.mapping.function}),
            framings=("len2-binary", "len4-binary"),
            needs_clear_pan=mapper.has_card_numbers,
            round_trip=RoundTrip.BYTES,
            description=f"COBOL copybook record {mapper.codec.name} ({mapper.mapping.codepage})",
        )

    @classmethod
    def from_files(
        cls, copybook: str | Path, mapping: str | Path, *, variant: str | None = None
    ) -> FixedWidthAdapter:
        """An adapter for a bank's own layout: a copybook and a mapping file.

        The mapping's own ``copybook`` key is overridden by ``copybook``.
        """
        loaded = load_mapping(mapping)
        loaded = RecordMapping(
            copybook=Path(copybook),
            record=loaded.record,
            codepage=loaded.codepage,
            function=loaded.function,
            kind_field=loaded.kind_field,
            kinds=loaded.kinds,
            fields=loaded.fields,
            money=loaded.money,
            redefines=loaded.redefines,
            source=loaded.source,
        )
        return cls(variant or Path(mapping).stem, mapper=_mapper(loaded))

    @property
    def variant(self) -> str:
        """The variant (for a user layout: the mapping file's name)."""
        return self._variant

    @property
    def capabilities(self) -> Capabilities:
        """What this adapter does."""
        return self._capabilities

    @property
    def codec(self) -> RecordCodec:
        """The record codec behind this adapter."""
        return self._mapper.codec

    @property
    def mapper(self) -> RecordMapper:
        """The mapping between the record's fields and the canonical model."""
        return self._mapper

    def decode(self, payload: bytes, ctx: DecodeContext) -> CanonicalMessage:
        """One record to a canonical message; RecordDecodeError naming field and offset."""
        values = self._mapper.codec.decode(bytes(payload))
        return self._mapper.to_canonical(
            values, tenant=ctx.tenant, message_id=ctx.new_message_id(), tokenize=ctx.tokenize
        )

    def encode(self, message: CanonicalMessage, ctx: EncodeContext) -> bytes:
        """A canonical message to one record; AdapterEncodeError when it does not fit."""
        try:
            detokenize = ctx.detokenize if self._mapper.has_card_numbers else None
            return self._mapper.codec.encode(
                self._mapper.from_canonical(message, detokenize=detokenize)
            )
        except RecordEncodeError:
            raise
        except (ValueError, TypeError) as exc:
            raise AdapterEncodeError(NAME, str(exc)) from None

    def reject(self, error: AdapterDecodeError, ctx: EncodeContext) -> bytes | None:
        """No answer record: the layouts carry no reject of their own."""
        return None

    def describe(self, payload: bytes) -> tuple[list[FieldView], AdapterDecodeError | None]:
        """Every field with its offset, as ``isobridge inspect`` shows it (card numbers
        masked)."""
        views: list[FieldView] = []
        try:
            values = self._mapper.codec.decode(bytes(payload))
        except RecordDecodeError as exc:
            return views, exc
        for spec in self._mapper.codec.fields:
            if spec.key is not None and spec.key in values:
                views.append(
                    FieldView(spec.key, spec.type_text, scrub(str(values[spec.key])), spec.offset)
                )
        return views, None
