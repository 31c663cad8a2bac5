"""Transaction processing: a decoded CB-REQUEST in, a CB-REPLY out, applied to the ledger.

:func:`apply_request` takes the request as the copybook codec decodes it (a mapping of
elementary field names to values: ``CB-AMOUNT`` a ``Decimal``, ``CB-VALUE-DATE`` an ``int``,
text right-trimmed) and returns a :class:`Reply`. :func:`process_batch` runs many requests in
one database transaction (group commit) and is what the servers call.

Tran codes
    ``BALQ`` balance enquiry (read only, never stored). ``DEBT`` debits the account, ``CRDT``
    credits it; the other leg is the currency's clearing account (:func:`ledger.clearing_account`).
    ``XFER`` debits ``CB-ACCOUNT-NO`` and credits ``CB-CONTRA-ACCOUNT`` (same currency).
    ``REVS`` reverses the posting ``CB-ORIG-POSTING-REF``: every leg negated (a reversal of a
    reversal is refused; a posting already reversed by another reference is answered ``00``
    with the reason "already reversed by ..." and not reversed twice; ``CB-AMOUNT`` is zero
    or the original amount: no partial reversals). A reversal of a posting that does not
    exist is answered ``25`` and leaves a tombstone: when that posting arrives later (the
    hub reversed a request whose answer it lost, before the request itself got through), it
    is answered ``12`` "reversed before it arrived" and not applied. ``HOLD`` reserves an
    amount: it lowers the available balance, not the ledger balance. ``RELS`` releases the hold
    ``CB-ORIG-POSTING-REF``.

Holds and debits
    A ``DEBT`` whose ``CB-ORIG-POSTING-REF`` names an active hold on the same account consumes
    it (authorization then completion): the hold's amount counts as available for that debit,
    the hold ends as ``consumed`` and the debit may be more or less than the hold. A named
    hold that does not exist is answered ``25``; one already released or consumed ``12``.
    Reversing that debit does not bring the hold back.

Funds
    A debit (DEBT, XFER, HOLD, or a reversal that debits a customer) needs available balance +
    overdraft limit >= amount, else ``51``. Clearing (GL) accounts have no limit.

Idempotency
    ``CB-POSTING-REF`` is the key. The reply to every state-changing request (all tran codes
    but BALQ) is stored with a digest of the request, whatever its result code, except ``30``
    and ``96`` (nothing was applied and a corrected or later retry must be able to go
    through). A repeat with the same reference and the same content gets the stored reply,
    byte for byte (``CB-RP-POSTED-AT`` included); a reference reused for a different
    request is answered ``12`` and applies nothing.

Result codes (ISO 8583 field 39)
    ``00`` approved, ``12`` invalid transaction (unknown tran code, XFER to itself, reference
    reused, hold not active, reversal of a reversal, account not the original's), ``13``
    invalid amount (zero, negative, a currency other than the account's, a partial
    reversal), ``14`` unknown account (or a clearing account named by a request), ``25``
    original posting or hold not found, ``30`` format error (field and offset named in
    ``CB-RP-REASON-TEXT``), ``51`` insufficient funds, ``62`` account closed, ``96`` system
    error.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from mainframe_sim.ledger import Account, Book, Ledger, clearing_account, timestamp

__all__ = [
    "REQUEST_FIELD_OFFSETS",
    "RESULT_CODES",
    "REVERSED_BEFORE_POSTING",
    "TRAN_CODES",
    "Reply",
    "apply_request",
    "format_error",
    "process_batch",
    "request_digest",
]

_log = logging.getLogger(__name__)

TRAN_CODES: Final = ("BALQ", "DEBT", "CRDT", "XFER", "REVS", "HOLD", "RELS")

REVERSED_BEFORE_POSTING: Final = "reversed-before-posting"
"""The stored "digest" of a posting reference reversed before its posting arrived."""
_REVERSED_EARLY: Final = "reversed before it arrived"
"""The tran codes of CB-REQUEST."""

RESULT_CODES: Final[Mapping[str, str]] = {
    "00": "approved",
    "12": "invalid transaction",
    "13": "invalid amount",
    "14": "unknown account",
    "25": "original not found",
    "30": "format error",
    "51": "insufficient funds",
    "62": "account closed",
    "96": "system error",
}
"""CB-RP-RESULT-CODE values (ISO 8583 field 39) and what they mean here."""

REQUEST_FIELD_OFFSETS: Final[Mapping[str, int]] = {
    "CB-TRAN-CODE": 0,
    "CB-POSTING-REF": 4,
    "CB-ORIG-POSTING-REF": 28,
    "CB-ACCOUNT-NO": 52,
    "CB-CONTRA-ACCOUNT": 86,
    "CB-AMOUNT": 120,
    "CB-CURRENCY": 128,
    "CB-VALUE-DATE": 131,
    "CB-CHANNEL": 139,
    "CB-NARRATIVE": 143,
}
"""Byte offset of each CB-REQUEST field (corebank_request.cpy), named in format errors."""

REASON_LENGTH: Final = 40
SINGLE_ATTEMPTS: Final = 3
MINOR_UNITS: Final = Decimal(100)
_CENT: Final = Decimal("0.01")
_SORTED_JSON: Final = json.JSONEncoder(sort_keys=True)
"""``json.dumps(..., sort_keys=True)`` without building an encoder per call."""


def _sorted_json_function() -> Callable[[Any], str]:
    """``_SORTED_JSON.encode``, the same text, calling the C encoder directly when there is
    one (what ``encode`` does, without its Python frames and an encoder object per call)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _SORTED_JSON.encode
    encoder = make(
        None, _SORTED_JSON.default, json.encoder.encode_basestring_ascii, None,
        _SORTED_JSON.key_separator, _SORTED_JSON.item_separator, True, False, True,
    )  # fmt: skip
    return lambda value: "".join(encoder(value, 0))


