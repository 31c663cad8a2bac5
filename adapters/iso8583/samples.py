"""Sample ISO 8583:1987 messages, as plain field dictionaries, for the demo, tests and benchmarks.

Card numbers are the public test PANs of the card schemes (Luhn-valid, never issued).
:func:`sample_bytes` encodes a sample in any variant with pyiso8583 directly, so the bytes
do not come from the adapter under test.

>>> sample_bytes("0800-echo", "ascii")[:4]
b'0800'
"""

from __future__ import annotations

from collections.abc import Mapping

import iso8583

from adapters.iso8583.specs import SPECS

__all__ = ["SAMPLES", "TEST_PANS", "sample_bytes"]

TEST_PANS = ("4761739001010010", "5413330089010012", "4111111111111111")

_EMV = (
    "9F2608C2C12B098F3DA6E3"  # application cryptogram
    "9F270180"  # cryptogram information data
    "9F10120110A04003220000000000000000000000FF"  # issuer application data
    "9F37049BADBCAB"  # unpredictable number
    "9F3602000E"  # application transaction counter
    "95050000008000"  # terminal verification results
    "9A03261128"  # transaction date
    "9C0100"  # transaction type
    "9F02060000000100005F2A020826"  # amount, currency
    "82025C00"  # application interchange profile
    "9F1A020826"  # terminal country
    "5A0847617390010100105F340101"  # application PAN (dropped at decode), PAN sequence
)

_ACCEPTOR = {
    "18": "5411",
    "22": "051",
    "25": "00",
    "41": "TERM0001",
    "42": "MERCHANT0000001",
    "43": "ISOBRIDGE TEST SHOP      LONDON       GB",
}

SAMPLES: Mapping[str, Mapping[str, str]] = {
    "0100-authorization": {
        "t": "0100",
        "2": TEST_PANS[0],
        "3": "000000",
        "4": "000000010000",
        "7": "1128160530",
        "11": "000001",
        "12": "160530",
        "13": "1128",
        "14": "2812",
        "23": "001",
        "32": "123456",
        "37": "633216000001",
        "49": "826",
        "55": _EMV,
        **_ACCEPTOR,
    },
    "0110-approved": {
        "t": "0110",
        "2": TEST_PANS[0],
        "3": "000000",
        "4": "000000010000",
        "7": "1128160531",
        "11": "000001",
        "32": "123456",
        "37": "633216000001",
        "38": "A1B2C3",
        "39": "00",
        "41": "TERM0001",
        "49": "826",
    },
    "0200-purchase": {
        "t": "0200",
        "3": "000000",
        "4": "000000002550",
        "7": "1128160612",
        "11": "000002",
        "12": "160612",
        "13": "1128",
        "32": "123456",
        "35": f"{TEST_PANS[1]}=28122011234567890000",
        "37": "633216000002",
        "49": "978",
        "52": "1A2B3C4D5E6F7081",
        "102": "GB33BUKB20201555555555",
        **_ACCEPTOR,
    },
    "0200-balance-enquiry": {
        "t": "0200",
        "2": TEST_PANS[2],
        "3": "311000",
        "7": "1128160700",
        "11": "000003",
        "14": "2905",
        "37": "633216000003",
        "41": "ATM00042",
        "42": "BANKATM00000042",
    },
    "0210-balance-response": {
        "t": "0210",
        "3": "311000",
        "7": "1128160701",
        "11": "000003",
        "37": "633216000003",
        "39": "00",
        "41": "ATM00042",
        "54": "1001840C0000001500001002840D000000002000",
    },
    "0210-declined": {
        "t": "0210",
        "3": "000000",
        "4": "000000002550",
        "7": "1128160613",
        "11": "000002",
        "37": "633216000002",
        "39": "51",
        "41": "TERM0001",
        "49": "978",
    },
    "0420-reversal-advice": {
        "t": "0420",
        "2": TEST_PANS[1],
        "3": "000000",
        "4": "000000002550",
        "7": "1128160745",
        "11": "000004",
        "32": "123456",
        "37": "633216000002",
        "39": "68",
        "41": "TERM0001",
        "42": "MERCHANT0000001",
        "49": "978",
        "90": "020000000211281606120000012345600000000000",
    },
    "0421-reversal-repeat": {
        "t": "0421",
        "2": TEST_PANS[1],
        "3": "000000",
        "4": "000000002550",
        "7": "1128160815",
        "11": "000004",
        "32": "123456",
        "37": "633216000002",
        "39": "68",
        "41": "TERM0001",
        "49": "978",
        "90": "020000000211281606120000012345600000000000",
    },
    "0430-reversal-acknowledged": {
        "t": "0430",
        "4": "000000002550",
        "7": "1128160816",
        "11": "000004",
        "37": "633216000002",
        "39": "00",
        "41": "TERM0001",
        "49": "978",
    },
    "0800-sign-on": {"t": "0800", "7": "1128080000", "11": "000100", "70": "001"},
    "0800-echo": {"t": "0800", "7": "1128160900", "11": "000101", "70": "301"},
    "0810-echo-response": {
        "t": "0810",
        "7": "1128160900",
        "11": "000101",
        "39": "00",
        "70": "301",
    },
}
"""Sample messages by name: pyiso8583 field dictionaries (``t`` is the MTI)."""


def sample_bytes(name: str, variant: str) -> bytes:
    """The sample ``name`` encoded by pyiso8583 in the spec ``variant``."""
    raw, _ = iso8583.encode(dict(SAMPLES[name]), SPECS[variant])
    return bytes(raw)
