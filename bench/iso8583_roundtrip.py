"""Benchmark: the ISO 8583 adapter path against raw pyiso8583, on the same 0200, in one run.

Floor: ``iso8583.decode`` + ``iso8583.encode`` of the message (pyiso8583 alone).
Adapter path: ``Iso8583Adapter.decode`` -> canonical message -> ``Iso8583Adapter.encode``,
measured twice: with tokenization excluded (a lookup table stands in for the vault) and
included (the in-memory vault: HMAC fingerprint, token derivation, audited detokenization).

Rounds alternate between the three so that machine noise hits all of them alike; the
figure reported is the median round. Run::

    .venv/bin/python -m bench.iso8583_roundtrip [--variant ascii] [--rounds 15] [--ops 2000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from collections.abc import Callable

import iso8583

from adapters.base import DecodeContext, EncodeContext
from adapters.iso8583.adapter import Iso8583Adapter
from adapters.iso8583.samples import SAMPLES
from adapters.iso8583.specs import SPECS, VARIANTS
from canonical_model.pan import PanToken
from vault.memory import InMemoryVault

BENCH_MESSAGE = {
    **{k: v for k, v in SAMPLES["0100-authorization"].items() if k != "55"},
    "t": "0200",
    "55": SAMPLES["0100-authorization"]["55"].replace("5A084761739001010010", ""),
}
"""A 0200 purchase: PAN in field 2, 19 fields, EMV data (no PAN-bearing tag, so the
adapter's output is byte-identical to its input and both paths do the same work)."""

TENANT = "bench"
NOW = dt.datetime(2026, 11, 28, 16, 0, tzinfo=dt.UTC)


class _LookupTokenizer:
    """Tokenization excluded: a precomputed table, the cheapest tokenize possible."""

    def __init__(self, pan: str, token: PanToken) -> None:
        self._token = {pan: token}
        self._pan = {token: pan}

    def tokenize(self, pan: str, *, tenant: str) -> PanToken:
        return self._token[pan]

    def detokenize(self, token: PanToken, *, tenant: str, purpose: str) -> str:
        return self._pan[token]


def _message_id() -> str:
    return "bench"


def _time_ops(operation: Callable[[], object], ops: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(ops):
        operation()
    return (time.perf_counter_ns() - start) / ops / 1000.0


def run(variant: str, rounds: int, ops: int) -> dict[str, float]:
    spec = SPECS[variant]
    payload = bytes(iso8583.encode(dict(BENCH_MESSAGE), spec)[0])
    adapter = Iso8583Adapter(variant)
    vault = InMemoryVault()
    real_token = vault.tokenize(BENCH_MESSAGE["2"], tenant=TENANT)
    lookup = _LookupTokenizer(BENCH_MESSAGE["2"], real_token)

    def now() -> dt.datetime:
        return NOW

    contexts = {
        "adapter, tokenization excluded": (
            DecodeContext(TENANT, lookup, now=now, new_message_id=_message_id),
            EncodeContext(TENANT, lookup),
        ),
        "adapter, tokenization included": (
            DecodeContext(TENANT, vault, now=now, new_message_id=_message_id),
            EncodeContext(TENANT, vault),
        ),
    }

    def raw_round_trip() -> bytes:
        decoded, _ = iso8583.decode(payload, spec)
        return bytes(iso8583.encode(decoded, spec)[0])

    def adapter_round_trip(decode_ctx: DecodeContext, encode_ctx: EncodeContext) -> bytes:
        return adapter.encode(adapter.decode(payload, decode_ctx), encode_ctx)

    assert raw_round_trip() == payload
    for decode_ctx, encode_ctx in contexts.values():
        assert adapter_round_trip(decode_ctx, encode_ctx) == payload

    cases: dict[str, Callable[[], object]] = {"pyiso8583 decode + encode (floor)": raw_round_trip}
    for label, (decode_ctx, encode_ctx) in contexts.items():
        cases[label] = lambda d=decode_ctx, e=encode_ctx: adapter_round_trip(d, e)  # type: ignore[misc]
    samples: dict[str, list[float]] = {label: [] for label in cases}
    for operation in cases.values():
        _time_ops(operation, ops // 10)  # warm-up
    for _ in range(rounds):
        for label, operation in cases.items():
            samples[label].append(_time_ops(operation, ops))
    return {label: statistics.median(values) for label, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--variant", choices=VARIANTS, action="append")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--ops", type=int, default=2000)
    args = parser.parse_args(argv)
    print(f"python {sys.version.split()[0]}, pyiso8583 {iso8583.__version__}")
    print(f"rounds {args.rounds} x {args.ops} round trips each, median round\n")
    for variant in args.variant or ["ascii", "ebcdic-cp037"]:
        results = run(variant, args.rounds, args.ops)
        floor = results["pyiso8583 decode + encode (floor)"]
        print(f"variant {variant}:")
        for label, micros in results.items():
            print(f"  {label:<36} {micros:8.1f} us/round trip   {micros / floor:5.2f}x floor")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