_sorted_json: Final = _sorted_json_function()


@dataclass(frozen=True, slots=True)
class Reply:
    """A CB-REPLY; balances in minor units, ``posted_at`` as YYYYMMDDHHMMSS (UTC) or ''.

    >>> Reply("BALQ", "R1", "00", ledger_balance=1050).fields()["CB-RP-LEDGER-BALANCE"]
    Decimal('10.50')
    """

    tran_code: str
    posting_ref: str
    result_code: str
    account_no: str = ""
    ledger_balance: int = 0
    available_balance: int = 0
    currency: str = ""
    posted_at: str = ""
    reason_text: str = ""

    def fields(self) -> dict[str, Any]:
        """The reply as CB-REPLY field values, ready for the copybook codec."""
        return {
            "CB-RP-TRAN-CODE": self.tran_code[:4],
            "CB-RP-POSTING-REF": self.posting_ref[:24],
            "CB-RP-RESULT-CODE": self.result_code,
            "CB-RP-ACCOUNT-NO": self.account_no[:34],
            "CB-RP-LEDGER-BALANCE": Decimal(self.ledger_balance).scaleb(-2),
            "CB-RP-AVAILABLE-BALANCE": Decimal(self.available_balance).scaleb(-2),
            "CB-RP-CURRENCY": self.currency[:3],
            "CB-RP-POSTED-AT": int(self.posted_at or 0),
            "CB-RP-REASON-TEXT": self.reason_text[:REASON_LENGTH],
        }

    def to_json(self) -> str:
        """The stored form (mf_replies)."""
        return _sorted_json({name: getattr(self, name) for name in self.__slots__})

    @classmethod
    def from_json(cls, text: str) -> Reply:
        """Read back :meth:`to_json`."""
        return cls(**json.loads(text))


def format_error(tran_code: str, posting_ref: str, field: str, problem: str) -> Reply:
    """A ``30`` reply whose reason names ``field``, its offset and the ``problem``.

    >>> format_error("DEBT", "R1", "CB-AMOUNT", "not packed decimal").reason_text
    'CB-AMOUNT @120: not packed decimal'
    """
    offset = REQUEST_FIELD_OFFSETS.get(field)
    where = field if offset is None else f"{field} @{offset}"
    return Reply(tran_code, posting_ref, "30", reason_text=f"{where}: {problem}"[:REASON_LENGTH])


def request_digest(request: Mapping[str, Any]) -> str:
    """SHA-256 over the request's fields (names sorted), to tell a repeat from a reuse."""
    canonical = _sorted_json({k: str(v) for k, v in request.items()})
    return hashlib.sha256(canonical.encode()).hexdigest()


