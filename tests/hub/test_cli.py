"""The ``isobridge`` command line, run in-process through ``main`` and once as a real process."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import iso8583
import pytest

from adapters.iso8583.adapter import Iso8583Adapter
from adapters.iso8583.samples import SAMPLES, TEST_PANS, sample_bytes
from adapters.iso8583.specs import SPECS, VARIANTS
from canonical_model import find_clear_pans, from_json, json_schema
from hub.bootstrap import Hub, build_hub
from hub.cli import main
from tests.support import fixed_vault

ROOT = Path(__file__).resolve().parents[2]
TRANSLATED = ["0100-authorization", "0200-purchase", "0420-reversal-advice", "0800-echo"]
# 0100 and 0200 carry track 2 / PIN / PAN-bearing chip tags, which the edge drops.
EXACT = {"0420-reversal-advice", "0800-echo"}


def run(
    *argv: str,
    stdin: bytes = b"",
    hub: Hub | None = None,
    environ: dict[str, str] | None = None,
) -> tuple[int, str, str, bytes]:
    """Run the CLI; returns (status, stdout text, stderr text, stdout bytes)."""
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="utf-8", write_through=True)
    err = io.StringIO()
    status = main(
        list(argv), stdin=io.BytesIO(stdin), stdout=out, stderr=err, hub=hub, environ=environ
    )
    out.flush()
    written = raw.getvalue()
    return status, written.decode("utf-8", "replace"), err.getvalue(), written


@pytest.fixture(autouse=True)
def initialized_vault(isolated_hub_home: Path) -> None:
    """The state directory's vault set up, as after ``isobridge vault init``."""
    status, out, err, _ = run("vault", "init")
    assert status == 0, err
    assert out.startswith("vault ready: sqlite:///")


def test_the_first_use_sets_up_the_embedded_vault_and_says_so(tmp_path: Path) -> None:
    home = tmp_path / "fresh-home"
    payload = sample_bytes("0800-echo", "ascii").hex().encode()
    status, _, err, _ = run(
        "translate", "--from", "iso8583", "--to", "canonical-json", "--hex", stdin=payload,
        environ={"ISOBRIDGE_HOME": str(home)},
    )  # fmt: skip
    assert status == 0
    assert err.splitlines() == [
        f"isobridge: created master key file {home / 'master-keys.json'}",
        f"isobridge: created vault sqlite:///{home / 'vault.db'}",
    ]
    assert (home / "vault.db").is_file()


def test_adapters_lists_every_variant_and_capability() -> None:
    status, out, _, _ = run("adapters")
    assert status == 0
    headings = [line for line in out.splitlines() if line and not line.startswith(" ")]
    assert headings == ["fixedwidth", "iso20022", "iso8583"]
    for variant in VARIANTS:
        assert variant in out
    assert "clear PAN:  needed to encode" in out
    assert "len2-tpdu" in out


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", TRANSLATED)
def test_translate_round_trips_through_iso8583(name: str, variant: str) -> None:
    payload = sample_bytes(name, variant)
    spec = f"iso8583:{variant}"
    status, out, err, _ = run(
        "translate", "--from", spec, "--to", spec, "--hex", stdin=payload.hex().encode()
    )
    assert (status, err) == (0, "")
    encoded = bytes.fromhex(out.strip())
    if name in EXACT:
        assert encoded == payload
    else:
        sent = iso8583.decode(payload, SPECS[variant])[0]
        got = iso8583.decode(encoded, SPECS[variant])[0]
        # Track 2 (35) and the PIN block (52) are dropped; the PAN, expiry and service code
        # they carried come back in fields 2, 14 and 40; PAN-bearing chip tags leave 55.
        rebuilt = {"p", "1", "2", "14", "35", "40", "52", "55"}
        assert {k: v for k, v in got.items() if k not in rebuilt} == {
            k: v for k, v in sent.items() if k not in rebuilt
        }
        assert "35" not in got
        assert "52" not in got
        assert got["2"] in TEST_PANS
        if "35" in sent:
            assert sent["35"].startswith(f"{got['2']}={got['14']}{got['40']}")


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", TRANSLATED)
def test_translate_to_canonical_json_and_back(name: str, variant: str) -> None:
    hub = build_hub(vault=fixed_vault())
    payload = sample_bytes(name, variant)
    spec = f"iso8583:{variant}"
    status, text, _, _ = run(
        "translate", "--from", spec, "--to", "canonical-json", "--hex",
        stdin=payload.hex().encode(), hub=hub,
    )  # fmt: skip
    assert status == 0
    assert find_clear_pans(text) == []
    message = from_json(text)
    status, out, err, _ = run(
        "translate", "--from", "canonical-json", "--to", spec, "--hex",
        stdin=text.encode(), hub=hub,
    )  # fmt: skip
    assert (status, err) == (0, "")
    adapter = Iso8583Adapter(variant)
    again = adapter.decode(bytes.fromhex(out.strip()), hub.decode_context(message.tenant))
    assert again.same_transaction(message)
    if name in EXACT:
        assert bytes.fromhex(out.strip()) == payload


