"""Every tran code and result code on decoded requests, idempotency, and the balanced ledger."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from mainframe_sim.ledger import Ledger
from mainframe_sim.seed import SEED_ACCOUNTS, seed_ledger
from mainframe_sim.transactions import Reply, process_batch, request_digest
from tests.mainframe_sim.samples import (
    ANNA,
    BAD_DATE,
    CLOSED,
    EMPTY,
    GBP_IS_NOT_EUR,
    JONAS,
    OLIVER,
    OVERDRAFT,
    request,
)


def run(ledger: Ledger, *requests: dict[str, Any]) -> list[Reply]:
    return process_batch(ledger, list(requests))


def one(ledger: Ledger, req: dict[str, Any]) -> Reply:
    return run(ledger, req)[0]


def test_balance_enquiry(ledger: Ledger) -> None:
    reply = one(ledger, request("BALQ", "Q1"))
    assert (reply.result_code, reply.ledger_balance, reply.available_balance, reply.currency) == (
        "00", 112345, 112345, "EUR",
    )  # fmt: skip
    assert reply.posted_at == "20261127090000"
    assert one(ledger, request("BALQ", "Q2", "DE00NOSUCHACCOUNT")).result_code == "14"
    assert one(ledger, request("BALQ", "Q3", CLOSED)).result_code == "62"
    assert one(ledger, request("BALQ", "Q4", "GL-CLEARING-EUR")).result_code == "14"


def test_debit_and_credit_post_against_the_clearing_account(ledger: Ledger) -> None:
    debit = one(ledger, request("DEBT", "D1", amount="100.45"))
    assert (debit.result_code, debit.ledger_balance) == ("00", 102300)
    credit = one(ledger, request("CRDT", "C1", amount="0.55"))
    assert (credit.result_code, credit.ledger_balance) == ("00", 102355)
    gl = ledger.account("GL-CLEARING-EUR")
    assert gl is not None
    assert ledger.check().balanced


@pytest.mark.parametrize(
    ("req", "code", "reason"),
    [
        (request("DEBT", "X1", amount="1123.46"), "51", "insufficient funds"),
        (request("DEBT", "X2", amount="0"), "13", "amount must be positive"),
        (request("DEBT", "X3", amount="-5"), "13", "amount must be positive"),
        (request("DEBT", "X4a", "", "5"), "30", "CB-ACCOUNT-NO @52: is blank"),
        (request("DEBT", "X4", amount="5", currency="GBP"), "13", GBP_IS_NOT_EUR),
        (request("CRDT", "X5", CLOSED, amount="5"), "62", f"account {CLOSED} is closed"),
        (request("CRDT", "X6", "DE00NOSUCH", amount="5"), "14", "unknown account DE00NOSUCH"),
        (request("CRDT", "X7", "", amount="5"), "30", "CB-ACCOUNT-NO @52: is blank"),
        (request("CRDT", "X8", amount="5", currency=""), "30", "CB-CURRENCY @128: is blank"),
        (request("CRDT", "X9", value_date=20261345), "30", BAD_DATE),
        (request("CRDT", "", amount="5"), "30", "CB-POSTING-REF @4: is blank"),
        (request("CRDT", "X10", amount="5.001"), "30", "CB-AMOUNT @120: more than two decimals"),
        (request("WXYZ", "X11"), "12", "unknown tran code 'WXYZ'"),
        (request("REVS", "X12", orig="NOPE"), "25", "no posting NOPE"),
        (request("RELS", "X13", orig="NOPE"), "25", "no hold NOPE"),
        (request("XFER", "X14", amount="1", contra=ANNA), "12", "transfer to the same account"),
        (request("XFER", "X15", amount="1", contra=OLIVER), "13", "contra account is in GBP"),
        (request("XFER", "X16", amount="1", contra=CLOSED), "62", f"account {CLOSED} is closed"),
        (request("HOLD", "X17", amount="1123.46"), "51", "insufficient funds"),
    ],
)  # fmt: skip
def test_refusals_apply_nothing(
    ledger: Ledger, req: dict[str, Any], code: str, reason: str
) -> None:
    before = ledger.check()
    reply = one(ledger, req)
    assert (reply.result_code, reply.reason_text) == (code, reason)
    after = ledger.check()
    assert after.balanced
    assert after.postings == before.postings
    assert ledger.balances(ANNA) == (112345, 112345, "EUR")


def test_overdraft_only_within_the_limit(ledger: Ledger) -> None:
    assert one(ledger, request("DEBT", "O1", OVERDRAFT, "3123.45")).result_code == "00"
    assert ledger.balances(OVERDRAFT) == (-100000, -100000, "EUR")
    assert one(ledger, request("DEBT", "O2", OVERDRAFT, "0.01")).result_code == "51"
    assert one(ledger, request("DEBT", "O3", EMPTY, "0.01")).result_code == "51"


def test_transfer_moves_money_between_customers(ledger: Ledger) -> None:
    reply = one(ledger, request("XFER", "T1", JONAS, "23.45", contra=ANNA))
    assert (reply.result_code, reply.account_no, reply.ledger_balance) == ("00", JONAS, 310000)
    assert ledger.balances(ANNA) == (114690, 114690, "EUR")
    assert one(ledger, request("XFER", "T2", JONAS, "1", contra="DE00X")).result_code == "14"
    assert ledger.check().balanced


def test_reversal_restores_balances_once(ledger: Ledger) -> None:
    one(ledger, request("XFER", "T1", JONAS, "100", contra=ANNA))
    reversal = one(ledger, request("REVS", "R1", "", orig="T1"))
    assert (reversal.result_code, reversal.account_no, reversal.ledger_balance) == (
        "00",
        JONAS,
        312345,
    )
    assert ledger.balances(ANNA) == (112345, 112345, "EUR")
    # Another reversal reference for the same posting: approved, not applied again.
    again = one(ledger, request("REVS", "R2", "", orig="T1"))
    assert (again.result_code, again.reason_text) == ("00", "already reversed by R1")
    assert ledger.balances(JONAS) == (312345, 312345, "EUR")
    assert one(ledger, request("REVS", "R3", "", orig="R1")).result_code == "12"
    assert ledger.check().balanced


def test_reversal_checks_amount_account_and_funds(ledger: Ledger) -> None:
    one(ledger, request("CRDT", "C1", EMPTY, "10"))
    partial = request("REVS", "R1", "", "5", orig="C1")
    assert one(ledger, partial).result_code == "13"
    wrong = request("REVS", "R2", ANNA, orig="C1")
    assert one(ledger, wrong).result_code == "12"
    one(ledger, request("DEBT", "D1", EMPTY, "10"))
    # Reversing the credit would overdraw an account without a limit.
    assert one(ledger, request("REVS", "R3", "", "10", orig="C1")).result_code == "51"


def test_hold_lowers_available_and_release_restores_it(ledger: Ledger) -> None:
    hold = one(ledger, request("HOLD", "H1", amount="100"))
    assert (hold.result_code, hold.ledger_balance, hold.available_balance) == ("00", 112345, 102345)
    assert one(ledger, request("DEBT", "D1", amount="1100")).result_code == "51"
    release = one(ledger, request("RELS", "L1", "", orig="H1"))
    assert (release.result_code, release.available_balance) == ("00", 112345)
    again = one(ledger, request("RELS", "L2", "", orig="H1"))
    assert (again.result_code, again.reason_text) == ("00", "already released by L1")
    assert ledger.check().balanced


def test_debit_consumes_a_named_hold(ledger: Ledger) -> None:
    one(ledger, request("HOLD", "H1", amount="1000"))
    # 1,123.45 available only with the hold counted back in.
    debit = one(ledger, request("DEBT", "D1", amount="1050", orig="H1"))
    assert (debit.result_code, debit.ledger_balance, debit.available_balance) == ("00", 7345, 7345)
    assert one(ledger, request("DEBT", "D2", amount="1", orig="H1")).result_code == "12"
    assert one(ledger, request("RELS", "L1", "", orig="H1")).result_code == "12"
    assert one(ledger, request("DEBT", "D3", amount="1", orig="H9")).result_code == "25"
    assert ledger.check().balanced


def test_the_request_digest_and_the_stored_reply_keep_their_format() -> None:
    """Digests and replies stored by earlier versions must still match: the digest is the
    SHA-256 of ``json.dumps`` of the fields as text, keys sorted; the stored reply is
    ``json.dumps`` of the reply's fields, keys sorted (whatever the characters in them)."""
    req = request("DEBT", 'D\u00e91"', amount="12.30", value_date=20261129)
    req["CB-NARRATIVE"] = 'caf\u00e9 "\\ \u2603'
    expected = json.dumps({k: str(v) for k, v in req.items()}, sort_keys=True)
    assert request_digest(req) == hashlib.sha256(expected.encode()).hexdigest()
    reply = Reply("DEBT", "D\u00e91", "00", ANNA, -5, 7, "EUR", "20261129080000", 'x "\u2603"')
    assert reply.to_json() == json.dumps(
        {name: getattr(reply, name) for name in Reply.__slots__}, sort_keys=True
    )
    assert Reply.from_json(reply.to_json()) == reply


