"""EBCDIC code pages for the whole project, including ``cp1047`` which Python does not ship.

Python's standard library has ``cp037`` (US/Canada), ``cp500`` (International) and
``cp273`` (Germany/Austria), but not ``cp1047`` (IBM-1047, "Latin-1 Open Systems", the code
page of z/OS UNIX System Services and of the IBM C compilers). Importing this module
registers a ``cp1047`` codec with :mod:`codecs`; :func:`ensure_codecs` does the same
explicitly and is idempotent.

The ``cp1047`` table is CCSID 1047 as published by IBM: it is ``cp037`` with six code points
rearranged (both pages encode the same Latin-1 repertoire, so it stays a bijection over all
256 bytes)::

    byte   cp037   cp1047
    0x5F   '¬'     '^'
    0xAD   'Ý'     '['
    0xB0   '^'     '¬'
    0xBA   '['     'Ý'
    0xBB   ']'     '¨'
    0xBD   '¨'     ']'

Control characters are those of the standard CCSID 1047 table, as in ``cp037``: 0x15 is NEL
(U+0085) and 0x25 is LF (U+000A). (z/OS UNIX "1047 with LF/NL swapped", as used by some
``iconv`` builds, is not what this codec implements.)

Accepted names: ``cp1047``, ``cp_1047``, ``ibm1047``, ``ibm_1047``, ``ibm-1047`` and
``1047`` (:func:`codecs.lookup` normalises case and punctuation).

>>> ensure_codecs()
>>> "[]^".encode("cp1047")
b'\\xad\\xbd_'
>>> "[]^".encode("cp037")
b'\\xba\\xbb\\xb0'
>>> b"\\xf0\\xf2\\xf0\\xf0".decode("cp1047")
'0200'
"""

from __future__ import annotations

import codecs
import threading
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = ["CP1047_DECODING_TABLE", "EBCDIC_CODEPAGES", "ensure_codecs"]

EBCDIC_CODEPAGES: Final[tuple[str, ...]] = ("cp037", "cp500", "cp1047", "cp273")
"""The EBCDIC code pages the project speaks (all usable with :meth:`str.encode` after import)."""

# IBM-1047 differs from IBM-037 at exactly these six positions (a permutation of the same
# six Latin-1 characters).
_CP1047_OVERRIDES: Final[dict[int, str]] = {
    0x5F: "^",
    0xAD: "[",
    0xB0: "\u00ac",  # NOT SIGN
    0xBA: "\u00dd",  # LATIN CAPITAL LETTER Y WITH ACUTE
    0xBB: "\u00a8",  # DIAERESIS
    0xBD: "]",
}


def _build_cp1047_table() -> str:
    table = list(bytes(range(256)).decode("cp037"))
    for position, char in _CP1047_OVERRIDES.items():
        table[position] = char
    return "".join(table)


CP1047_DECODING_TABLE: Final[str] = _build_cp1047_table()
"""Byte ``i`` of ``cp1047`` decodes to ``CP1047_DECODING_TABLE[i]`` (256 characters)."""

_CP1047_ENCODING_TABLE: Final = codecs.charmap_build(CP1047_DECODING_TABLE)

_CP1047_NAMES: Final[frozenset[str]] = frozenset(
    {"cp1047", "cp_1047", "ibm1047", "ibm_1047", "1047"}
)


class _Codec(codecs.Codec):
    def encode(self, input: str, errors: str = "strict") -> tuple[bytes, int]:
        return codecs.charmap_encode(input, errors, _CP1047_ENCODING_TABLE)

    def decode(self, input: ReadableBuffer, errors: str = "strict") -> tuple[str, int]:
        return codecs.charmap_decode(input, errors, CP1047_DECODING_TABLE)


class _IncrementalEncoder(codecs.IncrementalEncoder):
    def encode(self, input: str, final: bool = False) -> bytes:
        return codecs.charmap_encode(input, self.errors, _CP1047_ENCODING_TABLE)[0]


class _IncrementalDecoder(codecs.IncrementalDecoder):
    def decode(self, input: ReadableBuffer, final: bool = False) -> str:
        return codecs.charmap_decode(input, self.errors, CP1047_DECODING_TABLE)[0]


class _StreamWriter(_Codec, codecs.StreamWriter):
    pass


class _StreamReader(_Codec, codecs.StreamReader):
    pass


_CP1047_INFO: Final = codecs.CodecInfo(
    name="cp1047",
    encode=_Codec().encode,
    decode=_Codec().decode,
    incrementalencoder=_IncrementalEncoder,
    incrementaldecoder=_IncrementalDecoder,
    streamreader=_StreamReader,
    streamwriter=_StreamWriter,
)


def _search(name: str) -> codecs.CodecInfo | None:
    normalized = name.lower().replace("-", "_").replace(" ", "_")
    return _CP1047_INFO if normalized in _CP1047_NAMES else None


_lock = threading.Lock()
_registered = False


def ensure_codecs() -> None:
    """Register the ``cp1047`` codec with :mod:`codecs` (once; later calls do nothing).

    Called on import of this module. Codec search functions cannot be replaced, only
    added, so the registration is guarded by a flag and a lock rather than repeated.
    """
    global _registered
    with _lock:
        if not _registered:
            codecs.register(_search)
            _registered = True


ensure_codecs()
