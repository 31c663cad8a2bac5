"""Business rules of adapters.iso20022.rules: IBAN, BIC, counts, sums, amounts, codes, dates.

Real documents come from shared/iso20022/samples: every VALID sample with a Document must pass
the rules, except the few listed in KNOWN_BAD_SAMPLES (each with what is wrong in it). The
broken documents are those samples with one thing changed.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import string
from collections.abc import Callable
from dataclasses import FrozenInstanceError
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from lxml import etree

from adapters.iso20022.codesets import code_set
from adapters.iso20022.rules import (
    COUNTRY_CODES,
    EARLIEST_DATE,
    IBAN_LENGTHS,
    REASON_CODES,
    Violation,
    bic_problem,
    check_document,
    iban_problem,
)

SHARED = Path(__file__).resolve().parents[4] / "shared" / "iso20022"
SAMPLES = SHARED / "samples"

# The samples were collected on 2026-11-28 (shared/iso20022/README.md): judge their dates
# as of that day. Every date in them is then between 1990 and a year after.
TODAY = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 23, 59, 59, tzinfo=dt.UTC)

ALPHANUMERIC = string.digits + string.ascii_uppercase

# file -> the violations (path, reason code) it really has. Not weakened rules: these public
# samples are wrong in these places.
KNOWN_BAD_SAMPLES: dict[str, set[tuple[str, str]]] = {
    # Return reason "RRO4" with a letter O: ExternalReturnReason1Code has RR04 (Regulatory
    # Reason), which the pacs.002 samples of the same FedNow scenarios spell right.
    "pacs.004.001.10/fednow_InformationRequest_Scenario3_Step6_pacs.004.xml": {
        ("/Document/PmtRtr/TxInf/RtrRsnInf/Rsn/Cd", "CH16"),
    },
    "pacs.004.001.10/fednow_PaymentReturn_Scenario4_Step7_pacs.004.xml": {
        ("/Document/PmtRtr/TxInf/RtrRsnInf/Rsn/Cd", "CH16"),
    },
    # Deliberately bad, as its name says: the debtor IBAN is the registry's GB example with
    # the last digit changed (GB29NWBK60161331926819 -> ...18), so mod 97 fails.
    "pacs.008.001.08/cbprstyle2025_cbprplus_pacs008_sample_dodgy_IBAN_and_bic_mismatch.xml": {
        ("/Document/FIToFICstmrCdtTrf/CdtTrfTxInf/DbtrAcct/Id/IBAN", "AC01"),
    },
    # Anonymised Lithuanian test files: placeholder IBANs LT00..., check digits 00.
    "pain.001.001.03/moov-testdata_International_payment_RUB_naujas_1.xml": {
        ("/Document/CstmrCdtTrfInitn/PmtInf/DbtrAcct/Id/IBAN", "AC01"),
    },
    "pain.001.001.03/moov-testdata_International_payment_USD_naujas_1.xml": {
        ("/Document/CstmrCdtTrfInitn/PmtInf/DbtrAcct/Id/IBAN", "AC01"),
    },
    "pain.001.001.03/moov-testdata_sepa_payment_naujas_1.xml": {
        ("/Document/CstmrCdtTrfInitn/PmtInf/DbtrAcct/Id/IBAN", "AC01"),
        ("/Document/CstmrCdtTrfInitn/PmtInf/CdtTrfTxInf/CdtrAcct/Id/IBAN", "AC01"),
    },
    "camt.053.001.02/moov-testdata_statement_1.xml": {
        ("/Document/BkToCstmrStmt/Stmt/Acct/Id/IBAN", "AC01"),
        *(
            (
                f"/Document/BkToCstmrStmt/Stmt/Ntry[{entry}]/NtryDtls/TxDtls/RltdPties/{side}"
                "/Id/IBAN",
                "AC01",
            )
            for entry in range(1, 5)
            for side in ("DbtrAcct", "CdtrAcct")
        ),
    },
    # Purpose code "CINV": that is a document type (commercial invoice, RfrdDocInf/Tp), not
    # an ExternalPurpose1Code.
    "pain.001.001.03/moov-testdata_gistfile1.xml": {
        ("/Document/CstmrCdtTrfInitn/PmtInf/CdtTrfTxInf[1]/Purp/Cd", "CH16"),
    },
    # Invented Irish IBANs whose check digits do not verify (IE16AIBK93110187654321,
    # IE98BOFI90393912121212, IE98BOFI90393912341234).
    "camt.054.001.02/oca_test-sepa-camt-unpaid.xml": {
        (
            "/Document/BkToCstmrDbtCdtNtfctn/Ntfctn/Ntry/NtryDtls/TxDtls/RltdPties/DbtrAcct/Id/IBAN",
            "AC01",
        ),
    },
    "pain.002.001.03/oca_test-sepa-pain-unpaid.xml": {
        (
            f"/Document/CstmrPmtStsRpt/OrgnlPmtInfAndSts[{group}]/TxInfAndSts[{tx}]/OrgnlTxRef"
            "/DbtrAcct/Id/IBAN",
            "AC01",
        )
        for group, tx in ((1, 1), (1, 2), (2, 2))
    },
}

PACS008 = "pacs.008.001.08/cbprstyle2025_cbprplus_pacs008_sample_bic_mismatch.xml"
PACS002 = "pacs.002.001.10/fednow_CustomerCreditTransfer_Scenario3_Step3_pacs.002.xml"
PACS004 = "pacs.004.001.09/cbprstyle2025_pacs004_payment_return_sample.xml"
CAMT056 = "camt.056.001.08/fednow_PaymentReturn_Scenario1_Step2_camt.056.xml"
PAIN001_08 = "pain.001.001.08/gs_pain001_001_08.xml"
PAIN001_03 = "pain.001.001.03/moov-testdata_gistfile1.xml"


# -- helpers ------------------------------------------------------------------------------


def local(element: etree._Element) -> str:
    return etree.QName(element).localname


@cache
def manifest() -> list[dict[str, Any]]:
    if not (SAMPLES / "MANIFEST.json").is_file():
        return []
    entries: list[dict[str, Any]] = json.loads((SAMPLES / "MANIFEST.json").read_text())
    return entries


def parse(data: bytes) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.fromstring(data, parser)


def find_document(root: etree._Element) -> etree._Element | None:
    """The ``Document`` of a bare Document or of an envelope (AppHdr + Document)."""
    if local(root) == "Document":
        return root
    return next(root.iter("{*}Document"), None)


def load(file: str) -> etree._Element:
    """A fresh copy of the sample's Document (tests change it)."""
    document = find_document(parse((SAMPLES / file).read_bytes()))
    assert document is not None, file
    return document