def test_approved_postings_show_the_balances_the_ledger_then_holds(ledger: Ledger) -> None:
    """The balances of a DEBT, CRDT or XFER approval are computed from the locked row and the
    amounts posted, not read again: they must be what the ledger holds right after, with
    holds (active, and consumed by the debit) counted, within one batch and across batches."""
    replies = run(
        ledger,
        request("HOLD", "H1", amount="100"),
        request("HOLD", "H2", amount="20"),
        request("DEBT", "D1", amount="12.34"),
        request("CRDT", "C1", amount="1.01"),
        request("DEBT", "D2", amount="150", orig="H1"),
        request("XFER", "X1", amount="3", contra=JONAS),
    )
    assert [r.result_code for r in replies] == ["00"] * 6
    anna = ledger.balances(ANNA)
    assert anna is not None
    last = replies[-1]
    assert (last.ledger_balance, last.available_balance) == (anna.ledger, anna.available)
    assert [(r.ledger_balance, r.available_balance) for r in replies[2:]] == [
        (112345 - 1234, 112345 - 1234 - 12000),
        (112345 - 1234 + 101, 112345 - 1234 + 101 - 12000),
        (112345 - 1234 + 101 - 15000, 112345 - 1234 + 101 - 15000 - 2000),
        (112345 - 1234 + 101 - 15000 - 300, 112345 - 1234 + 101 - 15000 - 300 - 2000),
    ]
    credit = one(ledger, request("CRDT", "C2", JONAS, amount="2"))
    jonas = ledger.balances(JONAS)
    assert jonas is not None
    assert (credit.ledger_balance, credit.available_balance) == (jonas.ledger, jonas.available)
    assert ledger.check().balanced


