"""``isobridge routes check`` and ``isobridge routes explain``."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from adapters.iso8583.samples import sample_bytes
from canonical_model import find_clear_pans
from hub.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "routing" / "examples" / "routes.toml"

CANONICAL_TRANSFER = {
    "canonical_version": 1,
    "kind": "credit_transfer",
    "function": "request",
    "tenant": "acme",
    "ids": {"message_id": "m-7"},
    "amount": {"amount": "120.00", "currency": "EUR"},
    "debtor_account": {"iban": "DE89370400440532013000"},
}


def run(*argv: str, stdin: bytes = b"") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), stdin=io.BytesIO(stdin), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def test_check_prints_the_rules_of_a_good_file() -> None:
    status, out, err = run("routes", "check", str(EXAMPLE))
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"{EXAMPLE}: OK, 7 rule(s), BINs of 6 digits"
    assert lines[4].split()[:4] == ["4", "card-on-us", "->", "core.cards"]
    assert lines[-1] == "  fallback dead-letter (no route rule matches this message)"


def test_check_refuses_a_bad_file_naming_line_rule_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "routes.toml"
    bad.write_text(EXAMPLE.read_text().replace('processing_code = "31"', 'processing_code = "3"'))
    status, out, err = run("routes", "check", str(bad))
    assert (status, out) == (1, "")
    line = EXAMPLE.read_text().splitlines().index('processing_code = "31"') + 1
    assert err == (
        f"isobridge: {bad}:{line}: rule 5 'balance-enquiry': key 'processing_code': '3' is not "
        "a processing code: expected the transaction type (2 digits, e.g. '00') or the whole "
        "code (6 digits, e.g. '003000')\n"
    )


def test_check_of_a_missing_file() -> None:
    status, _, err = run("routes", "check", "no-such.toml")
    assert status == 1
    assert err == "isobridge: no-such.toml: cannot read: No such file or directory\n"


def test_explain_a_canonical_json_message(tmp_path: Path) -> None:
    message = tmp_path / "transfer.json"
    message.write_text(json.dumps(CANONICAL_TRANSFER))
    status, out, err = run("routes", "explain", "--rules", str(EXAMPLE), str(message))
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "message m-7: credit_transfer request, tenant acme"
    assert "rule 6 'acme-sepa': MATCH -> clearing.sepa" in lines
    assert lines[-2:] == [
        "route: clearing.sepa (rule 'acme-sepa')",
        "ordering key: acme/account/DE89370400440532013000",
    ]


def test_explain_reads_stdin_and_arrays(tmp_path: Path) -> None:
    other = {**CANONICAL_TRANSFER, "kind": "statement", "ids": {"message_id": "m-8"}}
    data = json.dumps([CANONICAL_TRANSFER, other]).encode()
    status, out, _ = run("routes", "explain", "--rules", str(EXAMPLE), "-", stdin=data)
    assert status == 0
    assert out.count("\nroute: ") == 2
    assert "route: dead-letter (no route rule matches this message)\n" in out
    assert "no rule matched: fallback -> the dead-letter queue" in out


def test_explain_a_wire_message_decoded_through_the_vault() -> None:
    payload = sample_bytes("0200-purchase", "ebcdic-cp037")
    status, out, err = run(
        "--tenant", "acme", "routes", "explain", "--rules", str(EXAMPLE),
        "--from", "iso8583:ebcdic-cp037", "-", stdin=payload,
    )  # fmt: skip
    assert status == 0, err
    assert "rule 3 'card-large-eur': no match" in out
    assert "  amount: 25.50 EUR is below the minimum 10000.00 EUR" in out
    assert "route: core.cards (rule 'card-on-us')" in out
    assert find_clear_pans(out + err) == []


def test_explain_a_hex_wire_message() -> None:
    payload = sample_bytes("0200-balance-enquiry", "ascii").hex().encode()
    status, out, err = run(
        "routes", "explain", "--rules", str(EXAMPLE), "--from", "iso8583", "--hex", "-",
        stdin=payload,
    )  # fmt: skip
    assert status == 0, err
    assert "route: core.balances (rule 'balance-enquiry')" in out
    assert find_clear_pans(out + err) == []


@pytest.mark.parametrize(
    ("argv", "stdin", "status", "error"),
    [
        (["--from", "iso8538", "-"], b"00", 2, "unknown adapter 'iso8538'; did you mean"),
        (["--hex", "-"], b"00", 2, "--hex needs --from ADAPTER"),
        (["-"], b"\x02\x00", 1, "canonical JSON: not JSON"),
        (["-"], b'{"kind": "financial"}', 1, "canonical JSON: $"),
        (["-"], b"[]", 1, "the input holds no message"),
        (["--from", "iso8583", "-"], b"0200", 1, "iso8583: cannot decode"),
        (["--from", "iso8583", "--hex", "-"], b"0g", 1, "--hex input is not hexadecimal"),
    ],
)
def test_explain_answers_bad_input_clearly(
    argv: list[str], stdin: bytes, status: int, error: str
) -> None:
    found, out, err = run("routes", "explain", "--rules", str(EXAMPLE), *argv, stdin=stdin)
    assert (found, out) == (status, "")
    assert err.startswith("isobridge: ")
    assert error in err
