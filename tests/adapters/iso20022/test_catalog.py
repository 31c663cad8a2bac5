"""The message catalogue of adapters.iso20022.catalog and the packaged XSDs."""

from __future__ import annotations

import dataclasses
import json
import pickle
import re
from importlib import resources
from pathlib import Path

import pytest
from lxml import etree

from adapters.iso20022.catalog import (
    HEAD_FAMILY,
    ISO20022_NAMESPACE_PREFIX,
    MESSAGE_TYPES,
    MessageType,
    Support,
    UnsupportedMessageError,
    by_id,
    by_namespace,
    families,
    namespace_for,
    xsd_path,
)

SHARED = Path(__file__).resolve().parents[4] / "shared" / "iso20022"
XS = "{http://www.w3.org/2001/XMLSchema}"

# The versions the brief asks for, plus those the shared samples use.
REQUIRED = {
    "pacs.008.001.08",
    "pacs.008.001.13",
    "pacs.002.001.10",
    "pacs.004.001.09",
    "pacs.004.001.10",
    "pacs.009.001.08",
    "pain.001.001.03",
    "pain.001.001.08",
    "pain.001.001.09",
    "pain.002.001.03",
    "pain.002.001.10",
    "camt.053.001.02",
    "camt.053.001.04",
    "camt.053.001.08",
    "camt.054.001.02",
    "camt.054.001.04",
    "camt.054.001.08",
    "camt.056.001.08",
    "camt.029.001.09",
    "head.001.001.02",
    "head.001.001.03",
    "head.001.001.04",
}
ROOTS = {
    "pacs.008": "FIToFICstmrCdtTrf",
    "pacs.002": "FIToFIPmtStsRpt",
    "pacs.004": "PmtRtr",
    "pacs.009": "FICdtTrf",
    "pain.001": "CstmrCdtTrfInitn",
    "pain.002": "CstmrPmtStsRpt",
    "camt.029": "RsltnOfInvstgtn",
    "camt.053": "BkToCstmrStmt",
    "camt.054": "BkToCstmrDbtCdtNtfctn",
    "camt.056": "FIToFIPmtCxlReq",
    "head.001": "AppHdr",
}
IDS = sorted(MESSAGE_TYPES)


def packaged_xsds() -> list[str]:
    folder = resources.files("adapters.iso20022").joinpath("xsd")
    return sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".xsd"))


def test_the_catalogue_holds_the_supported_versions() -> None:
    assert set(MESSAGE_TYPES) == REQUIRED
    assert list(MESSAGE_TYPES) == sorted(MESSAGE_TYPES)


def test_the_catalogue_is_read_only() -> None:
    with pytest.raises(TypeError):
        MESSAGE_TYPES["pacs.008.001.99"] = MESSAGE_TYPES["pacs.008.001.08"]  # type: ignore[index]


@pytest.mark.parametrize("message_id", IDS)
def test_message_type_fields(message_id: str) -> None:
    message = MESSAGE_TYPES[message_id]
    assert message.id == message_id
    assert f"{message.family}.{message.version}" == message_id
    assert re.fullmatch(r"[a-z]{4}\.\d{3}", message.family)
    assert re.fullmatch(r"\d{3}\.\d{2}", message.version)
    assert message.namespace == f"urn:iso:std:iso:20022:tech:xsd:{message_id}"
    assert message.namespace == namespace_for(message_id)
    assert message.root == ROOTS[message.family]
    assert message.xsd == f"{message_id}.xsd"
    assert message.is_header == (message.family == HEAD_FAMILY)
    assert message.element == ("AppHdr" if message.is_header else "Document")


@pytest.mark.parametrize("message_id", IDS)
def test_xsd_is_packaged_and_declares_the_message(message_id: str) -> None:
    message = MESSAGE_TYPES[message_id]
    path = xsd_path(message)
    assert path.is_file()
    assert path.is_absolute()
    assert path.name == message.xsd
    schema = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True))
    top = schema.getroot()
    assert top.get("targetNamespace") == message.namespace
    top_element = top.find(f"{XS}element[@name='{message.element}']")
    assert top_element is not None, f"{message.xsd} declares no {message.element}"
    if not message.is_header:
        document_type = top.find(f"{XS}complexType[@name='{top_element.get('type')}']")
        assert document_type is not None
        children = [element.get("name") for element in document_type.iter(f"{XS}element")]
        assert children == [message.root]


def test_every_packaged_xsd_is_in_the_catalogue() -> None:
    assert packaged_xsds() == sorted(message.xsd for message in MESSAGE_TYPES.values())


def test_source_notes_name_the_origin_and_every_file() -> None:
    notes = resources.files("adapters.iso20022").joinpath("xsd", "SOURCE.md").read_text()
    assert "phoughton/pyiso20022" in notes
    assert "cfb785fcc5174b09adee1419eb83743c85c79398" in notes
    for name in packaged_xsds():
        assert f"| {name} |" in notes


