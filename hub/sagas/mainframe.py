"""Saga steps on the mainframe: holds, releases, debits and credits, each keyed by saga and step.

The records are the core banking interface's ``CB-REQUEST`` / ``CB-REPLY``
(``adapters/fixedwidth/layouts/corebank_request.cpy``, ``corebank_reply.cpy``; EBCDIC
cp037 by default), written with the copybook codec and sent through the hub's connector
(:class:`hub.core.PostingExchange`: TCP or the MQ queue pair, with its breaker):

=============  =========  =================================================================
method         tran code  fields
=============  =========  =================================================================
``hold``       ``HOLD``   ``CB-ACCOUNT-NO``, ``CB-AMOUNT``, ``CB-CURRENCY``
``release``    ``RELS``   ``CB-ORIG-POSTING-REF`` = the hold's reference
``debit``      ``DEBT``   ``CB-ORIG-POSTING-REF`` = the hold it consumes (the debit of an
                          authorised amount; ``mainframe_sim.transactions``, "Holds and
                          debits"), against the currency's clearing account
``credit``     ``CRDT``   the account credited, against the clearing account
=============  =========  =================================================================

``CB-POSTING-REF`` is the step's reference (:func:`hub.sagas.runner.posting_reference`):
the mainframe applies a reference once and answers a repeat with the stored reply, so a
step run again after a crash changes nothing. The result code (ISO 8583 field 39 values,
``mainframe_sim.transactions.RESULT_CODES``) is returned; a request that was not answered
(no connection, a timeout, ``96``) raises :class:`~hub.sagas.runner.StepFailedError`, and
the runner tries it again later with the same reference.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any, Final, NamedTuple

from adapters.fixedwidth.copybook import load_layout
from hub.connector import ConnectorError
from hub.core import PostingExchange
from hub.sagas.runner import StepFailedError

__all__ = ["APPROVED", "MainframePostings", "PostingAnswer"]

_log = logging.getLogger("isobridge.sagas.mainframe")

APPROVED: Final = "00"
_NOT_APPLIED: Final = frozenset({"96"})  # a system error: nothing applied, ask again


class PostingAnswer(NamedTuple):
    """The mainframe's answer: its result code and reason text."""

    code: str
    reason: str

    @property
    def approved(self) -> bool:
        return self.code == APPROVED


class MainframePostings:
    """See the module docstring. ``channel`` fills ``CB-CHANNEL``."""

    def __init__(
        self, exchange: PostingExchange, *, codepage: str = "cp037", channel: str = "SAGA"
    ) -> None:
        self.exchange = exchange
        self.channel = channel
        self._request = load_layout("corebank_request", codepage=codepage).record("CB-REQUEST")
        self._reply = load_layout("corebank_reply", codepage=codepage).record("CB-REPLY")

    async def hold(
        self, reference: str, account: str, amount: Decimal, currency: str, narrative: str = ""
    ) -> PostingAnswer:
        """Place a hold of ``amount`` on ``account``."""
        return await self._send("HOLD", reference, account, amount, currency, narrative=narrative)

    async def release(self, reference: str, hold: str, account: str) -> PostingAnswer:
        """Release the hold ``hold`` (``00`` also when it was released before)."""
        return await self._send("RELS", reference, account, Decimal(0), "", original=hold)

    async def debit(
        self,
        reference: str,
        account: str,
        amount: Decimal,
        currency: str,
        *,
        hold: str | None = None,
        narrative: str = "",
    ) -> PostingAnswer:
        """Debit ``account`` (consuming the hold ``hold``, if named)."""
        return await self._send(
            "DEBT", reference, account, amount, currency, original=hold or "", narrative=narrative
        )

    async def credit(
        self, reference: str, account: str, amount: Decimal, currency: str, narrative: str = ""
    ) -> PostingAnswer:
        """Credit ``account``."""
        return await self._send("CRDT", reference, account, amount, currency, narrative=narrative)

    async def _send(
        self,
        tran: str,
        reference: str,
        account: str,
        amount: Decimal,
        currency: str,
        *,
        original: str = "",
        narrative: str = "",
    ) -> PostingAnswer:
        values: dict[str, Any] = {
            "CB-TRAN-CODE": tran,
            "CB-POSTING-REF": reference,
            "CB-ORIG-POSTING-REF": original,
            "CB-ACCOUNT-NO": account,
            "CB-CONTRA-ACCOUNT": "",
            "CB-AMOUNT": amount,
            "CB-CURRENCY": currency,
            "CB-VALUE-DATE": 0,
            "CB-CHANNEL": self.channel,
            "CB-NARRATIVE": narrative[:35],
        }
        try:
            raw = await self.exchange.request(self._request.encode(values))
        except ConnectorError as exc:
            raise StepFailedError(f"{tran} {reference}: mainframe: {exc}") from None
        reply = self._reply.decode(raw)
        code = str(reply.get("CB-RP-RESULT-CODE", "")).strip()
        reason = str(reply.get("CB-RP-REASON-TEXT", "")).strip()
        if code in _NOT_APPLIED or not code:
            raise StepFailedError(f"{tran} {reference}: mainframe answered {code or 'nothing'}")
        _log.debug("%s %s: %s %s", tran, reference, code, reason)
        return PostingAnswer(code, reason)