def msgid(file: str) -> str:
    entry = next(entry for entry in manifest() if entry["file"] == file)
    message_id: str = entry["msgid"]
    return message_id


def child(parent: etree._Element, name: str, index: int = 1) -> etree._Element:
    found = [c for c in parent if isinstance(c.tag, str) and local(c) == name]
    assert len(found) >= index, f"no {name}[{index}] under {local(parent)}"
    return found[index - 1]


def at(document: etree._Element, path: str) -> etree._Element:
    """The element at ``path`` (local names from under Document, ``Name[2]`` for the 2nd)."""
    element = document
    for step in path.split("/"):
        name, _, index = step.partition("[")
        element = child(element, name, int(index.rstrip("]")) if index else 1)
    return element


def add_after(anchor: etree._Element, fragment: str) -> etree._Element:
    """``fragment`` (XML without a namespace) right after ``anchor``, in its namespace."""
    namespace = etree.QName(anchor).namespace
    element = etree.fromstring(fragment)
    for node in element.iter():
        if namespace and isinstance(node.tag, str):
            node.tag = f"{{{namespace}}}{node.tag}"
    anchor.addnext(element)
    return element


def check(document: etree._Element, message_id: str) -> list[Violation]:
    return check_document(document, message_id, today=TODAY, now=NOW)


def found(violations: list[Violation]) -> set[tuple[str, str]]:
    return {(violation.path, violation.reason_code) for violation in violations}


