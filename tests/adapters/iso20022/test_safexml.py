"""Hardened XML parsing (adapters.iso20022.safexml): every refusal, fast, and streaming.

Inputs are sized so that nothing can take long even if a protection failed in a way that
still terminates; a protection that failed by hanging would show as a stuck test.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lxml import etree

from adapters.iso20022 import safexml
from adapters.iso20022.safexml import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_TEXT,
    KINDS,
    XmlInputError,
    iterparse_safe,
    parse_xml,
)

SECRET = "SECRET-4111111111111111"
NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"


def billion_laughs() -> bytes:
    entities = "".join(
        f'  <!ENTITY lol{level} "{f"&lol{level - 1};" * 10}">\n' for level in range(1, 10)
    )
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n  <!ENTITY lol0 "lol">\n'
        f'{entities}]>\n<lolz a="&lol9;">&lol9;</lolz>\n'
    ).encode()


def nested(depth: int, name: bytes = b"a") -> bytes:
    """``depth`` elements, each inside the previous one."""
    return (b"<" + name + b">") * depth + b"x" + (b"</" + name + b">") * depth


def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(SECRET)
    return path


def external_dtd(tmp_path: Path) -> Path:
    path = tmp_path / "evil.dtd"
    path.write_text(f'<!ENTITY leak "{SECRET}">')
    return path


# name -> (document, expected kind); documents that need files are built from tmp_path.
def attacks(tmp_path: Path) -> dict[str, tuple[bytes, str]]:
    secret, dtd = secret_file(tmp_path), external_dtd(tmp_path)
    return {
        "billion-laughs": (billion_laughs(), "entity"),
        "xxe-etc-passwd": (
            b'<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><d>&x;</d>',
            "entity",
        ),
        "xxe-local-file": (
            f'<!DOCTYPE d [<!ENTITY x SYSTEM "{secret.as_uri()}">]><d>&x;</d>'.encode(),
            "entity",
        ),
        "external-dtd": (f'<!DOCTYPE d SYSTEM "{dtd.as_uri()}"><d>&leak;</d>'.encode(), "doctype"),
        "external-dtd-http": (
            b'<!DOCTYPE d PUBLIC "-//X//Y" "http://127.0.0.1:9/evil.dtd"><d/>',
            "doctype",
        ),
        "parameter-entity": (
            f'<!DOCTYPE d [<!ENTITY % p SYSTEM "{dtd.as_uri()}"> %p;]><d>&leak;</d>'.encode(),
            "entity",
        ),
        "internal-dtd": (b"<!DOCTYPE d [<!ELEMENT d (#PCDATA)>]><d/>", "doctype"),
        "undeclared-entity": (b"<d>&leak;</d>", "entity"),
        "xinclude": (
            b'<d xmlns:xi="http://www.w3.org/2001/XInclude">'
            b'<xi:include href="file:///etc/passwd" parse="text"/></d>',
            "xinclude",
        ),
        "xml-stylesheet": (
            b'<?xml-stylesheet href="http://x/y.xsl"?><d/>',
            "processing-instruction",
        ),
        "xml-model-inside": (
            b'<d><?xml-model href="http://x/y.sch"?></d>',
            "processing-instruction",
        ),
        "200-deep": (nested(200), "too-deep"),
        "300-deep": (nested(300), "too-deep"),
        "2mb-text": (b"<d>" + b"x" * 2_000_000 + b"</d>", "text-too-long"),
        "2mb-attribute": (b'<d a="' + b"x" * 2_000_000 + b'"/>', "text-too-long"),
        "2mb-tail": (b"<d><e/>" + b"x" * 2_000_000 + b"</d>", "text-too-long"),
    }


ATTACK_NAMES = [
    "billion-laughs",
    "xxe-etc-passwd",
    "xxe-local-file",
    "external-dtd",
    "external-dtd-http",
    "parameter-entity",
    "internal-dtd",
    "undeclared-entity",
    "xinclude",
    "xml-stylesheet",
    "xml-model-inside",
    "200-deep",
    "300-deep",
    "2mb-text",
    "2mb-attribute",
    "2mb-tail",
]


def test_every_attack_is_listed(tmp_path: Path) -> None:
    assert sorted(attacks(tmp_path)) == sorted(ATTACK_NAMES)


def leaks(error: XmlInputError) -> bool:
    return SECRET in str(error) or "root:" in str(error) or SECRET in repr(error.args)


# -- accepted documents ---------------------------------------------------------------------


def test_parses_a_document() -> None:
    root = parse_xml(f'<Document xmlns="{NS}"><A>1</A><B c="d"/></Document>'.encode())
    assert etree.QName(root).localname == "Document"
    assert root[0].text == "1"
    assert root[1].get("c") == "d"


@pytest.mark.parametrize(
    "data",
    [
        b'\xef\xbb\xbf<?xml version="1.0" encoding="UTF-8"?><d>\xc3\xa9</d>',
        b'<?xml version="1.0" encoding="utf-8"?><d>\xc3\xa9</d>',
        b'<?xml version="1.0" encoding="ISO-8859-1"?><d>\xe9</d>',
        b"<?xml version='1.0' encoding='windows-1252'?><d>\xe9</d>",
        b"<d>\xc3\xa9</d>",
    ],
    ids=["utf8-bom", "utf8", "latin1", "cp1252", "no-declaration"],
)
def test_accepted_encodings(data: bytes) -> None:
    assert parse_xml(data).text == "é"


def test_accepts_bytearray_and_memoryview() -> None:
    assert parse_xml(bytearray(b"<d>1</d>")).text == "1"
    assert parse_xml(memoryview(b"<d>1</d>")).text == "1"


def test_refuses_str() -> None:
    with pytest.raises(TypeError, match="bytes"):
        parse_xml("<d/>")  # type: ignore[arg-type]


def test_comments_are_dropped_and_cdata_is_text() -> None:
    root = parse_xml(b"<!-- lead --><d><!-- x -->a<![CDATA[<b>]]></d>")
    assert len(root) == 0
    assert root.text == "a<b>"


def test_harmless_processing_instructions_are_removed_keeping_text() -> None:
    root = parse_xml(b"<?app x?><d>a<?app y?>b<e/>c<?app z?>d</d>")
    assert [child.tag for child in root] == ["e"]
    assert root.text == "ab"
    assert root[0].tail == "cd"


def test_nesting_up_to_the_limit_is_accepted() -> None:
    assert parse_xml(nested(DEFAULT_MAX_DEPTH)).tag == "a"
    assert parse_xml(nested(10), max_depth=10).tag == "a"


def test_text_up_to_the_limit_is_accepted() -> None:
    root = parse_xml(b"<d>" + b"x" * DEFAULT_MAX_TEXT + b"</d>")
    assert len(root.text or "") == DEFAULT_MAX_TEXT


def test_size_limit_is_inclusive() -> None:
    data = b"<d>12345</d>"
    assert parse_xml(data, max_bytes=len(data)).text == "12345"


# -- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_attack_is_refused(name: str, tmp_path: Path) -> None:
    data, kind = attacks(tmp_path)[name]
    with pytest.raises(XmlInputError) as caught:
        parse_xml(data)
    assert caught.value.kind == kind
    assert not leaks(caught.value)


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_attack_is_refused_even_without_the_prolog_scan(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parser configuration and tree checks refuse on their own (defence in depth)."""
    monkeypatch.setattr(safexml, "_check_prolog", lambda data: None)
    data, kind = attacks(tmp_path)[name]
    with pytest.raises(XmlInputError) as caught:
        parse_xml(data)
    assert caught.value.kind in {kind, "entity", "doctype"}
    assert not leaks(caught.value)


