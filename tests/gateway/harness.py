"""A running gateway for tests: real mainframe_sim over TCP, real CoreBanking, real journal,
real RabbitMQ clearing queues, the built-in authorization server, and an HTTP client.

Strong customer authentication is on, as by default: the PSUs ``alice`` and ``bob`` are
enrolled, and :meth:`Harness.authorisation_code` gives the PSU's current one-time code from
their :class:`Authenticator` (the app, read from the ``otpauth://`` URI). The second
factor's clock is a :class:`StepClock` the tests move: each authorisation moves it one time
step on, as a PSU would wait for the next code, so no test sleeps.

Everything runs on the test's event loop; HTTP goes through ``httpx.ASGITransport`` into the
real application. Two TPPs are registered: ``tpp-one`` and ``tpp-two`` (separate tenants),
each with a client certificate (mTLS-bound tokens) and a client secret; ``tpp-one`` also
has a PS256 key for request signatures.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, quote, unquote, urlparse

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy.engine import Engine

from gateway.app import GatewaySettings
from gateway.security.authserver import (
    AuthorizationServer,
    ClientRegistration,
    hash_secret,
    pkce_challenge,
)
from gateway.security.jose import SigningKey, certificate_thumbprint, sign_compact
from gateway.security.sca import ScaSettings
from gateway.security.tokens import access_token_hash
from gateway.security.totp import ALGORITHMS, Algorithm, TotpParameters, hotp, time_step
from gateway.signatures import OB_IAT, OB_ISS, OB_TAN
from gateway.store import create_engine, upgrade
from hub.clearing_outgoing import ClearingOutgoing
from hub.core import CoreBanking
from hub.gateway import BuiltGateway, IssuerConfig, build_gateway, seed_directory
from hub.sagas.service import ANSWER_HANDLERS, PaymentSagas
from journal import Journal, StaticMasterKeys
from routing.transport import Transport
from tests import broker
from tests.broker import own_name, with_dead_letters
from tests.hub.test_core import Mainframe, core_for, mainframe

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
ISSUER = "https://as.isobridge.test"
AUDIENCE = "https://api.isobridge.test"
PUBLIC_URL = "https://api.isobridge.test"
PISP = "/open-banking/v4.0/pisp"
AISP = "/open-banking/v4.0/aisp"
REDIRECT = "https://tpp.example/cb"
ALICE_EUR = seed_directory().of("alice")[0]
ALICE_GBP = seed_directory().of("alice")[3]


@dataclass
class Tpp:
    """A registered TPP: its id, secret, client certificate (PEM) and signing key."""

    client_id: str
    secret: str
    certificate_pem: str
    signing_key: SigningKey

    @property
    def cert_header(self) -> dict[str, str]:
        return {"x-ssl-client-cert": quote(self.certificate_pem)}


@dataclass
class StepClock:
    """A clock the test moves (the second factor's): starts at the real time."""

    now: float = dataclasses.field(default_factory=time.time)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Authenticator:
    """A PSU's authenticator app, set up from the ``otpauth://`` URI of the enrolment. Each
    code is of a newer time step than the one before (a PSU waits for the next code)."""

    account: str
    secret: bytes
    parameters: TotpParameters
    last_step: int | None = None

    @classmethod
    def from_uri(cls, uri: str) -> Authenticator:
        parsed = urlparse(uri)
        assert (parsed.scheme, parsed.netloc) == ("otpauth", "totp"), uri
        query = {key: values[0] for key, values in parse_qs(parsed.query).items()}
        encoded = query["secret"]
        secret = base64.b32decode(encoded + "=" * (-len(encoded) % 8))
        algorithm = query.get("algorithm", "SHA1")
        assert algorithm in ALGORITHMS, uri
        parameters = TotpParameters(
            int(query.get("digits", "6")),
            int(query.get("period", "30")),
            cast(Algorithm, algorithm),
        )
        account = unquote(parsed.path.lstrip("/")).split(":", 1)[1]
        return cls(account, secret, parameters)

    def code(self, at: float) -> str:
        """The code to type at ``at``."""
        step = time_step(at, self.parameters)
        if self.last_step is not None and step <= self.last_step:
            step = self.last_step + 1
        self.last_step = step
        return self.code_of(step)

    def code_of(self, step: int) -> str:
        """The code of time step ``step``."""
        return hotp(self.secret, step, self.parameters.digits, self.parameters.algorithm)


@dataclass(frozen=True)
class Code:
    """An authorization code and the PKCE verifier that redeems it."""

    code: str
    verifier: str


@dataclass
class Harness:
    """The running gateway and helpers to talk to it."""

    built: BuiltGateway
    http: httpx.AsyncClient
    mf: Mainframe
    core: CoreBanking
    journal: Journal
    clearing: ClearingOutgoing | None
    tpps: dict[str, Tpp]
    clock: StepClock = dataclasses.field(default_factory=StepClock)
    devices: dict[str, Authenticator] = dataclasses.field(default_factory=dict)

    def totp(self, psu: str = "alice") -> str:
        """The PSU's code one time step after the last (the clock moves on)."""
        device = self.devices[psu]
        self.clock.advance(device.parameters.step)
        return device.code(self.clock())

    @property
    def server(self) -> AuthorizationServer:
        assert self.built.authorization_server is not None
        return self.built.authorization_server

    async def client_token(
        self, client_id: str = "tpp-one", scope: str = "accounts payments"
    ) -> str:
        tpp = self.tpps[client_id]
        response = await self.http.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials", "scope": scope, "client_id": client_id},
            headers=tpp.cert_header,
        )
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        assert isinstance(token, str)
        return token

    def auth(self, token: str, client_id: str = "tpp-one", **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", **self.tpps[client_id].cert_header, **extra}

    async def authorise(
        self,
        consent_id: str,
        scope: str,
        *,
        client_id: str = "tpp-one",
        psu: str = "alice",
        **extra: str,
    ) -> str:
        """The PSU authorises ``consent_id``; the access token from the code (PKCE)."""
        code = await self.authorisation_code(
            consent_id, scope, client_id=client_id, psu=psu, **extra
        )
        return await self.redeem(code, client_id=client_id)

    async def authorisation_code(
        self,
        consent_id: str,
        scope: str,
        *,
        client_id: str = "tpp-one",
        psu: str = "alice",
        **extra: str,
    ) -> Code:
        """The PSU authorises ``consent_id`` (with the PSU's one-time code unless ``extra``
        has ``totp``): the code the TPP is sent back."""
        verifier = secrets.token_urlsafe(48)
        if "totp" not in extra and psu in self.devices:
            extra = {**extra, "totp": self.totp(psu)}
        response = await self.http.get(
            "/oauth2/authorize",
            params={
                "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
                "scope": scope, "state": "s1", "consent_id": consent_id, "psu": psu,
                "code_challenge": pkce_challenge(verifier), "code_challenge_method": "S256",
                **extra,
            },
        )  # fmt: skip
        assert response.status_code == 302, response.text
        return Code(parse_qs(urlparse(response.headers["location"]).query)["code"][0], verifier)

    async def redeem(self, code: Code, *, client_id: str = "tpp-one") -> str:
        """The access token for ``code``."""
        tpp = self.tpps[client_id]
        token = await self.http.post(
            "/oauth2/token",
            data={
                "grant_type": "authorization_code", "code": code.code, "redirect_uri": REDIRECT,
                "code_verifier": code.verifier, "client_id": client_id,
            },
            headers=tpp.cert_header,
        )  # fmt: skip
        assert token.status_code == 200, token.text
        value = token.json()["access_token"]
        assert isinstance(value, str)
        return value

    def sign(self, body: bytes, client_id: str = "tpp-one", **changes: Any) -> str:
        """The TPP's detached x-jws-signature of ``body``."""
        key = self.tpps[client_id].signing_key
        header = {
            "alg": "PS256", "kid": key.kid, "typ": "JOSE", "cty": "application/json",
            OB_IAT: int(time.time()), OB_ISS: f"org/{client_id}", OB_TAN: "openbanking.org.uk",
            "crit": [OB_IAT, OB_ISS, OB_TAN], **changes,
        }  # fmt: skip
        compact = sign_compact(header, body, key)
        first, _, last = compact.split(".")
        return f"{first}..{last}"


def dpop_proof(
    key: SigningKey, method: str, url: str, token: str | None = None, **claims: Any
) -> str:
    """A DPoP proof (RFC 9449) signed by ``key``."""
    body: dict[str, Any] = {
        "jti": uuid.uuid4().hex,
        "htm": method,
        "htu": url,
        "iat": int(time.time()),
    }
    if token is not None:
        body["ath"] = access_token_hash(token)
    body.update(claims)
    public = {k: v for k, v in key.public_jwk().items() if k not in ("kid", "alg", "use")}
    return sign_compact(
        {"alg": key.alg, "typ": "dpop+jwt", "jwk": public}, json.dumps(body).encode(), key
    )


def payment_consent_body(
    amount: str = "10.50", currency: str = "EUR", creditor: str = "GB29NWBK60161331926819"
) -> dict[str, Any]:
    return {
        "Data": {
            "Initiation": {
                "InstructionIdentification": f"INSTR-{uuid.uuid4().hex[:8]}",
                "EndToEndIdentification": f"E2E-{uuid.uuid4().hex[:8]}",
                "InstructedAmount": {"Amount": amount, "Currency": currency},
                "CreditorAccount": {
                    "SchemeName": "UK.OBIE.IBAN",
                    "Identification": creditor,
                    "Name": "Oliver Smith",
                },
                "RemittanceInformation": {"Unstructured": ["Invoice 42"]},
            }
        },
        "Risk": {"PaymentContextCode": "TransferToThirdParty"},
    }


def account_consent_body(*permissions: str) -> dict[str, Any]:
    return {
        "Data": {
            "Permissions": list(permissions or (
                "ReadAccountsDetail", "ReadBalances", "ReadTransactionsDetail",
                "ReadTransactionsCredits", "ReadTransactionsDebits",
            ))
        },
        "Risk": {},
    }  # fmt: skip


def _tpp(tmp_path: Path, client_id: str) -> Tpp:
    from tests.certs import TestAuthority

    directory = tmp_path / f"ca-{client_id}"
    directory.mkdir(parents=True, exist_ok=True)
    authority = TestAuthority(directory)
    files = authority.issue(client_id, client_id, server=False)
    return Tpp(
        client_id,
        secrets.token_urlsafe(16),
        files.cert.read_text(),
        SigningKey.generate("PS256", kid=f"{client_id}-sig"),
    )


def tpps_for(tmp_path: Path) -> dict[str, Tpp]:
    """The two TPPs ``tpp-one`` and ``tpp-two``, their certificates in ``tmp_path``."""
    return {name: _tpp(tmp_path, name) for name in ("tpp-one", "tpp-two")}


def _registration(tpp: Tpp) -> ClientRegistration:
    der = x509.load_pem_x509_certificate(tpp.certificate_pem.encode()).public_bytes(Encoding.DER)
    return ClientRegistration(
        client_id=tpp.client_id,
        tenant=tpp.client_id,
        scopes=frozenset(
            {"accounts", "payments", "admin"}
            if tpp.client_id == "tpp-one"
            else {"accounts", "payments"}
        ),
        redirect_uris=(REDIRECT,),
        secret_sha256=hash_secret(tpp.secret),
        certificate_sha256=certificate_thumbprint(der),
        jws_issuer=f"org/{tpp.client_id}",
        jwks={"keys": [tpp.signing_key.public_jwk()]},
    )


@contextlib.asynccontextmanager
async def running_gateway(
    tmp_path: Path,
    *,
    settings: GatewaySettings | None = None,
    with_clearing: bool = False,
    statement_files: tuple[Path, ...] = (),
    sign_responses: bool = False,
    queue_suffix: str | None = None,
    dead_letters: Transport | None = None,
    engine: Engine | None = None,
    tpps: dict[str, Tpp] | None = None,
    sca: ScaSettings | None = None,
    clock: StepClock | None = None,
    enrol: tuple[str, ...] = ("alice", "bob"),
    sagas: bool = False,
) -> AsyncIterator[Harness]:
    """The harness (module docstring); the gateway's state in ``engine`` (migrated), or in
    a new SQLite file in ``tmp_path``; ``tpps`` of an earlier harness to be them again;
    ``sca`` the second factor's settings, ``clock`` its clock, ``enrol`` the PSUs enrolled
    (their devices in :attr:`Harness.devices`); ``sagas``: payments carried by the outbound
    credit transfer saga (its runner a task)."""
    import asyncio

    tpps = tpps or tpps_for(tmp_path)
    # generous limits: the rate-limit tests set their own
    settings = settings or GatewaySettings(public_url=PUBLIC_URL, rate_per_second=1000, burst=1000)
    journal = Journal.open(
        f"sqlite:///{tmp_path / 'journal.db'}", StaticMasterKeys({1: bytes(range(32))}), create=True
    )
    base = f"test.clearing.{queue_suffix}" if queue_suffix else own_name("test.clearing")
    holder: list[BuiltGateway] = []
    payment_sagas: list[PaymentSagas] = []
    state = engine or gateway_database(tmp_path)
    clock = clock or StepClock()

    async def on_status(document: bytes) -> int:
        if payment_sagas:
            return await payment_sagas[0].receive_answer(document)
        return await holder[0].payments.receive_status_report(document)

    clearing = ClearingOutgoing(
        AMQP_URL, asyncio.get_running_loop(), on_status,
        outgoing=f"{base}.outgoing", status=f"{base}.status",
        handlers=ANSWER_HANDLERS if sagas else 1,
    )  # fmt: skip
    try:
        async with mainframe(tmp_path) as mf, core_for(mf) as (core, connector):
            halt = asyncio.Event()
            if sagas:
                payment_sagas.append(PaymentSagas(journal, connector, clearing, tenant="bank-a"))
            running = [asyncio.create_task(saga.run(halt)) for saga in payment_sagas]
            built = build_gateway(
                core=core,
                clearing=clearing,
                journal=journal,
                engine=state,
                issuer=IssuerConfig(issuer=ISSUER, audience=AUDIENCE),
                clients=[_registration(tpp) for tpp in tpps.values()],
                settings=settings,
                statement_files=statement_files,
                response_signing_key=SigningKey.generate("PS256", kid="bank-sig")
                if sign_responses
                else None,
                probes=(clearing,) if with_clearing else (),
                dead_letters=dead_letters,
                sca=sca,
                sca_clock=clock,
                sagas=payment_sagas[0] if payment_sagas else None,
            )
            holder.append(built)
            devices = {}
            if built.second_factor is not None:
                for psu in enrol:
                    enrolment = await asyncio.to_thread(built.second_factor.enrol, psu)
                    devices[psu] = Authenticator.from_uri(enrolment.uri)
            if with_clearing:
                await asyncio.to_thread(clearing.start)
            transport = httpx.ASGITransport(app=built.app)
            try:
                async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as http:
                    yield Harness(
                        built,
                        http,
                        mf,
                        core,
                        journal,
                        clearing if with_clearing else None,
                        tpps,
                        clock,
                        devices,
                    )
            finally:
                halt.set()
                await asyncio.gather(*running)
                await asyncio.to_thread(clearing.stop)
                journal.close()
                if engine is None:
                    state.dispose()
    finally:
        await asyncio.to_thread(delete_queues, clearing.outgoing, clearing.status)


def gateway_database(tmp_path: Path, name: str = "gateway") -> Engine:
    """An engine on a migrated SQLite gateway database in ``tmp_path``."""
    engine = create_engine(f"sqlite:///{tmp_path / f'{name}.db'}")
    upgrade(engine)
    return engine


def delete_queues(*names: str) -> None:
    """Delete a test's queues (and dead-letter queues) from the shared broker."""
    broker.delete_queues(AMQP_URL, with_dead_letters(*names))


def replace_settings(settings: GatewaySettings, **changes: Any) -> GatewaySettings:
    return dataclasses.replace(settings, **changes)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


Json = Mapping[str, Any]
