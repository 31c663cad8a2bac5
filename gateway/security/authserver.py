"""A small built-in OAuth 2.0 authorization server, for the demo and the tests.

Production points the gateway at the bank's real authorization server by configuration
(issuer and JWKS URL: :class:`HttpJwksSource`); this one exists so that the gateway can be
run and tested end to end with real tokens. It issues exactly the tokens the resource
server (:mod:`gateway.security.tokens`) verifies.

Standards: RFC 6749 (client credentials, authorization code), RFC 7636 (PKCE, ``S256``
only: ``plain`` is refused), RFC 9068 (JWT access tokens, ``typ`` ``at+jwt``), RFC 8705
(mTLS client authentication ``tls_client_auth`` and certificate-bound tokens), RFC 9449
(DPoP-bound tokens), RFC 8414 (metadata at ``/.well-known/oauth-authorization-server``),
RFC 7517 (JWKS at ``/oauth2/jwks``).

- ``POST /oauth2/token``, form-encoded. The client authenticates with its certificate (the
  TLS terminator's header; thumbprint registered) or, for the demo, a client secret
  (``client_secret_basic`` / ``client_secret_post``; only a SHA-256 of it is kept). The
  token is bound to the DPoP key when the request carries a DPoP proof, else to the client
  certificate; a client with neither gets no token (FAPI: sender-constrained tokens).
  ``grant_type=client_credentials`` (``scope`` among the client's) or
  ``grant_type=authorization_code`` (``code``, ``redirect_uri``, ``code_verifier``): the
  code is single use, lives ``code_ttl`` seconds and belongs to the client it was issued
  to; the token carries the consent id it was issued for (claim ``consent_id``) and the
  PSU (``sub``). Errors are RFC 6749 section 5.2 bodies (``{"error": ...}``).
- ``GET /oauth2/authorize`` (or ``POST``, form-encoded, which keeps the one-time code
  out of URLs and access logs): the PSU's step, with no login page (demo): ``psu`` names
  the PSU, ``decision=deny`` refuses. It authorises the consent ``consent_id`` of the
  client (binding the PSU's accounts: for account access all of them, or those listed in
  ``accounts``; for a payment the consent's debtor account, which must be the PSU's, or
  the PSU's first account in the payment's currency) and redirects to the registered
  ``redirect_uri`` with ``code`` and ``state``. With strong customer authentication on
  (:mod:`gateway.security.sca`, the default), ``totp`` must be the PSU's current one-time
  code: a missing, wrong or replayed code, an unenrolled PSU or a locked-out one is refused
  with an OBIE error body (400, 403, 429 with ``Retry-After``) and the consent stays
  ``AwaitingAuthorisation``. A refusal (``decision=deny``) needs no code.
- Keys: :meth:`AuthorizationServer.rotate` adds a new signing key that signs at once (an
  emergency: the old ones stay in the JWKS while among the newest ``retain``).
  :meth:`AuthorizationServer.rotate_on_schedule` is the rotation of a schedule
  (``hub.rotation``): the new key is published in the JWKS ``prepublish`` seconds before
  it signs, and the old one stays published for ``overlap`` seconds after (the longest a
  token lives plus ``key_refresh``), so no valid token is refused during a rotation. Every
  process re-reads the keys every ``key_refresh`` seconds and signs with the newest key
  that has activated; tokens signed are counted per key in memory and added to the
  database in one write by :meth:`AuthorizationServer.flush_uses`.
- State: the codes and the signing keys are in the gateway's database
  (:class:`gateway.security.authstate.AuthorizationState`), so the server may run in several
  gateway processes and survives their restarts: a code issued by one is redeemed once, on
  any; a token signed by one verifies on all (the JWKS is read from the database).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qs, urlencode

import httpx
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from gateway.consents import Consent, ConsentKind, ConsentStatus, ConsentStore
from gateway.errors import ObieError
from gateway.ports import AccountDirectory
from gateway.security.authstate import AuthorizationCode, AuthorizationState, SigningKeyRecord
from gateway.security.jose import (
    JoseError,
    SigningKey,
    b64url_encode,
    certificate_from_header,
    certificate_thumbprint,
    sign_compact,
)
from gateway.security.sca import ScaKeyError, ScaOutcome, ScaRefusedError, SecondFactor
from gateway.security.tokens import DpopVerifier, ProofReplays

__all__ = [
    "AuthorizationServer",
    "ClientRegistration",
    "HttpJwksSource",
    "LocalJwksSource",
    "authorization_router",
    "hash_secret",
    "pkce_challenge",
]

_MAX_FORM: Final = 8192
_log = logging.getLogger("isobridge.gateway.keys")


def hash_secret(secret: str) -> str:
    """What is kept of a client secret: its SHA-256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def pkce_challenge(verifier: str) -> str:
    """The ``S256`` code challenge of a PKCE ``code_verifier`` (RFC 7636 section 4.2).

    >>> pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
    'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM'
    """
    return b64url_encode(hashlib.sha256(verifier.encode("ascii")).digest())