def test_translate_across_variants_in_raw_bytes() -> None:
    payload = sample_bytes("0420-reversal-advice", "ebcdic-cp037")
    status, _, err, raw = run(
        "translate", "--from", "iso8583:ebcdic-cp037", "--to", "iso8583:ascii", stdin=payload
    )
    assert (status, err) == (0, "")
    assert raw == sample_bytes("0420-reversal-advice", "ascii")


def test_translate_reads_a_file(tmp_path: Path) -> None:
    source = tmp_path / "echo.bin"
    source.write_bytes(sample_bytes("0800-echo", "ascii"))
    status, out, _, _ = run("translate", "--from", "iso8583", "--to", "canonical-json", str(source))
    assert status == 0
    assert json.loads(out)["network"] == {"action": "echo", "information_code": "301"}


def test_missing_file_is_named() -> None:
    status, _, err, _ = run("translate", "--from", "iso8583", "--to", "canonical-json", "/nope")
    assert status == 1
    assert err == "isobridge: cannot read /nope: No such file or directory\n"


def test_bad_hex_names_the_offset() -> None:
    status, _, err, _ = run(
        "translate", "--from", "iso8583", "--to", "canonical-json", "--hex", stdin=b"0200Z1"
    )
    assert status == 1
    assert err == "isobridge: --hex input is not hexadecimal at offset 4\n"


def test_bad_message_names_field_and_offset_and_shows_the_answer() -> None:
    good = sample_bytes("0200-purchase", "ascii")
    broken = good.replace(b"000000002550", b"0000000025X0", 1)
    status, out, err, _ = run(
        "translate", "--from", "iso8583", "--to", "canonical-json", stdin=broken
    )
    assert (status, out) == (1, "")
    first, second = err.splitlines()
    assert first == (
        "isobridge: iso8583: cannot decode (field 4, offset 52): numeric field holds a non-digit"
    )
    answer = iso8583.decode(
        bytes.fromhex(second.removeprefix("answer on the wire: ")), SPECS["ascii"]
    )
    assert (answer[0]["t"], answer[0]["39"]) == ("0210", "30")
    assert find_clear_pans(err) == []


def test_truncated_message_never_shows_the_card_number() -> None:
    payload = sample_bytes("0100-authorization", "ascii")
    for cut in (8, 20, 30, len(payload) - 3):
        status, _, err, _ = run(
            "translate", "--from", "iso8583", "--to", "canonical-json", stdin=payload[:cut]
        )
        assert status == 1
        assert "cannot decode" in err
        assert find_clear_pans(err) == []


def test_unknown_adapter_suggests_the_close_name() -> None:
    status, _, err, _ = run("translate", "--from", "iso8538", "--to", "canonical-json")
    assert status == 2
    assert err == "isobridge: unknown adapter 'iso8538'; did you mean 'iso8583'?\n"


def test_unknown_variant_suggests_the_close_name() -> None:
    status, _, err, _ = run("translate", "--from", "iso8583:ebcdic-cp37", "--to", "canonical-json")
    assert status == 2
    assert "did you mean 'ebcdic-cp037'" in err


