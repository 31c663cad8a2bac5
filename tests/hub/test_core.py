"""The core banking service against a real mainframe_sim over TCP, with its real ledger."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import secrets
import ssl
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import hub.core as core_module
from adapters.base import AdapterDecodeError, EncodeContext
from adapters.fixedwidth.adapter import FixedWidthAdapter
from canonical_model.codes import Status
from canonical_model.messages import (
    Acceptor,
    Account,
    AdditionalAmount,
    CanonicalMessage,
    Identifiers,
    MessageFunction,
    MessageKind,
    OriginalTransaction,
    ProcessingCode,
)
from canonical_model.money import Money
from hub.config_file import ClientTlsConfig, MainframeConfig
from hub.connector import DestinationUnavailableError, RecordConnector
from hub.core import (
    CoreBanking,
    _balance_enquiry_fields,
    corebank_connector,
    posting_for,
    posting_reference,
)
from hub.store import ReversalForwarder, ReversalStore, create_engine, upgrade
from mainframe_sim.faults import FaultPlan, Faults
from mainframe_sim.ledger import Ledger
from mainframe_sim.seed import seed_ledger
from mainframe_sim.server import MainframeServer
from mainframe_sim.tls import server_context
from tests.hub.tls_support import Pki, make_pki
from tests.mainframe_sim.samples import ANNA, CLOSED, JONAS
from tests.support import on_event_loop

TENANT = "bank-a"


def purchase(
    stan: int, amount: str, account: str | None = ANNA, **changes: Any
) -> CanonicalMessage:
    message = CanonicalMessage(
        MessageKind.FINANCIAL,
        MessageFunction.REQUEST,
        TENANT,
        Identifiers(f"m-{stan}", end_to_end_id=f"{stan:012d}", instruction_id=f"{stan:06d}"),
        processing=ProcessingCode("00"),
        amount=Money.of(amount, "EUR"),
        acceptor=Acceptor(terminal_id="TERM0001"),
        debtor_account=Account(other_id=account) if account else None,
    )
    return dataclasses.replace(message, **changes)


def reversal_of(original: CanonicalMessage, stan: int) -> CanonicalMessage:
    return dataclasses.replace(
        original,
        kind=MessageKind.REVERSAL,
        ids=Identifiers(
            f"m-r{stan}", end_to_end_id=original.ids.end_to_end_id, instruction_id=f"{stan:06d}"
        ),
        original=OriginalTransaction(instruction_id=original.ids.instruction_id),
    )


@dataclasses.dataclass
class Mainframe:
    ledger: Ledger
    server: MainframeServer
    faults: Faults
    port: int

    def balance(self, account: str) -> int:
        balances = self.ledger.balances(account)
        assert balances is not None
        return balances.ledger


@contextlib.asynccontextmanager
async def mainframe(
    tmp_path: Path, framing: str = "len2", tls: ssl.SSLContext | None = None
) -> AsyncIterator[Mainframe]:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    seed_ledger(ledger)
    faults = Faults()
    server = MainframeServer(ledger, framing=framing, faults=faults, tls=tls)
    _, port = await server.start("127.0.0.1", 0)
    try:
        yield Mainframe(ledger, server, faults, port)
    finally:
        await server.close()
        ledger.close()


@contextlib.asynccontextmanager
async def core_for(
    mf: Mainframe, store: ReversalStore | None = None, **config: Any
) -> AsyncIterator[tuple[CoreBanking, RecordConnector]]:
    settings = MainframeConfig(port=mf.port, **{"connections": 2, "timeout": 2.0, **config})
    async with corebank_connector(settings) as connector:
        await connector.wait_connected(settings.connections)
        yield CoreBanking(connector, reversals=store), connector


def _store(tmp_path: Path) -> ReversalStore:
    engine = create_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    upgrade(engine)
    return ReversalStore(engine, posting_reference=posting_reference)


def test_purchase_debit_decline_and_unknown_account(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with mainframe(tmp_path) as mf, core_for(mf) as (core, _):
            before = mf.balance(ANNA)
            approved = await core.handle(purchase(1, "12.34"))
            assert approved.status is not None and approved.status.original is not None
            assert approved.status.original.code == "00"
            assert approved.approval_code is not None and len(approved.approval_code) == 6
            assert approved.function is MessageFunction.RESPONSE
            assert approved.ids.end_to_end_id == "000000000001"
            ledger_balance = {a.amount_type: a.amount for a in approved.additional_amounts}
            assert ledger_balance["01"] == Money.of(str((before - 1234) / 100), "EUR")
            assert mf.balance(ANNA) == before - 1234

            declined = await core.handle(purchase(2, "999999.00"))
            assert declined.status is not None and declined.status.original is not None
            assert declined.status.original.code == "51"
            assert declined.approval_code is None

            unknown = await core.handle(purchase(3, "1.00", account="DE00000000000000000000"))
            assert unknown.status is not None and unknown.status.original is not None
            assert unknown.status.original.code == "14"

            closed = await core.handle(purchase(4, "1.00", account=CLOSED))
            assert closed.status is not None and closed.status.original is not None
            assert closed.status.original.code == "62"

            no_account = await core.handle(purchase(5, "1.00", account=None))
            assert no_account.status is not None and no_account.status.original is not None
            assert no_account.status.original.code == "14"
            assert core.stats.refused == 1  # never sent
            assert mf.ledger.check().balanced

    scenario()


def test_a_repeat_posts_once_and_a_reversal_restores(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with mainframe(tmp_path) as mf, core_for(mf) as (core, _):
            before = mf.balance(JONAS)
            first = purchase(10, "50.00", account=JONAS)
            repeat = dataclasses.replace(first, ids=dataclasses.replace(first.ids, message_id="x"))
            answers = await asyncio.gather(core.handle(first), core.handle(repeat))
            assert {a.approval_code for a in answers} == {answers[0].approval_code}
            assert mf.balance(JONAS) == before - 5000
            reversal = reversal_of(first, 11)
            for _ in range(2):  # an acquirer's 0421 repeat: applied once
                reversed_ = await core.handle(reversal)
                assert reversed_.status is not None and reversed_.status.original is not None
                assert reversed_.status.original.code == "00"
            assert mf.balance(JONAS) == before
            assert mf.ledger.check().balanced

    scenario()


def test_lost_reply_is_91_then_the_stored_reversal_is_forwarded(tmp_path: Path) -> None:
    store = _store(tmp_path)

    @on_event_loop
    async def scenario() -> None:
        async with mainframe(tmp_path) as mf, core_for(mf, store, timeout=0.3) as (core, _):
            before = mf.balance(ANNA)
            mf.faults.set(FaultPlan(drop=1.0))  # applied, but the reply never comes
            lost = await core.handle(purchase(20, "7.00"))
            assert lost.status is not None and lost.status.original is not None
            assert lost.status.original.code == "91"
            assert mf.balance(ANNA) == before - 700  # the posting was applied
            (pending,) = store.pending()
            assert pending.posting_ref == posting_reference(purchase(20, "7.00"))

            forwarder = ReversalForwarder(store, core, first_delay=0.01)
            assert await forwarder.forward_due() == 0  # still dropping: retried later
            assert store.pending()[0].attempts == 1
            mf.faults.set(FaultPlan())
            await asyncio.sleep(0.05)
            assert await forwarder.forward_due() == 1
            assert store.pending() == []
            assert mf.balance(ANNA) == before
            assert mf.ledger.check().balanced

    scenario()


def test_a_dead_core_opens_the_breaker_and_answers_91_at_once(tmp_path: Path) -> None:
    store = _store(tmp_path)

    @on_event_loop
    async def scenario() -> None:
        async with (
            mainframe(tmp_path) as mf,
            core_for(mf, store, timeout=0.2, failure_threshold=2) as (core, connector),
        ):
            mf.faults.set(FaultPlan(drop=1.0))
            for stan in (30, 31):
                await core.handle(purchase(stan, "1.00"))
            refused = await core.handle(purchase(32, "1.00"))
            assert refused.status is not None and refused.status.original is not None
            assert refused.status.original.code == "91"
            assert connector.stats.refused == 1
            assert core.stats.unavailable == 1
            # Two unknown outcomes stored; the refused one was never sent: nothing to reverse.
            assert len(store.pending()) == 2

    scenario()


@pytest.mark.parametrize("framing", ["len4", "cics"])
def test_other_framings(tmp_path: Path, framing: str) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with mainframe(tmp_path, framing) as mf, core_for(mf, framing=framing) as (core, _):
            answer = await core.handle(purchase(40, "1.00"))
            assert answer.status is not None and answer.status.original is not None
            assert answer.status.original.code == "00"

    scenario()


def _mutual(pki: Pki) -> ssl.SSLContext:
    """The simulator's listener: TLS 1.3, client certificates from ``pki``'s CA."""
    return server_context(pki.server.cert, pki.server.key, pki.ca.cert)


def test_mutual_tls_to_the_mainframe(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    tls = ClientTlsConfig(pki.ca.cert, pki.client.cert, pki.client.key, "localhost")

    @on_event_loop
    async def scenario() -> None:
        async with (
            mainframe(tmp_path, tls=_mutual(pki)) as mf,
            core_for(mf, host="127.0.0.1", tls=tls) as (core, connector),
        ):
            answer = await core.handle(purchase(50, "1.00"))
            assert answer.status is not None and answer.status.original is not None
            assert answer.status.original.code == "00"
            assert (connector.stats.tls_refused, mf.server.stats.tls_refused) == (0, 0)

    scenario()


@pytest.mark.parametrize(
    ("hub_side", "server_side", "hub_log", "mainframe_log"),
    [
        # The hub presents no certificate / an expired one: the mainframe refuses it.
        ("none", "server", "did not accept our client certificate", "no client certificate"),
        ("expired_client", "server", "did not accept our client certificate", "has expired"),
        ("wrong_ca_client", "server", "did not accept our client certificate", "local issuer"),
        # The mainframe presents an expired certificate / one from another CA: the hub refuses.
        ("client", "expired_server", "certificate refused: certificate has expired", None),
        ("client", "wrong_ca_server", "unable to get local issuer certificate", None),
    ],
)
def test_a_refused_handshake_sends_nothing_and_says_why(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    hub_side: str,
    server_side: str,
    hub_log: str,
    mainframe_log: str | None,
) -> None:
    pki = make_pki(tmp_path / "pki")
    files = None if hub_side == "none" else getattr(pki, hub_side)
    tls = ClientTlsConfig(
        pki.ca.cert, files.cert if files else None, files.key if files else None, "localhost"
    )
    served = getattr(pki, server_side)

    @on_event_loop
    async def scenario() -> None:
        listener = server_context(served.cert, served.key, pki.ca.cert)
        async with mainframe(tmp_path, tls=listener) as mf:
            before = mf.balance(ANNA)
            settings = MainframeConfig(port=mf.port, connections=1, timeout=2.0, tls=tls)
            async with corebank_connector(settings) as connector:
                async with asyncio.timeout(10):
                    while connector.stats.tls_refused == 0:
                        await asyncio.sleep(0.01)
                assert connector.connected == 0  # never up, never plain TCP instead
                answer = await CoreBanking(connector).handle(purchase(51, "1.00"))
                assert answer.status is not None and answer.status.original is not None
                assert answer.status.original.code == "91"
                assert connector.stats.sent == 0
            assert mf.balance(ANNA) == before
            assert mf.server.stats.requests == 0
        hub_lines = [r.getMessage() for r in caplog.records if r.name == "isobridge.connector"]
        assert any(
            line.startswith(f"mainframe 127.0.0.1:{mf.port}: TLS handshake refused: ")
            and hub_log in line
            for line in hub_lines
        ), hub_lines
        server_lines = [r.getMessage() for r in caplog.records if r.name == "mainframe_sim.server"]
        if mainframe_log is not None:
            assert any(mainframe_log in line for line in server_lines), server_lines

    with caplog.at_level(logging.WARNING):
        scenario()


def _enquiry(account: str) -> CanonicalMessage:
    return CanonicalMessage(
        MessageKind.BALANCE_ENQUIRY,
        MessageFunction.REQUEST,
        TENANT,
        Identifiers("m-b", end_to_end_id="000000000042"),
        processing=ProcessingCode("31"),
        debtor_account=Account(iban=account) if account else None,
    )


def test_a_balance_enquiry_by_account_number_is_what_handle_answers(tmp_path: Path) -> None:
    """``balance_enquiry`` writes the record ``handle``'s posting becomes and answers its
    status and balances, whatever the account."""
    posting = posting_for(_enquiry(ANNA), message_id="m-p")
    reference = posting.ids.transaction_id
    assert reference is not None

    @on_event_loop
    async def scenario() -> None:
        async with mainframe(tmp_path) as mf, core_for(mf) as (core, _):
            request_layout = core._request_adapter
            assert request_layout.codec.encode(
                _balance_enquiry_fields(ANNA, reference)
            ) == request_layout.encode(posting, EncodeContext(TENANT))
            for account in (ANNA, JONAS, CLOSED, "DE00999999999999999999", ""):
                reply = await core.handle(_enquiry(account))
                assert reply.status is not None
                status, balances = await core.balance_enquiry(TENANT, account)
                assert (status, balances) == (reply.status, reply.additional_amounts), account
            status, balances = await core.balance_enquiry(TENANT, ANNA)
            assert status.original is not None and status.original.code == "00"
            assert {b.amount_type: b.amount.amount * 100 for b in balances}["01"] == mf.balance(
                ANNA
            )

    scenario()


class _NoExchange:
    """A posting exchange for the tests that send nothing."""

    async def request(self, payload: bytes) -> bytes:
        raise DestinationUnavailableError("nowhere", "the test sends nothing")


@pytest.mark.parametrize(
    "account", [ANNA, JONAS, "A" * 34, "de 00 lower case", "1", "GB29NWBK60161331926819"]
)
def test_a_balance_request_from_its_template_is_the_codecs_record(account: str) -> None:
    core = CoreBanking(_NoExchange())
    codec = core._request_adapter.codec
    for _ in range(3):  # the first from the codec, the others from the template
        reference = secrets.token_hex(12).upper()
        assert core._balance_request(account, reference) == codec.encode(
            _balance_enquiry_fields(account, reference)
        )


def test_an_account_the_record_cannot_hold_is_answered_12_each_time() -> None:
    @on_event_loop
    async def scenario() -> None:
        core = CoreBanking(_NoExchange())
        for account in ("DE89\u20ac", "X" * 35):  # no cp037 byte for the euro sign; too long
            for _ in range(2):
                status, balances = await core.balance_enquiry(TENANT, account)
                assert status.original is not None and status.original.code == "12", account
                assert balances == ()

    scenario()


def test_the_balance_request_templates_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core_module, "_BALANCE_REQUESTS", 5)
    core = CoreBanking(_NoExchange())
    for number in range(12):
        core._balance_request(f"ACC{number}", "0" * 24)
    assert core._balance_requests is not None
    assert list(core._balance_requests) == [f"ACC{number}" for number in range(7, 12)]


def _reply_record(**changes: Any) -> bytes:
    values: dict[str, Any] = {
        "CB-RP-TRAN-CODE": "BALQ",
        "CB-RP-POSTING-REF": "0123456789ABCDEF01234567",
        "CB-RP-RESULT-CODE": "00",
        "CB-RP-ACCOUNT-NO": ANNA,
        "CB-RP-LEDGER-BALANCE": Decimal("1234.56"),
        "CB-RP-AVAILABLE-BALANCE": Decimal("-10.00"),
        "CB-RP-CURRENCY": "EUR",
        "CB-RP-POSTED-AT": 20261129093001,
        "CB-RP-REASON-TEXT": "",
    }
    values.update(changes)
    return FixedWidthAdapter("corebank-reply").codec.encode(values)


def _mappers_answer(
    core: CoreBanking, raw: bytes
) -> tuple[Status | None, tuple[AdditionalAmount, ...]] | str:
    """What the full decode and the mapper make of ``raw``."""
    try:
        return core._reply_adapter.mapper.status_and_amounts(core._reply_adapter.codec.decode(raw))
    except AdapterDecodeError:
        return "undecodable"


_REPLIES = [
    _reply_record(),
    _reply_record(**{"CB-RP-RESULT-CODE": "14", "CB-RP-LEDGER-BALANCE": Decimal(0)}),
    _reply_record(**{"CB-RP-RESULT-CODE": "51"}),
    _reply_record(**{"CB-RP-RESULT-CODE": "7Z"}),  # no ISO 8583 meaning: RJCT NARR
    _reply_record(**{"CB-RP-RESULT-CODE": ""}),  # no status
    _reply_record(**{"CB-RP-TRAN-CODE": "DEBT"}),
    _reply_record(**{"CB-RP-TRAN-CODE": "NOPE"}),  # no kind for it
    _reply_record(**{"CB-RP-POSTED-AT": 0}),
    _reply_record(**{"CB-RP-POSTED-AT": 20261331093001}),  # month 13
    _reply_record(**{"CB-RP-POSTED-AT": 20260229250000}),  # hour 25
    _reply_record(**{"CB-RP-CURRENCY": "JPY", "CB-RP-LEDGER-BALANCE": Decimal("12.50")}),
    _reply_record(
        **{
            "CB-RP-CURRENCY": "JPY",
            "CB-RP-LEDGER-BALANCE": Decimal("12.00"),
            "CB-RP-AVAILABLE-BALANCE": Decimal("-3.00"),
        }
    ),
    _reply_record(**{"CB-RP-CURRENCY": "XXQ"}),  # no such currency
    _reply_record(**{"CB-RP-CURRENCY": ""}),  # balances without a currency
    _reply_record(
        **{
            "CB-RP-CURRENCY": "",
            "CB-RP-LEDGER-BALANCE": Decimal(0),
            "CB-RP-AVAILABLE-BALANCE": Decimal(0),
        }
    ),
]


@pytest.mark.parametrize("raw", _REPLIES)
def test_a_core_reply_is_read_as_the_mapper_reads_it(raw: bytes) -> None:
    core = CoreBanking(_NoExchange())
    expected = _mappers_answer(core, raw)
    for _ in range(2):  # the second with the result code's status remembered
        answer = core._read_outcome(raw, "ref")
        assert (answer if answer is not None else "undecodable") == expected


def test_damaged_core_replies_are_read_as_the_mapper_reads_them() -> None:
    """Every record a byte away from a good one (a seeded sample of 3,000): the same
    answer, or undecodable for both."""
    core = CoreBanking(_NoExchange())
    chance = random.Random(8)
    undecodable = 0
    for _ in range(3000):
        damaged = bytearray(chance.choice(_REPLIES[:3]))
        damaged[chance.randrange(len(damaged))] = chance.randrange(256)
        raw = bytes(damaged)
        expected = _mappers_answer(core, raw)
        answer = core._read_outcome(raw, "ref")
        assert (answer if answer is not None else "undecodable") == expected, raw.hex()
        undecodable += expected == "undecodable"
    assert 0 < undecodable < 3000  # both kinds were met
