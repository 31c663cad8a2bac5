"""The operations console: one static page served by the gateway, and the JSON it reads.

==============================  ================  =========================================
endpoint                        access            what
==============================  ================  =========================================
``GET /console``                open              the page (no data in it)
``GET /console/console.js``     open              its script
``GET /console/console.css``    open              its style sheet
``GET /ops/summary``            token, ``admin``  live throughput and latency (below)
``GET /ops/trace?id=ID``        token, ``admin``  ``isobridge trace ID`` as JSON; 404
                                                  ``no transaction with id ...``
==============================  ================  =========================================

The page itself (``gateway/console_assets/``: HTML, vanilla JS, CSS, no build step) holds
no data: it asks for an admin access token, keeps it in ``sessionStorage`` and sends it as
``Authorization: Bearer`` to the operations API, which authorises it as it does every
other caller (:func:`gateway.app.authorized`: issuer, audience, ``admin`` scope, and the
sender constraint: an mTLS-bound token is checked against the client certificate that the
TLS terminator forwards, so the operator's browser presents that certificate). DPoP-bound
tokens need a proof per request signed by a key the page does not hold: not supported.
Every response of the page carries a strict Content-Security-Policy (scripts and styles
from the gateway only, no inline script, no framing); the script writes every value with
``textContent``, never as markup.

The live figures come from one function, :func:`live_summary`, which reads the gateway's
request counters (:class:`gateway.operations.Metrics`) and the journal
(:class:`journal.activity.JournalActivity`: events per second, and the latency from a
transaction's ``received`` event to the event of its answer). Another source of
figures (Prometheus) replaces that one function: :func:`console_router` takes any
:data:`SummarySource` (``GatewayServices.console_summary``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import deque
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.errors import ObieError
from gateway.operations import Metrics
from journal import Journal, Sealed, TransactionTrace
from journal.activity import WINDOW_SECONDS, JournalActivity
from journal.events import format_time
from routing.wire import scrub

__all__ = [
    "CONSOLE_CSP",
    "SummarySource",
    "console_router",
    "live_summary",
    "trace_document",
]

CONSOLE_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""The Content-Security-Policy of the console's responses: nothing inline, nothing foreign."""

SummarySource = Callable[[], Awaitable[dict[str, Any]]]
"""What ``GET /ops/summary`` serves (as its ``Data``): see :func:`live_summary`."""

# the console's own polling is not traffic
_NOT_TRAFFIC: Final = ("/ops", "/console", "/healthz", "/readyz", "/metrics", "/docs")


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


class _RequestRate:
    """The gateway's API requests per second between samples (its counters are totals)."""

    def __init__(self, metrics: Metrics, window: int = WINDOW_SECONDS) -> None:
        self.metrics = metrics
        self._samples: deque[tuple[float, int, float]] = deque(maxlen=window + 1)

    def sample(self, now: float) -> dict[str, Any]:
        count, seconds = self.metrics.totals(_NOT_TRAFFIC)
        if not self._samples:
            self._samples.append((self.metrics.started_at, 0, 0.0))
        self._samples.append((now, count, seconds))
        pairs = list(zip(list(self._samples)[:-1], list(self._samples)[1:], strict=True))
        rates = [(b[1] - a[1]) / max(b[0] - a[0], 1e-3) for a, b in pairs]
        first, last = self._samples[-2], self._samples[-1]
        answered = last[1] - first[1]
        return {
            "Requests": count,
            "RequestsPerSecond": round(rates[-1], 2),
            "MeanLatencyMs": _rounded((last[2] - first[2]) / answered * 1000) if answered else None,
            "Series": {"RequestsPerSecond": [round(rate, 2) for rate in rates]},
        }


def live_summary(metrics: Metrics, journal: Journal | None) -> SummarySource:
    """The console's figures from the gateway's counters and the journal (module docstring):
    ``{"At", "WindowSeconds", "Gateway": {...}, "Journal": {...} or None}``."""
    requests = _RequestRate(metrics)
    activity = JournalActivity(journal) if journal is not None else None

    async def summary() -> dict[str, Any]:
        now = time.time()
        figures = await asyncio.to_thread(activity.sample, now) if activity else None
        return {
            "At": format_time(dt.datetime.fromtimestamp(now, dt.UTC)),
            "WindowSeconds": WINDOW_SECONDS,
            "Gateway": requests.sample(now),
            "Journal": figures,
        }

    return summary


