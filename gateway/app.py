"""The open-banking gateway's FastAPI application, built from its wired services.

:func:`create_app` takes a :class:`GatewayServices` (built by the composition root,
``hub.gateway``) and serves, under ``/open-banking/v4.0`` (OBIE v4.0 base paths):

- ``/aisp``: account-access-consents, accounts, balances, transactions
  (:mod:`gateway.aisp`);
- ``/pisp``: domestic-payment-consents, funds-confirmation, domestic-payments,
  payment-details (:mod:`gateway.pisp`);
- with a built-in authorization server, its ``/oauth2/...`` endpoints
  (:mod:`gateway.security.authserver`);
- the operations API: ``/healthz``, ``/readyz``, ``/metrics``, the OpenAPI documents and
  ``/docs`` (:mod:`gateway.operations`);
- the operations console at ``/console``, with ``/ops/summary`` and ``/ops/trace``
  (:mod:`gateway.console`).

Every request passes :class:`gateway.http.GatewayMiddleware` (interaction id, size limit,
the 500 body), outermost; every error is an ``OBErrorResponse1``. The plain routes (the
AISP resources: a ``Request`` in, a ``Response`` out) are served from there directly
(:class:`_DirectRoutes`); the others, FastAPI's, pass its middleware and router as usual.
:func:`authorized` is the one dependency every resource endpoint calls: token, scope,
sender constraint, then the client's rate limit.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, cast

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.consents import ConsentStore
from gateway.console import SummarySource, console_router, live_summary
from gateway.errors import ObieError
from gateway.http import (
    GatewayMiddleware,
    error_response,
    install_error_handlers,
    interaction_id,
    request_path,
    unexpected_error,
)
from gateway.idempotency import IdempotencyStore
from gateway.limits import RateLimiter
from gateway.operations import Metrics, ReadinessProbe, operations_router
from gateway.payments import PaymentService
from gateway.ports import AccountDirectory, CoreBankingPort, StatementSource
from gateway.security.authserver import AuthorizationServer, authorization_router
from gateway.security.tokens import AccessClaims, AccessTokenVerifier, RequestFacts
from gateway.signatures import MessageSigner, SignatureCheck
from journal import Journal
from routing.transport import Transport

__all__ = [
    "BASE_PATH",
    "GatewayServices",
    "GatewaySettings",
    "authorized",
    "create_app",
    "services_of",
]

BASE_PATH: Final = "/open-banking/v4.0"


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Limits and the public address the gateway is reached at (DPoP ``htu`` and ``Links``
    are built from it)."""

    public_url: str = "http://127.0.0.1:8080"
    max_body_bytes: int = 64 * 1024
    rate_per_second: float = 50.0
    burst: int = 100
    require_request_signatures: bool = False
    bank_name: str = "isobridge"


@dataclass(frozen=True, slots=True)
class GatewayServices:
    """Everything the endpoints use, wired by the composition root."""

    settings: GatewaySettings
    verifier: AccessTokenVerifier
    consents: ConsentStore
    directory: AccountDirectory
    core: CoreBankingPort
    payments: PaymentService
    statements: StatementSource | None
    idempotency: IdempotencyStore
    limiter: RateLimiter
    signer: MessageSigner | None = None
    request_signatures: dict[str, SignatureCheck] | None = None
    authorization_server: AuthorizationServer | None = None
    probes: tuple[ReadinessProbe, ...] = ()
    metrics: Metrics = field(default_factory=Metrics)
    dead_letters: Transport | None = None
    journal: Journal | None = None
    console_summary: SummarySource | None = None
    """The figures of ``/ops/summary``; ``None``: :func:`gateway.console.live_summary`."""


def services_of(request: Request) -> GatewayServices:
    """The services of the application serving ``request``."""
    return cast(GatewayServices, request.app.state.services)


async def authorized(request: Request, *scopes: str) -> AccessClaims:
    """Verify the request's access token for ``scopes`` and take one from the client's
    rate budget: the claims, or :class:`ObieError` (401, 403, 429)."""
    services = services_of(request)
    settings = services.settings
    verifier = services.verifier
    url = f"{settings.public_url}{request_path(request)}"
    certificate_header = verifier.settings.client_cert_header.lower().encode("latin-1")
    authorization = dpop = certificate = None
    for name, value in request.scope["headers"]:  # the first of each, as request.headers.get
        if name == b"authorization" and authorization is None:
            authorization = value.decode("latin-1")
        if name == b"dpop" and dpop is None:
            dpop = value.decode("latin-1")
        if name == certificate_header and certificate is None:
            certificate = value.decode("latin-1")
    facts = RequestFacts(
        method=request.scope["method"],
        url=url,
        authorization=authorization,
        dpop=dpop,
        client_certificate=certificate,
    )
    claims = await verifier.verify(facts, scopes=scopes)
    wait = services.limiter.take(claims.client_id)
    if wait is not None:
        raise ObieError.single(
            429,
            "UK.OBIE.Rules.RateLimited",
            f"too many requests; retry after {wait} s",
            headers={"Retry-After": str(wait)},
        )
    return claims


