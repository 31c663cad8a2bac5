"""XSD validation and envelope split (adapters.iso20022.validation), on every shared sample.

The key test runs every file of ``shared/iso20022/samples/MANIFEST.json`` through the whole
front end: hardened parsing, envelope split, message type from the ``Document`` namespace,
validation of the ``Document`` and of the ``AppHdr``; the result must be the manifest's.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from adapters.iso20022 import validation
from adapters.iso20022.catalog import MESSAGE_TYPES, MessageType, by_namespace
from adapters.iso20022.safexml import XmlInputError, parse_xml
from adapters.iso20022.validation import (
    DEFAULT_MAX_PROBLEMS,
    SchemaProblem,
    SchemaValidator,
    split_envelope,
)

SHARED = Path(__file__).resolve().parents[4] / "shared" / "iso20022"
SAMPLES = SHARED / "samples"
MANIFEST = SAMPLES / "MANIFEST.json"

PACS008 = MESSAGE_TYPES["pacs.008.001.08"]
HEAD = MESSAGE_TYPES["head.001.001.02"]
NS = PACS008.namespace
HEAD_NS = HEAD.namespace
SECRET = "DE89370400440532013000"  # an IBAN-shaped value that must never be echoed

VALID_PACS008 = f"""<Document xmlns="{NS}">
  <FIToFICstmrCdtTrf>
    <GrpHdr>
      <MsgId>M-1</MsgId>
      <CreDtTm>2026-11-29T10:00:00Z</CreDtTm>
      <NbOfTxs>1</NbOfTxs>
      <SttlmInf><SttlmMtd>INDA</SttlmMtd></SttlmInf>
    </GrpHdr>
    <CdtTrfTxInf>
      <PmtId><EndToEndId>E2E-1</EndToEndId></PmtId>
      <IntrBkSttlmAmt Ccy="EUR">10.00</IntrBkSttlmAmt>
      <ChrgBr>SLEV</ChrgBr>
      <Dbtr><Nm>Debtor</Nm></Dbtr>
      <DbtrAgt><FinInstnId><BICFI>BANKDEFFXXX</BICFI></FinInstnId></DbtrAgt>
      <CdtrAgt><FinInstnId><BICFI>BANKGB2LXXX</BICFI></FinInstnId></CdtrAgt>
      <Cdtr><Nm>Creditor</Nm></Cdtr>
    </CdtTrfTxInf>
  </FIToFICstmrCdtTrf>
</Document>"""

APP_HDR = f"""<AppHdr xmlns="{HEAD_NS}">
  <Fr><FIId><FinInstnId><BICFI>BANKDEFFXXX</BICFI></FinInstnId></FIId></Fr>
  <To><FIId><FinInstnId><BICFI>BANKGB2LXXX</BICFI></FinInstnId></FIId></To>
  <BizMsgIdr>B-1</BizMsgIdr>
  <MsgDefIdr>pacs.008.001.08</MsgDefIdr>
  <CreDt>2026-11-29T10:00:00Z</CreDt>