def _milliseconds(delta: dt.timedelta) -> float:
    return round(delta.total_seconds() * 1000, 1)


def trace_document(identifier: str, traces: list[TransactionTrace]) -> dict[str, Any]:
    """``isobridge trace`` (:mod:`journal.trace`) as JSON: per transaction, its read-model
    row and its events with times. Personal parts are given by field names only."""
    found = []
    for item in traces:
        view = item.view
        first = item.events[0] if item.events else None
        events = []
        previous = first
        for event in item.events:
            if first is None or previous is None:
                raise RuntimeError(
                    "internal error: expected first is not None and previous is not None"
                )
            personal: str | None = None
            if isinstance(event.personal, Sealed):
                personal = event.personal.value
            elif event.personal is not None:
                personal = ", ".join(sorted(event.personal))
            events.append(
                {
                    "Seq": event.seq,
                    "At": format_time(event.at),
                    "Kind": event.kind.value,
                    "SinceFirstMs": _milliseconds(event.at - first.at),
                    "StepMs": _milliseconds(event.at - previous.at),
                    "Body": dict(event.body),
                    "PersonalFields": personal,
                }
            )
            previous = event
        ids = first.ids if first is not None else None
        found.append(
            {
                "TransactionId": view.transaction_id
                if view
                else (ids.transaction_id if ids else ""),
                "InReadModel": view is not None,
                "Tenant": view.tenant if view else (first.tenant if first else None),
                "Status": view.status if view else None,
                "ReasonCode": view.reason_code if view else None,
                "Amount": view.amount if view else None,
                "Currency": view.currency if view else None,
                "Destination": view.destination if view else None,
                "Attempts": view.attempts if view else None,
                "EndToEndId": view.end_to_end_id if view else None,
                "Stan": view.stan if view else None,
                "TerminalId": view.terminal_id if view else None,
                "Uetr": view.uetr if view else None,
                "DurationMs": _milliseconds(item.duration),
                "Event": events,
            }
        )
    return {"Id": identifier, "Transaction": found}


_ASSETS: Final = {
    "": ("index.html", "text/html; charset=utf-8"),
    "/console.js": ("console.js", "text/javascript; charset=utf-8"),
    "/console.css": ("console.css", "text/css; charset=utf-8"),
}


def _asset(name: str) -> bytes:
    return resources.files("gateway").joinpath("console_assets", name).read_bytes()


def console_router(summary: SummarySource, journal: Journal | None) -> APIRouter:
    """The page, ``/ops/summary`` and ``/ops/trace`` (module docstring)."""
    from gateway.app import authorized

    router = APIRouter()
    headers = {
        "Content-Security-Policy": CONSOLE_CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-store",
    }
    for suffix, (name, media_type) in _ASSETS.items():
        content = _asset(name)

        def asset_route(content: bytes = content, media_type: str = media_type) -> Any:
            async def served() -> Response:
                return Response(content, media_type=media_type, headers=headers)

            return served

        router.add_api_route(f"/console{suffix}", asset_route(), methods=["GET"])

    @router.get("/ops/summary")
    async def ops_summary(request: Request) -> dict[str, Any]:
        await authorized(request, "admin")
        return {"Data": await summary()}

    @router.get("/ops/trace")
    async def ops_trace(request: Request, id: str = "") -> dict[str, Any]:
        await authorized(request, "admin")
        identifier = id.strip()
        if not identifier:
            raise ObieError.single(
                400, "UK.OBIE.Field.Missing", "give the id to trace (?id=...)", "id"
            )
        if journal is None:
            raise ObieError.single(404, "UK.OBIE.Resource.NotFound", "no journal is configured")
        traces = await asyncio.to_thread(journal.trace, identifier)
        if not traces:
            raise ObieError.single(
                404,
                "UK.OBIE.Resource.NotFound",
                f"no transaction with id {scrub(identifier[:70])!r} in the journal",
                "id",
            )
        return {"Data": trace_document(identifier, traces)}

    return router
