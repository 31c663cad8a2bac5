"""``isobridge copybook show`` and ``isobridge convert``: mainframe record files from the shell.

Commands::

    isobridge copybook show X.cpy             the layout: field, offset, length, type
        [--codepage CP] [--record NAME]       (and level-88 conditions, REDEFINES, OCCURS)
    isobridge convert FILE --copybook X.cpy   a record file -> JSON lines, CSV, canonical
        --to jsonl|csv|canonical-json|camt.053   JSON lines or a camt.053 statement
        [--record-format F|FB|V|VB|gnucobol-variable] [--codepage CP]
        [--overpunch ebcdic|ascii] [--native-byteorder big|little]
        [--record NAME] [--record-rule RECORD=CONDITION]... [--redefines ALT=CONDITION]...
        [--mapping M] [--output OUT] [--rejects FILE]
    isobridge convert FILE.jsonl --copybook X.cpy --to records
                                              the way back: JSON lines (as --to jsonl writes
                                              them; ``_layout`` picks the 01 level) -> records
                                              in --record-format and --codepage (EBCDIC by
                                              default)

``--copybook`` and ``--mapping`` take a file, or the name of a built-in layout
(``corebank_request``, ``corebank_reply``, ``corebank_statement``) and mapping
(``corebank-request``, ``corebank-reply``, ``corebank-statement``). ``canonical-json``
needs a record mapping, ``camt.053`` a statement mapping.

Conversion streams: records are read through a bounded buffer and written as they are
decoded, so a file of any size converts in a few megabytes. A progress bar goes to stderr.
A bad record stops the conversion with the record number, field and offset, exit status 1;
with ``--rejects FILE`` it is written to FILE instead (raw, in the input's record format, so
the file can be fixed and converted again), its reason goes to stderr, and the summary says
how many were rejected.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import itertools
import json
import os
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, TextIO, cast

from adapters.base import AdapterError
from adapters.fixedwidth import Copybook, RecordCodec, layout_names, load_copybook, load_layout
from adapters.fixedwidth.adapter import VARIANTS, builtin_mapping_path
from adapters.fixedwidth.canonical import RecordMapper
from adapters.fixedwidth.errors import CopybookSyntaxError, RecordDecodeError
from adapters.fixedwidth.mapping import MappingError, load_mapping
from adapters.fixedwidth.recordformat import (
    RECORD_FORMATS,
    RecordFormatError,
    RecordWriter,
    read_records,
)
from adapters.fixedwidth.spec import FieldSpec, RecordSpec
from adapters.fixedwidth.statement import (
    StatementAssembler,
    StatementMapping,
    load_statement_mapping,
)
from adapters.iso20022.camt053 import write_statement
from adapters.iso20022.components import ComponentError
from canonical_model.json_form import to_json
from canonical_model.messages import CanonicalMessage
from canonical_model.pan import random_hex_id
from hub.cli_support import EXIT_USAGE, CliError, ProgressBar

__all__ = ["add_copybook_commands", "run_copybook_command"]

TARGETS = ("jsonl", "csv", "canonical-json", "camt.053", "records")
_PROGRESS_EVERY = 4096
_MAX_REASONS = 100
_STATEMENT_MAPPINGS = {"corebank-statement": "corebank_statement.toml"}


def add_copybook_commands(commands: Any) -> None:
    """Add ``copybook`` and ``convert`` to the top-level subparsers."""
    copybook = commands.add_parser("copybook", help="COBOL copybooks: show a layout")
    actions = copybook.add_subparsers(dest="copybook_command", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="layout table: field, offset, length, type")
    show.add_argument("copybook", help="copybook file or built-in layout name")
    _codec_options(show)

    convert = commands.add_parser("convert", help="convert a mainframe record file")
    convert.add_argument("input", help="record file to read")
    convert.add_argument("--copybook", required=True, help="copybook file or built-in layout")
    convert.add_argument("--to", dest="target", required=True, choices=TARGETS)
    convert.add_argument("--record-format", default="F", choices=RECORD_FORMATS)
    convert.add_argument("--mapping", help="mapping file or built-in mapping name")
    convert.add_argument("--output", help="file to write (default: stdout)")
    convert.add_argument("--rejects", help="write bad records here instead of stopping")
    _codec_options(convert)


def _codec_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--codepage", help="cp037 (default), cp500, cp1047, cp273 or ascii")
    parser.add_argument("--overpunch", choices=("ebcdic", "ascii"), help="zoned sign convention")
    parser.add_argument(
        "--native-byteorder", choices=("big", "little"), default="big", help="COMP-5 byte order"
    )
    parser.add_argument("--record", help="the 01 level to use (default: by record rules)")
    parser.add_argument(
        "--record-rule",
        action="append",
        default=[],
        metavar="RECORD=CONDITION",
        help="a level-88 name that identifies a record layout (repeatable)",
    )
    parser.add_argument(
        "--redefines",
        action="append",
        default=[],
        metavar="ALTERNATIVE=CONDITION",
        help="a level-88 name that selects a REDEFINES alternative (repeatable)",
    )


def _pairs(items: list[str], option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        name, sep, condition = item.partition("=")
        if not sep or not name or not condition:
            raise CliError(f"{option} takes NAME=CONDITION, not {item!r}", EXIT_USAGE)
        pairs[name.strip().upper()] = condition.strip().upper()
    return pairs


def _book(args: argparse.Namespace, codepage: str | None = None) -> Copybook:
    options: dict[str, Any] = {"native_byteorder": args.native_byteorder}
    if args.record_rule:
        options["record_rules"] = _pairs(args.record_rule, "--record-rule")
    if args.redefines:
        options["redefines"] = _pairs(args.redefines, "--redefines")
    if args.overpunch:
        options["overpunch"] = args.overpunch
    chosen = args.codepage or codepage or "cp037"
    try:
        path = Path(args.copybook)
        if not path.exists() and args.copybook in layout_names():
            return load_layout(args.copybook, codepage=chosen, **options)
        return load_copybook(path, codepage=chosen, **options)
    except CopybookSyntaxError as exc:
        raise CliError(str(exc)) from None
    except (ValueError, KeyError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def run_copybook_command(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """Run ``copybook ...`` or ``convert``; returns the exit status (CliError on failure)."""
    if args.command == "copybook":
        show_layout(_book(args), stdout, record=args.record)
        return 0
    return _convert(args, stdout, stderr)


# -- show ----------------------------------------------------------------------------------


def show_layout(book: Copybook, out: TextIO, *, record: str | None = None) -> None:
    """Print each record's layout table."""
    codecs = [book.record(record)] if record else list(book.records.values())
    for codec in codecs:
        spec = codec.spec
        length = (
            f"{spec.length} bytes"
            if spec.min_length == spec.length
            else f"{spec.min_length} to {spec.length} bytes"
        )
        out.write(f"{spec.name}  ({length})\n")
        rows: list[tuple[int, int, str, str, str, str, int]] = []
        for group in spec.groups[1:]:
            notes = []
            if group.dims:
                notes.append(f"OCCURS {group.dims[-1].maximum}")
            if group.redefines:
                notes.append(f"REDEFINES {group.redefines}")
            label = f"{'  ' * _depth(group.path)}{group.level:02d} {group.name or 'FILLER'}"
            rows.append(
                (group.line, group.column, label, "group", str(group.size), " ".join(notes),
                 group.offset)
            )  # fmt: skip
        for f in spec.fields:
            label = f"{'  ' * _depth(f.path)}{f.level:02d} {f.key or 'FILLER'}"
            rows.append(
                (f.line, f.column, label, f.type_text, str(f.size), _extra(f, spec), f.offset)
            )
        rows.sort()
        width = max([5] + [len(r[2]) for r in rows])
        type_width = max([4] + [len(r[3]) for r in rows])
        out.write(f"  {'FIELD':<{width}}  {'OFFSET':>6}  {'LENGTH':>6}  TYPE\n")
        for _, _, label, type_text, size, notes_text, offset in rows:
            line = f"  {label:<{width}}  {offset:>6}  {size:>6}  {type_text:<{type_width}}"
            out.write(f"{line}  {notes_text}".rstrip() + "\n")
        for condition in spec.conditions:
            values = ", ".join(_literal(low, high) for low, high in condition.values)
            out.write(f"  88 {condition.name}: {condition.field} = {values}\n")
        out.write("\n")


