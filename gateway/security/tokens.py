"""The OAuth 2.0 resource server: access tokens checked on every open-banking request.

Standards: RFC 6750 (bearer tokens), RFC 9068 (JWT access tokens: ``iss``, ``aud``,
``exp``, ``nbf``, ``iat``, ``client_id``, ``scope``), RFC 8705 (certificate-bound tokens:
``cnf.x5t#S256``), RFC 9449 (DPoP: ``cnf.jkt`` and a proof per request), FAPI 1.0 Advanced
/ FAPI 2.0 Security Profile (sender-constrained tokens, PS256 / ES256 / EdDSA).

An access token is a JWS (:mod:`gateway.security.jose`) signed by the issuer; its key is
found by ``kid`` in the issuer's JWKS, which a :class:`JwksSource` fetches (one method).
:class:`KeySet` caches the keys for ``ttl`` seconds and refetches early when a token names
an unknown ``kid`` (the issuer rotated), at most once per ``min_refresh`` seconds, so a
flood of made-up ``kid`` values cannot hammer the issuer.

What :meth:`AccessTokenVerifier.verify` requires, in order (each failure a 401 with
``WWW-Authenticate``, except a missing scope: 403):

1. an ``Authorization: Bearer`` or ``DPoP`` header with a compact JWS whose ``alg`` is one of
   the three, whose ``typ`` (if present) is ``at+jwt`` or ``JWT``, signed by a key of the
   JWKS of the configured issuer;
2. ``iss`` equal to the issuer, ``aud`` containing the audience, ``exp`` in the future and
   ``nbf`` / ``iat`` not in the future (``leeway`` seconds of clock skew), a ``client_id``;
3. the scope the endpoint needs in ``scope``;
4. the sender constraint: ``cnf.x5t#S256`` equal to the thumbprint of the client
   certificate that the TLS terminator forwards (header ``client_cert_header``), or
   ``cnf.jkt`` and a valid DPoP proof (:class:`DpopVerifier`) with the ``DPoP`` scheme. A
   token with neither is refused when ``require_sender_constraint`` is set (the default).

A token that passed steps 1 and 2 is remembered by the SHA-256 of its text with what they
found (``cache_size`` tokens, least recently used forgotten first), so a TPP's repeated
calls cost one signature check and one reading of the claims. A remembered token is
accepted only while its key is still in the issuer's published set and only between its
``nbf`` / ``iat`` and its ``exp`` (with the leeway; outside, the full check of step 2 runs
and says why); steps 3 and 4, the scope and the sender constraint (the certificate's
thumbprint, a fresh DPoP proof), run on every request, and so do the checks of the consent
the token is bound to (its status is read on every request, :mod:`gateway.consents`):
remembering a token skips only work whose answer cannot change before it expires. The
thumbprints of forwarded certificates are remembered the same way (by the header's value).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from cryptography.hazmat.primitives.serialization import Encoding

from gateway.errors import ErrorItem, ObieError
from gateway.security.jose import (
    JoseError,
    PublicJwk,
    b64url_encode,
    certificate_from_header,
    certificate_thumbprint,
    parse_compact,
    verify_signature,
)

__all__ = [
    "AccessClaims",
    "AccessTokenVerifier",
    "DpopVerifier",
    "JwksSource",
    "KeySet",
    "MemoryProofReplays",
    "ProofReplays",
    "RequestFacts",
    "TokenSettings",
    "access_token_hash",
]

_TYPES: Final = frozenset({"at+jwt", "application/at+jwt", "JWT"})


class JwksSource(Protocol):
    """Fetches the issuer's JSON Web Key Set (``{"keys": [...]}``)."""

    async def fetch(self) -> Mapping[str, Any]: ...


@dataclass(slots=True)
class KeySet:
    """The issuer's keys by ``kid``, cached (see the module docstring)."""

    source: JwksSource
    ttl: float = 300.0
    min_refresh: float = 10.0
    clock: Callable[[], float] = time.monotonic
    _keys: dict[str, PublicJwk] = field(default_factory=dict)
    _fetched_at: float | None = None
    _unknown_at: float | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    fetches: int = 0

    async def key(self, kid: str) -> PublicJwk | None:
        """The key ``kid``: refetched when the cache is older than ``ttl``, or when ``kid``
        is unknown and no unknown kid caused a refetch in the last ``min_refresh`` s."""
        if self._fetched_at is None or self.clock() - self._fetched_at >= self.ttl:
            async with self._lock:
                if self._fetched_at is None or self.clock() - self._fetched_at >= self.ttl:
                    await self._refresh()
            return self._keys.get(kid)
        found = self._keys.get(kid)
        if found is not None:
            return found
        if self._unknown_at is None or self.clock() - self._unknown_at >= self.min_refresh:
            async with self._lock:
                if self._unknown_at is None or self.clock() - self._unknown_at >= self.min_refresh:
                    self._unknown_at = self.clock()
                    await self._refresh()
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        document = await self.source.fetch()
        keys: dict[str, PublicJwk] = {}
        entries = document.get("keys") if isinstance(document, Mapping) else None
        for entry in entries if isinstance(entries, list) else []:
            try:
                jwk = PublicJwk.from_dict(entry)
            except JoseError:
                continue  # an unusable key (an HMAC secret, a small RSA key) is skipped
            if jwk.kid is not None:
                keys[jwk.kid] = jwk
        self._keys = keys
        self._fetched_at = self.clock()
        self.fetches += 1