class _NamedRoute(Route):
    """A plain route that puts itself in the scope (``scope["route"]``) as FastAPI's
    routes do, so the metrics label its requests by its path template."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


Endpoint = Callable[[Request], Awaitable[Response]]


class _DirectRoutes:
    """The plain routes, matched and called by :class:`gateway.http.GatewayMiddleware`
    itself: FastAPI's outer middleware (server errors, its telemetry, body limit), its
    exception middleware and the router's walk over every route cost about as much again
    as the endpoint's own plumbing. An :class:`~gateway.errors.ObieError` becomes its
    error body here as the application's handler would make it; anything else escapes to
    the middleware (the 500 body). A request these routes do not take fully (another
    method: 405) goes the usual way."""

    def __init__(self, app: FastAPI, routes: list[_NamedRoute]) -> None:
        self.app = app
        self.routes = [(route, cast(Endpoint, route.endpoint)) for route in routes]

    def __call__(self, scope: Scope) -> ASGIApp | None:
        path = None if scope.get("root_path") else scope["path"]
        method = scope["method"]
        for route, endpoint in self.routes:
            if path is not None:
                found = route.path_regex.match(path)
                if found is None:
                    continue  # what route.matches would find first, for a tenth of its time
                if route.methods is not None and method in route.methods:
                    # route.matches' FULL match, from the one regex match above
                    convertors = route.param_convertors
                    path_params = dict(scope.get("path_params", {}))
                    for name, value in found.groupdict().items():
                        path_params[name] = convertors[name].convert(value)
                    scope["endpoint"] = endpoint
                    scope["path_params"] = path_params
                    scope["route"] = route
                    scope["app"] = self.app
                    return functools.partial(self._serve, endpoint)
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope.update(child_scope)
                scope["app"] = self.app
                return functools.partial(self._serve, endpoint)
        return None

    async def _serve(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except ObieError as exc:
            response = error_response(exc, interaction_id(request))
        await response(scope, receive, send)


class _GatewayApplication(FastAPI):
    """FastAPI with :class:`gateway.http.GatewayMiddleware` outermost, in front of all of
    FastAPI's own layers (module docstring)."""

    front: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.front is not None:
            scope["app"] = self
            await self.front(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def _include_flat(app: FastAPI, router: APIRouter, prefix: str = "") -> None:
    """Add ``router``'s endpoints to ``app`` itself, under ``prefix``: one flat route list,
    matched once per request (FastAPI's ``include_router`` keeps a nested router that is
    matched twice). Plain Starlette routes (the open-banking resources: string path
    parameters, a ``Response`` always) stay plain: no FastAPI parameter machinery."""
    for route in router.routes:
        if isinstance(route, APIRoute):
            app.add_api_route(
                prefix + route.path,
                route.endpoint,
                methods=sorted(route.methods or ()),
                status_code=route.status_code,
                name=route.name,
                include_in_schema=route.include_in_schema,
            )
        elif isinstance(route, Route):
            app.router.routes.append(
                _NamedRoute(
                    prefix + route.path,
                    route.endpoint,
                    methods=sorted(route.methods or ()),
                    name=route.name,
                )
            )
        else:
            raise TypeError(f"neither an API route nor a route: {route!r}")


def create_app(services: GatewayServices) -> FastAPI:
    """The application (module docstring)."""
    from gateway.aisp import aisp_router
    from gateway.pisp import pisp_router

    app = _GatewayApplication(
        title="isobridge open-banking gateway",
        version="4.0",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.services = services
    install_error_handlers(app)
    _include_flat(app, aisp_router(), f"{BASE_PATH}/aisp")
    direct = _DirectRoutes(app, [r for r in app.router.routes if isinstance(r, _NamedRoute)])
    _include_flat(app, pisp_router(), f"{BASE_PATH}/pisp")
    server = services.authorization_server
    if server is not None:
        _include_flat(
            app,
            authorization_router(
                server, client_cert_header=services.verifier.settings.client_cert_header
            ),
        )

    _include_flat(app, operations_router(services.probes, services.metrics, services.dead_letters))
    summary = services.console_summary or live_summary(services.metrics, services.journal)
    _include_flat(app, console_router(summary, services.journal))

    # FastAPI's server-error layer answers first for its routes: with the 500 body too
    app.add_exception_handler(Exception, unexpected_error)
    app.front = GatewayMiddleware(
        functools.partial(FastAPI.__call__, app),
        max_body_bytes=services.settings.max_body_bytes,
        observe=services.metrics.observe,
        direct=direct,
    )
    return app
