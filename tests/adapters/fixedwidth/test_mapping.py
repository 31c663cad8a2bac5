"""Mapping files: the shipped ones load; bad ones are refused naming the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.fixedwidth.adapter import VARIANTS, builtin_mapping_path
from adapters.fixedwidth.canonical import RecordMapper
from adapters.fixedwidth.copybook import load_layout
from adapters.fixedwidth.mapping import MappingError, load_mapping
from canonical_model.messages import MessageFunction, MessageKind


@pytest.mark.parametrize("variant", VARIANTS)
def test_shipped_mappings_load(variant: str) -> None:
    mapping = load_mapping(builtin_mapping_path(variant))
    assert mapping.copybook.exists()
    assert mapping.kinds


def test_request_mapping_content() -> None:
    mapping = load_mapping(builtin_mapping_path("corebank-request"))
    assert mapping.function is MessageFunction.REQUEST
    assert mapping.record == "CB-REQUEST"
    debit = next(k for k in mapping.kinds if k.condition == "CB-DEBIT-POSTING")
    assert (debit.kind, debit.processing) == (MessageKind.FINANCIAL, "00")
    assert {r.field: r.path for r in mapping.fields}["CB-ACCOUNT-NO"] == (
        "debtor_account",
        "other_id",
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.toml"
    path.write_text(text)
    return path


HEAD = '[record]\ncopybook = "x.cpy"\n'


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[record]\n", "record.copybook", "missing 'copybook'"),
        (HEAD + "[extra]\n", "extra", "unknown section"),
        (HEAD + 'function = "shout"\n', "record.function", "unknown function"),
        (HEAD + '[[kind]]\nkind = "lunch"\ncondition = "A"\n', "kind[0]", "unknown kind"),
        (HEAD + '[[kind]]\nkind = "financial"\n', "kind[0]", "one of condition or value"),
        (HEAD + '[fields]\nA = { to = "amount", convert = "magic" }\n', "fields.A", "converter"),
        (HEAD + "[fields]\nA = 5\n", "fields.A", "a path or a table"),
        ("[record\n", None, "not valid TOML"),
    ],
)
def test_bad_mapping_files(tmp_path: Path, text: str, key: str | None, reason: str) -> None:
    with pytest.raises(MappingError, match=reason) as info:
        load_mapping(write(tmp_path, text))
    assert info.value.key == key
    assert str(tmp_path / "m.toml") in str(info.value)


@pytest.mark.parametrize(
    ("extra", "key", "reason"),
    [
        ('[fields]\n"CB-NOPE" = "ids.transaction_id"\n', "fields.CB-NOPE", "no field"),
        ('[fields]\n"CB-CHANNEL" = "ids.nope"\n', "fields.CB-CHANNEL", "not a canonical field"),
        ('[fields]\n"CB-CHANNEL" = "kind"\n', "fields.CB-CHANNEL", "not a canonical field"),
        ('[[kind]]\ncondition = "CB-NOPE"\nkind = "financial"\n', "kind[0]", "no condition"),
    ],
)
def test_mapping_checked_against_the_copybook(
    tmp_path: Path, extra: str, key: str, reason: str
) -> None:
    mapping = load_mapping(write(tmp_path, HEAD + extra))
    codec = load_layout("corebank_request").record("CB-REQUEST")
    with pytest.raises(MappingError, match=reason) as info:
        RecordMapper(codec, mapping)
    assert info.value.key == key