def with_check_digits(country: str, bban: str) -> str:
    """An IBAN with correct check digits (ISO 7064 MOD 97-10, computed here afresh)."""
    numeric = "".join(str(ALPHANUMERIC.index(c)) for c in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


# -- IBAN ---------------------------------------------------------------------------------

VALID_IBANS = [
    # The IBAN registry's own examples.
    "GB82WEST12345698765432",
    "GB29NWBK60161331926819",
    "DE89370400440532013000",
    "CH9300762011623852957",
    "FR1420041010050500013M02606",
    "NL91ABNA0417164300",
    "BE68539007547034",
    "NO9386011117947",
    "AT611904300234573201",
    "ES9121000418450200051332",
    "IT60X0542811101000000123456",
    "MT84MALT011000012345MTLCAST001S",
    "LC55HEMM000100010012001200023015",
    "SE4550000000058398257466",
    "FI2112345600000785",
    "PL61109010140000071219812874",
    # From the samples.
    "DE29100100100987654321",
    "CH2909000000250094239",
]


@pytest.mark.parametrize("iban", VALID_IBANS)
def test_valid_ibans(iban: str) -> None:
    assert iban_problem(iban) is None


@pytest.mark.parametrize(
    ("iban", "reason"),
    [
        ("GB83WEST12345698765432", "check digits do not verify (mod 97)"),
        ("DE89370400440532013001", "check digits do not verify (mod 97)"),
        ("DE8937040044053201300", "an IBAN of DE has 22 characters, not 21"),
        ("DE893704004405320130000", "an IBAN of DE has 22 characters, not 23"),
        ("CH93007620116238529570", "an IBAN of CH has 21 characters, not 22"),
        ("NO938601111794", "an IBAN of NO has 15 characters, not 14"),
        # Only the electronic format: the paper format's spaces and lower case are refused,
        # not repaired (the hub forwards what it is given).
        ("GB82 WEST 1234 5698 7654 32", "must be in electronic format: no spaces"),
        (" GB82WEST12345698765432", "must be in electronic format: no spaces"),
        ("gb82west12345698765432", "must be in electronic format: upper-case letters only"),
        ("GB82west12345698765432", "must be in electronic format: upper-case letters only"),
        ("GB82-WEST-1234569876543", "holds characters other than letters A-Z and digits"),
        ("", "empty"),
        ("GB82WEST123456987654321234567890123", "35 characters, longer than any IBAN (34)"),
        ("1282WEST12345698765432", "does not start with a two-letter country code"),
        ("GBX2WEST12345698765432", "characters 3 and 4 are not check digits"),
        ("GB", "characters 3 and 4 are not check digits"),
        ("US64SVBKUS6S3300958879", "country US is not in the IBAN registry"),
        ("XX82WEST12345698765432", "country XX is not in the IBAN registry"),
        ("GB00WEST12345698765432", "check digits 00, 01 and 99 are never issued"),
        ("GB01WEST12345698765432", "check digits 00, 01 and 99 are never issued"),
        ("GB99WEST12345698765432", "check digits 00, 01 and 99 are never issued"),
    ],
)
def test_broken_ibans(iban: str, reason: str) -> None:
    assert iban_problem(iban) == reason
    if len(iban) > 6:
        assert iban[4:] not in reason
        assert iban.replace(" ", "")[4:] not in reason


def test_check_digits_01_would_pass_mod_97_but_are_never_issued() -> None:
    candidates = (f"{n:018d}" for n in range(10_000))
    bban = next(b for b in candidates if with_check_digits("DE", b)[2:4] == "98")
    assert iban_problem(f"DE98{bban}") is None
    # 98 - 97 = 01: mod 97 cannot tell the two apart, ISO 13616 never issues 01.
    assert iban_problem(f"DE01{bban}") == "check digits 00, 01 and 99 are never issued"


@given(st.sampled_from(sorted(IBAN_LENGTHS)), st.data())
def test_generated_ibans_verify_and_one_changed_digit_does_not(
    country: str, data: st.DataObject
) -> None:
    size = IBAN_LENGTHS[country] - 4
    bban = data.draw(st.text(alphabet=ALPHANUMERIC, min_size=size, max_size=size))
    iban = with_check_digits(country, bban)
    assume(iban[2:4] not in ("00", "01", "99"))
    assert iban_problem(iban) is None
    digits = [i for i, character in enumerate(iban) if character.isdigit() and i >= 2]
    position = data.draw(st.sampled_from(digits))
    replacement = data.draw(st.sampled_from(string.digits).filter(lambda d: d != iban[position]))
    broken = iban[:position] + replacement + iban[position + 1 :]
    problem = iban_problem(broken)
    assert problem is not None
    assert broken[4:] not in problem


@given(st.sampled_from(sorted(IBAN_LENGTHS)), st.data())
def test_swapping_two_different_neighbouring_digits_is_caught(
    country: str, data: st.DataObject
) -> None:
    size = IBAN_LENGTHS[country] - 4
    bban = data.draw(st.text(alphabet=string.digits, min_size=size, max_size=size))
    iban = with_check_digits(country, bban)
    assume(iban[2:4] not in ("00", "01", "99"))
    swaps = [i for i in range(4, len(iban) - 1) if iban[i] != iban[i + 1]]
    assume(swaps)
    i = data.draw(st.sampled_from(swaps))
    swapped = iban[:i] + iban[i + 1] + iban[i] + iban[i + 2 :]
    assert iban_problem(swapped) == "check digits do not verify (mod 97)"


def test_iban_registry_table() -> None:
    assert len(IBAN_LENGTHS) == 89
    assert set(IBAN_LENGTHS) <= COUNTRY_CODES
    assert all(15 <= length <= 34 for length in IBAN_LENGTHS.values())
    # Every SEPA country (EU + EEA + CH, GB, AD, MC, SM, VA, AL, MD, ME, MK, RS) is there.
    sepa = {
        "AT": 20,
        "BE": 16,
        "BG": 22,
        "HR": 21,
        "CY": 28,
        "CZ": 24,
        "DK": 18,
        "EE": 20,
        "FI": 18,
        "FR": 27,
        "DE": 22,
        "GR": 27,
        "HU": 28,
        "IE": 22,
        "IT": 27,
        "LV": 21,
        "LT": 20,
        "LU": 20,
        "MT": 31,
        "NL": 18,
        "PL": 28,
        "PT": 25,
        "RO": 24,
        "SK": 24,
        "SI": 19,
        "ES": 24,
        "SE": 24,
        "IS": 26,
        "LI": 21,
        "NO": 15,
        "CH": 21,
        "GB": 22,
        "AD": 24,
        "MC": 27,
        "SM": 27,
        "VA": 22,
        "AL": 28,
        "MD": 24,
        "ME": 22,
        "MK": 19,
        "RS": 22,
        "GI": 23,
    }
    for country, length in sepa.items():
        assert IBAN_LENGTHS[country] == length, country


# -- BIC ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bic",
    [
        "DEUTDEFF",
        "DEUTDEFF500",
        "NWBKGB2LXXX",
        "CHASUS33",
        "BNPAFRPPXXX",
        "GSLDGB20",  # location ending in 0: a test BIC
        "1234GB2L",  # ISO 9362:2014: the institution code may hold digits
        "AB12CH22123",
        "TESTXKPR",  # Kosovo: XK, the code SWIFT uses
    ],
)
def test_valid_bics(bic: str) -> None:
    assert bic_problem(bic) is None


