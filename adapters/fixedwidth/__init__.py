"""Fixed-width mainframe records described by COBOL copybooks: compile once, decode, encode.

The copybook compiler follows IBM Enterprise COBOL Language Reference for the clauses it
accepts (see :mod:`adapters.fixedwidth.parser`); each storage format has its own converter
module (:mod:`~adapters.fixedwidth.alphanumeric`, :mod:`~adapters.fixedwidth.zoned`,
:mod:`~adapters.fixedwidth.packed`, :mod:`~adapters.fixedwidth.binary`); the compiled layout
is plain data (:mod:`adapters.fixedwidth.spec`) and the codec builds its converters once
(:mod:`adapters.fixedwidth.codec`).

>>> from decimal import Decimal
>>> book = compile_copybook('''
...        01  REC.
...            05  NAME     PIC X(5).
...            05  AMOUNT   PIC S9(5)V99 COMP-3.
... ''')
>>> codec = book.record("REC")
>>> raw = codec.encode({"NAME": "ANNA", "AMOUNT": Decimal("-12.50")})
>>> raw.hex()
'c1d5d5c1400001250d'
>>> codec.decode(raw)
{'NAME': 'ANNA', 'AMOUNT': Decimal('-12.50')}
"""

from adapters.fixedwidth.codec import CodecOptions, RecordCodec
from adapters.fixedwidth.copybook import (
    CODEPAGES,
    Copybook,
    compile_copybook,
    layout_names,
    load_copybook,
    load_layout,
)
from adapters.fixedwidth.errors import CopybookSyntaxError, RecordDecodeError, RecordEncodeError

__all__ = [
    "CODEPAGES",
    "CodecOptions",
    "Copybook",
    "CopybookSyntaxError",
    "RecordCodec",
    "RecordDecodeError",
    "RecordEncodeError",
    "compile_copybook",
    "layout_names",
    "load_copybook",
    "load_layout",
]
