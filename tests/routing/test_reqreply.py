"""Request / reply on both transports."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

from canonical_model.codes import TransactionStatus
from canonical_model.messages import CanonicalMessage, MessageFunction
from routing.reqreply import Requester, approve, responder_handler, timeout_reply
from routing.transport import Transport
from tests.routing.conftest import message, wait_until

TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_a_request_gets_its_reply(transport: Transport) -> None:
    responder = transport.consume("core", responder_handler(approve))
    with Requester(transport) as requester:
        reply = requester.request(message(1), timeout=20, traceparent=TRACE)
    responder.stop()
    assert reply.ids.message_id == "m-1-reply"
    assert reply.function is MessageFunction.RESPONSE
    assert reply.status is not None
    assert reply.status.code is TransactionStatus.ACSC
    assert reply.amount == message(1).amount


def test_concurrent_requests_get_their_own_replies(transport: Transport) -> None:
    def echo_amount(request: CanonicalMessage) -> CanonicalMessage:
        return dataclasses.replace(approve(request), remittance=(request.ids.message_id,))

    responder = transport.consume(
        "core", responder_handler(echo_amount), prefetch=50, batch_size=10
    )
    with Requester(transport) as requester, ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda n: requester.request(message(n), timeout=20), range(40)))
    responder.stop()
    assert [r.remittance for r in replies] == [(f"m-{n}",) for n in range(40)]


def test_no_reply_in_time_gives_the_canonical_timeout_outcome(transport: Transport) -> None:
    with Requester(transport) as requester:
        outcome = requester.request(message(2), timeout=0.2)
        # The request is still in its queue: a responder started now answers too late.
        responder = transport.consume("core", responder_handler(approve))
        wait_until(lambda: requester.late_replies == 1, what="the late reply")
        responder.stop()
    assert outcome == timeout_reply(message(2), 0.2)
    assert outcome.status is not None
    assert (outcome.status.code, outcome.status.reason) == (TransactionStatus.RJCT, "AB05")
    assert outcome.status.additional_info == "no reply within 0.2 s"
    assert outcome.function is MessageFunction.RESPONSE