@pytest.mark.parametrize(
    ("bic", "reason"),
    [
        ("DEUTDEF", "7 characters; a BIC has 8 or 11"),
        ("DEUTDEFF5", "9 characters; a BIC has 8 or 11"),
        ("DEUTDEFF5000", "12 characters; a BIC has 8 or 11"),
        ("", "0 characters; a BIC has 8 or 11"),
        ("deutdeff", "must be upper case"),
        ("DEUTDEff500", "must be upper case"),
        ("DEUT-DEF", "holds characters other than letters A-Z and digits"),
        ("DEUT DEF", "holds characters other than letters A-Z and digits"),
        ("DEUTXYFF", "characters 5-6 ('XY') are not an ISO 3166 country code"),
        ("DEUTEUFF", "characters 5-6 ('EU') are not an ISO 3166 country code"),
        ("DEUT12FF", "characters 5-6 ('12') are not an ISO 3166 country code"),
        ("DEUTUKFF", "characters 5-6 ('UK') are not an ISO 3166 country code"),
    ],
)
def test_broken_bics(bic: str, reason: str) -> None:
    assert bic_problem(bic) == reason


def test_country_codes() -> None:
    assert len(COUNTRY_CODES) == 250  # the 249 of ISO 3166-1 and XK
    assert {"DE", "GB", "US", "CH", "XK", "SS", "BQ", "CW", "SX"} <= COUNTRY_CODES
    assert not {"UK", "EU", "EL", "AN", "YU", "CS"} & COUNTRY_CODES
    assert all(len(code) == 2 and code.isalpha() and code.isupper() for code in COUNTRY_CODES)


# -- reason codes -------------------------------------------------------------------------


def test_every_reason_code_is_an_external_status_reason() -> None:
    reasons = code_set("status_reason")
    for rule, code in REASON_CODES.items():
        assert code in reasons, rule


def test_violations_are_frozen() -> None:
    violation = Violation("/Document", "FF01", "broken")
    with pytest.raises(FrozenInstanceError):
        violation.path = "/x"  # type: ignore[misc]
    assert str(violation) == "/Document: FF01 broken"


# -- the samples --------------------------------------------------------------------------


def valid_samples() -> list[str]:
    """VALID samples that hold a Document (99 are a head.001 AppHdr alone: nothing to check)."""
    files = []
    for entry in manifest():
        if entry["status"] != "VALID":
            continue
        if any(not part.startswith("head.") for part in entry["parts"]):
            files.append(entry["file"])
    return files


def test_the_samples_are_there() -> None:
    assert len(valid_samples()) == 124
    assert set(KNOWN_BAD_SAMPLES) <= set(valid_samples())


@pytest.mark.parametrize("file", valid_samples())
def test_valid_samples_pass_the_rules(file: str) -> None:
    violations = check(load(file), msgid(file))
    assert found(violations) == KNOWN_BAD_SAMPLES.get(file, set()), [str(v) for v in violations]
    assert len(violations) == len(found(violations))


def test_known_bad_samples_never_show_the_account_number() -> None:
    for file in KNOWN_BAD_SAMPLES:
        document = load(file)
        ibans = {element.text or "" for element in document.iter("{*}IBAN")}
        for violation in check(document, msgid(file)):
            assert not any(iban[4:] in violation.message for iban in ibans)


@pytest.mark.parametrize("file", [PACS008, PACS002, PACS004, CAMT056, PAIN001_08])
def test_the_bases_of_the_broken_documents_are_clean(file: str) -> None:
    assert check(load(file), msgid(file)) == []


# -- broken documents: one change each ----------------------------------------------------

Mutation = Callable[[etree._Element], None]


def set_text(path: str, text: str) -> Mutation:
    def mutate(document: etree._Element) -> None:
        at(document, path).text = text

    return mutate


def set_attribute(path: str, name: str, value: str) -> Mutation:
    def mutate(document: etree._Element) -> None:
        at(document, path).set(name, value)

    return mutate


def insert_after(path: str, fragment: str) -> Mutation:
    def mutate(document: etree._Element) -> None:
        add_after(at(document, path), fragment)

    return mutate


