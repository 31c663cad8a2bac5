"""``isobridge mask``: end to end through the command line, on files, with real keys."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from adapters.framing import get_framer
from adapters.iso8583.samples import SAMPLES, TEST_PANS, sample_bytes
from adapters.iso20022.rules import iban_problem
from hub.cli import main
from tests.adapters.fixedwidth.samples import statement_records
from tests.hub.masking.test_iso20022 import document
from vault.keys import FileKeyProvider

REPO = Path(__file__).resolve().parents[2]


def run(*argv: str, environ: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), stdout=out, stderr=err, environ=environ or {})
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "master-keys.json"
    FileKeyProvider.create(path)
    return path


def capture(path: Path) -> Path:
    framer = get_framer("len2-binary")
    path.write_bytes(b"".join(framer.frame(sample_bytes(name, "ascii")) for name in SAMPLES))
    return path


def test_a_capture_masks_the_same_under_the_same_key_and_differently_under_another(
    tmp_path: Path, key_file: Path
) -> None:
    source = capture(tmp_path / "capture.bin")
    first, second, third = (tmp_path / name for name in ("a.bin", "b.bin", "c.bin"))
    status, _, err = run("--key-file", str(key_file), "mask", str(source), str(first))
    assert status == 0, err
    assert f"{len(SAMPLES)} messages masked (iso8583)" in err
    assert run("mask", str(source), str(second), "--key-file", str(key_file))[0] == 0
    assert first.read_bytes() == second.read_bytes()
    other = tmp_path / "other-keys.json"
    FileKeyProvider.create(other)
    assert run("mask", str(source), str(third), "--key-file", str(other))[0] == 0
    assert third.read_bytes() != first.read_bytes()
    for pan in TEST_PANS:
        assert pan.encode() not in first.read_bytes()


def test_the_state_directory_key_is_the_default(tmp_path: Path) -> None:
    home = tmp_path / "home"
    FileKeyProvider.create(home / "master-keys.json")
    source = capture(tmp_path / "capture.bin")
    status, _, err = run(
        "mask", str(source), str(tmp_path / "out.bin"), environ={"ISOBRIDGE_HOME": str(home)}
    )
    assert status == 0, err
    status, _, err = run(
        "mask", str(source), str(tmp_path / "out.bin"), environ={"ISOBRIDGE_HOME": str(tmp_path)}
    )
    assert status == 2
    assert "no masking key" in err and "--key random" in err


def test_passphrase_and_random_keys(tmp_path: Path) -> None:
    source = capture(tmp_path / "capture.bin")
    env = {"MASK_PASSPHRASE": "a passphrase for the test data"}
    outs = [tmp_path / f"{n}.bin" for n in range(4)]
    assert (
        run("mask", str(source), str(outs[0]), "--key", "env:MASK_PASSPHRASE", environ=env)[0] == 0
    )
    assert (
        run("mask", str(source), str(outs[1]), "--key", "env:MASK_PASSPHRASE", environ=env)[0] == 0
    )
    assert outs[0].read_bytes() == outs[1].read_bytes()
    assert run("mask", str(source), str(outs[2]), "--key", "random")[0] == 0
    assert run("mask", str(source), str(outs[3]), "--key", "random")[0] == 0
    assert outs[2].read_bytes() != outs[3].read_bytes()
    status, _, err = run("mask", str(source), str(outs[0]), "--key", "hunter2hunter2hunter2")
    assert status == 2 and "would show in ps" in err
    status, _, err = run("mask", str(source), str(outs[0]), "--key", "env:NOPE")
    assert status == 2 and "$NOPE is not set" in err


def test_an_iso20022_file_is_detected_masked_and_still_validates(
    tmp_path: Path, key_file: Path
) -> None:
    source = tmp_path / "pacs008.xml"
    source.write_bytes(document("DE89370400440532013000", "Anna Schmidt", "0012345678"))
    target = tmp_path / "masked.xml"
    status, _, err = run("--key-file", str(key_file), "mask", str(source), str(target))
    assert status == 0, err
    assert "(iso20022)" in err
    status, out, _ = run("validate", str(target))
    assert status == 0, out
    assert "VALID pacs.008.001.08" in out
    assert b"Anna Schmidt" not in target.read_bytes()


def test_a_fixed_width_file_masks_and_still_converts(tmp_path: Path, key_file: Path) -> None:
    source = tmp_path / "stmt.dat"
    source.write_bytes(b"".join(statement_records()))
    target = tmp_path / "stmt.masked"
    status, _, err = run(
        "--key-file", str(key_file), "mask", str(source), str(target),
        "--copybook", "corebank_statement", "--field", "SD-NARRATIVE=keep",
    )  # fmt: skip
    assert status == 0, err
    assert "4 records masked (fixedwidth)" in err
    status, out, err = run(
        "convert", str(target), "--copybook", "corebank_statement", "--to", "jsonl"
    )
    assert status == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert iban_problem(rows[0]["SH-ACCOUNT-NO"]) is None
    assert rows[0]["SH-ACCOUNT-NO"] != "DE89370400440532013000"
    assert rows[1]["SD-NARRATIVE"] == "POS PURCHASE"  # kept, as told
    status, out, err = run(
        "convert", str(target), "--copybook", "corebank_statement", "--to", "camt.053"
    )
    assert status == 0, err


def test_a_failure_names_file_message_and_field_and_leaves_no_output(tmp_path: Path) -> None:
    framer = get_framer("len2-binary")
    source = tmp_path / "capture.bin"
    source.write_bytes(
        framer.frame(sample_bytes("0800-echo", "ascii")) + framer.frame(b"0200" + b"7" * 16 + b"xx")
    )
    target = tmp_path / "out.bin"
    status, _, err = run("mask", str(source), str(target), "--key", "random")
    assert status == 1
    assert err.startswith(f"isobridge: {source}: message 2, field ")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == [source]


def test_usage_errors(tmp_path: Path) -> None:
    source = capture(tmp_path / "capture.bin")
    status, _, err = run("mask", str(source), str(source), "--key", "random")
    assert status == 2 and "OUT is IN" in err
    status, _, err = run(
        "mask", str(source), str(tmp_path / "o"), "--key", "random", "--field", "48"
    )
    assert status == 2 and "NAME=VALUE" in err
    status, _, err = run(
        "mask", str(source), str(tmp_path / "o"), "--key", "random", "--field", "48=shuffle"
    )
    assert status == 2 and "unknown rule 'shuffle'" in err
    status, _, err = run(
        "mask", str(source), str(tmp_path / "o"), "--key", "random", "--format", "fixedwidth"
    )
    assert status == 2 and "needs --copybook" in err


def test_progress_bar_on_request(tmp_path: Path) -> None:
    source = capture(tmp_path / "capture.bin")
    _, _, quiet = run("mask", str(source), str(tmp_path / "a"), "--key", "random")
    _, _, shown = run("mask", str(source), str(tmp_path / "b"), "--key", "random", "--progress")
    assert "[" not in quiet
    assert f"mask capture.bin [{'#' * 30}]" in shown


# -- bounded memory ---------------------------------------------------------------------------

# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across execve, so a child would report the
# test process's own size; VmHWM belongs to the new address space.
_MEASURE = """
import re, sys
from pathlib import Path
from hub.cli import main
status = main(sys.argv[1:])
peak = re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)
print(peak, status)
"""


def peak_kib(*argv: str) -> int:
    """The peak resident size (KiB) of a fresh process running ``isobridge ARGV``."""
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, *argv],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
    )
    peak, status = result.stdout.split()
    assert status == "0", result.stderr
    return int(peak)


def xml_with(transactions: int) -> bytes:
    head, _, rest = document("DE89370400440532013000", "Anna Schmidt", "0").partition(
        b"<CdtTrfTxInf>"
    )
    body, _, tail = rest.partition(b"</CdtTrfTxInf>")
    parts = (
        b"<CdtTrfTxInf>" + body.replace(b"<Id>0</Id>", b"<Id>%010d</Id>" % n) + b"</CdtTrfTxInf>"
        for n in range(transactions)
    )
    return head + b"".join(parts) + tail


@pytest.mark.parametrize("fmt", ["iso20022", "iso8583", "fixedwidth"])
def test_a_large_file_streams_in_bounded_memory(tmp_path: Path, fmt: str) -> None:
    small, large = tmp_path / "small", tmp_path / "large"
    options: list[str] = []
    if fmt == "iso20022":
        small.write_bytes(xml_with(100))
        large.write_bytes(xml_with(8000))
    elif fmt == "iso8583":
        framed = get_framer("len2-binary").frame(sample_bytes("0100-authorization", "ascii"))
        small.write_bytes(framed * 100)
        large.write_bytes(framed * 20_000)
    else:
        records = b"".join(statement_records())
        small.write_bytes(records * 25)
        large.write_bytes(records * 12_000)
        options = ["--copybook", "corebank_statement"]
    growth = large.stat().st_size - small.stat().st_size
    assert growth > 5_000_000
    before = peak_kib("mask", str(small), str(tmp_path / "s.out"), "--key", "random", *options)
    after = peak_kib("mask", str(large), str(tmp_path / "l.out"), "--key", "random", *options)
    # Held in memory, the extra input alone would add its size (a parsed XML tree ten times
    # that); streamed, the peak moves by the masking caches (bounded) at most.
    assert (after - before) * 1024 < growth / 2, (before, after, growth)