@dataclass(frozen=True, slots=True)
class ClientRegistration:
    """A TPP registered with the bank: how it authenticates, where codes may go, what it
    may ask for, and its tenant."""

    client_id: str
    tenant: str
    scopes: frozenset[str]
    redirect_uris: tuple[str, ...] = ()
    secret_sha256: str | None = None
    certificate_sha256: str | None = None
    jws_issuer: str | None = None
    jwks: Mapping[str, Any] = field(default_factory=dict)


class _OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


@dataclass(frozen=True, slots=True)
class TokenRequestFacts:
    """What of the token request the server needs besides the form."""

    url: str
    authorization: str | None
    client_certificate: str | None
    dpop: str | None


class AuthorizationServer:
    """See the module docstring."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        clients: Sequence[ClientRegistration],
        consents: ConsentStore,
        directory: AccountDirectory,
        state: AuthorizationState,
        replays: ProofReplays | None = None,
        algorithm: str = "ES256",
        token_ttl: int = 300,
        code_ttl: int = 60,
        retain: int = 3,
        clock: Callable[[], float] = time.time,
        sca: SecondFactor | None = None,
        key_refresh: float = 30.0,
        overlap: float | None = None,
    ) -> None:
        self.issuer = issuer
        self.sca = sca
        self.audience = audience
        self.clients = {client.client_id: client for client in clients}
        self.consents = consents
        self.directory = directory
        self.algorithm = algorithm
        self.token_ttl = token_ttl
        self.code_ttl = code_ttl
        self.retain = retain
        self.clock = clock
        self.dpop = DpopVerifier(clock=clock, replays=replays)
        self.state = state
        self.key_refresh = key_refresh
        self.overlap = token_ttl + key_refresh if overlap is None else overlap
        if self.overlap < token_ttl + key_refresh:
            raise ValueError(
                f"overlap {self.overlap} s is shorter than a token lives plus key_refresh "
                f"({token_ttl + key_refresh} s): a rotation would unpublish valid tokens' keys"
            )
        self._uses: dict[str, int] = {}
        self._uses_lock = threading.Lock()
        self._load_keys()
        if not self._records:
            self.rotate()

    # -- keys -------------------------------------------------------------------------------

    def rotate(self, algorithm: str | None = None) -> SigningKey:
        """A new current signing key, signing at once; the last ``retain`` keys stay
        published."""
        key = SigningKey.generate(algorithm or self.algorithm, kid=secrets.token_hex(8))
        self.state.add_key(key, retain=self.retain)
        self._load_keys()
        return key

    def rotate_on_schedule(
        self, *, prepublish: float, if_current: str | None = None
    ) -> SigningKey | None:
        """A new signing key, published now and signing ``prepublish`` seconds from now;
        keys whose tokens have all expired are forgotten. With ``if_current``, only if the
        newest key is still that ``kid``: ``None`` when another process rotated first."""
        key = SigningKey.generate(self.algorithm, kid=secrets.token_hex(8))
        added = self.state.add_key(
            key,
            retain=self.retain,
            activates_at=self.clock() + prepublish,
            overlap=self.overlap,
            if_newest=if_current,
        )
        self._load_keys()
        return None if added is None else key

    def _load_keys(self) -> None:
        self._records = self.state.key_records()
        self._loaded_at = self.clock()

    @property
    def signing_key(self) -> SigningKey:
        """The key new tokens are signed with: the newest that has activated, as read at
        most ``key_refresh`` seconds ago (or, while the database does not answer, as last
        read: the keys already read stay valid)."""
        now = self.clock()
        if now - self._loaded_at >= self.key_refresh:
            try:
                self._load_keys()
            except SQLAlchemyError as exc:
                self._loaded_at = now
                _log.warning("signing keys not re-read, the ones read before sign: %s", exc)
        for record in self._records:
            if record.activates_at <= now:
                return record.key
        return self._records[-1].key

    def key_records(self) -> list[SigningKeyRecord]:
        """The stored keys, newest first, with the uses not yet flushed added in."""
        with self._uses_lock:
            pending = dict(self._uses)
        return [
            dataclasses.replace(record, uses=record.uses + pending.get(record.key.kid, 0))
            for record in self.state.key_records()
        ]

    def flush_uses(self) -> int:
        """Add the tokens signed since the last flush to the stored counts (one write);
        returns how many. Counts that fail to write are kept for the next flush."""
        with self._uses_lock:
            pending, self._uses = self._uses, {}
        try:
            self.state.add_uses(pending)
        except BaseException:
            with self._uses_lock:
                for kid, count in pending.items():
                    self._uses[kid] = self._uses.get(kid, 0) + count
            raise
        return sum(pending.values())

    def jwks(self) -> dict[str, Any]:
        """The published key set: the database's, so keys made by other processes are in."""
        return {"keys": [key.public_jwk() for key in self.state.signing_keys()]}

    def metadata(self) -> dict[str, Any]:
        """RFC 8414 authorization server metadata."""
        return {
            "issuer": self.issuer,
            "token_endpoint": f"{self.issuer}/oauth2/token",
            "authorization_endpoint": f"{self.issuer}/oauth2/authorize",
            "jwks_uri": f"{self.issuer}/oauth2/jwks",
            "grant_types_supported": ["client_credentials", "authorization_code"],
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": [
                "tls_client_auth",
                "client_secret_basic",
                "client_secret_post",
            ],
            "tls_client_certificate_bound_access_tokens": True,
            "dpop_signing_alg_values_supported": ["PS256", "ES256", "EdDSA"],
            "scopes_supported": ["accounts", "payments"],
        }

    # -- tokens -----------------------------------------------------------------------------

    def issue(
        self,
        client: ClientRegistration,
        scope: str,
        cnf: Mapping[str, str],
        *,
        subject: str | None = None,
        consent_id: str | None = None,
        lifetime: int | None = None,
        audience: str | None = None,
    ) -> str:
        """A signed access token for ``client``; ``lifetime`` at most ``overlap`` less
        ``key_refresh`` seconds, the time its key stays published after a rotation."""
        if lifetime is not None and lifetime > self.overlap - self.key_refresh:
            raise ValueError(
                f"a token lifetime of {lifetime} s outlives the signing key overlap "
                f"({self.overlap - self.key_refresh:.0f} s)"
            )
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": audience or self.audience,
            "client_id": client.client_id,
            "sub": subject or client.client_id,
            "scope": scope,
            "iat": now,
            "nbf": now,
            "exp": now + (self.token_ttl if lifetime is None else lifetime),
            "jti": secrets.token_urlsafe(16),
            "cnf": dict(cnf),
        }
        if consent_id is not None:
            claims["consent_id"] = consent_id
        key = self.signing_key
        with self._uses_lock:
            self._uses[key.kid] = self._uses.get(key.kid, 0) + 1
        header = {"alg": key.alg, "kid": key.kid, "typ": "at+jwt"}
        return sign_compact(header, json.dumps(claims).encode(), key)

    def token(self, form: Mapping[str, str], facts: TokenRequestFacts) -> dict[str, Any]:
        """The token response for a token request, or :class:`_OAuthError`."""
        client, cnf = self._authenticate(form, facts)
        if facts.dpop:
            try:
                key = self.dpop.verify(facts.dpop, method="POST", url=facts.url)
            except JoseError as exc:
                raise _OAuthError("invalid_dpop_proof", str(exc)) from None
            cnf = {"jkt": key.thumbprint()}
        if not cnf:
            raise _OAuthError(
                "invalid_request", "a token must be bound to a client certificate or DPoP key"
            )
        grant = form.get("grant_type")
        if grant == "client_credentials":
            asked = set(form.get("scope", "").split()) or set(client.scopes)
            if not asked <= client.scopes:
                raise _OAuthError("invalid_scope", "scope beyond the client's registration")
            token = self.issue(client, " ".join(sorted(asked)), cnf)
            scope = " ".join(sorted(asked))
        elif grant == "authorization_code":
            code = self.state.redeem(form.get("code", ""))
            if code is None or code.client_id != client.client_id or code.expires_at < self.clock():
                raise _OAuthError(
                    "invalid_grant", "the code is unknown, used, expired or not yours"
                )
            if form.get("redirect_uri") != code.redirect_uri:
                raise _OAuthError("invalid_grant", "redirect_uri differs from the authorization's")
            verifier = form.get("code_verifier", "")
            if not 43 <= len(verifier) <= 128 or not hmac.compare_digest(
                pkce_challenge(verifier), code.challenge
            ):
                raise _OAuthError("invalid_grant", "the PKCE code_verifier does not match")
            token = self.issue(
                client, code.scope, cnf, subject=code.psu, consent_id=code.consent_id
            )
            scope = code.scope
        else:
            raise _OAuthError("unsupported_grant_type", "client_credentials or authorization_code")
        return {
            "access_token": token,
            "token_type": "DPoP" if "jkt" in cnf else "Bearer",
            "expires_in": self.token_ttl,
            "scope": scope,
        }

    def _authenticate(
        self, form: Mapping[str, str], facts: TokenRequestFacts
    ) -> tuple[ClientRegistration, dict[str, str]]:
        client_id = form.get("client_id")
        secret = form.get("client_secret")
        if facts.authorization and facts.authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(facts.authorization[6:], validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                raise _OAuthError("invalid_client", "bad Basic credentials", 401) from None
            client_id, _, secret = decoded.partition(":")
        client = self.clients.get(client_id or "")
        if client is None:
            raise _OAuthError("invalid_client", "unknown client", 401)
        cnf: dict[str, str] = {}
        if facts.client_certificate:
            try:
                certificate = certificate_from_header(facts.client_certificate)
            except JoseError as exc:
                raise _OAuthError("invalid_client", str(exc), 401) from None
            cnf = {"x5t#S256": certificate_thumbprint(certificate.public_bytes(Encoding.DER))}
        if (
            client.certificate_sha256 is not None
            and cnf.get("x5t#S256") == client.certificate_sha256
        ):
            return client, cnf
        if (
            secret
            and client.secret_sha256 is not None
            and hmac.compare_digest(hash_secret(secret), client.secret_sha256)
        ):
            return client, cnf
        raise _OAuthError("invalid_client", "client authentication failed", 401)

    # -- the PSU's authorisation ------------------------------------------------------------

    def authorize(self, params: Mapping[str, str]) -> str:
        """The redirect URL with the code; :class:`ObieError` when it cannot be issued."""
        client = self.clients.get(params.get("client_id", ""))
        if client is None:
            raise ObieError.single(400, "UK.OBIE.Field.Invalid", "unknown client_id", "client_id")
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in client.redirect_uris:
            raise ObieError.single(
                400, "UK.OBIE.Field.Invalid", "redirect_uri is not registered", "redirect_uri"
            )
        if params.get("response_type") != "code":
            raise ObieError.single(400, "UK.OBIE.Field.Invalid", "response_type must be code")
        if (
            params.get("code_challenge_method") != "S256"
            or len(params.get("code_challenge", "")) != 43
        ):
            raise ObieError.single(
                400, "UK.OBIE.Field.Invalid", "PKCE with S256 is required", "code_challenge"
            )
        scope = params.get("scope", "")
        wanted = set(scope.split()) - {"openid"}
        if len(wanted) != 1 or not wanted <= client.scopes:
            raise ObieError.single(400, "UK.OBIE.Field.Invalid", "scope is accounts or payments")
        kind = ConsentKind.ACCOUNT_ACCESS if "accounts" in wanted else ConsentKind.DOMESTIC_PAYMENT
        consent_id = params.get("consent_id", "")
        psu = params.get("psu", "")
        state = params.get("state", "")
        if psu not in self.directory.psus():
            raise ObieError.single(400, "UK.OBIE.Field.Invalid", "unknown PSU", "psu")
        if params.get("decision", "allow") == "deny":
            if self.consents.reject(consent_id, client.tenant, kind) is None:
                raise _no_consent()
            query = {"error": "access_denied", "state": state}
            return f"{redirect_uri}?{urlencode(query)}"
        consent = self.consents.get(consent_id, client.tenant, kind)
        if consent is None:
            raise _no_consent()
        accounts = self._accounts(consent, psu, params.get("accounts"))
        if self.sca is not None:
            if consent.status is not ConsentStatus.AWAU:
                raise _not_awaiting()
            self._second_factor(self.sca, psu, params.get("totp", ""), consent_id, client)
        if self.consents.authorise(consent_id, client.tenant, kind, psu, accounts) is None:
            raise _not_awaiting()
        code = secrets.token_urlsafe(32)
        self.state.save_code(
            code,
            AuthorizationCode(
                client.client_id,
                redirect_uri,
                params["code_challenge"],
                " ".join(sorted(wanted)),
                consent_id,
                psu,
                self.clock() + self.code_ttl,
            ),
        )
        return f"{redirect_uri}?{urlencode({'code': code, 'state': state})}"

    @staticmethod
    def _second_factor(
        sca: SecondFactor, psu: str, code: str, consent_id: str, client: ClientRegistration
    ) -> None:
        """The PSU's one-time code accepted, or the :class:`ObieError` saying why not."""
        try:
            sca.verify(
                psu, code, consent_id=consent_id, tenant=client.tenant, client_id=client.client_id
            )
        except ScaKeyError:
            raise ObieError.single(
                503,
                "UK.OBIE.Rules.ServiceUnavailable",
                "the PSU's second factor cannot be read now; try again later",
            ) from None
        except ScaRefusedError as refused:
            raise _sca_error(refused) from None

    def _accounts(self, consent: Consent, psu: str, chosen: str | None) -> tuple[str, ...]:
        held = self.directory.of(psu)
        if consent.kind is ConsentKind.ACCOUNT_ACCESS:
            ids = tuple(record.account_id for record in held)
            if chosen:
                picked = tuple(chosen.split(","))
                if not set(picked) <= set(ids):
                    raise ObieError.single(400, "UK.OBIE.Field.Invalid", "not the PSU's accounts")
                ids = picked
            return ids
        initiation = consent.data.get("Initiation", {})
        debtor = initiation.get("DebtorAccount")
        currency = initiation.get("InstructedAmount", {}).get("Currency")
        for record in held:
            if debtor is not None and record.iban == debtor.get("Identification"):
                return (record.account_id,)
            if debtor is None and record.currency == currency:
                return (record.account_id,)
        raise ObieError.single(
            400, "UK.OBIE.Resource.ConsentMismatch", "the PSU holds no account for this payment"
        )


def _not_awaiting() -> ObieError:
    return ObieError.single(
        400, "UK.OBIE.Resource.InvalidConsentStatus", "the consent is not awaiting authorisation"
    )


def _sca_error(refused: ScaRefusedError) -> ObieError:
    """The OBIE error body of a refused second factor."""
    attempt = refused.attempt
    left = max(0, attempt.max_attempts - attempt.failures)
    headers = {} if attempt.retry_after is None else {"Retry-After": str(attempt.retry_after)}
    locked = (
        f"; locked out, retry after {attempt.retry_after} s"
        if attempt.retry_after is not None
        else f"; {left} attempt(s) left"
    )
    match attempt.outcome:
        case ScaOutcome.MISSING_CODE:
            return ObieError.single(
                400, "UK.OBIE.Field.Missing", "the PSU's one-time code is required", "totp"
            )
        case ScaOutcome.NOT_ENROLLED:
            return ObieError.single(
                403,
                "UK.OBIE.Sca.NotEnrolled",
                "the PSU has no second factor enrolled (isobridge sca enrol)",
                "psu",
            )
        case ScaOutcome.LOCKED_OUT:
            return ObieError.single(
                429,
                "UK.OBIE.Sca.LockedOut",
                f"too many failed one-time codes; retry after {attempt.retry_after} s",
                "totp",
                headers,
            )
        case ScaOutcome.REPLAYED:
            return ObieError.single(
                403,
                "UK.OBIE.Sca.CodeReplayed",
                f"this one-time code was already used; wait for the next one{locked}",
                "totp",
                headers,
            )
        case _:
            return ObieError.single(
                403,
                "UK.OBIE.Sca.CodeInvalid",
                f"the one-time code is wrong{locked}",
                "totp",
                headers,
            )


def _no_consent() -> ObieError:
    return ObieError.single(404, "UK.OBIE.Resource.NotFound", "no such consent", "consent_id")


class LocalJwksSource:
    """The built-in server's JWKS, read in process."""

    def __init__(self, server: AuthorizationServer) -> None:
        self.server = server

    async def fetch(self) -> Mapping[str, Any]:
        """The current key set."""
        return self.server.jwks()


class HttpJwksSource:
    """An issuer's JWKS over HTTPS (``jwks_uri``)."""

    def __init__(
        self, url: str, *, client: httpx.AsyncClient | None = None, timeout: float = 5.0
    ) -> None:
        self.url = url
        self.client = client or httpx.AsyncClient(timeout=timeout)

    async def fetch(self) -> Mapping[str, Any]:
        """GET the key set; an unreachable issuer or a bad answer gives an empty set."""
        try:
            response = await self.client.get(self.url)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError):
            return {"keys": []}
        return document if isinstance(document, dict) else {"keys": []}


