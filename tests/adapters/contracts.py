"""What each registered adapter provides to the shared contract suite (``test_contract.py``).

A new adapter adds one entry to :data:`CONTRACTS`: its fixtures (wire bytes and the canonical
JSON they must decode to) and a Hypothesis strategy of valid wire messages per variant. The
contract suite refuses a registered adapter without an entry.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import iso8583
from hypothesis import strategies as st

from adapters.base import AdapterDecodeError, AdapterEncodeError, EncodeContext
from adapters.fixedwidth.adapter import FixedWidthAdapter
from adapters.iso8583.samples import SAMPLES, sample_bytes
from adapters.iso8583.specs import SPECS
from adapters.iso20022.adapter import Iso20022Adapter
from canonical_model import MessageKind
from tests.adapters.fixedwidth.strategies import reply_values, request_values
from tests.adapters.iso8583.strategies import field_dicts
from tests.adapters.iso20022.strategies import credit_transfers, status_reports


@dataclass(frozen=True, slots=True)
class ContractFixture:
    name: str
    payload: bytes
    expected: dict[str, Any]
    exact_bytes: bool


@dataclass(frozen=True, slots=True)
class AdapterContract:
    fixtures: Callable[[str], list[ContractFixture]]
    payloads: Callable[[str], st.SearchStrategy[bytes]]


_ISO8583_EXPECTED = Path(__file__).parent / "iso8583" / "expected"
# Samples holding data the adapter drops (track 2, PIN block, PAN-bearing EMV tags) come
# back as other bytes that decode to the same canonical message.
_ISO8583_LOSSY = frozenset({"0100-authorization", "0200-purchase"})


def _iso8583_fixtures(variant: str) -> list[ContractFixture]:
    return [
        ContractFixture(
            name=name,
            payload=sample_bytes(name, variant),
            expected=json.loads((_ISO8583_EXPECTED / f"{name}.json").read_text()),
            exact_bytes=name not in _ISO8583_LOSSY,
        )
        for name in SAMPLES
    ]


def _iso8583_payloads(variant: str) -> st.SearchStrategy[bytes]:
    spec = SPECS[variant]
    return field_dicts().map(lambda fields: bytes(iso8583.encode(fields, spec)[0]))


_ISO20022 = Path(__file__).parent / "iso20022"
# fixture file -> the variants whose family it is
_ISO20022_FIXTURES = {
    "fednow-pacs008": ("pacs.008", "pacs.008.13"),
    "cbpr-pacs008-envelope": ("pacs.008",),  # .13 rewrites the header's MsgDefIdr
    "fednow-pacs002": ("pacs.002",),
}


def _iso20022_fixtures(variant: str) -> list[ContractFixture]:
    return [
        ContractFixture(
            name=name,
            payload=(_ISO20022 / "fixtures" / f"{name}.xml").read_bytes(),
            expected=json.loads((_ISO20022 / "expected" / f"{name}.json").read_text()),
            exact_bytes=False,  # the hub writes its own layout (no indentation, prefixes)
        )
        for name, variants in _ISO20022_FIXTURES.items()
        if variant in variants
    ]


# Variants whose generated payloads are the shared samples of their family, re-encoded
# by the adapter (their canonical messages are too constrained for a simple generator).
# camt.053: the statements of the older versions (there is no camt.053.001.08 sample).
_SAMPLED = {"pacs.004": "pacs.004.001.09", "pacs.004.10": "pacs.004.001.10",
            "camt.056": "camt.056.001.08", "reversal": "camt.056.001.08",
            "pacs.009": "pacs.009.001.08", "camt.053": "camt.053.001.0*"}  # fmt: skip
_SHARED_SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "iso20022" / "samples"


def _sampled_payloads(variant: str) -> list[bytes]:
    from tests.support import decode_context, encode_context, fixed_vault

    adapter = Iso20022Adapter(variant)
    family = _SAMPLED[variant]
    payloads = []
    for path in sorted(_SHARED_SAMPLES.glob(f"{family}/*.xml")):
        vault = fixed_vault()
        try:
            messages = adapter.decode_batch(path.read_bytes(), decode_context(vault))
            payloads.append(adapter.encode_batch(messages, encode_context(adapter, vault)))
        except (AdapterDecodeError, AdapterEncodeError):
            continue  # a sample that breaks a business rule (listed in test_rules.py)
    assert payloads, f"no usable {family} sample in {_SHARED_SAMPLES}"
    return payloads


def _iso20022_payloads(variant: str) -> st.SearchStrategy[bytes]:
    if variant in _SAMPLED:
        return st.sampled_from(_sampled_payloads(variant))
    adapter = Iso20022Adapter(variant)
    kind = MessageKind.CREDIT_TRANSFER if variant.startswith("pain") else MessageKind.FINANCIAL
    reports = variant.endswith(".002")
    messages = status_reports(kind) if reports else credit_transfers(kind)
    return messages.map(
        lambda message: adapter.encode(message, EncodeContext(tenant=message.tenant))
    )


_FIXEDWIDTH = Path(__file__).parent / "fixedwidth"
_FIXEDWIDTH_FIXTURES = {"corebank-request": "request-", "corebank-reply": "reply-"}


def _fixedwidth_fixtures(variant: str) -> list[ContractFixture]:
    return [
        ContractFixture(
            name=path.stem,
            payload=path.read_bytes(),
            expected=json.loads((_FIXEDWIDTH / "expected" / f"{path.stem}.json").read_text()),
            exact_bytes=True,
        )
        for path in sorted((_FIXEDWIDTH / "fixtures").glob(f"{_FIXEDWIDTH_FIXTURES[variant]}*.bin"))
    ]


def _fixedwidth_payloads(variant: str) -> st.SearchStrategy[bytes]:
    codec = FixedWidthAdapter(variant).codec
    values = request_values(codec) if variant == "corebank-request" else reply_values()
    return values.map(codec.encode)


CONTRACTS: dict[str, AdapterContract] = {
    "fixedwidth": AdapterContract(_fixedwidth_fixtures, _fixedwidth_payloads),
    "iso20022": AdapterContract(_iso20022_fixtures, _iso20022_payloads),
    "iso8583": AdapterContract(_iso8583_fixtures, _iso8583_payloads),
}