def test_canonical_json_errors_name_the_path() -> None:
    status, _, err, _ = run(
        "translate", "--from", "canonical-json", "--to", "iso8583", stdin=b'{"kind": 1}'
    )
    assert status == 1
    assert err.startswith("isobridge: canonical JSON: $")


def test_a_token_this_vault_never_issued_is_refused_clearly() -> None:
    hub = build_hub(vault=fixed_vault())
    _, text, _, _ = run(
        "translate", "--from", "iso8583", "--to", "canonical-json",
        stdin=sample_bytes("0200-balance-enquiry", "ascii"), hub=hub,
    )  # fmt: skip
    status, _, err, _ = run(
        "translate", "--from", "canonical-json", "--to", "iso8583", "--hex", stdin=text.encode()
    )
    assert status == 1
    assert "cannot encode (field 2): cannot detokenize" in err
    assert find_clear_pans(err) == []


def test_inspect_masks_the_card_number_and_hides_track_and_pin() -> None:
    payload = sample_bytes("0200-purchase", "ascii")
    status, out, _, _ = run("inspect", "--from", "iso8583", stdin=payload)
    assert status == 0
    assert find_clear_pans(out) == []
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert "[rest of track 2 hidden]" in lines["35"]
    assert "[pin_block hidden]" in lines["52"]
    assert "@" in lines["4"]
    assert "000000002550" in lines["4"]


def test_inspect_shows_fields_up_to_the_error_then_names_it() -> None:
    payload = sample_bytes("0100-authorization", "ebcdic-cp037")
    status, out, err, _ = run(
        "inspect", "--from", "iso8583:ebcdic-cp037", "--hex", stdin=payload[:60].hex().encode()
    )
    assert status == 1
    assert out.splitlines()[0].split()[0] == "t"
    assert "cannot decode (field" in err
    assert find_clear_pans(out + err) == []


def test_schema_prints_the_canonical_json_schema() -> None:
    status, out, _, _ = run("schema", "canonical")
    assert status == 0
    assert json.loads(out) == json_schema()


def test_demo_runs_and_leaks_no_card_number() -> None:
    status, out, _, _ = run("demo", "--variant", "ascii", "--terminals", "2", "--purchases", "30")
    assert status == 0
    assert "every check held: True" in out
    assert "reconciliation: 15 accounts, debits posted = approvals on every one" in out
    assert "clear PANs found in the canonical messages: 0" in out
    assert find_clear_pans(out) == []
    assert f"{len(SAMPLES)} messages decoded, {len(SAMPLES)} round-tripped" in out


