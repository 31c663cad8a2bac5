"""Detached ``x-jws-signature`` on payment requests and responses (OBIE message signing).

Standards: RFC 7515 appendix F (detached content), RFC 7797 is *not* used (OBIE dropped
``b64: false`` in v3.1.4), OBIE Read/Write API v4.0 "Message Signing": the header of the
JWS carries ``alg`` ``PS256``, ``kid``, ``typ`` ``JOSE``, ``cty`` ``application/json``
and three critical claims, ``http://openbanking.org.uk/iat`` (a time),
``http://openbanking.org.uk/iss`` (the signer: the TPP's organisation / software id, or the
ASPSP's), ``http://openbanking.org.uk/tan`` (the trust anchor); ``crit`` lists them. The
payload is the HTTP body as sent, byte for byte.

A request signature is checked with the TPP's own JWKS (its registration): the key is
found by ``kid``; the ``iss`` claim must be the TPP's registered signer id; ``tan`` the
configured trust anchor; ``iat`` not in the future. Failures are 400 with the v3.1 error
names (``Signature.Missing``, ``Signature.Malformed``, ``Signature.Invalid``,
``Signature.InvalidClaim``, ``Signature.MissingClaim``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from gateway.errors import ObieError
from gateway.security.jose import (
    JoseError,
    PublicJwk,
    SigningKey,
    parse_compact,
    sign_detached,
    verify_signature,
)

__all__ = ["OB_IAT", "OB_ISS", "OB_TAN", "MessageSigner", "SignatureCheck", "verify_detached"]

OB_IAT: Final = "http://openbanking.org.uk/iat"
OB_ISS: Final = "http://openbanking.org.uk/iss"
OB_TAN: Final = "http://openbanking.org.uk/tan"
_CRIT: Final = (OB_IAT, OB_ISS, OB_TAN)
_HEADER: Final = "x-jws-signature"


def _bad(name: str, message: str) -> ObieError:
    return ObieError.single(400, name, message, _HEADER)


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """What a TPP's request signatures must satisfy: its keys, its signer id, the anchor."""

    keys: Mapping[str, PublicJwk]
    issuer: str
    trust_anchor: str
    leeway: float = 30.0


def verify_detached(
    signature: str | None,
    body: bytes,
    check: SignatureCheck,
    *,
    clock: Callable[[], float] = time.time,
) -> None:
    """Check a request's ``x-jws-signature`` over ``body``; :class:`ObieError` if not."""
    if not signature:
        raise _bad("UK.OBIE.Signature.Missing", "x-jws-signature is required")
    try:
        jws = parse_compact(signature, detached_payload=body, understood_crit=_CRIT)
    except JoseError as exc:
        raise _bad("UK.OBIE.Signature.Malformed", str(exc)) from None
    header = jws.header
    if jws.alg != "PS256":
        raise _bad("UK.OBIE.Signature.InvalidClaim", "message signatures use PS256")
    crit = header.get("crit")
    if not isinstance(crit, list) or set(crit) != set(_CRIT):
        raise _bad("UK.OBIE.Signature.MissingClaim", "crit must name the three OB claims")
    kid = header.get("kid")
    key = check.keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise _bad("UK.OBIE.Signature.Invalid", "the signing key is not the TPP's")
    if header.get(OB_ISS) != check.issuer:
        raise _bad("UK.OBIE.Signature.InvalidClaim", "the signer is not the calling TPP")
    if header.get(OB_TAN) != check.trust_anchor:
        raise _bad("UK.OBIE.Signature.InvalidClaim", "unknown trust anchor")
    iat = header.get(OB_IAT)
    if not isinstance(iat, int | float) or isinstance(iat, bool) or iat > clock() + check.leeway:
        raise _bad("UK.OBIE.Signature.InvalidClaim", "the signature's iat is not a past time")
    try:
        verify_signature(jws, key)
    except JoseError:
        raise _bad("UK.OBIE.Signature.Invalid", "the signature does not match the body") from None


@dataclass(frozen=True, slots=True)
class MessageSigner:
    """Signs response bodies as the ASPSP (``issuer``) with a PS256 key."""

    key: SigningKey
    issuer: str
    trust_anchor: str

    def sign(self, body: bytes, *, now: float | None = None) -> str:
        """The detached ``x-jws-signature`` of ``body``."""
        header = {
            "alg": self.key.alg,
            "kid": self.key.kid,
            "typ": "JOSE",
            "cty": "application/json",
            OB_IAT: int(time.time() if now is None else now),
            OB_ISS: self.issuer,
            OB_TAN: self.trust_anchor,
            "crit": list(_CRIT),
        }
        return sign_detached(header, body, self.key)