TX = "FIToFICstmrCdtTrf/CdtTrfTxInf"
HDR = "FIToFICstmrCdtTrf/GrpHdr"
PAIN = "CstmrCdtTrfInitn"

BROKEN: list[tuple[str, str, Mutation, str, str]] = [
    # (id, base sample, change, path of the violation (from under Document), reason code)
    ("nboftxs-off-by-one", PACS008, set_text(f"{HDR}/NbOfTxs", "2"), f"{HDR}/NbOfTxs", "AM19"),
    ("nboftxs-zero", PACS008, set_text(f"{HDR}/NbOfTxs", "0"), f"{HDR}/NbOfTxs", "AM19"),
    (
        "ctrlsum-wrong",
        PACS008,
        insert_after(f"{HDR}/NbOfTxs", "<CtrlSum>12345.68</CtrlSum>"),
        f"{HDR}/CtrlSum",
        "AM10",
    ),
    (
        "total-wrong",
        PACS008,
        insert_after(f"{HDR}/NbOfTxs", '<TtlIntrBkSttlmAmt Ccy="EUR">12345.66</TtlIntrBkSttlmAmt>'),
        f"{HDR}/TtlIntrBkSttlmAmt",
        "AM10",
    ),
    (
        "total-in-another-currency",
        PACS008,
        insert_after(f"{HDR}/NbOfTxs", '<TtlIntrBkSttlmAmt Ccy="USD">12345.67</TtlIntrBkSttlmAmt>'),
        f"{TX}/IntrBkSttlmAmt",
        "AM11",
    ),
    (
        "bad-iban",
        PACS008,
        set_text(f"{TX}/CdtrAcct/Id/IBAN", "DE29100100100987654322"),
        f"{TX}/CdtrAcct/Id/IBAN",
        "AC01",
    ),
    (
        "iban-with-spaces",
        PACS008,
        set_text(f"{TX}/CdtrAcct/Id/IBAN", "DE29 1001 0010 0987 6543 21"),
        f"{TX}/CdtrAcct/Id/IBAN",
        "AC01",
    ),
    (
        "bad-bic-country",
        PACS008,
        set_text(f"{TX}/DbtrAgt/FinInstnId/BICFI", "NWBKXX2LXXX"),
        f"{TX}/DbtrAgt/FinInstnId/BICFI",
        "RC01",
    ),
    (
        "bic-too-short",
        PACS008,
        set_text(f"{TX}/InstdAgt/FinInstnId/BICFI", "CODDDEF"),
        f"{TX}/InstdAgt/FinInstnId/BICFI",
        "RC01",
    ),
    (
        "three-decimals-in-eur",
        PACS008,
        set_text(f"{TX}/IntrBkSttlmAmt", "12345.678"),
        f"{TX}/IntrBkSttlmAmt",
        "AM12",
    ),
    (
        "decimals-in-jpy",
        PACS008,
        set_attribute(f"{TX}/IntrBkSttlmAmt", "Ccy", "JPY"),
        f"{TX}/IntrBkSttlmAmt",
        "AM12",
    ),
    (
        "unknown-currency",
        PACS008,
        set_attribute(f"{TX}/IntrBkSttlmAmt", "Ccy", "EUX"),
        f"{TX}/IntrBkSttlmAmt",
        "AM11",
    ),
    (
        "amount-not-a-number",
        PACS008,
        set_text(f"{TX}/IntrBkSttlmAmt", "12,345.67"),
        f"{TX}/IntrBkSttlmAmt",
        "AM12",
    ),
    (
        "settlement-date-2099",
        PACS008,
        set_text(f"{TX}/IntrBkSttlmDt", "2099-01-01"),
        f"{TX}/IntrBkSttlmDt",
        "DT01",
    ),
    (
        "settlement-date-1989",
        PACS008,
        set_text(f"{TX}/IntrBkSttlmDt", "1989-12-31"),
        f"{TX}/IntrBkSttlmDt",
        "DT01",
    ),
    (
        "settlement-date-not-a-day",
        PACS008,
        set_text(f"{TX}/IntrBkSttlmDt", "2025-02-29"),
        f"{TX}/IntrBkSttlmDt",
        "DT01",
    ),
    (
        "created-in-the-future",
        PACS008,
        set_text(f"{HDR}/CreDtTm", "2026-12-01T00:00:00+00:00"),
        f"{HDR}/CreDtTm",
        "DT02",
    ),
    (
        "unknown-purpose",
        PACS008,
        insert_after(f"{TX}/ChrgBr", "<Purp><Cd>XXXX</Cd></Purp>"),
        f"{TX}/Purp/Cd",
        "CH16",
    ),
    (
        "unknown-status-reason",
        PACS002,
        set_text("FIToFIPmtStsRpt/TxInfAndSts/StsRsnInf/Rsn/Cd", "ZZ99"),
        "FIToFIPmtStsRpt/TxInfAndSts/StsRsnInf/Rsn/Cd",
        "CH16",
    ),
    (
        "lower-case-status-reason",
        PACS002,
        set_text("FIToFIPmtStsRpt/TxInfAndSts/StsRsnInf/Rsn/Cd", "ac04"),
        "FIToFIPmtStsRpt/TxInfAndSts/StsRsnInf/Rsn/Cd",
        "CH16",
    ),
    (
        "unknown-transaction-status",
        PACS002,
        set_text("FIToFIPmtStsRpt/TxInfAndSts/TxSts", "DONE"),
        "FIToFIPmtStsRpt/TxInfAndSts/TxSts",
        "CH16",
    ),
    (
        "unknown-return-reason",
        PACS004,
        set_text("PmtRtr/TxInf/RtrRsnInf/Rsn/Cd", "ZZ99"),
        "PmtRtr/TxInf/RtrRsnInf/Rsn/Cd",
        "CH16",
    ),
    (
        "pacs004-nboftxs",
        PACS004,
        set_text("PmtRtr/GrpHdr/NbOfTxs", "3"),
        "PmtRtr/GrpHdr/NbOfTxs",
        "AM19",
    ),
    (
        "pacs004-ctrlsum",
        PACS004,
        insert_after("PmtRtr/GrpHdr/NbOfTxs", "<CtrlSum>125000.01</CtrlSum>"),
        "PmtRtr/GrpHdr/CtrlSum",
        "AM10",
    ),
    (
        "unknown-cancellation-reason",
        CAMT056,
        set_text("FIToFIPmtCxlReq/Undrlyg/TxInf/CxlRsnInf/Rsn/Cd", "ZZ99"),
        "FIToFIPmtCxlReq/Undrlyg/TxInf/CxlRsnInf/Rsn/Cd",
        "CH16",
    ),
    (
        "camt056-nboftxs",
        CAMT056,
        insert_after("FIToFIPmtCxlReq/Assgnmt", "<CtrlData><NbOfTxs>2</NbOfTxs></CtrlData>"),
        "FIToFIPmtCxlReq/CtrlData/NbOfTxs",
        "AM19",
    ),
    (
        "camt056-ctrlsum",
        CAMT056,
        insert_after(
            "FIToFIPmtCxlReq/Assgnmt",
            "<CtrlData><NbOfTxs>1</NbOfTxs><CtrlSum>51.47</CtrlSum></CtrlData>",
        ),
        "FIToFIPmtCxlReq/CtrlData/CtrlSum",
        "AM10",
    ),
    (
        "pain001-group-nboftxs",
        PAIN001_08,
        set_text(f"{PAIN}/GrpHdr/NbOfTxs", "2"),
        f"{PAIN}/GrpHdr/NbOfTxs",
        "AM19",
    ),
    (
        "pain001-group-ctrlsum",
        PAIN001_08,
        set_text(f"{PAIN}/GrpHdr/CtrlSum", "10.01"),
        f"{PAIN}/GrpHdr/CtrlSum",
        "AM10",
    ),
    (
        "pain001-payment-ctrlsum",
        PAIN001_08,
        insert_after(f"{PAIN}/PmtInf/PmtMtd", "<CtrlSum>11</CtrlSum>"),
        f"{PAIN}/PmtInf/CtrlSum",
        "AM10",
    ),
    (
        "pain001-payment-nboftxs",
        PAIN001_08,
        insert_after(f"{PAIN}/PmtInf/PmtMtd", "<NbOfTxs>2</NbOfTxs>"),
        f"{PAIN}/PmtInf/NbOfTxs",
        "AM20",
    ),
    (
        "pain001-execution-date",
        PAIN001_08,
        set_text(f"{PAIN}/PmtInf/ReqdExctnDt/Dt", "2099-01-01"),
        f"{PAIN}/PmtInf/ReqdExctnDt/Dt",
        "DT01",
    ),
    (
        "pain001-bic-lower-case",
        PAIN001_08,
        set_text(f"{PAIN}/PmtInf/DbtrAgt/FinInstnId/BICFI", "gsldgb20"),
        f"{PAIN}/PmtInf/DbtrAgt/FinInstnId/BICFI",
        "RC01",
    ),
]