def test_the_installed_command_runs_as_a_process() -> None:
    payload = sample_bytes("0800-echo", "ebcdic-cp1047")
    done = subprocess.run(
        [sys.executable, "-m", "hub.cli", "translate", "--from", "iso8583:ebcdic-cp1047",
         "--to", "iso8583:ebcdic-cp1047"],
        input=payload, capture_output=True, check=False, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout == payload


FIXTURES_20022 = ROOT / "tests" / "adapters" / "iso20022" / "fixtures"


@pytest.mark.parametrize("variant", VARIANTS)
def test_translate_a_card_purchase_to_pacs008_and_back(variant: str) -> None:
    hub = build_hub(vault=fixed_vault())
    request = sample_bytes("0200-purchase", variant)
    status, xml, err, _ = run(
        "translate", "--from", f"iso8583:{variant}", "--to", "iso20022:pacs.008",
        stdin=request, hub=hub,
    )  # fmt: skip
    assert (status, err) == (0, "")
    assert "<FIToFICstmrCdtTrf>" in xml
    assert find_clear_pans(xml) == []
    status, _, err, wire = run(
        "translate", "--from", "iso20022", "--to", f"iso8583:{variant}",
        stdin=xml.encode(), hub=hub,
    )  # fmt: skip
    assert (status, err) == (0, "")
    back = iso8583.decode(wire, SPECS[variant])[0]
    sent = iso8583.decode(request, SPECS[variant])[0]
    for field in ("4", "11", "37", "41", "42", "49"):
        assert back[field] == sent[field], field


def test_a_pacs008_with_two_transactions_becomes_a_json_array() -> None:
    hub = build_hub(vault=fixed_vault())
    xml = (FIXTURES_20022 / "fednow-pacs008.xml").read_bytes()
    status, text, _, _ = run("translate", "--from", "iso20022", "--to", "canonical-json",
                             stdin=xml, hub=hub)  # fmt: skip
    message = json.loads(text)
    second = {**message, "ids": {**message["ids"], "end_to_end_id": "E2E-2", "uetr": None}}
    second["ids"] = {k: v for k, v in second["ids"].items() if v is not None}
    both = json.dumps([message, second]).encode()
    status, xml_out, err, _ = run("translate", "--from", "canonical-json", "--to",
                                  "iso20022:pacs.008", stdin=both, hub=hub)  # fmt: skip
    assert (status, err) == (0, "")
    assert "<NbOfTxs>2</NbOfTxs>" in xml_out
    status, text, _, _ = run("translate", "--from", "iso20022", "--to", "canonical-json",
                             stdin=xml_out.encode(), hub=hub)  # fmt: skip
    assert [m["ids"]["end_to_end_id"] for m in json.loads(text)] == [
        message["ids"]["end_to_end_id"],
        "E2E-2",
    ]


def test_bad_iso20022_input_is_answered_with_a_pacs002_reject() -> None:
    xml = (
        (FIXTURES_20022 / "fednow-pacs008.xml")
        .read_bytes()
        .replace(b"<NbOfTxs>1</NbOfTxs>", b"<NbOfTxs>3</NbOfTxs>")
    )
    status, _, err, _ = run("translate", "--from", "iso20022", "--to", "canonical-json", stdin=xml)
    assert status == 1
    first, answer = err.split("\nanswer on the wire: ")
    assert "GrpHdr/NbOfTxs" in first
    assert "<GrpSts>RJCT</GrpSts>" in answer
    assert "<Cd>AM19</Cd>" in answer


def test_validate_prints_each_verdict_and_fails_on_any(tmp_path: Path) -> None:
    good = FIXTURES_20022 / "fednow-pacs008.xml"
    bad = tmp_path / "bad.xml"
    bad.write_bytes(good.read_bytes().replace(b"<ChrgBr>SLEV</ChrgBr>", b""))
    status, out, err, _ = run("validate", str(good), str(bad))
    assert status == 1
    lines = out.splitlines()
    assert lines[0] == f"{good}: VALID pacs.008.001.08"
    assert lines[1] == f"{bad}: INVALID pacs.008.001.08 (reason code FF01)"
    assert "ChrgBr" in lines[2]
    assert err == "isobridge: 1 of 2 file(s) failed validation\n"
    assert run("validate", str(good))[0] == 0


@pytest.mark.parametrize(("settled", "root"), [(False, "FIToFIPmtCxlReq"), (True, "PmtRtr")])
def test_a_card_reversal_becomes_camt056_before_settlement_and_pacs004_after(
    settled: bool, root: str
) -> None:
    hub = build_hub(vault=fixed_vault())
    status, text, _, _ = run(
        "translate", "--from", "iso8583", "--to", "canonical-json",
        stdin=sample_bytes("0420-reversal-advice", "ascii"), hub=hub,
    )  # fmt: skip
    message = json.loads(text)
    if settled:
        message["settlement_date"] = "2026-11-28"
    status, xml, err, _ = run(
        "translate", "--from", "canonical-json", "--to", "iso20022:reversal",
        stdin=json.dumps(message).encode(), hub=hub,
    )  # fmt: skip
    assert (status, err) == (0, "")
    assert f"<{root}>" in xml
    status, back, _, _ = run("translate", "--from", "iso20022", "--to", "canonical-json",
                             stdin=xml.encode(), hub=hub)  # fmt: skip
    decoded = json.loads(back)
    assert decoded["original"]["instruction_id"] == message["original"]["instruction_id"]
    assert decoded["amount"] == message["amount"]


def test_a_bad_log_format_in_the_environment_is_named() -> None:
    status, _, err, _ = run("adapters", environ={"ISOBRIDGE_LOG_FORMAT": "xml"})
    assert status == 2
    assert err == (
        "isobridge: environment: $ISOBRIDGE_LOG_FORMAT: unknown value 'xml' (known: text, json)\n"
    )