def test_the_parser_never_resolves_an_entity_or_loads_a_dtd(tmp_path: Path) -> None:
    secret, dtd = secret_file(tmp_path), external_dtd(tmp_path)
    for data in (
        f'<!DOCTYPE d [<!ENTITY x SYSTEM "{secret.as_uri()}">]><d>&x;</d>'.encode(),
        f'<!DOCTYPE d SYSTEM "{dtd.as_uri()}"><d>&leak;</d>'.encode(),
        f'<!DOCTYPE d [<!ENTITY % p SYSTEM "{dtd.as_uri()}"> %p;]><d>&leak;</d>'.encode(),
        billion_laughs().replace(b' a="&lol9;"', b""),
    ):
        parser, _ = safexml._new_parser()
        try:
            root = etree.fromstring(data, parser)
        except etree.XMLSyntaxError:
            continue  # refused by libxml2 itself (entity amplification)
        serialised = etree.tostring(root)
        assert SECRET.encode() not in serialised
        assert b"lollollol" not in serialised


def test_a_60_mb_document_is_refused_by_size() -> None:
    data = b"<d>" + b"<e>x</e>" * 7_500_000 + b"</d>"
    assert len(data) > 60_000_000
    with pytest.raises(XmlInputError) as caught:
        parse_xml(data)
    assert caught.value.kind == "too-large"
    assert str(DEFAULT_MAX_BYTES) in caught.value.reason
    assert caught.value.line is None


def test_size_is_checked_before_anything_else() -> None:
    with pytest.raises(XmlInputError) as caught:
        parse_xml(billion_laughs(), max_bytes=100)
    assert caught.value.kind == "too-large"


