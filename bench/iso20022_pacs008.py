"""Benchmark: the ISO 20022 adapter against raw lxml on the same pacs.008, in one run.

Floor: ``lxml.etree.fromstring`` + ``XMLSchema.validate`` of the pacs.008.001.08 message
(lxml alone, the schema compiled once). Adapter paths, measured in the same rounds:

- decode: hardened parse, envelope split, version detection, XSD validation, business
  rules, mapping to canonical messages;
- encode: canonical -> ``Document`` in schema order -> XSD validation -> UTF-8 bytes.

Throughput is reported against the floor (target: the adapter at least 0.5x the floor,
that is at most twice its time). Run::

    .venv/bin/python -m bench.iso20022_pacs008 [--rounds 15] [--ops 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from lxml import etree

from adapters.base import DecodeContext, EncodeContext
from adapters.iso20022.adapter import Iso20022Adapter
from adapters.iso20022.catalog import MESSAGE_TYPES, xsd_path
from vault.memory import InMemoryVault

MESSAGE = (
    Path(__file__).resolve().parent.parent
    / "tests" / "adapters" / "iso20022" / "fixtures" / "fednow-pacs008.xml"
)  # fmt: skip


def _time_ops(operation: Callable[[], object], ops: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(ops):
        operation()
    return (time.perf_counter_ns() - start) / ops / 1000.0


def run(rounds: int, ops: int) -> dict[str, float]:
    payload = MESSAGE.read_bytes()
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    schema = etree.XMLSchema(etree.parse(str(xsd_path(MESSAGE_TYPES["pacs.008.001.08"])), parser))
    adapter = Iso20022Adapter("pacs.008")
    vault = InMemoryVault()
    decode_ctx = DecodeContext("bench", vault, new_message_id=lambda: "bench")
    encode_ctx = EncodeContext("bench")
    message = adapter.decode(payload, decode_ctx)

    def floor() -> bool:
        return bool(schema.validate(etree.fromstring(payload, parser)))

    assert floor()
    cases: dict[str, Callable[[], object]] = {
        "lxml parse + XSD validate (floor)": floor,
        "adapter decode (parse, XSD, rules, map)": lambda: adapter.decode(payload, decode_ctx),
        "adapter encode (map, order, XSD, bytes)": lambda: adapter.encode(message, encode_ctx),
    }
    samples: dict[str, list[float]] = {label: [] for label in cases}
    for operation in cases.values():
        _time_ops(operation, max(1, ops // 10))
    for _ in range(rounds):
        for label, operation in cases.items():
            samples[label].append(_time_ops(operation, ops))
    return {label: statistics.median(values) for label, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--ops", type=int, default=300)
    args = parser.parse_args(argv)
    lxml_version = ".".join(map(str, etree.LXML_VERSION))
    print(f"python {sys.version.split()[0]}, lxml {lxml_version}, {MESSAGE.name}")
    print(f"rounds {args.rounds} x {args.ops} messages each, median round\n")
    results = run(args.rounds, args.ops)
    floor = results["lxml parse + XSD validate (floor)"]
    for label, micros in results.items():
        print(
            f"  {label:<42} {micros:8.1f} us/message  {1e6 / micros:9,.0f}/s"
            f"  {floor / micros:5.2f}x floor throughput"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
