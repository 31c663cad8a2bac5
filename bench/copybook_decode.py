"""Benchmark: the compiled copybook codec against hand-written ``struct`` code, one run.

The record is 200 bytes, cp037, 10 fields: 6 PIC X, 2 COMP-3 (one ``S9(13)V99``, one
``S9(7)V99``), a ``9(8)`` zoned date and a ``S9(4) COMP``, then FILLER. The floor decodes it
with one precompiled ``struct.Struct`` and the cheapest correct conversion per field (text:
``translate`` to Latin-1 + ``decode("latin-1").rstrip()``; COMP-3: ``bytes.hex`` +
``Decimal``; zoned: ``translate`` + ``int``) into the same dict the codec returns; the codec is
``compile_copybook(...).record(...).decode``. Both check every digit and sign: the results are
compared before timing.

Encoding the same records: the floor is one ``struct.pack`` of the cheapest exact
conversion per field (text: ``ljust`` + Latin-1 encode + ``translate``; COMP-3:
``bytes.fromhex`` of the digits; zoned: ``%08d`` + ``translate``), the codec is ``encode`` (one
generated function per layout) and, for the before / after figure, the same codec encoding
item by item as it did before the generated encoder. Then the hub's ``CB-REQUEST`` (a debit
posting with its level-88 tran code) both ways, in CPU microseconds per record.

Rounds alternate so that noise hits all alike; the figure reported is the median round. Run::

    .venv/bin/python -m bench.copybook_decode [--rounds 9] [--records 50000]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import struct
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from adapters.fixedwidth import RecordCodec, compile_copybook, load_layout

COPYBOOK = """
       01  BENCH-REC.
           05  B-TRAN-CODE         PIC X(4).
           05  B-POSTING-REF       PIC X(24).
           05  B-ACCOUNT-NO        PIC X(34).
           05  B-AMOUNT            PIC S9(13)V99 COMP-3.
           05  B-FEE               PIC S9(7)V99 COMP-3.
           05  B-CURRENCY          PIC X(3).
           05  B-VALUE-DATE        PIC 9(8).
           05  B-ITEM-COUNT        PIC S9(4) COMP.
           05  B-CHANNEL           PIC X(4).
           05  B-NARRATIVE         PIC X(35).
           05  FILLER              PIC X(73).