def test_depth_error_names_the_element_and_line() -> None:
    data = b"<d>\n" + nested(12, b"deep") + b"\n</d>"
    with pytest.raises(XmlInputError) as caught:
        parse_xml(data, max_depth=10)
    error = caught.value
    assert error.kind == "too-deep"
    assert error.reason == "elements nest deeper than 10 levels (at deep)"
    assert error.line == 2


def test_text_error_names_the_element_not_the_text() -> None:
    with pytest.raises(XmlInputError) as caught:
        parse_xml(f"<d><Ustrd>{SECRET}</Ustrd></d>".encode(), max_text=5)
    assert caught.value.kind == "text-too-long"
    assert caught.value.reason == "a text is longer than 5 characters (in Ustrd)"
    assert not leaks(caught.value)


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"", "syntax"),
        (b"   ", "syntax"),
        (b"not xml", "syntax"),
        (b"<d><e></d>", "syntax"),
        (b"<d></d><d/>", "syntax"),
        (b'Document xmlns="urn:x"><A/></Document>', "syntax"),
        (b"<d>" + SECRET.encode() + b"\xff\xfe</d>", "encoding"),
        (b"<d>\xc3\x28" + SECRET.encode() + b"</d>", "encoding"),
        ("<d/>".encode("utf-16"), "encoding"),
        ("<d/>".encode("utf-16-le"), "encoding"),
        ("<d/>".encode("utf-32"), "encoding"),
        ('<?xml version="1.0"?><d/>'.encode("cp500"), "encoding"),
        (b'<?xml version="1.0" encoding="UTF-7"?><d/>', "encoding"),
        (b'<?xml version="1.0" encoding="EBCDIC-US"?><d/>', "encoding"),
        (b'\xef\xbb\xbf<?xml version="1.0" encoding="ISO-8859-1"?><d/>', "encoding"),
    ],
    ids=[
        "empty",
        "blank",
        "text",
        "mismatch",
        "two-roots",
        "missing-lt",
        "bad-utf8",
        "bad-utf8-2",
        "utf16-bom",
        "utf16-no-bom",
        "utf32",
        "ebcdic",
        "declared-utf7",
        "declared-ebcdic",
        "bom-contradicts",
    ],
)
def test_not_acceptable_xml(data: bytes, kind: str) -> None:
    with pytest.raises(XmlInputError) as caught:
        parse_xml(data)
    assert caught.value.kind == kind
    assert not leaks(caught.value)
    assert "Bytes:" not in str(caught.value)


def test_syntax_error_has_a_location() -> None:
    with pytest.raises(XmlInputError) as caught:
        parse_xml(b"<d>\n  <e>\n</d>")
    error = caught.value
    assert error.kind == "syntax"
    assert error.line == 3
    assert error.column is not None
    assert error.reason == "Opening and ending tag mismatch: e line 2 and d"
    assert str(error) == f"{error.reason} (line 3, column {error.column})"


def test_doctype_location_is_reported() -> None:
    with pytest.raises(XmlInputError) as caught:
        parse_xml(b'<?xml version="1.0"?>\n<!-- c -->\n  <!DOCTYPE d><d/>')
    assert (caught.value.kind, caught.value.line, caught.value.column) == ("doctype", 3, 3)


def test_xml_input_error() -> None:
    error = XmlInputError("syntax", "bad", line=2, column=5)
    assert isinstance(error, ValueError)
    assert str(error) == "bad (line 2, column 5)"
    assert str(XmlInputError("too-large", "big")) == "big"
    assert str(XmlInputError("syntax", "bad", line=4)) == "bad (line 4)"
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.kind, copy.reason, copy.line, copy.column) == ("syntax", "bad", 2, 5)
    assert set(KINDS) >= {"doctype", "entity", "too-large", "too-deep", "text-too-long"}
    assert {"syntax", "encoding", "xinclude", "processing-instruction"} <= set(KINDS)


# -- streaming --------------------------------------------------------------------------


def statement(entries: int) -> bytes:
    body = "".join(f"<Ntry><Amt>{index}</Amt></Ntry>" for index in range(entries))
    return f'<Document xmlns="{NS}"><BkToCstmrStmt>{body}</BkToCstmrStmt></Document>'.encode()


def consume(stream: Iterator[tuple[str, etree._Element]]) -> list[tuple[str, str]]:
    seen = []
    for event, element in stream:
        seen.append((event, etree.QName(element).localname))
        if event == "end":
            element.clear()
    return seen


def test_streams_the_selected_elements() -> None:
    amounts = []
    for event, element in iterparse_safe(io.BytesIO(statement(3)), f"{{{NS}}}Ntry"):
        assert event == "end"
        amounts.append(element.findtext(f"{{{NS}}}Amt"))
        element.clear()
    assert amounts == ["0", "1", "2"]


