"""Detached x-jws-signature: what a request signature must be, and the bank's own."""

from __future__ import annotations

import time
from typing import Any

import pytest

from gateway.errors import ObieError
from gateway.security.jose import (
    PublicJwk,
    SigningKey,
    parse_compact,
    sign_detached,
    verify_signature,
)
from gateway.signatures import (
    OB_IAT,
    OB_ISS,
    OB_TAN,
    MessageSigner,
    SignatureCheck,
    verify_detached,
)

KEY = SigningKey.generate("PS256", kid="tpp-sig")
CHECK = SignatureCheck(
    {"tpp-sig": PublicJwk.from_dict(KEY.public_jwk())}, "org/tpp", "openbanking.org.uk"
)
BODY = b'{"Data":{}}'


def _signature(key: SigningKey = KEY, /, **changes: Any) -> str:
    header = {
        "alg": key.alg, "kid": key.kid, "typ": "JOSE", "cty": "application/json",
        OB_IAT: int(time.time()), OB_ISS: "org/tpp", OB_TAN: "openbanking.org.uk",
        "crit": [OB_IAT, OB_ISS, OB_TAN], **changes,
    }  # fmt: skip
    return sign_detached({k: v for k, v in header.items() if v is not None}, BODY, key)


def test_a_good_signature_passes() -> None:
    verify_detached(_signature(), BODY, CHECK)


@pytest.mark.parametrize(
    ("signature", "name"),
    [
        (None, "UK.OBIE.Signature.Missing"),
        ("", "UK.OBIE.Signature.Missing"),
        ("a.b.c", "UK.OBIE.Signature.Malformed"),
        (_signature().replace("..", ".e30."), "UK.OBIE.Signature.Malformed"),  # not detached
        (
            _signature(SigningKey.generate("ES256", kid="tpp-sig")),
            "UK.OBIE.Signature.InvalidClaim",
        ),
        (_signature(crit=[OB_IAT, OB_ISS]), "UK.OBIE.Signature.MissingClaim"),
        (
            _signature(**{OB_TAN: None}, crit=[OB_IAT, OB_ISS, OB_TAN]),
            "UK.OBIE.Signature.Malformed",
        ),
        (_signature(kid="other"), "UK.OBIE.Signature.Invalid"),
        (_signature(**{OB_ISS: "org/else"}), "UK.OBIE.Signature.InvalidClaim"),
        (_signature(**{OB_TAN: "evil.example"}), "UK.OBIE.Signature.InvalidClaim"),
        (_signature(**{OB_IAT: int(time.time()) + 3600}), "UK.OBIE.Signature.InvalidClaim"),
        (_signature(**{OB_IAT: "now"}), "UK.OBIE.Signature.InvalidClaim"),
        (_signature(SigningKey.generate("PS256", kid="tpp-sig")), "UK.OBIE.Signature.Invalid"),
    ],
)
def test_refusals(signature: str | None, name: str) -> None:
    with pytest.raises(ObieError) as caught:
        verify_detached(signature, BODY, CHECK)
    assert caught.value.status == 400
    assert caught.value.errors[0].name == name


def test_the_bank_signs_responses_the_same_way() -> None:
    bank = SigningKey.generate("PS256", kid="bank")
    signature = MessageSigner(bank, "isobridge", "openbanking.org.uk").sign(BODY, now=1_700_000_000)
    jws = parse_compact(signature, detached_payload=BODY, understood_crit=[OB_IAT, OB_ISS, OB_TAN])
    verify_signature(jws, PublicJwk.from_dict(bank.public_jwk()))
    assert (jws.header[OB_IAT], jws.header[OB_ISS], jws.alg) == (
        1_700_000_000,
        "isobridge",
        "PS256",
    )
    bank_check = SignatureCheck(
        {"bank": PublicJwk.from_dict(bank.public_jwk())}, "isobridge", "openbanking.org.uk"
    )
    verify_detached(signature, BODY, bank_check)