def _depth(path: tuple[str, ...]) -> int:
    return max(0, len(path) - 1)


def _extra(f: FieldSpec, spec: RecordSpec) -> str:
    parts = []
    if f.choices:
        area, alternative = f.choices[-1]
        names = spec.redefines[area].alternatives
        if alternative and names[alternative] == f.name:
            parts.append(f"REDEFINES {names[0]}")
    for dim in f.dims:
        parts.append(f"OCCURS {dim.maximum}" + (" DEPENDING" if dim.odo is not None else ""))
    if f.shifted_by:
        parts.append("moves with OCCURS DEPENDING ON")
    return " ".join(parts)


def _literal(low: object, high: object) -> str:
    text = repr(low) if isinstance(low, str) else str(low)
    if high is None:
        return text
    return f"{text} THRU {repr(high) if isinstance(high, str) else high}"


# -- convert -------------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


class _Rejects:
    """Bad records, written raw in the input's record format; reasons to stderr."""

    def __init__(self, path: str | None, record_format: str, err: TextIO) -> None:
        self.path = path
        self.count = 0
        self.err = err
        self._stream: BinaryIO | None = open(path, "wb") if path else None  # noqa: SIM115
        self._writer = RecordWriter(self._stream, record_format) if self._stream else None

    def reject(self, raw: bytes, error: AdapterError) -> None:
        if self._writer is None:
            raise CliError(str(error))
        self.count += 1
        self._writer.write(raw)
        if self.count <= _MAX_REASONS:
            self.err.write(f"isobridge: rejected: {error}\n")
        elif self.count == _MAX_REASONS + 1:
            self.err.write("isobridge: more rejects; reasons not shown\n")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._stream is not None:
            self._stream.close()