@pytest.mark.parametrize(
    ("base", "mutate", "path", "reason_code"),
    [pytest.param(*case[1:], id=case[0]) for case in BROKEN],
)
def test_one_change_gives_exactly_one_violation(
    base: str, mutate: Mutation, path: str, reason_code: str
) -> None:
    document = load(base)
    mutate(document)
    violations = check(document, msgid(base))
    assert [(v.path, v.reason_code) for v in violations] == [(f"/Document/{path}", reason_code)]
    assert violations[0].message


def test_messages_say_what_is_wrong() -> None:
    document = load(PACS008)
    at(document, f"{HDR}/NbOfTxs").text = "2"
    at(document, f"{TX}/IntrBkSttlmAmt").text = "12345.678"
    at(document, f"{TX}/CdtrAcct/Id/IBAN").text = "DE29100100100987654322"
    messages = [v.message for v in check(document, msgid(PACS008))]
    assert messages == [
        "NbOfTxs is 2 but the message holds 1 CdtTrfTxInf",
        "IntrBkSttlmAmt has 3 decimal places; EUR has 2",
        "invalid IBAN: check digits do not verify (mod 97)",
    ]


def test_trailing_zeros_do_not_count_as_decimal_places() -> None:
    document = load(PACS008)
    at(document, f"{TX}/IntrBkSttlmAmt").text = "12345.6700"
    assert check(document, msgid(PACS008)) == []
    at(document, f"{TX}/IntrBkSttlmAmt").set("Ccy", "JPY")
    at(document, f"{TX}/IntrBkSttlmAmt").text = "12345.000"
    assert check(document, msgid(PACS008)) == []


