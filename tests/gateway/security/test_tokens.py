"""The resource server against every bad token, through the running gateway (401 / 403 with
an OBIE error body), sender constraints (mTLS and DPoP), key rotation and the JWKS cache."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization

from gateway.security.authserver import HttpJwksSource, LocalJwksSource
from gateway.security.jose import SigningKey, b64url_encode, sign_compact
from gateway.security.tokens import KeySet
from tests.gateway.harness import AISP, AUDIENCE, ISSUER, PISP, Harness, dpop_proof, running_gateway
from tests.gateway.obie import check_error
from tests.support import on_event_loop

URL = f"{AISP}/account-access-consents/aac-none"


def _scenario(tmp_path: Path, test: Callable[[Harness], Awaitable[None]]) -> None:
    @on_event_loop
    async def run() -> None:
        async with running_gateway(tmp_path) as h:
            await test(h)

    run()


def _claims(h: Harness, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER, "aud": AUDIENCE, "client_id": "tpp-one", "sub": "tpp-one",
        "scope": "accounts payments", "iat": now, "nbf": now, "exp": now + 300,
    }  # fmt: skip
    claims["cnf"] = {"x5t#S256": h.server.clients["tpp-one"].certificate_sha256}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _signed(
    h: Harness, claims: dict[str, Any], key: SigningKey | None = None, **header: Any
) -> str:
    key = key or h.server.signing_key
    head = {"alg": key.alg, "kid": key.kid, "typ": "at+jwt", **header}
    return sign_compact(head, json.dumps(claims).encode(), key)


async def _refused(h: Harness, token: str, status: int = 401, *names: str) -> dict[str, Any]:
    response = await h.http.get(URL, headers=h.auth(token))
    body = check_error(response, status, *names)
    if status == 401:
        assert response.headers["www-authenticate"].startswith(("Bearer", "DPoP"))
    return body


def test_a_good_token_passes_and_bad_ones_get_401(tmp_path: Path) -> None:
    async def test(h: Harness) -> None:
        good = _signed(h, _claims(h))
        check_error(await h.http.get(URL, headers=h.auth(good)), 404)  # past the token checks
        missing = await h.http.get(URL, headers=h.tpps["tpp-one"].cert_header)
        check_error(missing, 401, "UK.OBIE.Header.Missing")
        basic = await h.http.get(URL, headers={"Authorization": "Basic dXNlcjpwdw=="})
        check_error(basic, 401, "UK.OBIE.Token.Invalid")
        for token in ("", "garbage", "a.b.c", "e30.e30.", good + "x", good.replace(".", "..", 1)):
            await _refused(h, token, 401, "UK.OBIE.Token.Invalid")
        await _refused(h, _signed(h, _claims(h, iss="https://evil.example")))
        await _refused(h, _signed(h, _claims(h, aud="https://other.api")))
        await _refused(h, _signed(h, _claims(h, exp=int(time.time()) - 120)))
        await _refused(h, _signed(h, _claims(h, exp=None)))
        await _refused(h, _signed(h, _claims(h, exp="tomorrow")))
        await _refused(h, _signed(h, _claims(h, nbf=int(time.time()) + 600)))
        await _refused(h, _signed(h, _claims(h, iat=int(time.time()) + 600)))
        await _refused(h, _signed(h, _claims(h, client_id=None)))
        await _refused(h, _signed(h, _claims(h, client_id="unregistered")))
        await _refused(h, _signed(h, _claims(h), typ="dpop+jwt"))
        await _refused(h, _signed(h, _claims(h), kid="unknown-kid"))
        stranger = SigningKey.generate("ES256", kid=h.server.signing_key.kid)  # same kid
        await _refused(h, _signed(h, _claims(h), key=stranger))

    _scenario(tmp_path, test)


def test_a_remembered_token_is_still_checked_on_every_request(tmp_path: Path) -> None:
    async def test(h: Harness) -> None:
        verifier = h.built.services.verifier
        now = [time.time()]
        verifier.clock = lambda: now[0]
        start = int(now[0])
        token = _signed(h, _claims(h, iat=start, nbf=start, exp=start + 300, scope="accounts"))
        for _ in range(2):  # verified, then remembered
            check_error(await h.http.get(URL, headers=h.auth(token)), 404)
        stolen = {"Authorization": f"Bearer {token}", **h.tpps["tpp-two"].cert_header}
        check_error(await h.http.get(URL, headers=stolen), 401, "UK.OBIE.Token.Invalid")
        scoped = await h.http.post(
            f"{PISP}/domestic-payment-consents", json={}, headers=h.auth(token)
        )
        check_error(scoped, 403, "UK.OBIE.Token.InsufficientScope")
        now[0] = start - 31  # before its nbf, past the leeway
        assert "not valid yet" in str(await _refused(h, token))
        now[0] = start + 300 + 30  # its exp and the leeway
        check_error(await h.http.get(URL, headers=h.auth(token)), 404)
        now[0] += 1
        assert "expired" in str(await _refused(h, token))

    _scenario(tmp_path, test)


def test_none_hmac_and_key_confusion_attacks(tmp_path: Path) -> None:
    async def test(h: Harness) -> None:
        claims = json.dumps(_claims(h)).encode()
        body = b64url_encode(claims)
        none = b64url_encode(json.dumps({"alg": "none", "kid": h.server.signing_key.kid}).encode())
        await _refused(h, f"{none}.{body}.")
        # The issuer's own public key (PEM) as an HMAC secret.
        public = h.server.signing_key.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        for alg in ("HS256", "HS512"):
            head = b64url_encode(json.dumps({"alg": alg, "kid": h.server.signing_key.kid}).encode())
            mac = hmac.new(public, f"{head}.{body}".encode(), hashlib.sha256).digest()
            await _refused(h, f"{head}.{body}.{b64url_encode(mac)}")
        # An EdDSA issuer key presented under ES256 (key type / algorithm mismatch).
        h.server.rotate("EdDSA")
        forged = sign_compact(
            {"alg": "EdDSA", "kid": h.server.signing_key.kid, "typ": "at+jwt"},
            claims,
            h.server.signing_key,
        )
        head, payload, signature = forged.split(".")
        relabelled = b64url_encode(
            json.dumps({"alg": "ES256", "kid": h.server.signing_key.kid}).encode()
        )
        await _refused(h, f"{relabelled}.{payload}.{signature}")
        check_error(await h.http.get(URL, headers=h.auth(forged)), 404)  # the honest one passes

    _scenario(tmp_path, test)


def test_scope_and_certificate_binding(tmp_path: Path) -> None:
    async def test(h: Harness) -> None:
        accounts_only = await h.client_token(scope="accounts")
        refused = await h.http.post(
            f"{PISP}/domestic-payment-consents", json={}, headers=h.auth(accounts_only)
        )
        check_error(refused, 403, "UK.OBIE.Token.InsufficientScope")
        assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
        token = await h.client_token()
        # tpp-one's token with tpp-two's certificate, with none, with a broken one
        stolen = {"Authorization": f"Bearer {token}", **h.tpps["tpp-two"].cert_header}
        check_error(await h.http.get(URL, headers=stolen), 401, "UK.OBIE.Token.Invalid")
        check_error(await h.http.get(URL, headers={"Authorization": f"Bearer {token}"}), 401)
        broken = {"Authorization": f"Bearer {token}", "x-ssl-client-cert": "not%20a%20cert"}
        check_error(await h.http.get(URL, headers=broken), 401)
        unbound = _signed(h, _claims(h, cnf=None))
        check_error(await h.http.get(URL, headers=h.auth(unbound)), 401, "UK.OBIE.Token.Invalid")
        as_dpop = {"Authorization": f"DPoP {token}", **h.tpps["tpp-one"].cert_header}
        check_error(await h.http.get(URL, headers=as_dpop), 401)

    _scenario(tmp_path, test)


def test_dpop_bound_tokens(tmp_path: Path) -> None:
    async def test(h: Harness) -> None:
        key = SigningKey.generate("ES256", kid="dpop")
        tpp = h.tpps["tpp-one"]
        token_url = f"{ISSUER}/oauth2/token"
        issued = await h.http.post(
            "/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "tpp-one",
                "client_secret": tpp.secret,
                "scope": "accounts",
            },
            headers={"DPoP": dpop_proof(key, "POST", token_url)},
        )
        assert issued.status_code == 200, issued.text
        assert issued.json()["token_type"] == "DPoP"
        token = issued.json()["access_token"]
        url = f"https://api.isobridge.test{URL}"

        def headers(proof: str, scheme: str = "DPoP") -> dict[str, str]:
            return {"Authorization": f"{scheme} {token}", "DPoP": proof}

        check_error(await h.http.get(URL, headers=headers(dpop_proof(key, "GET", url, token))), 404)
        replayed = dpop_proof(key, "GET", url, token)
        check_error(await h.http.get(URL, headers=headers(replayed)), 404)
        check_error(await h.http.get(URL, headers=headers(replayed)), 401, "UK.OBIE.Token.Invalid")
        other = SigningKey.generate("ES256", kid="other")
        bad_proofs = [
            dpop_proof(other, "GET", url, token),  # another key
            dpop_proof(key, "POST", url, token),  # another method
            dpop_proof(key, "GET", url + "/x", token),  # another URL
            dpop_proof(key, "GET", url, "another-token"),  # another token (ath)
            dpop_proof(key, "GET", url, token, iat=int(time.time()) - 3600),  # stale
            dpop_proof(key, "GET", url, token, jti="short"),
        ]
        for proof in bad_proofs:
            response = await h.http.get(URL, headers=headers(proof))
            check_error(response, 401)
            assert 'error="invalid_dpop_proof"' in response.headers["www-authenticate"]
        check_error(await h.http.get(URL, headers={"Authorization": f"DPoP {token}"}), 401)
        bearer = headers(dpop_proof(key, "GET", url, token), scheme="Bearer")
        check_error(await h.http.get(URL, headers=bearer), 401)
        # a token request with a bad DPoP proof gets no token
        refused = await h.http.post(
            "/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "tpp-one",
                "client_secret": tpp.secret,
            },
            headers={"DPoP": dpop_proof(key, "POST", token_url + "/other")},
        )
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_dpop_proof"

    _scenario(tmp_path, test)


def test_key_rotation_and_the_jwks_cache(tmp_path: Path) -> None:
    async def test(h: Harness) -> None:
        before = await h.client_token()
        check_error(await h.http.get(URL, headers=h.auth(before)), 404)
        keys = h.built.services.verifier.keys
        fetches = keys.fetches
        h.server.rotate()
        after = await h.client_token()  # a new kid: the verifier refetches the JWKS
        check_error(await h.http.get(URL, headers=h.auth(after)), 404)
        check_error(await h.http.get(URL, headers=h.auth(before)), 404)  # old key still published
        assert keys.fetches == fetches + 1
        for _ in range(3):
            check_error(await h.http.get(URL, headers=h.auth(after)), 404)
        assert keys.fetches == fetches + 1  # cached
        for _ in range(3):  # unknown kids do not hammer the issuer
            await _refused(h, _signed(h, _claims(h), kid=f"made-up-{_}"))
        assert keys.fetches <= fetches + 2
        for _ in range(3):
            h.server.rotate()  # `before`'s key falls out of the published set
        keys._fetched_at = None  # as after the cache's time to live
        await _refused(h, before)

    _scenario(tmp_path, test)


def test_keyset_ttl_and_refresh_limits(tmp_path: Path) -> None:
    async def test(h: Harness) -> None:
        now = [1000.0]
        keys = KeySet(LocalJwksSource(h.server), ttl=300.0, min_refresh=10.0, clock=lambda: now[0])
        kid = h.server.signing_key.kid
        assert await keys.key(kid) is not None and keys.fetches == 1
        assert await keys.key("nope") is None and keys.fetches == 2  # unknown: refetched once
        assert await keys.key("nope") is None and keys.fetches == 2  # within min_refresh
        now[0] += 5
        rotated = h.server.rotate().kid
        assert await keys.key(rotated) is None and keys.fetches == 2  # still within it
        now[0] += 6
        assert await keys.key(rotated) is not None and keys.fetches == 3
        assert await keys.key(kid) is not None and keys.fetches == 3  # cached
        now[0] += 400
        assert await keys.key(kid) is not None and keys.fetches == 4  # stale: refetched
        # over HTTP from the app's own JWKS endpoint
        source = HttpJwksSource(
            "https://as.isobridge.test/oauth2/jwks",
            client=httpx.AsyncClient(transport=httpx.ASGITransport(app=h.built.app)),
        )
        fetched = await source.fetch()
        assert [k["kid"] for k in fetched["keys"]] == [k["kid"] for k in h.server.jwks()["keys"]]
        missing = HttpJwksSource(
            "https://as.isobridge.test/oauth2/none",
            client=httpx.AsyncClient(transport=httpx.ASGITransport(app=h.built.app)),
        )
        assert await missing.fetch() == {"keys": []}

    _scenario(tmp_path, test)
