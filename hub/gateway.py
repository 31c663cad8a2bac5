"""The open-banking gateway's composition root: the one place where it is wired to the hub.

The gateway (:mod:`gateway`) knows its seams only (:mod:`gateway.ports`); this module hands
it the hub's real parts:

- the core banking connector: :class:`hub.core.CoreBanking` (``BALQ`` balance enquiries,
  ``DEBT`` postings and their ``REVS`` reversals on the mainframe);
- the clearing queue pair for outgoing payments: :class:`hub.clearing_outgoing.ClearingOutgoing`
  (pacs.008 out, pacs.002 in, RabbitMQ), whose status reports go to
  ``PaymentService.receive_status_report``;
- the journal (:class:`journal.Journal`, through :class:`gateway.journaled.JournalPayments`);
- optionally, the payment sagas (``sagas``: :class:`hub.sagas.service.PaymentSagas`), which
  then carry each domestic payment (hold, pacs.008, settle / release / recall);
- the statement extract files (:class:`gateway.statements.ExtractStatementSource`);
- the token verifier: against the built-in authorization server
  (:class:`gateway.security.authserver.AuthorizationServer`, in process) or, in
  production, a real issuer's JWKS URL (:class:`gateway.security.authserver.HttpJwksSource`);
- the gateway's database (``engine``, migrated by :func:`gateway.store.upgrade`): consents,
  idempotency keys, payments, the built-in server's codes and keys, the DPoP proofs seen,
  shared by every gateway process on it;
- with the built-in server, strong customer authentication
  (:class:`gateway.security.sca.SecondFactor`, on unless ``sca.enabled`` is false): the
  PSUs' TOTP secrets in that database under the journal's master keys (the hub's, which
  protect the vault too), every attempt journaled, counted in ``/metrics`` and logged.

Rate limits are per process (:mod:`gateway.limits`): with ``workers`` processes behind one
port, each gets ``1/workers`` of a client's rate and burst, so a client never exceeds its
limit in total (one keep-alive connection, which stays on one process, gets less).

:func:`build_gateway` returns the services and the FastAPI application;
:func:`seed_directory` is the demo's PSUs, holding the mainframe simulator's seeded accounts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine

from gateway.app import GatewayServices, GatewaySettings, create_app
from gateway.consents import ConsentStore
from gateway.idempotency import IdempotencyStore
from gateway.journaled import JournalPayments, JournalProbe, JournalScaAudit
from gateway.limits import RateLimiter
from gateway.operations import Metrics, ReadinessProbe
from gateway.payments import PaymentService
from gateway.ports import (
    AccountDirectory,
    AccountRecord,
    ClearingPublisher,
    CoreBankingPort,
    PaymentSagaPort,
)
from gateway.security.authserver import (
    AuthorizationServer,
    ClientRegistration,
    HttpJwksSource,
    LocalJwksSource,
)
from gateway.security.authstate import AuthorizationState
from gateway.security.jose import JoseError, PublicJwk, SigningKey
from gateway.security.replays import SqlProofReplays
from gateway.security.sca import ScaSettings, SecondFactor
from gateway.security.tokens import (
    AccessTokenVerifier,
    DpopVerifier,
    JwksSource,
    KeySet,
    TokenSettings,
)
from gateway.signatures import MessageSigner, SignatureCheck
from gateway.statements import ExtractStatementSource
from hub.core import posting_reference
from journal import Journal, MasterKeys
from mainframe_sim.seed import SEED_ACCOUNTS
from routing.transport import Transport

__all__ = ["BuiltGateway", "IssuerConfig", "build_gateway", "seed_directory"]


@dataclass(frozen=True, slots=True)
class IssuerConfig:
    """Where access tokens come from: ``jwks_url`` of a real issuer, or (``None``) the
    built-in authorization server at ``issuer``."""

    issuer: str
    audience: str
    jwks_url: str | None = None
    algorithm: str = "ES256"
    require_sender_constraint: bool = True
    client_cert_header: str = "x-ssl-client-cert"


@dataclass(frozen=True, slots=True)
class BuiltGateway:
    """The wired gateway."""

    app: FastAPI
    services: GatewayServices
    authorization_server: AuthorizationServer | None
    payments: PaymentService = field(repr=False)
    second_factor: SecondFactor | None = None


def seed_directory() -> AccountDirectory:
    """The demo PSUs: ``alice`` holds the first three seeded EUR accounts and the first
    GBP one, ``bob`` the next three EUR accounts."""
    accounts = [seed for seed in SEED_ACCOUNTS if seed.status == "open"]
    eur = [seed for seed in accounts if seed.currency == "EUR"]
    gbp = [seed for seed in accounts if seed.currency == "GBP"]
    records = [AccountRecord("alice", s.number, s.currency, s.name) for s in [*eur[:3], gbp[0]]]
    records += [AccountRecord("bob", s.number, s.currency, s.name) for s in eur[3:6]]
    return AccountDirectory(records)


def _request_signatures(
    clients: Sequence[ClientRegistration], anchor: str
) -> dict[str, SignatureCheck]:
    checks: dict[str, SignatureCheck] = {}
    for client in clients:
        if client.jws_issuer is None:
            continue
        keys: dict[str, PublicJwk] = {}
        for entry in client.jwks.get("keys", []):
            try:
                jwk = PublicJwk.from_dict(entry)
            except JoseError:
                continue
            if jwk.kid is not None:
                keys[jwk.kid] = jwk
        checks[client.client_id] = SignatureCheck(keys, client.jws_issuer, anchor)
    return checks


def build_gateway(
    *,
    core: CoreBankingPort,
    clearing: ClearingPublisher,
    journal: Journal,
    engine: Engine,
    issuer: IssuerConfig,
    clients: Sequence[ClientRegistration],
    directory: AccountDirectory | None = None,
    settings: GatewaySettings | None = None,
    statement_files: Sequence[Path] = (),
    response_signing_key: SigningKey | None = None,
    trust_anchor: str = "openbanking.org.uk",
    jwks_source: JwksSource | None = None,
    tenant_of: Mapping[str, str] | None = None,
    probes: Sequence[ReadinessProbe] = (),
    dead_letters: Transport | None = None,
    metrics_registry: CollectorRegistry | None = None,
    workers: int = 1,
    consent_cache_ttl: float = 1.0,
    sca: ScaSettings | None = None,
    master_keys: MasterKeys | None = None,
    sca_clock: Callable[[], float] = time.time,
    sagas: PaymentSagaPort | None = None,
) -> BuiltGateway:
    """Wire the gateway from the hub's parts (module docstring). ``sca``: the built-in
    server's second factor (default on); its secrets under ``master_keys`` (default: the
    journal's); ``sca_clock`` tells its time (tests step it)."""
    settings = settings or GatewaySettings()
    directory = directory or seed_directory()
    consents = ConsentStore(engine, cache_ttl=consent_cache_ttl)
    replays = SqlProofReplays(engine)
    metrics = Metrics(metrics_registry)
    server: AuthorizationServer | None = None
    second_factor: SecondFactor | None = None
    if jwks_source is None:
        if issuer.jwks_url is not None:
            jwks_source = HttpJwksSource(issuer.jwks_url)
        else:
            sca = sca or ScaSettings()
            if sca.enabled:
                second_factor = SecondFactor(
                    engine,
                    master_keys or journal.keys,
                    sca,
                    clock=sca_clock,
                    audits=(JournalScaAudit(journal), metrics.sca_attempt),
                )
            server = AuthorizationServer(
                issuer=issuer.issuer,
                audience=issuer.audience,
                clients=clients,
                consents=consents,
                directory=directory,
                state=AuthorizationState(engine),
                replays=replays,
                algorithm=issuer.algorithm,
                sca=second_factor,
            )
            jwks_source = LocalJwksSource(server)
    tenants: dict[str, str] = dict(tenant_of or {})
    tenants.update({client.client_id: client.tenant for client in clients})
    token_settings = TokenSettings(
        issuer=issuer.issuer,
        audience=issuer.audience,
        require_sender_constraint=issuer.require_sender_constraint,
        client_cert_header=issuer.client_cert_header,
    )
    verifier = AccessTokenVerifier(
        token_settings,
        KeySet(jwks_source),
        tenant_of=tenants.get,
        dpop=DpopVerifier(window=token_settings.dpop_window, replays=replays),
    )
    payments = PaymentService(
        core,
        clearing,
        JournalPayments(journal),
        engine=engine,
        posting_reference=posting_reference,
        sagas=sagas,
    )
    signer = (
        MessageSigner(response_signing_key, settings.bank_name, trust_anchor)
        if response_signing_key is not None
        else None
    )
    services = GatewayServices(
        settings=settings,
        verifier=verifier,
        consents=consents,
        directory=directory,
        core=core,
        payments=payments,
        statements=ExtractStatementSource(statement_files) if statement_files else None,
        idempotency=IdempotencyStore(engine),
        limiter=RateLimiter(
            rate=settings.rate_per_second / workers, burst=max(1, settings.burst // workers)
        ),
        signer=signer,
        request_signatures=_request_signatures(clients, trust_anchor),
        authorization_server=server,
        probes=(JournalProbe(journal), *probes),
        dead_letters=dead_letters,
        journal=journal,
        metrics=metrics,
    )
    return BuiltGateway(create_app(services), services, server, payments, second_factor)
