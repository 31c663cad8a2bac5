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

from adapters.iso8583.samples import SAMPLES, sample_bytes
from adapters.iso8583.specs import SPECS
from tests.adapters.iso8583.strategies import field_dicts


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


CONTRACTS: dict[str, AdapterContract] = {
    "iso8583": AdapterContract(_iso8583_fixtures, _iso8583_payloads),
}
