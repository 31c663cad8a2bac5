"""The operations API: liveness, readiness, Prometheus metrics, and the OpenAPI documents.

==============================================  ================  ==========================
endpoint                                        access            what
==============================================  ================  ==========================
``GET /healthz``                                open              the process answers
``GET /readyz``                                 open              every readiness probe ok
                                                                  (broker, database), else 503
``GET /metrics``                                token, ``admin``  Prometheus text format 0.0.4
``GET /open-banking/v4.0/{aisp,pisp}/openapi.json``  open         the OBIE v4.0 document cut
                                                                  to the operations served
``GET /docs/aisp``, ``/docs/pisp`` (``/docs``)  open              Swagger UI on those
``GET /ops/dead-letters/{destination}``         token, ``admin``  parked messages and why
``POST /ops/dead-letters/{destination}/replay``  token, ``admin``  replay them (all, or the
                                                                  body's ``MessageIds``)
``GET /ops/dead-letters``                       token, ``admin``  every destination with its
                                                                  count and first 100 (console)
==============================================  ================  ==========================

Liveness and readiness stay open so that an orchestrator can probe them; they say only
"ok" or which probe failed. Metrics and dead letters need a token with the ``admin`` scope.
Dead letters are those of the hub's transport (``routing.dlq``, as ``isobridge dlq`` shows
them): message id, destination, attempts, when, where from, and the reason with any card
number masked; a replay sends each to its original exchange and routing key.

The OpenAPI documents served are the OBIE files themselves (:mod:`gateway.spec`) with
``paths`` reduced to the operations this gateway implements and ``servers`` set to its
public URL, so a client generator or a conformance tool sees exactly the published shapes.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Sequence
from typing import Any, Final, Protocol

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client import Counter as PromCounter
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from gateway.errors import ObieError
from gateway.http import read_json
from gateway.security.sca import ScaAttempt
from gateway.spec import SpecName, spec
from routing.dlq import DeadLetterFilter, list_dead_letters, replay_dead_letters
from routing.transport import DeadLetter, Transport, UnknownDestinationError
from routing.wire import scrub

__all__ = ["IMPLEMENTED", "Metrics", "ReadinessProbe", "operations_router", "served_document"]

IMPLEMENTED: Final[dict[SpecName, dict[str, tuple[str, ...]]]] = {
    "account-info": {
        "/account-access-consents": ("post",),
        "/account-access-consents/{ConsentId}": ("get", "delete"),
        "/accounts": ("get",),
        "/accounts/{AccountId}": ("get",),
        "/accounts/{AccountId}/balances": ("get",),
        "/accounts/{AccountId}/transactions": ("get",),
    },
    "payment-initiation": {
        "/domestic-payment-consents": ("post",),
        "/domestic-payment-consents/{ConsentId}": ("get",),
        "/domestic-payment-consents/{ConsentId}/funds-confirmation": ("get",),
        "/domestic-payments": ("post",),
        "/domestic-payments/{DomesticPaymentId}": ("get",),
        "/domestic-payments/{DomesticPaymentId}/payment-details": ("get",),
    },
}
"""The OBIE operations served: path template -> methods."""

_SHOWN_PER_DESTINATION: Final = 100

_PREFIX: Final[dict[SpecName, str]] = {"account-info": "aisp", "payment-initiation": "pisp"}


class ReadinessProbe(Protocol):
    """One dependency the gateway needs to serve (the broker, the journal's database)."""

    name: str

    async def ready(self) -> bool: ...


class Metrics:
    """Request counters and latency sums by method, route template and status, and the
    number of consents, in a Prometheus registry: a registry of its own, or the hub's
    (``isobridge run --gateway``), whose every series ``/metrics`` then shows."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = PromCounter(
            "isobridge_gateway_requests",
            "HTTP requests by route and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.seconds = PromCounter(
            "isobridge_gateway_request_seconds",
            "Time spent answering, by route.",
            ("method", "route"),
            registry=self.registry,
        )
        self.started = Gauge(
            "isobridge_gateway_start_time_seconds",
            "When the process started.",
            registry=self.registry,
        )
        self.started_at = time.time()
        self.started.set(self.started_at)
        self.consents = Gauge(
            "isobridge_gateway_consents", "Consents held.", registry=self.registry
        )
        self.sca_attempts = PromCounter(
            "isobridge_gateway_sca_attempts",
            "Second-factor (TOTP) attempts of PSUs authorising consents, by outcome.",
            ("outcome",),
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, int], tuple[PromCounter, PromCounter]] = {}

    def sca_attempt(self, attempt: ScaAttempt) -> None:
        """Count one second-factor attempt (:class:`gateway.security.sca.SecondFactor`)."""
        self.sca_attempts.labels(attempt.outcome.value).inc()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request."""
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:  # a few per route: methods and statuses are few
            children = (
                self.requests.labels(method, route, str(status)),
                self.seconds.labels(method, route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].inc(seconds)

    def totals(self, excluded: tuple[str, ...] = ()) -> tuple[int, float]:
        """(requests, seconds spent answering) so far, over the routes that do not start
        with one of ``excluded``."""
        count = 0.0
        seconds = 0.0
        for family in (*self.requests.collect(), *self.seconds.collect()):
            for sample in family.samples:
                if sample.name.endswith("_total") and not sample.labels["route"].startswith(
                    excluded
                ):
                    if family.name == "isobridge_gateway_requests":
                        count += sample.value
                    else:
                        seconds += sample.value
        return int(count), seconds

    def exposition(self, consents: int) -> bytes:
        """The Prometheus text exposition format (version 0.0.4) of the whole registry."""
        self.consents.set(consents)
        return generate_latest(self.registry)


def served_document(name: SpecName, public_url: str) -> dict[str, Any]:
    """The OBIE document ``name`` cut to :data:`IMPLEMENTED`, served from ``public_url``."""
    document = copy.deepcopy(spec(name).document)
    kept: dict[str, Any] = {}
    for path, methods in IMPLEMENTED[name].items():
        item = document["paths"][path]
        kept[path] = {
            key: value for key, value in item.items() if key in methods or key == "parameters"
        }
    document["paths"] = kept
    document["servers"] = [{"url": f"{public_url}/open-banking/v4.0/{_PREFIX[name]}"}]
    return document


def _summary(dead: DeadLetter) -> dict[str, Any]:
    return {
        "MessageId": dead.message_id,
        "Destination": dead.destination,
        "Attempts": dead.attempts,
        "DeadLetteredAt": dead.dead_lettered_at,
        "OriginalExchange": dead.original_exchange,
        "OriginalRoutingKey": dead.original_routing_key,
        "Reason": scrub(dead.reason),
    }


def _dead_letters(transport: Transport | None, destination: str) -> Transport:
    if transport is None:
        raise ObieError.single(404, "UK.OBIE.Resource.NotFound", "no transport is configured")
    if destination != "unroutable" and destination not in {
        d.name for d in transport.topology.destinations
    }:
        raise ObieError.single(
            404, "UK.OBIE.Resource.NotFound", "no such destination", "destination"
        )
    return transport


def operations_router(
    probes: Sequence[ReadinessProbe], metrics: Metrics, transport: Transport | None = None
) -> APIRouter:
    """The operations endpoints (module docstring)."""
    from gateway.app import authorized, services_of

    router = APIRouter()

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> Response:
        failed = []
        for probe in probes:
            try:
                ok = await probe.ready()
            except Exception:
                ok = False
            if not ok:
                failed.append(probe.name)
        if failed:
            return JSONResponse({"status": "unavailable", "failed": failed}, status_code=503)
        return JSONResponse({"status": "ok", "checked": [probe.name for probe in probes]})

    @router.get("/metrics")
    async def prometheus(request: Request) -> Response:
        await authorized(request, "admin")
        consents = services_of(request).consents.count()
        text = await asyncio.to_thread(metrics.exposition, consents)  # may ask the broker
        return Response(text, media_type=CONTENT_TYPE_PLAIN_0_0_4)

    for name, prefix in _PREFIX.items():

        def document_route(name: SpecName = name) -> Any:
            async def served(request: Request) -> dict[str, Any]:
                return served_document(name, services_of(request).settings.public_url)

            return served

        router.add_api_route(
            f"/open-banking/v4.0/{prefix}/openapi.json", document_route(), methods=["GET"]
        )

        def docs_route(prefix: str = prefix) -> Any:
            async def page() -> HTMLResponse:
                return get_swagger_ui_html(
                    openapi_url=f"/open-banking/v4.0/{prefix}/openapi.json",
                    title=f"isobridge open banking ({prefix})",
                )

            return page

        router.add_api_route(f"/docs/{prefix}", docs_route(), methods=["GET"])

    @router.get("/docs")
    async def docs() -> Response:
        return RedirectResponse("/docs/pisp")

    @router.get("/ops/dead-letters/{destination}")
    async def dead_letters(destination: str, request: Request) -> dict[str, Any]:
        await authorized(request, "admin")
        source = _dead_letters(transport, destination)
        try:
            found = await asyncio.to_thread(list_dead_letters, source, destination, None, 1000)
        except UnknownDestinationError:
            raise ObieError.single(
                404, "UK.OBIE.Resource.NotFound", "no such destination"
            ) from None
        return {"Data": {"DeadLetter": [_summary(dead) for dead in found]}}

    @router.get("/ops/dead-letters")
    async def every_dead_letter(request: Request) -> dict[str, Any]:
        await authorized(request, "admin")
        if transport is None:
            return {"Data": {"Destination": []}}
        names = [d.name for d in transport.topology.destinations] + ["unroutable"]
        shown = []
        for name in names:
            try:
                found = await asyncio.to_thread(list_dead_letters, transport, name)
            except UnknownDestinationError:
                continue
            shown.append(
                {
                    "Name": name,
                    "Count": len(found),
                    "DeadLetter": [_summary(dead) for dead in found[:_SHOWN_PER_DESTINATION]],
                }
            )
        return {"Data": {"Destination": shown}}

    @router.post("/ops/dead-letters/{destination}/replay")
    async def replay(destination: str, request: Request) -> dict[str, Any]:
        await authorized(request, "admin")
        source = _dead_letters(transport, destination)
        _, body = await read_json(request)
        ids = body.get("MessageIds", [])
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ObieError.single(
                400, "UK.OBIE.Field.Invalid", "MessageIds is a list of strings", "MessageIds"
            )
        select = DeadLetterFilter(message_ids=frozenset(ids))
        done = await asyncio.to_thread(replay_dead_letters, source, destination, select)
        return {"Data": {"Replayed": [dead.message_id for dead in done]}}

    return router