def test_a_repeated_request_is_applied_once_and_answered_the_same(
    ledger: Ledger, clock: Any
) -> None:
    first = one(ledger, request("DEBT", "D1", amount="10"))
    clock.now = clock.now.replace(hour=10)
    replies = run(ledger, *[request("DEBT", "D1", amount="10")] * 5)
    assert replies == [first] * 5
    assert ledger.balances(ANNA) == (111345, 111345, "EUR")
    # A refusal is stored too: the same request stays refused after funds arrive.
    refused = one(ledger, request("DEBT", "D2", amount="5000"))
    one(ledger, request("CRDT", "C1", amount="5000"))
    assert one(ledger, request("DEBT", "D2", amount="5000")) == refused
    # The same reference with other content applies nothing.
    reuse = one(ledger, request("DEBT", "D1", amount="11"))
    assert (reuse.result_code, reuse.reason_text) == ("12", "posting ref used by another request")
    assert ledger.balances(ANNA) == (611345, 611345, "EUR")


def test_a_format_error_is_not_stored(ledger: Ledger) -> None:
    assert one(ledger, request("CRDT", "F1", amount="5", currency="")).result_code == "30"
    assert one(ledger, request("CRDT", "F1", amount="5")).result_code == "00"


def test_ledger_stays_balanced_under_concurrent_and_repeated_postings(ledger: Ledger) -> None:
    accounts = [seed.number for seed in SEED_ACCOUNTS[:11]]
    errors: list[BaseException] = []

    def client(worker: int) -> None:
        try:
            for i in range(40):
                source = (worker + i) % 11
                target = (source + 1 + i % 10) % 11
                ref = f"W{worker}-{i}"
                batch = [
                    request(
                        "XFER",
                        ref,
                        accounts[source],
                        "1.01",
                        contra=accounts[target],
                    ),
                    request("DEBT", ref + "D", accounts[source], "0.50"),
                    request(
                        "XFER",
                        ref,
                        accounts[source],
                        "1.01",
                        contra=accounts[target],
                    ),
                ]
                if i % 3 == 0:
                    batch.append(request("REVS", ref + "R", "", orig=ref))
                    batch.append(request("REVS", ref + "R", "", orig=ref))
                replies = process_batch(ledger, batch)
                assert replies[0] == replies[2]
                assert {r.result_code for r in replies} == {"00"}, replies
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    check = ledger.check()
    assert check.balanced, check
    # 8 workers x 40: one XFER and one DEBT each, 14 reversals each; repeats add nothing.
    seeded = sum(1 for s in SEED_ACCOUNTS if s.opening)
    assert check.postings == seeded + 8 * (40 * 2 + 14)
    total = sum(a.ledger_balance for a in ledger.accounts() if a.currency == "EUR")
    assert total == sum(s.opening for s in SEED_ACCOUNTS if s.currency == "EUR") - 8 * 40 * 50