class _RefusedError(Exception):
    """Ends a handler with a reply that applies nothing."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.result_code)
        self.reply = reply


@dataclass(frozen=True, slots=True)
class _Request:
    tran_code: str
    posting_ref: str
    orig_ref: str
    account_no: str
    contra_account: str
    amount: Decimal
    currency: str
    value_date: int
    narrative: str

    def refuse(self, code: str, reason: str, account: Account | None = None) -> _RefusedError:
        return _RefusedError(self.reply(code, reason, account))

    def reply(
        self, code: str, reason: str = "", account: Account | None = None, posted_at: str = ""
    ) -> Reply:
        if account is None:
            return Reply(self.tran_code, self.posting_ref, code, self.account_no,
                         posted_at=posted_at, reason_text=reason[:REASON_LENGTH])  # fmt: skip
        return Reply(
            self.tran_code, self.posting_ref, code, account.number, account.ledger_balance,
            account.available, account.currency, posted_at, reason[:REASON_LENGTH],
        )  # fmt: skip

    def format_error(self, field: str, problem: str) -> _RefusedError:
        return _RefusedError(format_error(self.tran_code, self.posting_ref, field, problem))


def _text(request: Mapping[str, Any], field: str) -> str:
    value = request.get(field, "")
    return value.strip() if isinstance(value, str) else str(value)


def _parse(request: Mapping[str, Any]) -> _Request:
    tran, ref = _text(request, "CB-TRAN-CODE"), _text(request, "CB-POSTING-REF")
    value_date = request.get("CB-VALUE-DATE", 0)
    try:
        amount = Decimal(request.get("CB-AMOUNT", 0))
    except (InvalidOperation, TypeError, ValueError):
        raise _RefusedError(format_error(tran, ref, "CB-AMOUNT", "not a number")) from None
    if not amount.is_finite() or amount != amount.quantize(_CENT):
        raise _RefusedError(format_error(tran, ref, "CB-AMOUNT", "more than two decimals"))
    if not isinstance(value_date, int):
        raise _RefusedError(format_error(tran, ref, "CB-VALUE-DATE", "not a number"))
    if value_date and not _is_date(value_date):
        problem = f"{value_date} is no date"
        raise _RefusedError(format_error(tran, ref, "CB-VALUE-DATE", problem))
    return _Request(
        tran, ref, _text(request, "CB-ORIG-POSTING-REF"), _text(request, "CB-ACCOUNT-NO"),
        _text(request, "CB-CONTRA-ACCOUNT"), amount, _text(request, "CB-CURRENCY"), value_date,
        _text(request, "CB-NARRATIVE"),
    )  # fmt: skip


@functools.lru_cache(maxsize=64)
def _is_date(value: int) -> bool:
    """Whether YYYYMMDD ``value`` is a calendar date (the few value dates of a day, cached)."""
    try:
        dt.datetime.strptime(f"{value:08d}", "%Y%m%d")
    except ValueError:
        return False
    return True


def _minor(request: _Request) -> int:
    """The request's amount in minor units; ``13`` unless positive."""
    if request.amount <= 0:
        raise request.refuse("13", "amount must be positive")
    return int(request.amount * MINOR_UNITS)


def _customer(book: Book, request: _Request, number: str, field: str) -> Account:
    if not number:
        raise request.format_error(field, "is blank")
    account = book.account(number, lock=True)
    if account is None or account.kind != "customer":
        raise request.refuse("14", f"unknown account {number}")
    if account.status != "open":
        raise request.refuse("62", f"account {number} is closed", account)
    return account


def _currency(request: _Request, account: Account) -> None:
    if not request.currency:
        raise request.format_error("CB-CURRENCY", "is blank")
    if request.currency != account.currency:
        raise request.refuse(
            "13", f"currency {request.currency} is not the account's {account.currency}", account
        )


def _funds(request: _Request, account: Account, amount: int, extra: int = 0) -> None:
    if account.kind == "customer" and account.available + extra + account.overdraft_limit < amount:
        raise request.refuse("51", "insufficient funds", account)


def _post(book: Book, request: _Request, legs: list[tuple[str, int]], now: dt.datetime,
          reverses: str | None = None) -> None:  # fmt: skip
    book.add_posting(
        request.posting_ref, request.tran_code, legs, booked_at=now,
        value_date=request.value_date, narrative=request.narrative[:35], reverses=reverses,
    )  # fmt: skip


def _approved(book: Book, request: _Request, number: str, now: dt.datetime,
              reason: str = "") -> Reply:  # fmt: skip
    return request.reply("00", reason, book.account(number), timestamp(now))


