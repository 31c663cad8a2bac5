"""The reply to a request: what every answering party (the edge, a connector, a timeout)
builds the same way.

A reply keeps what identifies the exchange and what the sender must see echoed: kind, tenant,
the identifiers (RRN, STAN, correlation key, UETR...), processing code, amounts, card
(token), acceptor and agents, the network management action. It gets its own message id,
the moment it was sent, a status and, for an approval, an approval code. An advice is
answered with an advice response, anything else with a response.

>>> import datetime as dt
>>> from canonical_model.codes import status_from_iso8583
>>> from canonical_model.messages import Identifiers, MessageFunction, MessageKind
>>> request = CanonicalMessage(
...     MessageKind.FINANCIAL, MessageFunction.REQUEST, "bank-a",
...     Identifiers("m-1", end_to_end_id="123456789012", correlation_key="02:T1:000001"),
... )
>>> answer = reply_to(
...     request, status_from_iso8583("51"), message_id="m-2",
...     transmitted_at=dt.datetime(2026, 11, 29, tzinfo=dt.UTC),
... )
>>> answer.function, answer.ids.correlation_key, answer.status.reason
(<MessageFunction.RESPONSE: 'response'>, '02:T1:000001', 'AM04')
>>> reply_to(answer, answer.status, message_id="m-3", transmitted_at=None)
Traceback (most recent call last):
...
ValueError: a response is not answered: response
"""

from __future__ import annotations

import datetime as dt

from canonical_model.codes import Status
from canonical_model.construct import fast_replacer
from canonical_model.messages import (
    AdditionalAmount,
    CanonicalMessage,
    Identifiers,
    MessageFunction,
)

__all__ = ["reply_to"]

# dataclasses.replace, in a third of the time (see canonical_model.construct).
_replace_message = fast_replacer(CanonicalMessage)
_replace_ids = fast_replacer(Identifiers)


def reply_to(
    request: CanonicalMessage,
    status: Status,
    *,
    message_id: str,
    transmitted_at: dt.datetime | None,
    approval_code: str | None = None,
    additional_amounts: tuple[AdditionalAmount, ...] | None = None,
) -> CanonicalMessage:
    """The response (or advice response) to ``request`` with ``status``; with
    ``additional_amounts`` (balances) instead of the request's when given."""
    if request.function.is_response:
        raise ValueError(f"a response is not answered: {request.function.value}")
    function = (
        MessageFunction.ADVICE_RESPONSE
        if request.function is MessageFunction.ADVICE
        else MessageFunction.RESPONSE
    )
    return _replace_message(
        request,
        function=function,
        ids=_replace_ids(request.ids, message_id=message_id),
        repeat=False,
        transmitted_at=transmitted_at,
        status=status,
        approval_code=approval_code,
        remittance=(),
        business_header=None,
        additional_amounts=(
            request.additional_amounts if additional_amounts is None else additional_amounts
        ),
    )
