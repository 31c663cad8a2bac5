"""TOTP (RFC 6238) against the RFC's own test vectors and an independent implementation."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, unquote, urlparse

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from hypothesis import given
from hypothesis import strategies as st

from gateway.security.totp import (
    Algorithm,
    TotpParameters,
    base32_secret,
    hotp,
    new_secret,
    provisioning_uri,
    time_step,
    totp,
)

# RFC 6238 appendix B: the seeds are the ASCII digits repeated to the hash's length.
SEEDS: dict[Algorithm, bytes] = {
    "SHA1": b"12345678901234567890",
    "SHA256": b"12345678901234567890123456789012",
    "SHA512": b"1234567890123456789012345678901234567890123456789012345678901234",
}

# (time, step counter in hex, SHA1, SHA256, SHA512), 8 digits, X = 30, T0 = 0
APPENDIX_B = [
    (59, "0000000000000001", "94287082", "46119246", "90693936"),
    (1111111109, "00000000023523EC", "07081804", "68084774", "25091201"),
    (1111111111, "00000000023523ED", "14050471", "67062674", "99943326"),
    (1234567890, "000000000273EF07", "89005924", "91819424", "93441116"),
    (2000000000, "0000000003F940AA", "69279037", "90698825", "38618901"),
    (20000000000, "0000000027BC86AA", "65353130", "77737706", "47863826"),
]


@pytest.mark.parametrize(("at", "counter", "sha1", "sha256", "sha512"), APPENDIX_B)
def test_rfc_6238_appendix_b(at: int, counter: str, sha1: str, sha256: str, sha512: str) -> None:
    for algorithm, expected in (("SHA1", sha1), ("SHA256", sha256), ("SHA512", sha512)):
        parameters = TotpParameters(digits=8, step=30, algorithm=algorithm)  # type: ignore[arg-type]
        assert time_step(at, parameters) == int(counter, 16)
        assert totp(SEEDS[parameters.algorithm], at, parameters) == expected


def test_rfc_4226_appendix_d() -> None:
    expected = ["755224", "287082", "359152", "969429", "338314",
                "254676", "287922", "162583", "399871", "520489"]  # fmt: skip
    assert [hotp(SEEDS["SHA1"], counter) for counter in range(10)] == expected


_HASHES: dict[str, hashes.SHA1 | hashes.SHA256 | hashes.SHA512] = {
    "SHA1": hashes.SHA1(),  # noqa: S303  RFC 6238's default, as HMAC-SHA1 (still sound)
    "SHA256": hashes.SHA256(),
    "SHA512": hashes.SHA512(),
}


@given(
    secret=st.binary(min_size=16, max_size=64),
    at=st.integers(min_value=0, max_value=2**40),
    digits=st.sampled_from([6, 7, 8]),
    step=st.integers(min_value=1, max_value=300),
    algorithm=st.sampled_from(["SHA1", "SHA256", "SHA512"]),
)
def test_codes_agree_with_the_cryptography_librarys_totp(
    secret: bytes, at: int, digits: int, step: int, algorithm: Algorithm
) -> None:
    reference = TOTP(secret, digits, _HASHES[algorithm], step, enforce_key_length=False)
    parameters = TotpParameters(digits, step, algorithm)
    assert totp(secret, at, parameters) == reference.generate(at).decode()


def test_the_provisioning_uri_is_what_authenticator_apps_read() -> None:
    secret = new_secret()
    assert len(secret) == 20 and new_secret() != secret
    parameters = TotpParameters(digits=8, step=60, algorithm="SHA256")
    uri = provisioning_uri(secret, "alice@bank", "Bank & Co", parameters)
    parsed = urlparse(uri)
    assert (parsed.scheme, parsed.netloc) == ("otpauth", "totp")
    assert unquote(parsed.path) == "/Bank & Co:alice@bank"
    query = {key: values[0] for key, values in parse_qs(parsed.query).items()}
    assert query == {
        "secret": base32_secret(secret),
        "issuer": "Bank & Co",
        "algorithm": "SHA256",
        "digits": "8",
        "period": "60",
    }
    assert "=" not in query["secret"]
    padded = query["secret"] + "=" * (-len(query["secret"]) % 8)
    assert base64.b32decode(padded) == secret
    # the same key in the cryptography library's own URI
    reference = TOTP(secret, 8, hashes.SHA256(), 60).get_provisioning_uri("alice@bank", "Bank & Co")
    theirs = {key: values[0] for key, values in parse_qs(urlparse(reference).query).items()}
    assert theirs["secret"] == query["secret"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"digits": 5}, "digits must be 6, 7 or 8"),
        ({"digits": 9}, "digits must be 6, 7 or 8"),
        ({"step": 0}, "the time step must be 1..300"),
        ({"algorithm": "MD5"}, "algorithm must be one of SHA1, SHA256, SHA512"),
    ],
)
def test_parameters_are_checked(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TotpParameters(**changes)  # type: ignore[arg-type]


def test_defaults_are_what_every_app_assumes() -> None:
    assert TotpParameters() == TotpParameters(digits=6, step=30, algorithm="SHA1")
    assert time_step(29.9, TotpParameters()) == 0 and time_step(30.0, TotpParameters()) == 1