def _approved_after(request: _Request, account: Account, now: dt.datetime, *, booked: int,
                    released: int = 0) -> Reply:  # fmt: skip
    """The approval showing ``account`` (its row as locked before the posting) after
    ``booked`` minor units were posted to it and ``released`` of its holds ended: what
    reading the row again would give, since the row lock keeps every other writer out."""
    after = account._replace(
        ledger_balance=account.ledger_balance + booked, held=account.held - released
    )
    return request.reply("00", "", after, timestamp(now))


def _balance_enquiry(book: Book, request: _Request, now: dt.datetime) -> Reply:
    account = _customer(book, request, request.account_no, "CB-ACCOUNT-NO")
    return request.reply("00", "", account, timestamp(now))


def _debit(book: Book, request: _Request, now: dt.datetime) -> Reply:
    account = _customer(book, request, request.account_no, "CB-ACCOUNT-NO")
    _currency(request, account)
    amount = _minor(request)
    held = 0
    if request.orig_ref:
        hold = book.hold(request.orig_ref)
        if hold is None or hold.account != account.number:
            raise request.refuse("25", f"no hold {request.orig_ref} on the account", account)
        if hold.status != "active":
            raise request.refuse("12", f"hold {request.orig_ref} is {hold.status}", account)
        held = hold.amount
    _funds(request, account, amount, extra=held)
    if request.orig_ref:
        book.end_hold(request.orig_ref, "consumed", request.posting_ref)
    _post(book, request, [(account.number, -amount), (clearing_account(account.currency), amount)],
          now)  # fmt: skip
    return _approved_after(request, account, now, booked=-amount, released=held)


def _credit(book: Book, request: _Request, now: dt.datetime) -> Reply:
    account = _customer(book, request, request.account_no, "CB-ACCOUNT-NO")
    _currency(request, account)
    amount = _minor(request)
    _post(book, request, [(account.number, amount), (clearing_account(account.currency), -amount)],
          now)  # fmt: skip
    return _approved_after(request, account, now, booked=amount)


def _transfer(book: Book, request: _Request, now: dt.datetime) -> Reply:
    debited = _customer(book, request, request.account_no, "CB-ACCOUNT-NO")
    credited = _customer(book, request, request.contra_account, "CB-CONTRA-ACCOUNT")
    if debited.number == credited.number:
        raise request.refuse("12", "transfer to the same account", debited)
    _currency(request, debited)
    if credited.currency != debited.currency:
        raise request.refuse("13", f"contra account is in {credited.currency}", debited)
    amount = _minor(request)
    _funds(request, debited, amount)
    _post(book, request, [(debited.number, -amount), (credited.number, amount)], now)
    return _approved_after(request, debited, now, booked=-amount)


def _reversal(book: Book, request: _Request, now: dt.datetime) -> Reply:
    if not request.orig_ref:
        raise request.format_error("CB-ORIG-POSTING-REF", "is blank")
    original = book.posting(request.orig_ref)
    if original is None:
        if book.stored_reply(request.orig_ref) is None:
            # The original may still be on its way (a request whose answer was lost and
            # which was reversed at once): it must not be applied when it arrives.
            tombstone = Reply("", request.orig_ref, "12", reason_text=_REVERSED_EARLY)
            book.store_reply(request.orig_ref, REVERSED_BEFORE_POSTING, tombstone.to_json())
        raise request.refuse("25", f"no posting {request.orig_ref}")
    legs = book.entries(original.reference)
    primary = book.account(legs[0].account)
    if request.account_no and request.account_no != legs[0].account:
        raise request.refuse("12", "account is not the original's", primary)
    if original.reverses is not None:
        raise request.refuse("12", f"{original.reference} is a reversal", primary)
    if original.reversed_by is not None:
        return _approved(book, request, legs[0].account, now,
                         f"already reversed by {original.reversed_by}")  # fmt: skip
    original_amount = max(abs(leg.amount) for leg in legs)
    if request.amount and int(request.amount * MINOR_UNITS) != original_amount:
        raise request.refuse("13", "partial reversal not supported", primary)
    for leg in legs:
        account = book.account(leg.account, lock=True)
        if account is None:  # entries reference existing accounts (foreign key)
            raise RuntimeError("internal error: expected account is not None")
        if account.kind == "customer" and account.status != "open":
            raise request.refuse("62", f"account {account.number} is closed", primary)
        if leg.amount > 0:
            _funds(request, account, leg.amount)
    _post(book, request, [(leg.account, -leg.amount) for leg in legs], now,
          reverses=original.reference)  # fmt: skip
    return _approved(book, request, legs[0].account, now)


