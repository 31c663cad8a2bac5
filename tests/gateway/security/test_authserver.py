"""The built-in authorization server: client authentication, PKCE, codes, consent binding."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from gateway.consents import ConsentKind, ConsentStatus
from gateway.security.authserver import pkce_challenge
from tests.gateway.harness import AISP, REDIRECT, Harness, account_consent_body, running_gateway
from tests.gateway.obie import check_error
from tests.support import on_event_loop


async def _consent(h: Harness, client_id: str = "tpp-one") -> str:
    token = await h.client_token(client_id, "accounts")
    response = await h.http.post(
        f"{AISP}/account-access-consents",
        json=account_consent_body(),
        headers=h.auth(token, client_id),
    )
    assert response.status_code == 201, response.text
    consent_id = response.json()["Data"]["ConsentId"]
    assert isinstance(consent_id, str)
    return consent_id


def _authorize_params(consent_id: str, verifier: str, **changes: str) -> dict[str, str]:
    params = {
        "response_type": "code", "client_id": "tpp-one", "redirect_uri": REDIRECT,
        "scope": "accounts", "state": "xyz", "consent_id": consent_id, "psu": "alice",
        "code_challenge": pkce_challenge(verifier), "code_challenge_method": "S256",
    }  # fmt: skip
    params.update(changes)
    return params


async def _code(h: Harness, consent_id: str, verifier: str) -> str:
    params = _authorize_params(consent_id, verifier, totp=h.totp())
    response = await h.http.get("/oauth2/authorize", params=params)
    assert response.status_code == 302, response.text
    query = parse_qs(urlparse(response.headers["location"]).query)
    assert query["state"] == ["xyz"]
    return query["code"][0]


async def _exchange(
    h: Harness, code: str, verifier: str, client_id: str = "tpp-one", **extra: str
) -> Any:
    form = {
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "code_verifier": verifier, "client_id": client_id, **extra,
    }  # fmt: skip
    return await h.http.post("/oauth2/token", data=form, headers=h.tpps[client_id].cert_header)


def test_client_authentication_and_grants(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path) as h:
            tpp = h.tpps["tpp-one"]
            token = "/oauth2/token"
            form = {"grant_type": "client_credentials", "client_id": "tpp-one"}
            cases: list[tuple[dict[str, str], dict[str, str], int, str]] = [
                (form, {}, 401, "invalid_client"),  # no credentials
                ({**form, "client_secret": "wrong"}, {}, 401, "invalid_client"),
                ({**form, "client_id": "nobody"}, tpp.cert_header, 401, "invalid_client"),
                (form, h.tpps["tpp-two"].cert_header, 401, "invalid_client"),  # another's cert
                ({**form, "client_secret": tpp.secret}, {}, 400, "invalid_request"),  # unbound
                ({**form, "scope": "superuser"}, tpp.cert_header, 400, "invalid_scope"),
                (
                    {**form, "grant_type": "password"},
                    tpp.cert_header,
                    400,
                    "unsupported_grant_type",
                ),
            ]
            for data, headers, status, error in cases:
                response = await h.http.post(token, data=data, headers=headers)
                assert (response.status_code, response.json()["error"]) == (status, error)
                assert response.headers["cache-control"] == "no-store"
            as_json = await h.http.post(token, json=form, headers=tpp.cert_header)
            assert as_json.status_code == 400
            ok = await h.http.post(token, data=form, headers=tpp.cert_header)
            assert ok.status_code == 200 and ok.json()["token_type"] == "Bearer"
            metadata = (await h.http.get("/.well-known/oauth-authorization-server")).json()
            assert metadata["code_challenge_methods_supported"] == ["S256"]

    scenario()


def test_authorization_code_with_pkce(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path) as h:
            consent_id = await _consent(h)
            verifier = secrets.token_urlsafe(48)
            code = await _code(h, consent_id, verifier)
            consent = h.built.services.consents.get(
                consent_id, "tpp-one", ConsentKind.ACCOUNT_ACCESS
            )
            assert consent is not None and consent.status is ConsentStatus.AUTH
            assert consent.psu == "alice" and len(consent.account_ids) == 4
            wrong = await _exchange(h, code, secrets.token_urlsafe(48))
            assert wrong.json()["error"] == "invalid_grant"
            # a failed exchange uses the code up: the right verifier now fails too
            assert (await _exchange(h, code, verifier)).json()["error"] == "invalid_grant"

            consent_id = await _consent(h)
            code = await _code(h, consent_id, verifier)
            assert (await _exchange(h, code, verifier, client_id="tpp-two")).json()[
                "error"
            ] == "invalid_grant"
            consent_id = await _consent(h)
            code = await _code(h, consent_id, verifier)
            other_redirect = await _exchange(
                h, code, verifier, redirect_uri="https://evil.example/cb"
            )
            assert other_redirect.json()["error"] == "invalid_grant"
            consent_id = await _consent(h)
            code = await _code(h, consent_id, verifier)
            good = await _exchange(h, code, verifier)
            assert good.status_code == 200 and good.json()["scope"] == "accounts"
            assert (await _exchange(h, code, verifier)).json()["error"] == "invalid_grant"  # reuse

    scenario()


def test_authorize_refusals_and_denial(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path) as h:
            consent_id = await _consent(h)
            verifier = secrets.token_urlsafe(48)
            bad = [
                {"client_id": "nobody"},
                {"redirect_uri": "https://evil.example/cb"},
                {"response_type": "token"},
                {"code_challenge_method": "plain", "code_challenge": verifier[:43]},
                {"scope": "accounts payments"},
                {"psu": "mallory"},
            ]
            for changes in bad:
                response = await h.http.get(
                    "/oauth2/authorize", params=_authorize_params(consent_id, verifier, **changes)
                )
                check_error(response, 400)
            others = await _consent(h, "tpp-two")  # another TPP's consent: not found
            response = await h.http.get(
                "/oauth2/authorize", params=_authorize_params(others, verifier)
            )
            check_error(response, 404, "UK.OBIE.Resource.NotFound")
            denied = await h.http.get(
                "/oauth2/authorize", params=_authorize_params(consent_id, verifier, decision="deny")
            )
            assert denied.status_code == 302 and "error=access_denied" in denied.headers["location"]
            consent = h.built.services.consents.get(
                consent_id, "tpp-one", ConsentKind.ACCOUNT_ACCESS
            )
            assert consent is not None and consent.status is ConsentStatus.RJCT
            again = await h.http.get(
                "/oauth2/authorize", params=_authorize_params(consent_id, verifier)
            )
            check_error(again, 400, "UK.OBIE.Resource.InvalidConsentStatus")

    scenario()