@pytest.mark.parametrize(
    ("tags", "count"),
    [
        ("{*}Ntry", 3),
        (f"{{{NS}}}Ntry", 3),
        ("Ntry", 0),  # no namespace, as in lxml
        (["{*}Ntry", "{*}Amt"], 6),
        (f"{{{NS}}}*", 8),
        ("*", 8),
        (None, 8),
    ],
)
def test_tag_selection_follows_lxml(tags: str | list[str] | None, count: int) -> None:
    assert len(consume(iterparse_safe(io.BytesIO(statement(3)), tags))) == count


def test_start_and_end_events() -> None:
    seen = consume(iterparse_safe(io.BytesIO(b"<a><b/></a>"), events=("start", "end")))
    assert seen == [("start", "a"), ("start", "b"), ("end", "b"), ("end", "a")]


def test_arguments_are_checked_at_the_call() -> None:
    with pytest.raises(ValueError, match="events"):
        iterparse_safe(io.BytesIO(b"<a/>"), events=("comment",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="events"):
        iterparse_safe(io.BytesIO(b"<a/>"), events=())
    with pytest.raises(ValueError, match="chunk_size"):
        iterparse_safe(io.BytesIO(b"<a/>"), chunk_size=0)


def test_streams_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "camt053.xml"
    path.write_bytes(statement(5))
    assert len(consume(iterparse_safe(path, "{*}Ntry"))) == 5
    assert len(consume(iterparse_safe(str(path), "{*}Ntry"))) == 5


def test_streams_a_large_statement_in_small_chunks() -> None:
    data = statement(20_000)
    count = 0
    for _, element in iterparse_safe(io.BytesIO(data), "{*}Ntry", chunk_size=4096):
        count += 1
        element.clear()
        parent = element.getparent()
        while parent is not None and element.getprevious() is not None:
            del parent[0]
    assert count == 20_000


def test_stream_size_limit() -> None:
    data = statement(50_000)
    assert len(data) > 1_000_000
    with pytest.raises(XmlInputError) as caught:
        consume(iterparse_safe(io.BytesIO(data), "{*}Ntry", max_bytes=100_000))
    assert caught.value.kind == "too-large"


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_stream_attack_is_refused(name: str, tmp_path: Path) -> None:
    data, kind = attacks(tmp_path)[name]
    with pytest.raises(XmlInputError) as caught:
        consume(iterparse_safe(io.BytesIO(data)))
    if name == "undeclared-entity":  # the pull parser reports it as a broken document
        assert caught.value.kind in {"entity", "syntax"}
    else:
        assert caught.value.kind == kind
    assert not leaks(caught.value)


def test_stream_doctype_after_a_long_prolog_is_refused_at_the_first_element() -> None:
    """The byte scan sees only the first chunk; the first element's check sees the rest."""
    data = b"<!--" + b"c" * 100_000 + b"-->" + billion_laughs().split(b"?>", 1)[1]
    with pytest.raises(XmlInputError) as caught:
        consume(iterparse_safe(io.BytesIO(data), chunk_size=1024))
    assert caught.value.kind in {"entity", "doctype"}


def test_stream_yields_what_precedes_a_refusal() -> None:
    data = b"<d><e>1</e><e>2</e>" + nested(120) + b"</d>"
    seen: list[str | None] = []

    def read() -> None:
        for _, element in iterparse_safe(io.BytesIO(data), "e"):
            seen.append(element.text)

    with pytest.raises(XmlInputError) as caught:
        read()
    assert seen == ["1", "2"]
    assert caught.value.kind == "too-deep"


def test_stream_removes_harmless_processing_instructions() -> None:
    stream = iterparse_safe(io.BytesIO(b"<d><e>a<?app x?>b</e></d>"), "e")
    texts = [element.text for _, element in stream]
    assert texts == ["ab"]


@pytest.mark.parametrize(
    "make",
    [
        lambda: b"<d><e>" + b"x" * 2_000_000 + b"</e></d>",
        lambda: b"<d><e/>" + b"x" * 2_000_000 + b"<f/></d>",
        lambda: b"<d><e/>" + b"x" * 2_000_000 + b"</d>",
    ],
    ids=["text", "tail-before-sibling", "last-tail"],
)
def test_stream_text_limit(make: Callable[[], bytes]) -> None:
    with pytest.raises(XmlInputError) as caught:
        consume(iterparse_safe(io.BytesIO(make())))
    assert caught.value.kind == "text-too-long"


def test_stream_syntax_error_after_elements() -> None:
    with pytest.raises(XmlInputError) as caught:
        consume(iterparse_safe(io.BytesIO(b"<d><e/><e></d>")))
    assert caught.value.kind == "syntax"