def _place_hold(book: Book, request: _Request, now: dt.datetime) -> Reply:
    account = _customer(book, request, request.account_no, "CB-ACCOUNT-NO")
    _currency(request, account)
    amount = _minor(request)
    _funds(request, account, amount)
    book.add_hold(request.posting_ref, account.number, amount)
    return _approved(book, request, account.number, now)


def _release_hold(book: Book, request: _Request, now: dt.datetime) -> Reply:
    if not request.orig_ref:
        raise request.format_error("CB-ORIG-POSTING-REF", "is blank")
    hold = book.hold(request.orig_ref)
    if hold is None:
        raise request.refuse("25", f"no hold {request.orig_ref}")
    account = book.account(hold.account)
    if request.account_no and request.account_no != hold.account:
        raise request.refuse("12", "account is not the hold's", account)
    if hold.status == "released":
        return _approved(book, request, hold.account, now, f"already released by {hold.ended_by}")
    if hold.status != "active":
        raise request.refuse("12", f"hold consumed by {hold.ended_by}", account)
    book.end_hold(hold.reference, "released", request.posting_ref)
    return _approved(book, request, hold.account, now)


_HANDLERS: Final[Mapping[str, Callable[[Book, _Request, dt.datetime], Reply]]] = {
    "BALQ": _balance_enquiry,
    "DEBT": _debit,
    "CRDT": _credit,
    "XFER": _transfer,
    "REVS": _reversal,
    "HOLD": _place_hold,
    "RELS": _release_hold,
}


def apply_request(book: Book, request: Mapping[str, Any], now: dt.datetime) -> Reply:
    """Apply one decoded CB-REQUEST inside ``book``'s transaction; its reply.

    Refusals write nothing but the stored reply. Exceptions other than the ledger's own
    (database errors) propagate: :func:`process_batch` turns them into ``96``.
    """
    try:
        parsed = _parse(request)
    except _RefusedError as refused:
        return refused.reply
    if not parsed.posting_ref:
        return format_error(parsed.tran_code, "", "CB-POSTING-REF", "is blank")
    handler = _HANDLERS.get(parsed.tran_code)
    if handler is None:
        return parsed.reply("12", f"unknown tran code {parsed.tran_code!r}")
    if parsed.tran_code == "BALQ":
        try:
            return handler(book, parsed, now)
        except _RefusedError as refused:
            return refused.reply
    digest = request_digest(request)
    stored = book.stored_reply(parsed.posting_ref)
    if stored is not None:
        if stored.request_digest == digest:
            return Reply.from_json(stored.reply)
        if stored.request_digest == REVERSED_BEFORE_POSTING:
            return parsed.reply("12", _REVERSED_EARLY)
        return parsed.reply("12", "posting ref used by another request")
    try:
        reply = handler(book, parsed, now)
    except _RefusedError as refused:
        reply = refused.reply
    if reply.result_code not in {"30", "96"}:
        book.store_reply(parsed.posting_ref, digest, reply.to_json())
    return reply


def _system_error(request: Mapping[str, Any]) -> Reply:
    return Reply(_text(request, "CB-TRAN-CODE")[:4], _text(request, "CB-POSTING-REF")[:24], "96",
                 _text(request, "CB-ACCOUNT-NO")[:34], reason_text="system error")  # fmt: skip


def process_batch(ledger: Ledger, requests: Sequence[Mapping[str, Any]]) -> list[Reply]:
    """Apply ``requests`` in order in one database transaction (group commit); their replies.

    The replies are valid once this returns: the transaction has committed. If the batch
    fails as a whole (a database error), each request is retried alone, so one bad request
    costs only its own ``96``.
    """
    if not requests:
        return []
    # A lone request is tried again: on PostgreSQL two processes may deadlock on row locks
    # or race on a unique key, and the second attempt then sees the winner's rows.
    attempts = 1 if len(requests) > 1 else SINGLE_ATTEMPTS
    for attempt in range(1, attempts + 1):
        try:
            with ledger.transaction() as book:
                now = ledger.clock()
                return [apply_request(book, request, now) for request in requests]
        except Exception:
            if len(requests) > 1:
                return [process_batch(ledger, [request])[0] for request in requests]
            if attempt == attempts:
                _log.exception("mainframe_sim: request failed, answered 96")
    return [_system_error(requests[0])]