def test_historic_currencies_are_refused() -> None:
    document = load(PACS008)
    at(document, f"{TX}/IntrBkSttlmAmt").set("Ccy", "DEM")
    (violation,) = check(document, msgid(PACS008))
    assert violation.reason_code == "AM11"
    assert violation.message == (
        "IntrBkSttlmAmt: 'DEM' is not an ISO 4217 currency with a minor unit"
    )


def test_a_price_may_have_more_decimals_than_its_currency() -> None:
    file = "camt.054.001.08/cbprstyle2025_camt054_credit_notification_sample.xml"
    document = load(file)
    entry_amount = at(document, "BkToCstmrDbtCdtNtfctn/Ntfctn/Ntry/Amt")
    add_after(entry_amount, '<DealPric><Val><Amt Ccy="USD">1.1234567</Amt></Val></DealPric>')
    assert check(document, msgid(file)) == []
    entry_amount.text = "1.1234567"
    (violation,) = check(document, msgid(file))
    assert (violation.reason_code, violation.message) == (
        "AM12",
        "Amt has 7 decimal places; MXN has 2",
    )


def test_a_second_transaction_is_indexed_and_counted() -> None:
    document = load(PACS008)
    first = at(document, TX)
    second = copy.deepcopy(first)
    first.addnext(second)
    at(document, f"{TX}[2]/CdtrAcct/Id/IBAN").text = "DE29100100100987654320"
    violations = check(document, msgid(PACS008))
    assert found(violations) == {
        (f"/Document/{HDR}/NbOfTxs", "AM19"),
        (f"/Document/{TX}[2]/CdtrAcct/Id/IBAN", "AC01"),
    }
    assert violations[0].path.endswith("NbOfTxs")  # document order
    at(document, f"{HDR}/NbOfTxs").text = "2"
    at(document, f"{TX}[2]/CdtrAcct/Id/IBAN").text = "DE29100100100987654321"
    add_after(at(document, f"{HDR}/NbOfTxs"), "<CtrlSum>24691.34</CtrlSum>")
    add_after(
        at(document, f"{HDR}/CtrlSum"), '<TtlIntrBkSttlmAmt Ccy="EUR">24691.34</TtlIntrBkSttlmAmt>'
    )
    assert check(document, msgid(PACS008)) == []


def test_pain001_counts_each_payment_and_the_group() -> None:
    document = load(PAIN001_08)
    payment = at(document, f"{PAIN}/PmtInf")
    payment.addnext(copy.deepcopy(payment))
    add_after(at(document, f"{PAIN}/PmtInf[2]/PmtMtd"), "<NbOfTxs>1</NbOfTxs>")
    add_after(at(document, f"{PAIN}/PmtInf[2]/NbOfTxs"), "<CtrlSum>10</CtrlSum>")
    violations = check(document, msgid(PAIN001_08))
    assert found(violations) == {
        (f"/Document/{PAIN}/GrpHdr/NbOfTxs", "AM19"),
        (f"/Document/{PAIN}/GrpHdr/CtrlSum", "AM10"),
    }
    at(document, f"{PAIN}/GrpHdr/NbOfTxs").text = "2"
    at(document, f"{PAIN}/GrpHdr/CtrlSum").text = "20"
    assert check(document, msgid(PAIN001_08)) == []


def test_pain001_version_3_execution_date_is_a_plain_date() -> None:
    file = PAIN001_03
    document = load(file)
    at(document, f"{PAIN}/PmtInf/ReqdExctnDt").text = "1989-01-01"
    violations = [v for v in check(document, msgid(file)) if v.reason_code == "DT01"]
    assert found(violations) == {(f"/Document/{PAIN}/PmtInf/ReqdExctnDt", "DT01")}
    assert violations[0].message == f"ReqdExctnDt 1989-01-01 is before {EARLIEST_DATE}"


