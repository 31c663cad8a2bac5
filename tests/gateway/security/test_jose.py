"""JWS and JWK: the three algorithms, published test vectors, and everything refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from gateway.security.jose import (
    ALGORITHMS,
    JoseError,
    PublicJwk,
    SigningKey,
    b64url_decode,
    b64url_encode,
    parse_compact,
    sign_compact,
    sign_detached,
    verify_signature,
)

# RFC 8037 appendix A.1-A.5: the Ed25519 key, its thumbprint and the signature of
# "Example of Ed25519 signing" (deterministic, so signing reproduces it).
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
RFC8037_JWS = (
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)


def test_rfc8037_ed25519_vectors() -> None:
    jwk = PublicJwk.from_dict({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X})
    assert jwk.thumbprint() == RFC8037_THUMBPRINT
    parsed = parse_compact(RFC8037_JWS)
    verify_signature(parsed, jwk)
    assert parsed.payload == b"Example of Ed25519 signing"
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = SigningKey("EdDSA", "k", Ed25519PrivateKey.from_private_bytes(b64url_decode(RFC8037_D)))
    assert sign_compact({"alg": "EdDSA"}, b"Example of Ed25519 signing", key) == RFC8037_JWS


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_each_algorithm_signs_and_verifies_and_tampering_is_caught(alg: str) -> None:
    key = SigningKey.generate(alg, kid="k1")
    jwk = PublicJwk.from_dict(key.public_jwk())
    token = sign_compact({"alg": alg, "kid": "k1"}, b'{"sub":"a"}', key)
    verify_signature(parse_compact(token), jwk)
    header, _, signature = token.split(".")
    other = b64url_encode(b'{"sub":"b"}')
    forged = f"{header}.{other}.{signature}"
    with pytest.raises(JoseError, match="does not verify"):
        verify_signature(parse_compact(forged), jwk)
    detached = sign_detached({"alg": alg, "kid": "k1"}, b"body", key)
    verify_signature(parse_compact(detached, detached_payload=b"body"), jwk)
    with pytest.raises(JoseError):
        verify_signature(parse_compact(detached, detached_payload=b"other"), jwk)


def _token(header: dict[str, object], payload: bytes, signature: bytes) -> str:
    head = b64url_encode(json.dumps(header).encode())
    return f"{head}.{b64url_encode(payload)}.{b64url_encode(signature)}"


@pytest.mark.parametrize(
    "alg", ["none", "None", "HS256", "HS384", "HS512", "hs256", "RS256", "ES384", ""]
)
def test_refused_algorithms(alg: str) -> None:
    with pytest.raises(JoseError):
        parse_compact(_token({"alg": alg}, b"{}", b""))


def test_rsa_public_key_as_hmac_secret_cannot_verify() -> None:
    """The confusion attack: an RS256 issuer's public key PEM used as an HS256 secret."""
    victim = SigningKey.generate("PS256", kid="rsa")
    pem = victim.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64url_encode(json.dumps({"alg": "HS256", "kid": "rsa"}).encode())
    body = b64url_encode(b'{"sub":"admin"}')
    mac = hmac.new(pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    with pytest.raises(JoseError, match="refused"):
        parse_compact(f"{header}.{body}.{b64url_encode(mac)}")


def test_the_key_must_fit_the_algorithm() -> None:
    rsa_key = SigningKey.generate("PS256", kid="rsa")
    ec_key = SigningKey.generate("ES256", kid="ec")
    token = sign_compact({"alg": "ES256"}, b"x", ec_key)
    with pytest.raises(JoseError, match="cannot verify"):
        verify_signature(parse_compact(token), PublicJwk.from_dict(rsa_key.public_jwk()))
    mismatched = {**ec_key.public_jwk(), "alg": "EdDSA"}
    with pytest.raises(JoseError):
        verify_signature(parse_compact(token), PublicJwk.from_dict(mismatched))


def test_rs256_pkcs1_signatures_are_refused_even_with_the_right_key() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    header = b64url_encode(json.dumps({"alg": "RS256"}).encode())
    body = b64url_encode(b"{}")
    signature = private.sign(f"{header}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(JoseError, match="not one of"):
        parse_compact(f"{header}.{body}.{b64url_encode(signature)}")


def test_es256_needs_the_raw_signature_form() -> None:
    key = SigningKey.generate("ES256", kid="ec")
    assert isinstance(key.key, ec.EllipticCurvePrivateKey)
    header = b64url_encode(json.dumps({"alg": "ES256"}).encode())
    body = b64url_encode(b"{}")
    der = key.key.sign(f"{header}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    with pytest.raises(JoseError, match="64 bytes"):
        verify_signature(
            parse_compact(f"{header}.{body}.{b64url_encode(der)}"),
            PublicJwk.from_dict(key.public_jwk()),
        )


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a.b",
        "a.b.c.d",
        "!!!.e30.AA",
        f"{b64url_encode(b'[1]')}.e30.AA",
        f"{b64url_encode(b'not json')}.e30.AA",
        f"{b64url_encode(json.dumps({'alg': 'ES256', 'crit': ['exp']}).encode())}.e30.AA",
        f"{b64url_encode(json.dumps({'alg': 'ES256', 'b64': False}).encode())}.e30.AA",
        f"{b64url_encode(json.dumps({'alg': 'ES256'}).encode())}.e30=.AA",
        "x" * 20_000,
    ],
)
def test_malformed_tokens(token: str) -> None:
    with pytest.raises(JoseError):
        parse_compact(token)


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "oct", "k": "c2VjcmV0"},
        {"kty": "RSA", "n": b64url_encode((2**1023 + 1).to_bytes(128, "big")), "e": "AQAB"},
        {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"},
        {"kty": "EC", "crv": "P-256", "x": b64url_encode(bytes(32)), "y": b64url_encode(bytes(32))},
        {"kty": "OKP", "crv": "X25519", "x": RFC8037_X},
        {"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X, "d": RFC8037_D},
        {"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X, "use": "enc"},
        {"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X, "alg": "HS256"},
    ],
)
def test_unusable_keys_are_refused(jwk: dict[str, str]) -> None:
    with pytest.raises(JoseError):
        PublicJwk.from_dict(jwk)


def test_strict_base64url() -> None:
    assert b64url_decode(b64url_encode(b"\xff\xfe")) == b"\xff\xfe"
    for bad in ("a", "ab=", "a+b/", "a b"):
        with pytest.raises(JoseError):
            b64url_decode(bad)
    assert base64.urlsafe_b64decode("AA==") == b64url_decode("AA")