</AppHdr>"""


def pacs008(old: str = "", new: str = "") -> etree._Element:
    """The valid pacs.008, with ``old`` replaced by ``new``, parsed."""
    text = VALID_PACS008
    if old:
        assert old in text, old
        text = text.replace(old, new, 1)
    return parse_xml(text.encode())


def problems(document: etree._Element, message: MessageType = PACS008) -> list[SchemaProblem]:
    return SchemaValidator().validate(document, message)


def mentions(problem: SchemaProblem) -> str:
    return f"{problem.path} {problem.reason} {problem.expected or ''}"


# -- every shared sample --------------------------------------------------------------------


def manifest_entries() -> list[Any]:
    if not MANIFEST.is_file():
        return [
            pytest.param(
                None, id="no-samples", marks=pytest.mark.skip(reason=f"{MANIFEST} is not present")
            )
        ]
    entries = json.loads(MANIFEST.read_text())
    return [pytest.param(entry, id=entry["file"]) for entry in entries]


def local_path(path: str) -> str:
    """``/pacs:Document/pacs:X`` -> ``/Document/X``."""
    return re.sub(r"(?<=/)[A-Za-z_][\w.-]*:", "", path)


def local_names(reason: str) -> list[str]:
    """The element names quoted in an xmlschema reason, without namespace or prefix."""
    names = []
    for quoted in re.findall(r"'([^']+)'", reason):
        name = re.sub(r"^\{[^}]*\}", "", quoted).rsplit(":", 1)[-1]
        names.append(name)
    return names


def assert_matches_manifest_errors(found: list[SchemaProblem], errors: list[str]) -> None:
    """Each manifest error ("PATH: REASON") is reported on the same element, naming the same
    element names (the unexpected child, what was expected)."""
    assert errors, "an INVALID part lists its errors"
    for error in errors:
        path, _, reason = error.partition(": ")
        where = local_path(path)
        names = local_names(reason)
        assert any(
            problem.path.startswith(where) and all(name in mentions(problem) for name in names)
            for problem in found
        ), f"{error!r} not among {[str(problem) for problem in found]}"


@pytest.mark.parametrize("entry", manifest_entries())
def test_shared_sample(entry: dict[str, Any]) -> None:
    data = (SAMPLES / entry["file"]).read_bytes()
    if entry["status"] == "MALFORMED":
        with pytest.raises(XmlInputError):
            parse_xml(data)
        return
    root = parse_xml(data)
    app_hdr, document = split_envelope(root)
    message = by_namespace(etree.QName(document).namespace or "")
    assert message.id == entry["msgid"]
    parts = {message.id: document}
    if app_hdr is not None:
        header = by_namespace(etree.QName(app_hdr).namespace or "")
        assert header.is_header
        parts[header.id] = app_hdr
    expected = dict(part.split(":") for part in entry["parts"])
    assert set(parts) == set(expected)
    validator = SchemaValidator()
    for message_id, element in parts.items():
        found = validator.validate(element, MESSAGE_TYPES[message_id])
        if expected[message_id] == "VALID":
            assert found == [], [str(problem) for problem in found]
        else:
            assert_matches_manifest_errors(found, entry["errors"])
    if entry["status"] == "VALID":
        assert set(expected.values()) == {"VALID"}


# -- validation -------------------------------------------------------------------------


def test_valid_document_has_no_problems() -> None:
    document = pacs008()
    assert problems(document) == []
    assert SchemaValidator().is_valid(document, PACS008)


def test_valid_header() -> None:
    assert problems(parse_xml(APP_HDR.encode()), HEAD) == []


def test_unexpected_child_points_at_the_child() -> None:
    document = pacs008("<Cdtr><Nm>Creditor</Nm></Cdtr>", "")
    [problem] = problems(document)
    assert problem.path == "/Document/FIToFICstmrCdtTrf/CdtTrfTxInf"
    assert problem.reason == "The content of element 'CdtTrfTxInf' is not complete"
    assert problem.expected == "Cdtr"
    assert problem.line == 9


def test_out_of_order_child() -> None:
    document = pacs008("<NbOfTxs>1</NbOfTxs>", "")
    [problem] = problems(document)
    assert problem.path == "/Document/FIToFICstmrCdtTrf/GrpHdr/SttlmInf"
    assert problem.reason == "Unexpected child with tag 'SttlmInf' at position 3"
    assert problem.expected == "NbOfTxs"
    assert problem.line == 7
    assert str(problem) == (
        "/Document/FIToFICstmrCdtTrf/GrpHdr/SttlmInf: Unexpected child with tag 'SttlmInf'"
        " at position 3; expected NbOfTxs (line 7)"
    )


def test_repeated_elements_are_indexed() -> None:
    document = pacs008(
        "</CdtTrfTxInf>",
        "</CdtTrfTxInf><CdtTrfTxInf><PmtId><EndToEndId>E2</EndToEndId></PmtId></CdtTrfTxInf>",
    )
    [problem] = problems(document)
    assert problem.path == "/Document/FIToFICstmrCdtTrf/CdtTrfTxInf[2]"
    assert problem.expected == "IntrBkSttlmAmt"


@pytest.mark.parametrize(
    ("old", "new", "path", "reason"),
    [
        (
            "<ChrgBr>SLEV</ChrgBr>",
            f"<ChrgBr>{SECRET}</ChrgBr>",
            "/Document/FIToFICstmrCdtTrf/CdtTrfTxInf/ChrgBr",
            "value must be one of ['DEBT', 'CRED', 'SHAR', 'SLEV']",
        ),
        (
            'Ccy="EUR"',
            f'Ccy="{SECRET}"',
            "/Document/FIToFICstmrCdtTrf/CdtTrfTxInf/IntrBkSttlmAmt",
            "attribute Ccy='...': value doesn't match any pattern of ['[A-Z]{3,3}']",
        ),
        (
            ">10.00<",
            f">{SECRET}X<",
            "/Document/FIToFICstmrCdtTrf/CdtTrfTxInf/IntrBkSttlmAmt",
            "invalid value '...' for xs:decimal",
        ),
        (
            "<BICFI>BANKDEFFXXX</BICFI>",
            f"<BICFI>{SECRET}</BICFI>",
            "/Document/FIToFICstmrCdtTrf/CdtTrfTxInf/DbtrAgt/FinInstnId/BICFI",
            "value doesn't match any pattern of",
        ),
        (
            "<Nm>Debtor</Nm>",
            f"<Nm>{SECRET * 10}</Nm>",
            "/Document/FIToFICstmrCdtTrf/CdtTrfTxInf/Dbtr/Nm",
            "value length cannot be greater than 140",
        ),
        (
            "<ChrgBr>",
            f'<ChrgBr Acct="{SECRET}">',
            "/Document/FIToFICstmrCdtTrf/CdtTrfTxInf/ChrgBr",
            "'Acct' attribute not allowed for element",
        ),
        (
            "<GrpHdr>",
            f"<GrpHdr>{SECRET}",
            "/Document/FIToFICstmrCdtTrf/GrpHdr",
            "character data between child elements not allowed",
        ),
    ],
    ids=["enumeration", "attribute-pattern", "decimal", "pattern", "length", "attribute", "mixed"],
)
def test_value_problems_never_echo_the_value(old: str, new: str, path: str, reason: str) -> None:
    found = problems(pacs008(old, new))
    assert found
    assert found[0].path == path
    assert found[0].reason.startswith(reason)
    for problem in found:
        assert SECRET not in str(problem)


def test_wrong_message_type() -> None:
    [problem] = problems(pacs008(), MESSAGE_TYPES["pacs.002.001.10"])
    assert problem.path == "/Document"
    assert problem.reason == f"Document in {NS} is not the Document of pacs.002.001.10"
    assert problem.expected == f"Document in {MESSAGE_TYPES['pacs.002.001.10'].namespace}"
    assert problem.line == 1
    [problem] = problems(parse_xml(APP_HDR.encode()), PACS008)
    assert problem.reason == f"AppHdr in {HEAD_NS} is not the Document of pacs.008.001.08"
    [problem] = problems(parse_xml(b"<Document/>"), PACS008)
    assert problem.reason == "Document in no namespace is not the Document of pacs.008.001.08"


def test_document_inside_an_envelope_with_prefixes() -> None:
    body = VALID_PACS008.replace("<", "<pacs:").replace("<pacs:/", "</pacs:")
    body = body.replace(f'xmlns="{NS}"', "")
    root = parse_xml(
        f'<Envelope xmlns="urn:swift:xsd:envelope" xmlns:pacs="{NS}">{body}</Envelope>'.encode()
    )
    _, document = split_envelope(root)
    assert problems(document) == []
    document[0][0].remove(document[0][0][2])  # NbOfTxs
    [problem] = problems(document)
    assert problem.path == "/Document/FIToFICstmrCdtTrf/GrpHdr/SttlmInf"
    assert problem.expected == "NbOfTxs"


def test_max_problems() -> None:
    extra = "".join(
        f"<CdtTrfTxInf><PmtId><EndToEndId>E{index}</EndToEndId></PmtId></CdtTrfTxInf>"
        for index in range(30)
    )
    document = pacs008("</FIToFICstmrCdtTrf>", f"{extra}</FIToFICstmrCdtTrf>")
    assert len(SchemaValidator().validate(document, PACS008)) == DEFAULT_MAX_PROBLEMS
    assert len(SchemaValidator(max_problems=3).validate(document, PACS008)) == 3
    with pytest.raises(ValueError, match="max_problems"):
        SchemaValidator(max_problems=0)


def test_falls_back_to_lxml_when_xmlschema_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(message_type: MessageType) -> None:
        raise RuntimeError("xmlschema is unavailable")

    monkeypatch.setattr(validation, "_xmlschema_schema", broken)
    [problem] = problems(pacs008("<NbOfTxs>1</NbOfTxs>", ""))
    assert problem.path == "/Document/FIToFICstmrCdtTrf/GrpHdr/SttlmInf"
    assert problem.reason == "This element is not expected"
    assert problem.expected == "BtchBookg, NbOfTxs"
    assert problem.line == 7


def test_lxml_fallback_hides_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validation, "_xmlschema_schema", lambda message_type: None)
    for old, new in (
        ("<ChrgBr>SLEV</ChrgBr>", f"<ChrgBr>{SECRET}</ChrgBr>"),
        ('Ccy="EUR"', f'Ccy="{SECRET}"'),
        (">10.00<", f">{SECRET}X<"),
        ("<BICFI>BANKDEFFXXX</BICFI>", f"<BICFI>{SECRET}</BICFI>"),
    ):
        found = problems(pacs008(old, new))
        assert found, old
        assert found[0].path.startswith("/Document/FIToFICstmrCdtTrf/CdtTrfTxInf/")
        assert all(SECRET not in str(problem) for problem in found)


def test_an_invalid_document_always_has_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validation, "_xmlschema_schema", lambda message_type: None)
    monkeypatch.setattr(SchemaValidator, "_explain_with_lxml", lambda self, document, mt: [])
    [problem] = problems(pacs008("<NbOfTxs>1</NbOfTxs>", ""))
    assert problem == SchemaProblem(
        "/Document", "does not validate against pacs.008.001.08.xsd", None, 1
    )


def test_schemas_are_built_once_and_shared() -> None:
    first, second = SchemaValidator(), SchemaValidator()
    first.warm_up([PACS008], explanations=True)
    assert validation._lxml_schema(PACS008) is validation._lxml_schema(PACS008)
    assert validation._xmlschema_schema(PACS008) is validation._xmlschema_schema(PACS008)
    assert second.validate(pacs008(), PACS008) == []
    assert repr(first) == f"SchemaValidator(max_problems={DEFAULT_MAX_PROBLEMS})"


def test_concurrent_validation() -> None:
    validator = SchemaValidator()
    good, bad = pacs008(), pacs008("<NbOfTxs>1</NbOfTxs>", "")

    def check(index: int) -> bool:
        document = good if index % 2 else bad
        return (validator.validate(document, PACS008) == []) == bool(index % 2)

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(check, range(64)))


def test_header_problems() -> None:
    header = parse_xml(APP_HDR.replace("<BizMsgIdr>B-1</BizMsgIdr>", "").encode())
    [problem] = problems(header, HEAD)
    assert problem.path == "/AppHdr/MsgDefIdr"
    assert problem.expected == "BizMsgIdr"


# -- envelopes --------------------------------------------------------------------------


def names(pair: tuple[etree._Element | None, etree._Element]) -> tuple[str | None, str]:
    app_hdr, document = pair
    header = etree.QName(app_hdr).localname if app_hdr is not None else None
    return header, etree.QName(document).localname


def wrapped(template: str) -> etree._Element:
    """``template`` with ``{hdr}`` and ``{doc}`` replaced by the sample header and document."""
    return parse_xml(template.format(hdr=APP_HDR, doc=VALID_PACS008).encode())


def test_bare_document() -> None:
    root = pacs008()
    assert split_envelope(root) == (None, root)


def test_bare_header_is_the_document() -> None:
    root = parse_xml(APP_HDR.encode())
    assert split_envelope(root) == (None, root)


@pytest.mark.parametrize(
    "template",
    [
        '<Envelope xmlns="urn:swift:xsd:envelope">{hdr}{doc}</Envelope>',
        '<Request xmlns="SWIFTNetBusinessEnvelope">{hdr}{doc}</Request>',
        "<BizMsg>{hdr}{doc}</BizMsg>",
        '<RequestPayload xmlns="urn:x">{doc}{hdr}</RequestPayload>',
        '<Saa:DataPDU xmlns:Saa="urn:swift:saa:xsd:saa.2.0"><Saa:Body>{hdr}{doc}</Saa:Body>'
        "</Saa:DataPDU>",
        "<A><B><C>{hdr}{doc}</C></B></A>",
        "<A><B>{hdr}</B><C><D>{doc}</D></C></A>",
    ],
    ids=[
        "swift-envelope",
        "swiftnet-request",
        "bizmsg",
        "request-payload",
        "datapdu",
        "depth-3",
        "apart",
    ],
)
def test_envelopes(template: str) -> None:
    app_hdr, document = split_envelope(wrapped(template))
    assert app_hdr is not None and document is not None
    assert etree.QName(app_hdr).namespace == HEAD_NS
    assert etree.QName(document).namespace == NS
    assert problems(document) == []
    assert problems(app_hdr, HEAD) == []


def test_deeper_than_three_levels_is_not_searched() -> None:
    root = wrapped("<A><B><C><D>{hdr}{doc}</D></C></B></A>")
    assert split_envelope(root) == (None, root)


def test_envelope_without_document() -> None:
    root = wrapped("<Envelope>{hdr}</Envelope>")
    assert names(split_envelope(root)) == (None, "AppHdr")
    empty = parse_xml(b"<Envelope><Other/></Envelope>")
    assert split_envelope(empty) == (None, empty)


def test_header_in_another_namespace_is_not_a_head_001() -> None:
    root = wrapped('<Envelope><AppHdr xmlns="urn:swift:xsd:$ahV10"/>{doc}</Envelope>')
    app_hdr, document = split_envelope(root)
    assert app_hdr is None
    assert etree.QName(document).namespace == NS


def test_iso_document_preferred_and_first_taken() -> None:
    root = wrapped('<Envelope><Document xmlns="urn:other"/>{hdr}{doc}{doc}</Envelope>')
    app_hdr, document = split_envelope(root)
    assert app_hdr is not None
    assert etree.QName(document).namespace == NS
    assert document is root[2]


def test_search_does_not_enter_the_document() -> None:
    inner = f'<SplmtryData><AppHdr xmlns="{HEAD_NS}"/></SplmtryData>'
    root = parse_xml(
        f'<Envelope><Document xmlns="{NS}"><X>{inner}</X></Document></Envelope>'.encode()
    )
    app_hdr, document = split_envelope(root)
    assert app_hdr is None
    assert document is root[0]


def test_comments_and_processing_instructions_are_skipped() -> None:
    root = etree.fromstring(
        f"<Envelope><!-- c --><?pi x?>{APP_HDR}<!-- d -->{VALID_PACS008}</Envelope>".encode()
    )
    assert names(split_envelope(root)) == ("AppHdr", "Document")