def authorization_router(server: AuthorizationServer, *, client_cert_header: str) -> APIRouter:
    """The server's endpoints (module docstring)."""
    router = APIRouter()

    @router.post("/oauth2/token")
    async def token(request: Request) -> Response:
        raw = await request.body()
        headers = {"Cache-Control": "no-store"}
        if len(raw) > _MAX_FORM or not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            return JSONResponse(
                {"error": "invalid_request", "error_description": "a form-encoded body is needed"},
                status_code=400,
                headers=headers,
            )
        try:
            parsed = parse_qs(raw.decode("ascii"), strict_parsing=False, max_num_fields=20)
        except (UnicodeDecodeError, ValueError):
            parsed = {}
        if any(len(values) != 1 for values in parsed.values()):
            return JSONResponse(
                {"error": "invalid_request", "error_description": "repeated parameters"},
                status_code=400,
                headers=headers,
            )
        form = {key: values[0] for key, values in parsed.items()}
        facts = TokenRequestFacts(
            url=f"{server.issuer}/oauth2/token",
            authorization=request.headers.get("authorization"),
            client_certificate=request.headers.get(client_cert_header),
            dpop=request.headers.get("dpop"),
        )
        try:  # in a thread: codes and DPoP proofs are database rows
            body = await asyncio.to_thread(server.token, form, facts)
        except _OAuthError as exc:
            if exc.status == 401:
                headers["WWW-Authenticate"] = 'Basic realm="isobridge"'
            return JSONResponse(
                {"error": exc.error, "error_description": exc.description},
                status_code=exc.status,
                headers=headers,
            )
        return JSONResponse(body, headers=headers)

    @router.get("/oauth2/authorize")
    async def authorize(request: Request) -> Response:
        params = dict(request.query_params.items())
        location = await asyncio.to_thread(server.authorize, params)
        return RedirectResponse(location, status_code=302)

    @router.post("/oauth2/authorize")
    async def authorize_form(request: Request) -> Response:
        raw = await request.body()
        if len(raw) > _MAX_FORM or not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            raise ObieError.single(
                415, "UK.OBIE.Header.Invalid", "a form-encoded body is needed", "content-type"
            )
        try:
            parsed = parse_qs(raw.decode("ascii"), max_num_fields=20)
        except (UnicodeDecodeError, ValueError):
            raise ObieError.single(400, "UK.OBIE.Field.Invalid", "not a form") from None
        if any(len(values) != 1 for values in parsed.values()):
            raise ObieError.single(400, "UK.OBIE.Field.Unexpected", "repeated parameters")
        params = {key: values[0] for key, values in parsed.items()}
        location = await asyncio.to_thread(server.authorize, params)
        return RedirectResponse(location, status_code=303)

    @router.get("/oauth2/jwks")
    async def jwks() -> dict[str, Any]:
        return await asyncio.to_thread(server.jwks)

    @router.get("/.well-known/oauth-authorization-server")
    async def metadata() -> dict[str, Any]:
        return server.metadata()

    return router
