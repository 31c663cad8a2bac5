"""Time-based one-time passwords: the second factor of the built-in authorization server.

Standards: RFC 6238 (TOTP: HOTP over the time step ``floor((t - T0) / X)``, ``T0 = 0``),
RFC 4226 (HOTP: HMAC over the 8-byte big-endian counter, dynamic truncation, modulo
``10 ** digits``), and the ``otpauth://totp/`` key URI format that authenticator apps read
(Google Authenticator's "Key Uri Format": base32 secret without padding, ``issuer``,
``algorithm``, ``digits``, ``period``).

The defaults are those every authenticator app assumes: HMAC-SHA1, 6 digits, 30 seconds.
Secrets are 20 random bytes (160 bits, RFC 4226 section 4 recommends at least that).

>>> key = b"12345678901234567890"  # RFC 6238 appendix B, SHA1
>>> totp(key, 59, TotpParameters(digits=8))
'94287082'
>>> time_step(59, TotpParameters())
1
>>> provisioning_uri(key, "alice", "isobridge bank", TotpParameters())
'otpauth://totp/isobridge%20bank:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=isobridge%20bank&algorithm=SHA1&digits=6&period=30'
"""

from __future__ import annotations

import base64
import hmac
import secrets
import struct
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import quote, urlencode

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "SECRET_BYTES",
    "TotpParameters",
    "base32_secret",
    "hotp",
    "new_secret",
    "provisioning_uri",
    "time_step",
    "totp",
]

Algorithm = Literal["SHA1", "SHA256", "SHA512"]
"""The HMAC hash of a TOTP secret."""

ALGORITHMS: Final[dict[str, str]] = {"SHA1": "sha1", "SHA256": "sha256", "SHA512": "sha512"}
"""The HMAC hash functions RFC 6238 names, by their ``otpauth://`` spelling."""

SECRET_BYTES: Final = 20


@dataclass(frozen=True, slots=True)
class TotpParameters:
    """How codes are made: the HMAC hash, the number of digits, the time step in seconds."""

    digits: int = 6
    step: int = 30
    algorithm: Algorithm = "SHA1"

    def __post_init__(self) -> None:
        if not 6 <= self.digits <= 8:
            raise ValueError(f"digits must be 6, 7 or 8, not {self.digits}")
        if not 1 <= self.step <= 300:
            raise ValueError(f"the time step must be 1..300 seconds, not {self.step}")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}")


def new_secret() -> bytes:
    """A fresh random TOTP secret (:data:`SECRET_BYTES` bytes)."""
    return secrets.token_bytes(SECRET_BYTES)


def base32_secret(secret: bytes) -> str:
    """``secret`` as authenticator apps take it: base32, without ``=`` padding."""
    return base64.b32encode(secret).decode("ascii").rstrip("=")


def hotp(secret: bytes, counter: int, digits: int = 6, algorithm: str = "SHA1") -> str:
    """The RFC 4226 one-time password of ``counter``, ``digits`` long (zero-padded).

    >>> [hotp(b"12345678901234567890", c) for c in range(3)]  # RFC 4226 appendix D
    ['755224', '287082', '359152']
    """
    mac = hmac.new(secret, struct.pack(">Q", counter), ALGORITHMS[algorithm]).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def time_step(at: float, parameters: TotpParameters) -> int:
    """The RFC 6238 time step of the Unix time ``at``."""
    return int(at // parameters.step)


def totp(secret: bytes, at: float, parameters: TotpParameters) -> str:
    """The code of ``secret`` at Unix time ``at``."""
    return hotp(secret, time_step(at, parameters), parameters.digits, parameters.algorithm)


def provisioning_uri(secret: bytes, account: str, issuer: str, parameters: TotpParameters) -> str:
    """The ``otpauth://totp/`` URI of ``secret`` for ``account`` at ``issuer`` (what a QR
    code for an authenticator app holds)."""
    label = f"{quote(issuer, safe='')}:{quote(account, safe='')}"
    query = urlencode(
        {
            "secret": base32_secret(secret),
            "issuer": issuer,
            "algorithm": parameters.algorithm,
            "digits": parameters.digits,
            "period": parameters.step,
        },
        quote_via=quote,
    )
    return f"otpauth://totp/{label}?{query}"
