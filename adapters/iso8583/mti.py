"""ISO 8583:1987 message type indicators <-> canonical kind, function and repeat flag.

An MTI is four digits: version (``0`` = 1987), class, function, origin. The classes the hub
speaks are 1 (authorization), 2 (financial), 4 (reversal) and 8 (network management); the
functions 0 request, 1 response, 2 advice, 3 advice response; the origins 0 (acquirer) and
1 (acquirer repeat: ``0401``, ``0421``). A financial request with processing code 31 is a
balance enquiry.

>>> meaning = parse_mti("0421")
>>> meaning.kind, meaning.function, meaning.repeat
(<MessageKind.REVERSAL: 'reversal'>, <MessageFunction.ADVICE: 'advice'>, True)
>>> build_mti(MessageKind.FINANCIAL, MessageFunction.RESPONSE, repeat=False)
'0210'
>>> parse_mti("0300")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
adapters.iso8583.mti.UnsupportedMtiError: unsupported MTI '0300': this adapter speaks 0100/...
"""

from __future__ import annotations

from dataclasses import dataclass

from canonical_model.messages import MessageFunction, MessageKind

__all__ = [
    "BALANCE_ENQUIRY_PROCESSING",
    "MtiMeaning",
    "UnsupportedMtiError",
    "build_mti",
    "correlation_class",
    "parse_mti",
    "response_mti",
]

BALANCE_ENQUIRY_PROCESSING = "31"

_CLASS_TO_KIND: dict[str, MessageKind] = {
    "1": MessageKind.AUTHORIZATION,
    "2": MessageKind.FINANCIAL,
    "4": MessageKind.REVERSAL,
    "8": MessageKind.NETWORK_MANAGEMENT,
}
_KIND_TO_CLASS: dict[MessageKind, str] = {kind: cls for cls, kind in _CLASS_TO_KIND.items()}
_KIND_TO_CLASS[MessageKind.BALANCE_ENQUIRY] = "2"

_FUNCTIONS: tuple[MessageFunction, ...] = (
    MessageFunction.REQUEST,
    MessageFunction.RESPONSE,
    MessageFunction.ADVICE,
    MessageFunction.ADVICE_RESPONSE,
)
_FUNCTION_DIGIT: dict[MessageFunction, str] = {f: str(i) for i, f in enumerate(_FUNCTIONS)}

_SUPPORTED = (
    "0100/0110/0120/0130, 0200/0210/0220/0230, 0400/0410/0420/0430, 0800/0810/0820/0830"
    " (and x401 / x421 repeats), ISO 8583:1987"
)


class UnsupportedMtiError(ValueError):
    """An MTI this adapter does not speak; the text lists the ones it does."""

    def __init__(self, mti: str) -> None:
        super().__init__(f"unsupported MTI {mti!r}: this adapter speaks {_SUPPORTED}")
        self.mti = mti


@dataclass(frozen=True, slots=True)
class MtiMeaning:
    """What an MTI says, in canonical terms."""

    kind: MessageKind
    function: MessageFunction
    repeat: bool


_PARSED: dict[str, MtiMeaning] = {}
for _cls, _kind in _CLASS_TO_KIND.items():
    for _i, _function in enumerate(_FUNCTIONS):
        for _origin in ("0", "1"):
            _PARSED[f"0{_cls}{_i}{_origin}"] = MtiMeaning(_kind, _function, _origin == "1")


def parse_mti(mti: str) -> MtiMeaning:
    """The canonical meaning of an MTI; :class:`UnsupportedMtiError` if it has none."""
    meaning = _PARSED.get(mti)
    if meaning is None:
        raise UnsupportedMtiError(mti)
    return meaning


def build_mti(kind: MessageKind, function: MessageFunction, *, repeat: bool) -> str:
    """The MTI for a canonical kind and function; ``ValueError`` for kinds ISO 8583 lacks."""
    cls = _KIND_TO_CLASS.get(kind)
    if cls is None:
        raise ValueError(f"ISO 8583 has no message class for kind {kind.value!r}")
    return f"0{cls}{_FUNCTION_DIGIT[function]}{'1' if repeat else '0'}"


def response_mti(mti: str) -> str | None:
    """The response MTI to a request or advice MTI (``0200`` -> ``0210``), else ``None``."""
    if len(mti) == 4 and mti.isdigit() and mti[2] in "02":
        return f"{mti[:2]}{int(mti[2]) + 1}0"
    return None


def correlation_class(mti: str) -> str:
    """The part of the MTI shared by a request and its response (version + class)."""
    return mti[:2]