"""

_LAYOUT = struct.Struct(">4s24s34s8s5s3s8sh4s35s73x")
# cp037 -> Latin-1 byte for byte: ``field.translate(_TEXT).decode("latin-1")`` is the fastest
# exact cp037 decode (``decode("cp037")`` looks the codec up on every call).
_TEXT = bytes.maketrans(bytes(range(256)), bytes(range(256)).decode("cp037").encode("latin-1"))
_ZONED = bytes.maketrans(bytes(range(0xF0, 0xFA)), b"0123456789")
_SIGNS = {"c": "", "f": "", "d": "-"}


def _packed(raw: bytes, exponent: str) -> Decimal:
    text = raw.hex()
    body = text[:-1]
    sign = _SIGNS.get(text[-1])
    if sign is None or not body.isdigit():
        raise ValueError("invalid packed decimal")
    return Decimal(sign + body + exponent)


def floor_decode(data: bytes) -> dict[str, Any]:
    """The hand-written decoder: one struct unpack, one conversion per field."""
    code, ref, account, amount, fee, ccy, date, count, channel, narrative = _LAYOUT.unpack(data)
    digits = date.translate(_ZONED)
    if not digits.isdigit():
        raise ValueError("invalid zoned decimal")
    return {
        "B-TRAN-CODE": code.translate(_TEXT).decode("latin-1").rstrip(" "),
        "B-POSTING-REF": ref.translate(_TEXT).decode("latin-1").rstrip(" "),
        "B-ACCOUNT-NO": account.translate(_TEXT).decode("latin-1").rstrip(" "),
        "B-AMOUNT": _packed(amount, "E-2"),
        "B-FEE": _packed(fee, "E-2"),
        "B-CURRENCY": ccy.translate(_TEXT).decode("latin-1").rstrip(" "),
        "B-VALUE-DATE": int(digits),
        "B-ITEM-COUNT": count,
        "B-CHANNEL": channel.translate(_TEXT).decode("latin-1").rstrip(" "),
        "B-NARRATIVE": narrative.translate(_TEXT).decode("latin-1").rstrip(" "),
    }


_FROM_LATIN1 = bytes.maketrans(
    bytes(range(256)).decode("cp037").encode("latin-1"), bytes(range(256))
)
_ZONED_OUT = bytes.maketrans(b"0123456789", bytes(range(0xF0, 0xFA)))
_PACK = struct.Struct(">4s24s34s8s5s3s8sh4s35s73s")
_FILLER = " ".encode("cp037") * 73


def _text_out(value: str, size: int) -> bytes:
    if len(value) > size:
        raise ValueError("too long")
    return value.ljust(size).encode("latin-1").translate(_FROM_LATIN1)


def _packed_out(value: Decimal, nibbles: int) -> bytes:
    numerator, denominator = value.as_integer_ratio()
    unscaled, rest = divmod(numerator * 100, denominator)
    if rest or abs(unscaled) >= 10**nibbles:
        raise ValueError("does not fit")
    return bytes.fromhex(f"{abs(unscaled):0{nibbles}d}{'d' if value.is_signed() else 'c'}")


def floor_encode(values: dict[str, Any]) -> bytes:
    """The hand-written encoder: one conversion per field, one struct pack."""
    date = values["B-VALUE-DATE"]
    if not 0 <= date < 10**8:
        raise ValueError("date does not fit")
    return _PACK.pack(
        _text_out(values["B-TRAN-CODE"], 4),
        _text_out(values["B-POSTING-REF"], 24),
        _text_out(values["B-ACCOUNT-NO"], 34),
        _packed_out(values["B-AMOUNT"], 15),
        _packed_out(values["B-FEE"], 9),
        _text_out(values["B-CURRENCY"], 3),
        (b"%08d" % date).translate(_ZONED_OUT),
        values["B-ITEM-COUNT"],
        _text_out(values["B-CHANNEL"], 4),
        _text_out(values["B-NARRATIVE"], 35),
        _FILLER,
    )


def item_by_item(codec: RecordCodec) -> RecordCodec:
    """``codec`` encoding as before the generated encoder: each value through its item's
    encoder into a copy of the template."""
    before = copy.copy(codec)
    before._fast_encode = None
    return before


def hub_posting(i: int) -> dict[str, Any]:
    """The CB-REQUEST values of a card payment's debit posting, as the hub's mapping gives."""
    return {
        "CB-DEBIT-POSTING": True,
        "CB-POSTING-REF": f"{i:024X}",
        "CB-ORIG-POSTING-REF": "",
        "CB-ACCOUNT-NO": "DE89370400440532013000",
        "CB-CONTRA-ACCOUNT": "",
        "CB-AMOUNT": Decimal(i % 100_000) / 100,
        "CB-CURRENCY": "EUR",
        "CB-VALUE-DATE": 20261129,
        "CB-NARRATIVE": f"CARD PAYMENT TERMINAL {i % 10**8:08d}",
    }


def values(count: int) -> list[dict[str, Any]]:
    """``count`` distinct BENCH-REC values."""
    return [
        {
            "B-TRAN-CODE": "DEBT",
            "B-POSTING-REF": f"HUB-{i:012d}",
            "B-ACCOUNT-NO": "DE89370400440532013000",
            "B-AMOUNT": Decimal(i * 7919 % 10**9 - 5 * 10**8) / 100,
            "B-FEE": Decimal(i % 1000) / 100,
            "B-CURRENCY": "EUR",
            "B-VALUE-DATE": 20261129,
            "B-ITEM-COUNT": i % 100,
            "B-CHANNEL": "CARD",
            "B-NARRATIVE": f"POSTING {i}",
        }
        for i in range(count)
    ]


def records(count: int) -> list[bytes]:
    """``count`` distinct records, encoded by the codec."""
    codec = compile_copybook(COPYBOOK).record("BENCH-REC")
    return [codec.encode(v) for v in values(count)]


def _time(decode: Callable[[bytes], dict[str, Any]], data: list[bytes]) -> float:
    started = time.perf_counter()
    for record in data:
        decode(record)
    return time.perf_counter() - started


def _cpu(encode: Callable[[dict[str, Any]], bytes], data: list[dict[str, Any]]) -> float:
    started = time.process_time()
    for record in data:
        encode(record)
    return time.process_time() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--records", type=int, default=50_000)
    args = parser.parse_args(argv)
    data = records(args.records)
    codec = compile_copybook(COPYBOOK).record("BENCH-REC")
    for record in data[:1000]:
        assert codec.decode(record) == floor_decode(record)
    floor: list[float] = []
    compiled: list[float] = []
    for _ in range(args.rounds):
        floor.append(_time(floor_decode, data))
        compiled.append(_time(codec.decode, data))
    floor_rate = args.records / statistics.median(floor)
    codec_rate = args.records / statistics.median(compiled)
    print(f"python {sys.version.split()[0]}, {args.records} records x {args.rounds} rounds")
    print(f"struct floor:            {floor_rate:>12,.0f} records/s")
    print(f"compiled copybook codec: {codec_rate:>12,.0f} records/s")
    print(f"codec / floor:           {codec_rate / floor_rate:>12.2f}")
    given = values(args.records)
    before = item_by_item(codec)
    for value in given[:1000]:
        assert codec.encode(value) == floor_encode(value) == before.encode(value)
    request = load_layout("corebank_request").record("CB-REQUEST")
    request_before = item_by_item(request)
    postings = [hub_posting(i) for i in range(args.records)]
    for posting in postings[:1000]:
        assert request.encode(posting) == request_before.encode(posting)
    timings: dict[str, list[float]] = {}
    runs = {
        "encode: struct floor": (floor_encode, given),
        "encode: generated": (codec.encode, given),
        "encode: item by item (before)": (before.encode, given),
        "CB-REQUEST: generated": (request.encode, postings),
        "CB-REQUEST: item by item (before)": (request_before.encode, postings),
    }
    for _ in range(args.rounds):
        for label, (encode, inputs) in runs.items():
            timings.setdefault(label, []).append(_cpu(encode, inputs))
    print("encoding, CPU per record (median round):")
    for label, seconds in timings.items():
        print(f"  {label:<34} {statistics.median(seconds) / args.records * 1e6:>8.2f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