def test_pain001_version_3_sums_mixed_currencies() -> None:
    # 10000000 JPY + 500000 EUR + 1000000 USD = 11500000: a CtrlSum ignores currencies.
    document = load(PAIN001_03)
    assert at(document, f"{PAIN}/GrpHdr/CtrlSum").text == "11500000"
    at(document, f"{PAIN}/GrpHdr/CtrlSum").text = "11500000.5"
    violations = [v for v in check(document, msgid(PAIN001_03)) if v.reason_code == "AM10"]
    assert [v.message for v in violations] == [
        "CtrlSum is 11500000.5 but the amounts add up to 11500000"
    ]


def test_dates_are_judged_against_today() -> None:
    document = load(PACS008)
    at(document, f"{TX}/IntrBkSttlmDt").text = "2027-11-28"
    assert check(document, msgid(PACS008)) == []  # exactly a year after TODAY
    at(document, f"{TX}/IntrBkSttlmDt").text = "2027-11-29"
    (violation,) = check(document, msgid(PACS008))
    assert violation.message == "IntrBkSttlmDt 2027-11-29 is more than a year after 2026-11-28"
    assert check_document(document, msgid(PACS008), today=dt.date(2027, 1, 1)) == []


def test_today_defaults_to_now_and_then_to_the_clock() -> None:
    document = load(PACS008)
    at(document, f"{TX}/IntrBkSttlmDt").text = "2099-01-01"
    late = dt.datetime(2098, 6, 1, tzinfo=dt.UTC)
    created = at(document, f"{HDR}/CreDtTm")
    created.text = "2098-06-01T10:00:00Z"
    assert check_document(document, msgid(PACS008), now=late) == []
    assert found(check_document(document, msgid(PACS008))) == {
        (f"/Document/{TX}/IntrBkSttlmDt", "DT01")
    }  # judged against the real current date; CreDtTm is not checked without ``now``


def test_creation_time_has_a_day_of_slack_and_offsets_count() -> None:
    document = load(PACS008)
    created = at(document, f"{HDR}/CreDtTm")
    created.text = "2026-11-29T23:59:59+00:00"  # NOW + 1 day
    assert check(document, msgid(PACS008)) == []
    created.text = "2026-11-30T01:59:59+02:00"  # the same instant
    assert check(document, msgid(PACS008)) == []
    created.text = "2026-11-30T00:00:00.5"  # no offset: UTC, half a second too late
    assert found(check(document, msgid(PACS008))) == {(f"/Document/{HDR}/CreDtTm", "DT02")}
    created.text = "yesterday"
    (violation,) = check(document, msgid(PACS008))
    assert (violation.reason_code, violation.message) == ("DT02", "CreDtTm is not a date and time")


def test_naive_now_is_taken_as_utc() -> None:
    document = load(PACS008)
    at(document, f"{HDR}/CreDtTm").text = "2026-12-01T00:00:00Z"
    naive = dt.datetime(2026, 11, 28, 23, 59, 59)
    assert len(check_document(document, msgid(PACS008), today=TODAY, now=naive)) == 1


def test_the_rules_need_a_document() -> None:
    document = load(PACS008)
    group = at(document, "FIToFICstmrCdtTrf/GrpHdr")
    (violation,) = check(group, msgid(PACS008))
    assert (violation.path, violation.reason_code) == ("/GrpHdr", "FF01")


def test_the_message_must_be_the_one_named() -> None:
    document = load(PACS008)
    violations = check(document, "pacs.002.001.10")
    assert found(violations) == {("/Document/FIToFICstmrCdtTrf", "FF01")}
    assert violations[0].message == (
        "a pacs.002.001.10 Document holds FIToFIPmtStsRpt, not FIToFICstmrCdtTrf"
    )


def test_an_unknown_message_gets_the_element_rules_only() -> None:
    document = load(PACS008)
    at(document, f"{HDR}/NbOfTxs").text = "7"
    at(document, f"{TX}/CdtrAcct/Id/IBAN").text = "DE29100100100987654322"
    violations = check(document, "xyzw.001.001.01")
    assert found(violations) == {(f"/Document/{TX}/CdtrAcct/Id/IBAN", "AC01")}


def test_the_document_may_sit_in_an_envelope_or_stand_alone() -> None:
    envelope = parse((SAMPLES / PACS008).read_bytes())
    assert local(envelope) != "Document"
    document = find_document(envelope)
    assert document is not None
    at(document, f"{TX}/CdtrAcct/Id/IBAN").text = "DE29100100100987654322"
    in_envelope = check(document, msgid(PACS008))
    alone = check(parse(etree.tostring(document)), msgid(PACS008))
    assert in_envelope == alone
    assert in_envelope[0].path == f"/Document/{TX}/CdtrAcct/Id/IBAN"


def test_comments_and_processing_instructions_are_ignored() -> None:
    document = load(PACS008)
    at(document, HDR).insert(0, etree.Comment(" a comment "))
    at(document, TX).append(etree.ProcessingInstruction("note", "x"))
    assert check(document, msgid(PACS008)) == []