@dataclass(frozen=True, slots=True)
class TokenSettings:
    """What access tokens must say: issuer, audience, clock skew, and the header carrying
    the client certificate from the TLS terminator."""

    issuer: str
    audience: str
    leeway: float = 30.0
    require_sender_constraint: bool = True
    client_cert_header: str = "x-ssl-client-cert"
    dpop_window: float = 60.0


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What of the HTTP request the checks need."""

    method: str
    url: str
    authorization: str | None
    dpop: str | None
    client_certificate: str | None


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """A verified access token: who calls (``client_id``, its tenant), what it may do, and
    the consent it is bound to (authorization-code tokens)."""

    client_id: str
    tenant: str
    scopes: frozenset[str]
    subject: str | None
    consent_id: str | None
    expires_at: float
    raw: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class _Verified:
    """A token that passed the signature and claims checks: what they found, and the
    times between which the claims check would pass again."""

    kid: str
    claims: dict[str, Any]
    accepted: AccessClaims
    valid_from: float
    valid_until: float


def access_token_hash(token: str) -> str:
    """DPoP ``ath``: base64url SHA-256 of the access token (RFC 9449 section 4.2)."""
    return b64url_encode(hashlib.sha256(token.encode("ascii")).digest())


def _unauthorized(
    message: str, *, scheme: str = "Bearer", error: str = "invalid_token"
) -> ObieError:
    challenge = f'{scheme} error="{error}", error_description="{message}"'
    return ObieError(
        401,
        (ErrorItem("UK.OBIE.Token.Invalid", message, "Authorization"),),
        {"WWW-Authenticate": challenge},
    )


class ProofReplays(Protocol):
    """Remembers the DPoP proofs seen within a window: :meth:`first_use` is True the first
    time ``key`` is presented within ``window`` seconds of ``at``, False on a replay.
    :class:`MemoryProofReplays` in one process;
    :class:`gateway.security.replays.SqlProofReplays` for every process on one database."""

    def first_use(self, key: str, at: float, window: float) -> bool: ...


class MemoryProofReplays:
    """:class:`ProofReplays` in this process (``memory`` keys at most, oldest first out)."""

    def __init__(self, memory: int = 100_000) -> None:
        self.memory = memory
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._turn = threading.Lock()  # the token endpoint runs in threads

    def first_use(self, key: str, at: float, window: float) -> bool:
        """See :class:`ProofReplays`."""
        with self._turn:
            while self._seen:
                first, seen_at = next(iter(self._seen.items()))
                if at - seen_at <= window and len(self._seen) < self.memory:
                    break
                del self._seen[first]
            if key in self._seen:
                return False
            self._seen[key] = at
            return True


class DpopVerifier:
    """DPoP proofs (RFC 9449 section 4.3): ``typ`` ``dpop+jwt``, one of the three
    algorithms, a public ``jwk`` in the header that verifies the signature, ``htm`` and
    ``htu`` (without query and fragment) equal to the request's, ``iat`` within ``window``
    seconds, ``ath`` of the access token when one is presented, and a ``jti`` not seen
    before within the window (replay: ``replays``, by default this process's memory)."""

    def __init__(
        self,
        *,
        window: float = 60.0,
        clock: Callable[[], float] = time.time,
        replays: ProofReplays | None = None,
    ) -> None:
        self.window = window
        self.clock = clock
        self.replays = replays or MemoryProofReplays()

    def verify(
        self, proof: str, *, method: str, url: str, access_token: str | None = None
    ) -> PublicJwk:
        """The proof's key; :class:`gateway.security.jose.JoseError` naming what is wrong."""
        jws = parse_compact(proof)
        if jws.header.get("typ") != "dpop+jwt":
            raise JoseError("a DPoP proof has typ dpop+jwt")
        jwk_member = jws.header.get("jwk")
        if not isinstance(jwk_member, Mapping):
            raise JoseError("a DPoP proof carries its public jwk")
        jwk = PublicJwk.from_dict(jwk_member)
        verify_signature(jws, jwk)
        try:
            claims = json.loads(jws.payload)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise JoseError("the DPoP proof's claims are not JSON") from None
        if not isinstance(claims, dict):
            raise JoseError("the DPoP proof's claims are not an object")
        if claims.get("htm") != method:
            raise JoseError("the DPoP proof is for another method")
        if claims.get("htu") != url.split("?", 1)[0].split("#", 1)[0]:
            raise JoseError("the DPoP proof is for another URL")
        iat = claims.get("iat")
        now = self.clock()
        if not isinstance(iat, int | float) or abs(now - iat) > self.window:
            raise JoseError("the DPoP proof is too old or from the future")
        if access_token is not None and claims.get("ath") != access_token_hash(access_token):
            raise JoseError("the DPoP proof is not for this access token")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 8 <= len(jti) <= 256:
            raise JoseError("the DPoP proof needs a jti")
        # a proof stays acceptable while its iat is within the window either way: remember
        # it that long
        if not self.replays.first_use(f"{jwk.thumbprint()}:{jti}", now, 2 * self.window):
            raise JoseError("the DPoP proof was used before")
        return jwk


class AccessTokenVerifier:
    """See the module docstring. ``tenant_of`` maps a ``client_id`` to its tenant (the
    OAuth client is the tenant, ``CANONICAL.md``); by default they are the same."""

    def __init__(
        self,
        settings: TokenSettings,
        keys: KeySet,
        *,
        dpop: DpopVerifier | None = None,
        clock: Callable[[], float] = time.time,
        tenant_of: Callable[[str], str | None] | None = None,
        cache_size: int = 10_000,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.dpop = dpop or DpopVerifier(window=settings.dpop_window, clock=clock)
        self.clock = clock
        self.tenant_of = tenant_of or (lambda client_id: client_id)
        self.cache_size = cache_size
        self._verified: OrderedDict[bytes, _Verified] = OrderedDict()
        self._thumbprints: OrderedDict[str, str] = OrderedDict()

    async def verify(self, request: RequestFacts, *, scopes: Sequence[str]) -> AccessClaims:
        """The claims of the request's access token, or :class:`ObieError` (401 / 403)."""
        scheme, token = self._credentials(request.authorization)
        digest = hashlib.sha256(token.encode()).digest()
        cached = self._verified.get(digest)
        if cached is not None and await self.keys.key(cached.kid) is not None:
            # verified before, its key still published
            self._verified.move_to_end(digest)
            claims = cached.claims
            now = self.clock()
            if cached.valid_from <= now <= cached.valid_until:
                accepted = cached.accepted
            else:
                accepted = self._claims(claims, scheme)
        else:
            kid, claims = await self._verified_claims(token, scheme)
            accepted = self._claims(claims, scheme)
            self._remember(digest, kid, claims, accepted)
        missing = [scope for scope in scopes if scope not in accepted.scopes]
        wanted = " ".join(scopes)
        if missing:
            raise ObieError(
                403,
                (
                    ErrorItem(
                        "UK.OBIE.Token.InsufficientScope", f"the token lacks scope {missing[0]}"
                    ),
                ),
                {"WWW-Authenticate": f'{scheme} error="insufficient_scope", scope="{wanted}"'},
            )
        self._sender(claims, scheme, token, request)
        return accepted

    def _remember(
        self, digest: bytes, kid: str, claims: dict[str, Any], accepted: AccessClaims
    ) -> None:
        leeway = self.settings.leeway
        starts = [v for v in (claims.get("nbf"), claims.get("iat")) if isinstance(v, int | float)]
        if len(self._verified) >= self.cache_size:
            self._verified.popitem(last=False)
        self._verified[digest] = _Verified(
            kid,
            claims,
            accepted,
            valid_from=max(starts, default=float("-inf")) - leeway,
            valid_until=accepted.expires_at + leeway,
        )

    async def _verified_claims(self, token: str, scheme: str) -> tuple[str, dict[str, Any]]:
        try:
            jws = parse_compact(token)
        except JoseError as exc:
            raise _unauthorized(str(exc), scheme=scheme) from None
        typ = jws.header.get("typ")
        if typ is not None and typ not in _TYPES:
            raise _unauthorized("the token is not an access token", scheme=scheme)
        kid = jws.header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _unauthorized("the token names no key (kid)", scheme=scheme)
        key = await self.keys.key(kid)
        if key is None:
            raise _unauthorized("the token's key is not the issuer's", scheme=scheme)
        try:
            verify_signature(jws, key)
            claims = json.loads(jws.payload)
        except JoseError as exc:
            raise _unauthorized(str(exc), scheme=scheme) from None
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _unauthorized("the token's claims are not JSON", scheme=scheme) from None
        if not isinstance(claims, dict):
            raise _unauthorized("the token's claims are not an object", scheme=scheme)
        return kid, claims

    def _credentials(self, authorization: str | None) -> tuple[str, str]:
        if not authorization:
            raise ObieError(
                401,
                (ErrorItem("UK.OBIE.Header.Missing", "no access token", "Authorization"),),
                {"WWW-Authenticate": 'Bearer realm="isobridge", DPoP algs="PS256 ES256 EdDSA"'},
            )
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer":
            return "Bearer", token.strip()
        if scheme.lower() == "dpop":
            return "DPoP", token.strip()
        raise _unauthorized("the Authorization scheme is not Bearer or DPoP")

    def _claims(self, claims: Mapping[str, Any], scheme: str) -> AccessClaims:
        settings = self.settings
        now = self.clock()
        if claims.get("iss") != settings.issuer:
            raise _unauthorized("the token is from another issuer", scheme=scheme)
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if settings.audience not in audiences:
            raise _unauthorized("the token is for another audience", scheme=scheme)
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise _unauthorized("the token has no expiry", scheme=scheme)
        if now > exp + settings.leeway:
            raise _unauthorized("the token has expired", scheme=scheme)
        for name in ("nbf", "iat"):
            value = claims.get(name)
            if value is None:
                continue
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise _unauthorized(f"the token's {name} is not a time", scheme=scheme)
            if value > now + settings.leeway:
                raise _unauthorized("the token is not valid yet", scheme=scheme)
        client_id = claims.get("client_id")
        if not isinstance(client_id, str) or not client_id:
            raise _unauthorized("the token names no client", scheme=scheme)
        tenant = self.tenant_of(client_id)
        if tenant is None:
            raise _unauthorized("the token's client is not registered here", scheme=scheme)
        scope = claims.get("scope", "")
        if not isinstance(scope, str):
            raise _unauthorized("the token's scope is not a string", scheme=scheme)
        consent = claims.get("consent_id")
        subject = claims.get("sub")
        return AccessClaims(
            client_id=client_id,
            tenant=tenant,
            scopes=frozenset(scope.split()),
            subject=subject if isinstance(subject, str) else None,
            consent_id=consent if isinstance(consent, str) else None,
            expires_at=float(exp),
            raw=dict(claims),
        )

    def _thumbprint(self, header: str) -> str:
        """``x5t#S256`` of the forwarded certificate, remembered by header value."""
        found = self._thumbprints.get(header)
        if found is None:
            try:
                certificate = certificate_from_header(header)
            except JoseError as exc:
                raise _unauthorized(str(exc)) from None
            found = certificate_thumbprint(certificate.public_bytes(Encoding.DER))
            if len(self._thumbprints) >= self.cache_size:
                self._thumbprints.popitem(last=False)
            self._thumbprints[header] = found
        return found

    def _sender(
        self, claims: Mapping[str, Any], scheme: str, token: str, request: RequestFacts
    ) -> None:
        cnf = claims.get("cnf")
        cnf = cnf if isinstance(cnf, Mapping) else {}
        thumbprint = cnf.get("x5t#S256")
        jkt = cnf.get("jkt")
        if isinstance(jkt, str):
            if scheme != "DPoP":
                raise _unauthorized("a DPoP-bound token is sent with the DPoP scheme")
            if not request.dpop:
                raise _unauthorized("no DPoP proof", scheme="DPoP", error="invalid_dpop_proof")
            try:
                key = self.dpop.verify(
                    request.dpop, method=request.method, url=request.url, access_token=token
                )
            except JoseError as exc:
                raise _unauthorized(str(exc), scheme="DPoP", error="invalid_dpop_proof") from None
            if key.thumbprint() != jkt:
                raise _unauthorized(
                    "the DPoP proof is signed by another key",
                    scheme="DPoP",
                    error="invalid_dpop_proof",
                )
            return
        if scheme == "DPoP":
            raise _unauthorized("the token is not DPoP-bound", scheme="DPoP")
        if isinstance(thumbprint, str):
            if not request.client_certificate:
                raise _unauthorized(
                    "the token is bound to a client certificate; none was presented"
                )
            presented = self._thumbprint(request.client_certificate)
            if presented != thumbprint:
                raise _unauthorized("the token is bound to another client certificate")
            return
        if self.settings.require_sender_constraint:
            raise _unauthorized("the token is not sender-constrained (mTLS or DPoP)")
