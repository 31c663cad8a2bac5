"""camt.053 streaming: a ~100 MB statement converted camt.053 -> canonical -> camt.053.

Generates a camt.053.001.08 of about 100 MB with :func:`~adapters.iso20022.camt053.
write_statement` (the entry count computed from the measured size of one entry), then
times a full conversion: :func:`~adapters.iso20022.camt053.iter_statement` (safe streaming
decode to canonical messages) piped into ``write_statement`` (streaming re-encode, each
``Ntry`` arranged in schema order). Reports seconds, entries/s, MB/s, peak memory
(tracemalloc peak of a traced sample run, and the process's ``ru_maxrss``), and the floor:
lxml's raw ``iterparse`` of the same file (count ``Ntry``, clear).

tracemalloc slows the safe parser's per-element checks about tenfold and does not see
libxml2's tree, so the timed run is untraced; a 5,000-entry conversion is traced
for the Python-side peak, and ``ru_maxrss`` covers everything (libxml2 included).

Run: ``.venv/bin/python -m bench.camt053_stream``.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

from lxml import etree

from adapters.iso20022.camt053 import (
    entry_message,
    iter_statement,
    statement_message,
    write_statement,
)
from canonical_model.messages import (
    Account,
    Balance,
    CanonicalMessage,
    Party,
    Statement,
    StatementEntry,
)
from canonical_model.money import Money

TARGET_BYTES = 100 * 1024 * 1024
SAMPLE_ENTRIES = 2_000
TRACED_ENTRIES = 5_000
NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
HEADER = Statement(
    "STMT-BENCH",
    Account(iban="CH9300762011623852957", currency="CHF"),
    sequence_number="1",
    created_at=NOW,
    from_date=dt.datetime(2026, 11, 27, tzinfo=dt.UTC),
    to_date=dt.datetime(2026, 11, 27, 23, 59, 59, tzinfo=dt.UTC),
    balances=(
        Balance("OPBD", Money.of("1000.00", "CHF"), True, dt.date(2026, 11, 27)),
        Balance("CLBD", Money.of("2000.00", "CHF"), True, dt.date(2026, 11, 27)),
    ),
)


def _now() -> dt.datetime:
    return NOW


def _entry(number: int) -> StatementEntry:
    credit = number % 2 == 0
    return StatementEntry(
        amount=Money.of(f"{number % 10_000}.{number % 100:02d}", "CHF"),
        credit=credit,
        booking_date=dt.date(2026, 11, 27),
        value_date=dt.date(2026, 11, 27),
        account_servicer_reference=f"ASR{number:012d}",
        end_to_end_id=f"E2E-{number:012d}",
        bank_transaction_code="PMNT/RCDT/ESCT" if credit else "PMNT/ICDT/DMCT",
        counterparty=Party(name=f"Counterparty {number % 997}"),
        counterparty_account=Account(iban="DE89370400440532013000"),
        remittance=(f"Invoice {number}",),
    )


def _messages(entries: int) -> Iterator[CanonicalMessage]:
    yield statement_message(HEADER, tenant="bench", message_id="h")
    for number in range(entries):
        yield entry_message(HEADER, _entry(number), tenant="bench", message_id="e")


def _write(path: Path, entries: int) -> int:
    with path.open("wb") as sink:
        return write_statement(
            _messages(entries),
            sink,
            message_id="BENCH",
            now=_now,
        )


def _convert(source: Path, target: Path) -> int:
    ids = itertools.count()
    with target.open("wb") as sink:
        return write_statement(
            iter_statement(source, tenant="bench", new_message_id=lambda: f"m{next(ids)}"),
            sink,
            message_id="CONVERTED",
            now=_now,
        )


def _raw_iterparse(path: Path) -> int:
    count = 0
    for _, element in etree.iterparse(str(path), events=("end",)):
        if isinstance(element.tag, str) and element.tag.endswith("}Ntry"):
            count += 1
            element.clear()
            parent = element.getparent()
            if parent is not None:
                while element.getprevious() is not None:
                    del parent[0]
    return count


def _maxrss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        sample = io.BytesIO()
        write_statement(_messages(SAMPLE_ENTRIES), sample, message_id="S", now=_now)
        per_entry = len(sample.getvalue()) / SAMPLE_ENTRIES
        entries = int(TARGET_BYTES / per_entry)
        source, target = base / "statement.xml", base / "converted.xml"
        start = time.perf_counter()
        _write(source, entries)
        generated = time.perf_counter() - start
        size_mb = source.stat().st_size / 1e6
        print(f"entry size      {per_entry:.0f} bytes -> {entries:,} entries, {size_mb:.1f} MB")
        print(f"generate        {generated:.2f} s ({entries / generated:,.0f} entries/s)")

        start = time.perf_counter()
        floor_count = _raw_iterparse(source)
        floor = time.perf_counter() - start
        assert floor_count == entries
        print(
            f"raw iterparse   {floor:.2f} s ({entries / floor:,.0f} entries/s, "
            f"{size_mb / floor:.1f} MB/s)"
        )

        start = time.perf_counter()
        decoded = sum(
            1
            for message in iter_statement(source, tenant="bench", new_message_id=lambda: "m")
            if message.statement_entry is not None
        )
        decode = time.perf_counter() - start
        assert decoded == entries
        print(
            f"decode only     {decode:.2f} s ({entries / decode:,.0f} entries/s, "
            f"{size_mb / decode:.1f} MB/s, {decode / floor:.1f}x raw iterparse)"
        )

        start = time.perf_counter()
        converted = _convert(source, target)
        conversion = time.perf_counter() - start
        assert converted == entries
        print(
            f"conversion      {conversion:.2f} s ({entries / conversion:,.0f} entries/s, "
            f"{size_mb / conversion:.1f} MB/s in, {conversion / floor:.1f}x raw iterparse)"
        )
        print(f"output          {target.stat().st_size / 1e6:.1f} MB")

        prefix = base / "prefix.xml"
        _write(prefix, TRACED_ENTRIES)
        tracemalloc.start()
        _convert(prefix, base / "prefix-out.xml")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"tracemalloc     {peak / 1e6:.2f} MB peak (conversion of {TRACED_ENTRIES:,} entries)"
        )
        print(f"ru_maxrss       {_maxrss_mb():.1f} MB (whole process, libxml2 included)")


if __name__ == "__main__":
    main()