def _statement_mapping(name: str) -> StatementMapping:
    path = Path(name)
    if not path.exists() and name in _STATEMENT_MAPPINGS:
        path = builtin_mapping_path("corebank-request").parent / _STATEMENT_MAPPINGS[name]
    try:
        return load_statement_mapping(path)
    except (MappingError, OSError, CopybookSyntaxError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def _record_mapper(name: str, book: Copybook, record: str | None) -> RecordMapper:
    path = Path(name)
    if not path.exists() and name in VARIANTS:
        path = builtin_mapping_path(name)
    try:
        mapping = load_mapping(path)
        return RecordMapper(book.record(record or mapping.record), mapping)
    except (MappingError, OSError, KeyError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def _records(
    args: argparse.Namespace, book: Copybook, stream: BinaryIO, progress: Callable[[], None]
) -> Iterator[tuple[int, bytes]]:
    length = max(codec.length for codec in book.records.values())
    if args.record:
        length = book.record(args.record).length
    for count, item in enumerate(read_records(stream, args.record_format, length=length), 1):
        if count % _PROGRESS_EVERY == 0:
            progress()
        yield item


def _convert(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    statement: StatementMapping | None = None
    if args.target == "camt.053":
        statement = _statement_mapping(args.mapping or "corebank-statement")
        book = _book(args, statement.codepage) if args.copybook else statement.compile()
    else:
        book = _book(args)
    if args.target == "records":
        return _to_records(args, book, stdout, stderr)
    mapper = None
    if args.target == "canonical-json":
        if not args.mapping:
            raise CliError("--to canonical-json needs --mapping", EXIT_USAGE)
        mapper = _record_mapper(args.mapping, book, args.record)
        if mapper.has_card_numbers:
            raise CliError(
                "the mapping tokenizes card numbers, which needs the vault: use "
                "isobridge translate --from fixedwidth:... (one record) instead",
                EXIT_USAGE,
            )
    try:
        source = open(args.input, "rb")  # noqa: SIM115
    except OSError as exc:
        raise CliError(f"cannot read {args.input}: {exc.strerror}") from None
    total = os.fstat(source.fileno()).st_size
    bar = ProgressBar(f"convert {Path(args.input).name}", stderr)

    def progress() -> None:
        bar(min(source.tell(), total), total)

    rejects = _Rejects(args.rejects, args.record_format, stderr)
    written = 0
    try:
        records = _records(args, book, source, progress)
        if statement is not None:
            if args.output:
                with open(args.output, "wb") as sink:
                    written = _to_camt053(args, book, statement, records, rejects, sink)
            else:
                stdout.flush()
                written = _to_camt053(args, book, statement, records, rejects, _binary(stdout))
        elif args.output:
            with open(args.output, "w", encoding="utf-8", newline="") as out:
                written = _to_lines(args, book, mapper, records, rejects, out)
        else:
            written = _to_lines(args, book, mapper, records, rejects, stdout)
    except RecordFormatError as exc:
        raise CliError(f"{exc} (the file cannot be read past this point)") from None
    except OSError as exc:
        raise CliError(f"cannot write: {exc.strerror}") from None
    finally:
        source.close()
        rejects.close()
    bar(total, total)
    summary = f"isobridge: {written} records converted"
    if args.rejects:
        summary += f", {rejects.count} rejected"
        if rejects.count:
            summary += f" (written to {args.rejects})"
    stderr.write(summary + "\n")
    return 0


def _decode(
    book: Copybook, record_name: str | None, number: int, raw: bytes
) -> tuple[RecordCodec, dict[str, Any]]:
    codec = book.record(record_name) if record_name else book.select(raw, record=number)
    return codec, codec.decode(raw, record=number)


def _to_lines(
    args: argparse.Namespace,
    book: Copybook,
    mapper: RecordMapper | None,
    records: Iterator[tuple[int, bytes]],
    rejects: _Rejects,
    out: TextIO,
) -> int:
    multi = len(book.records) > 1 and not args.record
    csv_writer = None
    columns: list[str] = []
    if args.target == "csv":
        codecs = [book.record(args.record)] if args.record else list(book.records.values())
        columns = (["_layout"] if multi else []) + list(
            dict.fromkeys(key for codec in codecs for key in codec.keys)
        )
        csv_writer = csv.writer(out, lineterminator="\n")
        csv_writer.writerow(columns)
    ids = (str(uuid.uuid4()) for _ in itertools.count())
    written = 0
    for number, raw in records:
        try:
            codec, values = _decode(book, args.record, number, raw)
            if mapper is not None:
                if codec is not mapper.codec:
                    raise RecordDecodeError(
                        f"layout {codec.name} is not the mapping's {mapper.codec.name}",
                        record=number,
                    )
                message = mapper.to_canonical(
                    values, tenant=args.tenant, message_id=next(ids), record=number
                )
        except AdapterError as exc:
            rejects.reject(raw, exc)
            continue
        if mapper is not None:
            out.write(to_json(message) + "\n")
        elif csv_writer is not None:
            row = {"_layout": codec.name, **values}
            csv_writer.writerow([_csv_cell(row.get(column, "")) for column in columns])
        else:
            document = {"_layout": codec.name, **values} if multi else values
            out.write(
                json.dumps({k: _json_value(v) for k, v in document.items()}, ensure_ascii=False)
                + "\n"
            )
        written += 1
    return written


def _csv_cell(value: Any) -> Any:
    if isinstance(value, list):
        return json.dumps(_json_value(value), ensure_ascii=False)
    return value


def _first_pass(
    args: argparse.Namespace, book: Copybook, mapping: StatementMapping
) -> dict[tuple[str, int], tuple[Decimal, int]]:
    """The closing balances (one per account), which camt.053 puts before the entries.

    Bad records are skipped here: the second pass reports them.
    """

    def headers_and_trailers(stream: BinaryIO) -> Iterator[tuple[str, dict[str, Any]]]:
        for number, raw in read_records(stream, args.record_format, length=_length(book)):
            try:
                codec, values = _decode(book, None, number, raw)
            except AdapterError:
                continue
            if codec.name in (mapping.header, mapping.trailer):
                yield codec.name, values

    with open(args.input, "rb") as stream:
        try:
            return mapping.closing_balances(headers_and_trailers(stream))
        except RecordFormatError:
            return {}


def _to_camt053(
    args: argparse.Namespace,
    book: Copybook,
    mapping: StatementMapping,
    records: Iterator[tuple[int, bytes]],
    rejects: _Rejects,
    sink: BinaryIO,
) -> int:
    assembler = StatementAssembler(
        mapping,
        book,
        tenant=args.tenant,
        new_message_id=(str(uuid.uuid4()) for _ in itertools.count()),
        closing=_first_pass(args, book, mapping),
    )
    count = 0

    def messages() -> Iterator[CanonicalMessage]:
        nonlocal count
        for number, raw in records:
            try:
                codec, values = _decode(book, None, number, raw)
                message = assembler.feed(codec.name, values, record=number)
            except AdapterError as exc:
                rejects.reject(raw, exc)
                continue
            count += 1
            if message is not None:
                yield message

    try:
        write_statement(
            messages(),
            sink,
            message_id=f"ISOBRIDGE-{random_hex_id(10)}",
            now=lambda: dt.datetime.now(dt.UTC),
        )
    except ComponentError as exc:
        raise CliError(f"cannot write camt.053: {exc}") from None
    sink.flush()
    return count


def _to_records(args: argparse.Namespace, book: Copybook, stdout: TextIO, stderr: TextIO) -> int:
    """JSON lines (as ``--to jsonl`` writes them) -> records in ``--record-format``."""
    try:
        source = open(args.input, "rb")  # noqa: SIM115
    except OSError as exc:
        raise CliError(f"cannot read {args.input}: {exc.strerror}") from None
    total = os.fstat(source.fileno()).st_size
    bar = ProgressBar(f"convert {Path(args.input).name}", stderr)
    sink: BinaryIO
    if args.output:
        sink = open(args.output, "wb")  # noqa: SIM115
    else:
        stdout.flush()
        sink = _binary(stdout)
    rejects: TextIO | None = (
        open(args.rejects, "w", encoding="utf-8") if args.rejects else None  # noqa: SIM115
    )
    length = book.record(args.record).length if args.record else None
    writer = RecordWriter(sink, args.record_format, length=length)
    written = rejected = 0
    try:
        for number, line in enumerate(source, 1):
            if number % _PROGRESS_EVERY == 0:
                bar(min(source.tell(), total), total)
            if not line.strip():
                continue
            try:
                record = _encode_line(book, args.record, line, number)
            except (AdapterError, CliError) as exc:
                if rejects is None:
                    raise CliError(str(exc)) from None
                rejected += 1
                rejects.write(line.decode("utf-8", "replace").rstrip("\n") + "\n")
                if rejected <= _MAX_REASONS:
                    stderr.write(f"isobridge: rejected: {exc}\n")
                continue
            writer.write(record)
            written += 1
        writer.close()
    finally:
        source.close()
        if args.output:
            sink.close()
        else:
            sink.flush()
        if rejects is not None:
            rejects.close()
    bar(total, total)
    summary = f"isobridge: {written} records written"
    if args.rejects:
        summary += f", {rejected} rejected"
    stderr.write(summary + "\n")
    return 0


def _encode_line(book: Copybook, record: str | None, line: bytes, number: int) -> bytes:
    try:
        values = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CliError(f"line {number}: not JSON ({exc.msg}, column {exc.colno})") from None
    except UnicodeDecodeError:
        raise CliError(f"line {number}: not UTF-8 text") from None
    if not isinstance(values, dict):
        raise CliError(f"line {number}: expected a JSON object")
    layout = values.pop("_layout", None) or record
    try:
        codec = book.record(layout)
    except KeyError as exc:
        raise CliError(f"line {number}: {exc.args[0]}") from None
    try:
        return codec.encode(values)
    except AdapterError as exc:
        raise CliError(f"line {number}: {exc}") from None


def _length(book: Copybook) -> int:
    return max(codec.length for codec in book.records.values())


class _TextSink(io.RawIOBase):
    """A binary sink writing UTF-8 into a text stream (stdout replaced by a StringIO)."""

    def __init__(self, out: TextIO) -> None:
        super().__init__()
        self.out = out

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.out.write(bytes(data).decode("utf-8"))
        return len(data)


def _binary(out: TextIO) -> BinaryIO:
    buffer = getattr(out, "buffer", None)
    if buffer is not None:
        return cast(BinaryIO, buffer)
    return cast(BinaryIO, _TextSink(out))