@pytest.mark.skipif(not (SHARED / "xsd").is_dir(), reason="shared/iso20022/xsd is not present")
@pytest.mark.parametrize("message_id", IDS)
def test_xsd_is_byte_identical_to_the_shared_copy(message_id: str) -> None:
    message = MESSAGE_TYPES[message_id]
    assert xsd_path(message).read_bytes() == (SHARED / "xsd" / message.xsd).read_bytes()


@pytest.mark.skipif(
    not (SHARED / "samples" / "MANIFEST.json").is_file(), reason="shared samples are not present"
)
def test_every_sample_message_is_in_the_catalogue() -> None:
    manifest = json.loads((SHARED / "samples" / "MANIFEST.json").read_text())
    assert {entry["msgid"] for entry in manifest} <= set(MESSAGE_TYPES)


def test_support_marks_the_mapped_versions() -> None:
    mapped = {message.id for message in MESSAGE_TYPES.values() if message.support is Support.MAPPED}
    assert mapped == {"pacs.008.001.08", "pacs.008.001.13", "pacs.002.001.10", "head.001.001.02"}


def test_message_type_is_frozen_and_hashable() -> None:
    message = MESSAGE_TYPES["pacs.008.001.08"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.root = "Other"  # type: ignore[misc]
    assert {message: 1}[MESSAGE_TYPES["pacs.008.001.08"]] == 1
    assert isinstance(message, MessageType)


def test_by_namespace_finds_every_message() -> None:
    for message in MESSAGE_TYPES.values():
        assert by_namespace(message.namespace) is message
        assert by_id(message.id) is message


def test_families() -> None:
    assert families() == tuple(sorted(ROOTS))


def test_unsupported_version_names_the_supported_versions_of_its_family() -> None:
    namespace = ISO20022_NAMESPACE_PREFIX + "pacs.008.001.12"
    with pytest.raises(UnsupportedMessageError) as caught:
        by_namespace(namespace)
    assert str(caught.value) == (
        "pacs.008.001.12 is not supported; supported pacs.008 versions: 001.08, 001.13"
    )
    assert caught.value.namespace == namespace
    assert caught.value.message_id == "pacs.008.001.12"
    assert caught.value.supported == ("001.08", "001.13")


@pytest.mark.parametrize(
    ("message_id", "versions"),
    [
        ("pacs.002.001.15", "001.10"),
        ("pacs.004.001.14", "001.09, 001.10"),
        ("pain.001.001.12", "001.03, 001.08, 001.09"),
        ("camt.053.001.12", "001.02, 001.04, 001.08"),
        ("head.001.001.01", "001.02, 001.03, 001.04"),
    ],
)
def test_unsupported_version_texts(message_id: str, versions: str) -> None:
    family = message_id[:8]
    expected = f"{message_id} is not supported; supported {family} versions: {versions}"
    with pytest.raises(UnsupportedMessageError, match=re.escape(expected)):
        by_namespace(ISO20022_NAMESPACE_PREFIX + message_id)
    with pytest.raises(UnsupportedMessageError, match=re.escape(expected)):
        by_id(message_id)


def test_unknown_family_names_every_supported_family() -> None:
    with pytest.raises(UnsupportedMessageError) as caught:
        by_namespace(ISO20022_NAMESPACE_PREFIX + "pacs.007.001.09")
    text = str(caught.value)
    assert text.startswith("pacs.007.001.09 is not supported; supported message families: ")
    assert text.endswith(", ".join(sorted(ROOTS)))
    assert caught.value.supported == families()


def test_foreign_namespace_is_named() -> None:
    with pytest.raises(UnsupportedMessageError) as caught:
        by_namespace("urn:swift:xsd:envelope")
    text = str(caught.value)
    assert text.startswith(
        "namespace 'urn:swift:xsd:envelope' is not an ISO 20022 message namespace;"
    )
    assert "supported message families: camt.029" in text
    assert caught.value.message_id is None


def test_missing_namespace_is_explained() -> None:
    with pytest.raises(UnsupportedMessageError, match="has no namespace"):
        by_namespace("")


def test_malformed_id_in_an_iso_namespace() -> None:
    with pytest.raises(
        UnsupportedMessageError, match=re.escape("'pacs.8' is not supported; supported")
    ):
        by_namespace(ISO20022_NAMESPACE_PREFIX + "pacs.8")


def test_a_long_foreign_namespace_is_cut_short() -> None:
    with pytest.raises(UnsupportedMessageError) as caught:
        by_namespace("urn:x:" + "a" * 500)
    assert len(str(caught.value)) < 300


def test_unsupported_message_error_is_a_lookup_error_and_pickles() -> None:
    with pytest.raises(LookupError) as caught:
        by_id("pacs.008.001.12")
    error = caught.value
    assert isinstance(error, UnsupportedMessageError)
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, UnsupportedMessageError)
    assert str(copy) == str(error)
    assert copy.supported == error.supported