def test_a_database_failure_is_answered_96_and_applies_nothing(ledger: Ledger) -> None:
    with ledger.engine.begin() as connection:
        connection.execute(text("DROP TABLE mf_replies"))
    replies = run(ledger, request("DEBT", "D1", amount="10"), request("BALQ", "Q1"))
    assert [(r.result_code, r.reason_text) for r in replies] == [
        ("96", "system error"),
        ("00", ""),  # the batch is retried request by request: only the failing one is lost
    ]
    assert ledger.balances(ANNA) == (112345, 112345, "EUR")


def test_a_posting_reversed_before_it_arrived_is_not_applied(tmp_path: Path) -> None:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'tombstone.db'}")
    seed_ledger(ledger)
    before = ledger.balances(ANNA)
    reversal, late, again = process_batch(
        ledger,
        [
            request("REVS", "R-EARLY", orig="P-LATE"),
            request("DEBT", "P-LATE", amount="10.00"),
            request("REVS", "R-EARLY", orig="P-LATE"),
        ],
    )
    assert (reversal.result_code, late.result_code, again.result_code) == ("25", "12", "25")
    assert late.reason_text == "reversed before it arrived"
    assert ledger.balances(ANNA) == before
    assert ledger.check().balanced
    ledger.close()


def test_stored_replies_and_digests_keep_their_form(ledger: Ledger) -> None:
    # Databases written by earlier versions hold these: a repeat must still find and match them.
    process_batch(ledger, [request("DEBT", "D1", amount="10.50"), request("REVS", "R1", orig="P")])
    with ledger.engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM mf_replies ORDER BY posting_ref")).all()
    assert [tuple(row) for row in rows] == [
        (
            "D1",
            "00ccb69366cd111c4b83c8fc46645842acb620721a6dd1e1d4faf2f9c6dacfa1",
            '{"account_no": "DE89370400440532013000", "available_balance": 111295,'
            ' "currency": "EUR", "ledger_balance": 111295, "posted_at": "20261127090000",'
            ' "posting_ref": "D1", "reason_text": "", "result_code": "00", "tran_code": "DEBT"}',
        ),
        (
            "P",
            "reversed-before-posting",
            '{"account_no": "", "available_balance": 0, "currency": "", "ledger_balance": 0,'
            ' "posted_at": "", "posting_ref": "P", "reason_text": "reversed before it arrived",'
            ' "result_code": "12", "tran_code": ""}',
        ),
        (
            "R1",
            "7d32a2e5c161a289ded31727b9f6f0ba7dcfde155bc5c514ff3e958d701416ed",
            '{"account_no": "DE89370400440532013000", "available_balance": 0, "currency": "",'
            ' "ledger_balance": 0, "posted_at": "", "posting_ref": "R1",'
            ' "reason_text": "no posting P", "result_code": "25", "tran_code": "REVS"}',
        ),
    ]
