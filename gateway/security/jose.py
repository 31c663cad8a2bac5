"""JSON Web Signatures and keys, with ``cryptography`` only: the three FAPI algorithms.

Standards: RFC 7515 (JWS, compact serialization and detached content, appendix F), RFC 7517
(JWK), RFC 7518 (algorithms), RFC 8037 (``OKP`` keys, ``EdDSA``), RFC 7638 (JWK thumbprint),
RFC 8705 section 3.1 (``x5t#S256`` certificate thumbprint). FAPI 1.0 Advanced (section
8.6) and FAPI 2.0 allow ``PS256``, ``ES256`` and ``EdDSA`` (Ed25519); nothing else is
accepted or produced here:

- ``none`` and every HMAC algorithm (``HS256``...) are refused by name, before any key is
  looked at. So the classic confusion attack (an ``RS256`` issuer's *public* key used as an
  HMAC secret: ``alg: HS256`` signed with the PEM bytes) cannot verify: no code path here
  computes an HMAC.
- The key must fit the algorithm: ``PS256`` an ``RSA`` key of at least 2048 bits,
  ``ES256`` an ``EC`` key on P-256, ``EdDSA`` an ``OKP`` Ed25519 key. A JWK that names an
  ``alg`` must name the token's.
- ``ES256`` signatures are the 64-byte ``R || S`` form of RFC 7518 section 3.4 (not DER);
  ``PS256`` is RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt.
- Base64url is strict: no padding, no characters outside the alphabet.
- A ``crit`` header is refused unless every name in it is one the caller understands
  (``understood_crit``): the OBIE detached-signature claims, for example.

>>> key = SigningKey.generate("EdDSA", kid="k1")
>>> token = sign_compact({"alg": "EdDSA", "kid": "k1"}, b'{"a":1}', key)
>>> parsed = parse_compact(token)
>>> verify_signature(parsed, PublicJwk.from_dict(key.public_jwk()))
>>> parsed.payload
b'{"a":1}'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import unquote

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "JoseError",
    "ParsedJws",
    "PublicJwk",
    "SigningKey",
    "b64url_decode",
    "b64url_encode",
    "certificate_from_header",
    "certificate_thumbprint",
    "parse_compact",
    "sign_compact",
    "sign_detached",
    "verify_signature",
]

Algorithm = Literal["PS256", "ES256", "EdDSA"]
ALGORITHMS: Final[tuple[Algorithm, ...]] = ("PS256", "ES256", "EdDSA")
"""The only algorithms accepted and produced."""

_KEY_TYPE: Final[dict[str, str]] = {"PS256": "RSA", "ES256": "EC", "EdDSA": "OKP"}
_B64URL: Final = re.compile(r"[A-Za-z0-9_-]*")
_MIN_RSA_BITS: Final = 2048
_MAX_TOKEN: Final = 16_384


class JoseError(ValueError):
    """A JWS or JWK that is refused; the message says why (never the token itself)."""


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, what: str = "value") -> bytes:
    """Strict base64url without padding; :class:`JoseError` naming ``what`` otherwise."""
    if not isinstance(text, str) or not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise JoseError(f"{what} is not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise JoseError(f"{what} is not base64url") from None


def _int(value: object, what: str) -> int:
    if not isinstance(value, str):
        raise JoseError(f"JWK member {what} is missing")
    return int.from_bytes(b64url_decode(value, f"JWK member {what}"), "big")


def certificate_thumbprint(der: bytes) -> str:
    """``x5t#S256`` of a DER certificate: base64url SHA-256 (RFC 8705 section 3.1)."""
    return b64url_encode(hashlib.sha256(der).digest())


def _check_alg(alg: object) -> Algorithm:
    if alg == "none" or (isinstance(alg, str) and alg.upper().startswith("HS")):
        raise JoseError(f"algorithm {alg} is refused")
    for known in ALGORITHMS:
        if alg == known:
            return known
    raise JoseError(f"algorithm {alg!r} is not one of {', '.join(ALGORITHMS)}")


PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True, slots=True)
class PublicJwk:
    """A public verification key from a JWK (RFC 7517), checked against its key type."""

    kty: str
    key: PublicKey
    kid: str | None
    alg: str | None
    members: Mapping[str, str]

    @classmethod
    def from_dict(cls, jwk: Mapping[str, Any]) -> PublicJwk:
        """Parse a public JWK; private members (``d``, ``p``...) are refused."""
        if not isinstance(jwk, Mapping):
            raise JoseError("a JWK must be a JSON object")
        if any(name in jwk for name in ("d", "p", "q", "dp", "dq", "qi", "k")):
            raise JoseError("a public JWK must not hold private or symmetric key material")
        kty = jwk.get("kty")
        kid = jwk.get("kid")
        alg = jwk.get("alg")
        if kid is not None and not isinstance(kid, str):
            raise JoseError("JWK kid must be a string")
        if alg is not None:
            _check_alg(alg)
        use = jwk.get("use")
        if use is not None and use != "sig":
            raise JoseError("JWK use must be sig")
        key: PublicKey
        members: dict[str, str]
        try:
            if kty == "RSA":
                n, e = _int(jwk.get("n"), "n"), _int(jwk.get("e"), "e")
                if n.bit_length() < _MIN_RSA_BITS:
                    raise JoseError(f"RSA keys need at least {_MIN_RSA_BITS} bits")
                key = rsa.RSAPublicNumbers(e, n).public_key()
                members = {"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}
            elif kty == "EC":
                if jwk.get("crv") != "P-256":
                    raise JoseError("EC keys must be on curve P-256")
                x, y = _int(jwk.get("x"), "x"), _int(jwk.get("y"), "y")
                key = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
                members = {"crv": "P-256", "kty": "EC", "x": jwk["x"], "y": jwk["y"]}
            elif kty == "OKP":
                if jwk.get("crv") != "Ed25519":
                    raise JoseError("OKP keys must be Ed25519")
                raw = b64url_decode(str(jwk.get("x", "")), "JWK member x")
                key = ed25519.Ed25519PublicKey.from_public_bytes(raw)
                members = {"crv": "Ed25519", "kty": "OKP", "x": jwk["x"]}
            else:
                raise JoseError(f"JWK key type {kty!r} is not RSA, EC or OKP")
        except (ValueError, TypeError) as exc:
            if isinstance(exc, JoseError):
                raise
            raise JoseError(f"JWK is not a valid {kty} key") from None
        return cls(str(kty), key, kid, alg, members)

    def thumbprint(self) -> str:
        """RFC 7638 SHA-256 thumbprint, base64url (DPoP's ``jkt``)."""
        text = json.dumps(dict(sorted(self.members.items())), separators=(",", ":"))
        return b64url_encode(hashlib.sha256(text.encode()).digest())


@dataclass(frozen=True, slots=True)
class ParsedJws:
    """A compact JWS taken apart; nothing verified yet but its form and algorithm."""

    header: Mapping[str, Any]
    payload: bytes
    signing_input: bytes
    signature: bytes
    alg: Algorithm


def parse_compact(
    token: str,
    *,
    detached_payload: bytes | None = None,
    understood_crit: Collection[str] = (),
) -> ParsedJws:
    """Split and decode ``header.payload.signature``; with ``detached_payload`` the middle
    part must be empty (RFC 7515 appendix F). Refuses every algorithm but the three."""
    if not isinstance(token, str) or len(token) > _MAX_TOKEN:
        raise JoseError("the JWS is missing or too long")
    parts = token.split(".")
    if len(parts) != 3:
        raise JoseError("a compact JWS has three parts")
    header_b64, payload_b64, signature_b64 = parts
    try:
        header = json.loads(b64url_decode(header_b64, "the JWS header"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise JoseError("the JWS header is not JSON") from None
    if not isinstance(header, dict):
        raise JoseError("the JWS header is not a JSON object")
    alg = _check_alg(header.get("alg"))
    crit = header.get("crit")
    if crit is not None:
        if not isinstance(crit, list) or not crit or not all(isinstance(c, str) for c in crit):
            raise JoseError("crit must be a non-empty list of names")
        unknown = [name for name in crit if name not in understood_crit]
        if unknown:
            raise JoseError(f"critical header {unknown[0]!r} is not understood")
        missing = [name for name in crit if name not in header]
        if missing:
            raise JoseError(f"critical header {missing[0]!r} is absent")
    if header.get("b64", True) is not True:
        raise JoseError("unencoded payloads (b64: false) are not supported")
    if detached_payload is not None:
        if payload_b64:
            raise JoseError("a detached JWS has an empty payload part")
        payload = detached_payload
        payload_b64 = b64url_encode(detached_payload)
    else:
        payload = b64url_decode(payload_b64, "the JWS payload")
    signature = b64url_decode(signature_b64, "the JWS signature")
    signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
    return ParsedJws(header, payload, signing_input, signature, alg)


def verify_signature(jws: ParsedJws, jwk: PublicJwk) -> None:
    """Check ``jws``'s signature with ``jwk``; :class:`JoseError` if it does not verify or
    the key does not fit the algorithm."""
    if _KEY_TYPE[jws.alg] != jwk.kty:
        raise JoseError(f"a {jwk.kty} key cannot verify {jws.alg}")
    if jwk.alg is not None and jwk.alg != jws.alg:
        raise JoseError(f"the key is for {jwk.alg}, not {jws.alg}")
    key = jwk.key
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(
                jws.signature,
                jws.signing_input,
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                hashes.SHA256(),
            )
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if len(jws.signature) != 64:
                raise JoseError("an ES256 signature is 64 bytes")
            r = int.from_bytes(jws.signature[:32], "big")
            s = int.from_bytes(jws.signature[32:], "big")
            key.verify(encode_dss_signature(r, s), jws.signing_input, ec.ECDSA(hashes.SHA256()))
        else:
            key.verify(jws.signature, jws.signing_input)
    except InvalidSignature:
        raise JoseError("the signature does not verify") from None


PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private signing key for one of the three algorithms, with its key id."""

    alg: Algorithm
    kid: str
    key: PrivateKey

    @classmethod
    def generate(cls, alg: str, *, kid: str) -> SigningKey:
        """A new key for ``alg`` (RSA 2048 for PS256, P-256, Ed25519)."""
        algorithm = _check_alg(alg)
        key: PrivateKey
        if algorithm == "PS256":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif algorithm == "ES256":
            key = ec.generate_private_key(ec.SECP256R1())
        else:
            key = ed25519.Ed25519PrivateKey.generate()
        return cls(algorithm, kid, key)

    @classmethod
    def from_pem(cls, pem: bytes, *, alg: str, kid: str) -> SigningKey:
        """A key from an unencrypted PKCS#8 PEM; it must fit ``alg``."""
        algorithm = _check_alg(alg)
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(
            key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
        ):
            raise JoseError("the PEM key is not RSA, EC or Ed25519")
        signer = cls(algorithm, kid, key)
        public = PublicJwk.from_dict(signer.public_jwk())  # checks size and curve
        if _KEY_TYPE[algorithm] != public.kty:
            raise JoseError(f"the PEM key does not fit {algorithm}")
        return signer

    def public_jwk(self) -> dict[str, str]:
        """The public half as a JWK with ``kid``, ``alg`` and ``use``."""
        public = self.key.public_key()
        base = {"kid": self.kid, "alg": self.alg, "use": "sig"}
        if isinstance(public, rsa.RSAPublicKey):
            numbers = public.public_numbers()
            return {**base, "kty": "RSA", "n": _b64_int(numbers.n), "e": _b64_int(numbers.e)}
        if isinstance(public, ec.EllipticCurvePublicKey):
            point = public.public_numbers()
            return {
                **base,
                "kty": "EC",
                "crv": "P-256",
                "x": b64url_encode(point.x.to_bytes(32, "big")),
                "y": b64url_encode(point.y.to_bytes(32, "big")),
            }
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {**base, "kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}

    def sign(self, data: bytes) -> bytes:
        """The JWS signature of ``data`` (ES256 in ``R || S`` form)."""
        key = self.key
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(
                data,
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                hashes.SHA256(),
            )
        if isinstance(key, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return key.sign(data)


def _b64_int(value: int) -> str:
    return b64url_encode(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def sign_compact(header: Mapping[str, Any], payload: bytes, key: SigningKey) -> str:
    """``header.payload.signature``; ``header["alg"]`` must be the key's algorithm."""
    if header.get("alg") != key.alg:
        raise JoseError(f"the header's alg must be {key.alg}")
    header_b64 = b64url_encode(json.dumps(dict(header), separators=(",", ":")).encode())
    payload_b64 = b64url_encode(payload)
    signature = key.sign(f"{header_b64}.{payload_b64}".encode("ascii"))
    return f"{header_b64}.{payload_b64}.{b64url_encode(signature)}"


def sign_detached(header: Mapping[str, Any], payload: bytes, key: SigningKey) -> str:
    """A detached JWS of ``payload``: ``header..signature`` (RFC 7515 appendix F)."""
    header_b64, _, signature_b64 = sign_compact(header, payload, key).split(".")
    return f"{header_b64}..{signature_b64}"


def certificate_from_header(value: str) -> x509.Certificate:
    """The client certificate a TLS terminator forwards: URL-escaped PEM (nginx
    ``$ssl_client_escaped_cert``) or plain PEM; :class:`JoseError` if it is not one."""
    text = unquote(value) if "%" in value else value
    try:
        return x509.load_pem_x509_certificate(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise JoseError("the forwarded client certificate is not a PEM certificate") from None
