"""``isobridge demo``, the running hub: every main flow, on the embedded defaults.

Everything runs in this process, on a temporary directory: ``mainframe_sim`` (its ledger in
SQLite) on a TCP port, the hub (:class:`hub.service.HubService`: the ``memory://`` transport,
the SQLite vault, an ISO 8583 edge, the core banking worker and its saga runner, which
forwards the reversals), and the traffic:

1. **Card payments** (main flow 1): terminals send ISO 8583 0200 purchases over TCP
   concurrently (some above the balance: ``51``; some to an unknown account: ``14``); a
   live line shows the rate, latencies and outcomes; then the mainframe's ledger is
   reconciled against the approvals. The terminals' connections to the edge and the hub's
   to the mainframe are mutual TLS 1.3, on a throwaway CA (:mod:`hub.certs`, as
   ``isobridge certs dev`` writes it); a terminal without a client certificate and one
   offering TLS 1.2 are refused.
2. **Store-and-forward**: the mainframe drops its replies for a moment; the terminals get
   ``91`` at once, the hub stores a reversal of each posting whose outcome it lost, and
   forwards it when the mainframe answers again.
3. **Inbound clearing** (main flow 3): a pacs.008 with credit transfers is credited and
   answered with a pacs.002 (``ACSC``, or ``RJCT`` ``AC01`` for an unknown account).
4. **End of day** (main flow 4): the mainframe's fixed-width statement extract becomes a
   camt.053, valid against its XSD.

Every request's path is in the journal (shown for one payment whose reply was lost), and
the journal's hash chain is verified at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import io
import ssl
import statistics
import struct
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import TextIO

import iso8583

from adapters.base import BatchAdapter, EncodeContext
from adapters.iso8583.specs import SPECS
from adapters.iso20022.catalog import MESSAGE_TYPES
from adapters.iso20022.safexml import parse_xml
from adapters.iso20022.validation import SchemaValidator
from canonical_model.messages import (
    Account,
    Agent,
    Agents,
    CanonicalMessage,
    Identifiers,
    MessageFunction,
    MessageKind,
    Party,
    PaymentTerms,
)
from canonical_model.money import Money
from hub.certs import create_dev_certificates
from hub.clearing import ClearingInbound
from hub.config_file import (
    ClientTlsConfig,
    ListenerConfig,
    MainframeConfig,
    TlsConfig,
    load_config,
)
from hub.service import HubService
from hub.tls import client_context
from journal import format_trace
from mainframe_sim.faults import FaultPlan, Faults
from mainframe_sim.ledger import Ledger
from mainframe_sim.records import Records
from mainframe_sim.seed import SEED_ACCOUNTS, seed_ledger
from mainframe_sim.server import MainframeServer
from mainframe_sim.statement import write_statement
from mainframe_sim.tls import server_context as mainframe_tls

__all__ = ["run_hub_demo"]

_SPEC = SPECS["ascii"]
_CARDS = ("4111111111111111", "5500005555555559", "4012888888881881", "5105105105105100")
_UNKNOWN_ACCOUNT = "DE02100100109307118603"
_TENANT = "demo-bank"


@dataclasses.dataclass
class _Traffic:
    sent: int = 0
    latencies: list[float] = dataclasses.field(default_factory=list)
    codes: Counter[str] = dataclasses.field(default_factory=Counter)
    approved_minor: Counter[str] = dataclasses.field(default_factory=Counter)


def _purchase(stan: int, minor: int, account: str, card: str, terminal: str) -> bytes:
    fields = {
        "t": "0200", "2": card, "3": "000000", "4": f"{minor:012d}", "7": "1129120000",
        "11": f"{stan % 1_000_000:06d}", "12": "120000", "13": "1129",
        "37": f"{stan:012d}", "41": terminal, "42": "DEMOMERCHANT001", "49": "978",
        "102": account,
    }  # fmt: skip
    raw, _ = iso8583.encode(fields, _SPEC)
    return bytes(raw)


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes
) -> dict[str, str]:
    writer.write(struct.pack(">H", len(payload)) + payload)
    await writer.drain()
    (length,) = struct.unpack(">H", await reader.readexactly(2))
    decoded, _ = iso8583.decode(await reader.readexactly(length), _SPEC)
    return {key: str(value) for key, value in decoded.items()}


async def _terminal(
    port: int,
    number: int,
    count: int,
    accounts: list[str],
    traffic: _Traffic,
    tls: ssl.SSLContext,
) -> None:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=tls, server_hostname="localhost"
    )
    terminal = f"DEMO{number:04d}"
    try:
        for n in range(count):
            stan = number * 100_000 + n + 1
            account = accounts[(number + n) % len(accounts)]
            minor = 500 + (stan * 37) % 4_000
            if n % 10 == 9:
                minor = 99_999_999  # far above any balance: 51
            if n % 25 == 24:
                account = _UNKNOWN_ACCOUNT  # 14
            started = time.perf_counter()
            traffic.sent += 1
            answer = await _exchange(
                reader, writer, _purchase(stan, minor, account, _CARDS[n % 4], terminal)
            )
            traffic.latencies.append(time.perf_counter() - started)
            code = answer.get("39", "??")
            traffic.codes[code] += 1
            if code == "00":
                traffic.approved_minor[account] += minor
    finally:
        writer.close()
        await writer.wait_closed()


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _live(out: TextIO, traffic: _Traffic, started: float, done: asyncio.Event) -> None:
    while not done.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 0.5)
        _status_line(out, traffic, started)


def _status_line(out: TextIO, traffic: _Traffic, started: float) -> None:
    elapsed = time.perf_counter() - started
    answered = len(traffic.latencies)
    recent = traffic.latencies[-2000:]
    codes = traffic.codes
    p50, p99 = _percentile(recent, 0.5) * 1000, _percentile(recent, 0.99) * 1000
    out.write(
        f"  {elapsed:5.1f} s  {answered:>5} answered  {answered / max(elapsed, 1e-9):7.0f}/s"
        f"  p50 {p50:5.1f} ms  p99 {p99:6.1f} ms"
        f"  approved {codes['00']:>5}  declined {sum(codes.values()) - codes['00']:>4}\n"
    )
    out.flush()


def _rule(out: TextIO, title: str) -> None:
    out.write(f"\n{'=' * 8} {title} {'=' * max(0, 70 - len(title))}\n")


def _transfer(number: int, iban: str, amount: str) -> CanonicalMessage:
    return CanonicalMessage(
        MessageKind.FINANCIAL,
        MessageFunction.REQUEST,
        _TENANT,
        Identifiers(
            f"ct-{number}",
            end_to_end_id=f"DEMO-E2E-{number}",
            instruction_id=f"DEMO-INSTR-{number}",
            uetr=f"8a562c67-ca16-48ba-b074-65581be6f0{number:02d}",
            source_message_id="DEMO-PACS008-1",
        ),
        transmitted_at=dt.datetime.now(dt.UTC),
        settlement_date=dt.date.today(),
        amount=Money.of(amount, "EUR"),
        debtor=Party(name="Clearing Customer"),
        debtor_account=Account(iban="FR7630006000011234567890189"),
        creditor=Party(name=f"Account holder {number}"),
        creditor_account=Account(iban=iban),
        agents=Agents(
            debtor_agent=Agent(bic="AGRIFRPPXXX"),
            creditor_agent=Agent(bic="DEUTDEFFXXX"),
            instructing=Agent(bic="AGRIFRPPXXX"),
            instructed=Agent(bic="DEUTDEFFXXX"),
        ),
        payment_terms=PaymentTerms(settlement_method="CLRG", charge_bearer="SLEV"),
    )


async def _refused(port: int, tls: ssl.SSLContext) -> bool:
    """Whether a terminal connecting with ``tls`` is refused before any reply."""
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=tls, server_hostname="localhost"
        )
    except (ssl.SSLError, ConnectionError):
        return True
    try:
        await _exchange(reader, writer, _purchase(1, 100, _UNKNOWN_ACCOUNT, _CARDS[0], "DEMO9999"))
    except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError):
        return True
    finally:
        writer.close()
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            await writer.wait_closed()
    return False


async def _demo(out: TextIO, home: Path, terminals: int, per_terminal: int) -> bool:
    ledger = Ledger.open(f"sqlite:///{home / 'mainframe.db'}")
    seed_ledger(ledger)
    faults = Faults()
    certs = create_dev_certificates(home / "certs", days=1)
    ca, leaves = certs.ca.cert, certs.leaves
    mainframe = MainframeServer(
        ledger,
        faults=faults,
        tls=mainframe_tls(leaves["mainframe"].cert, leaves["mainframe"].key, ca),
    )
    _, port = await mainframe.start("127.0.0.1", 0)
    base = load_config(None, environ={"ISOBRIDGE_HOME": str(home / "hub")})
    edge_tls = TlsConfig(leaves["hub-edge"].cert, leaves["hub-edge"].key, ca)
    link_tls = ClientTlsConfig(ca, leaves["hub-client"].cert, leaves["hub-client"].key)
    config = dataclasses.replace(
        base,
        tenant=_TENANT,
        listeners=(
            ListenerConfig(name="pos", port=0, tenant=_TENANT, request_timeout=5.0, tls=edge_tls),
        ),
        mainframe=MainframeConfig(
            host="localhost",
            port=port,
            timeout=0.5,
            connections=4,
            failure_threshold=50,
            tls=link_tls,
        ),
    )
    terminal_tls = client_context(ca, leaves["acquirer"].cert, leaves["acquirer"].key)
    accounts = [a.number for a in SEED_ACCOUNTS if a.currency == "EUR" and a.status == "open"]
    ok = True
    try:
        async with HubService(config) as service:
            edge_port = service.edges[0].port
            out.write(
                f"mainframe_sim on 127.0.0.1:{port} (len2, cp037), ledger {len(SEED_ACCOUNTS)}"
                f" seeded accounts; hub edge on 127.0.0.1:{edge_port} (len2-binary, ascii);"
                f" transport memory://\n"
                "mutual TLS 1.3 on the edge and on the mainframe link; every certificate from a"
                " throwaway CA (isobridge certs dev)\n"
            )
            before = {number: ledger.balances(number) for number in accounts}

            _rule(out, "1. card payments: 0200 over TCP -> debit posting -> 0210")
            out.write(f"  {terminals} terminals x {per_terminal} purchases, concurrently\n")
            traffic = _Traffic()
            started = time.perf_counter()
            done = asyncio.Event()
            live = asyncio.create_task(_live(out, traffic, started, done))
            await asyncio.gather(
                *(
                    _terminal(edge_port, n + 1, per_terminal, accounts, traffic, terminal_tls)
                    for n in range(terminals)
                )
            )
            done.set()
            await live
            elapsed = time.perf_counter() - started
            codes = ", ".join(f"{code}: {n}" for code, n in sorted(traffic.codes.items()))
            out.write(
                f"  done: {len(traffic.latencies)} answered in {elapsed:.1f} s"
                f" ({len(traffic.latencies) / elapsed:.0f}/s), p50"
                f" {statistics.median(traffic.latencies) * 1000:.1f} ms, p99"
                f" {_percentile(traffic.latencies, 0.99) * 1000:.1f} ms; field 39: {codes}\n"
            )
            mismatched = 0
            for number in accounts:
                start, end = before[number], ledger.balances(number)
                if start is None or end is None:
                    raise RuntimeError(
                        "internal error: expected start is not None and end is not None"
                    )
                if start.ledger - end.ledger != traffic.approved_minor[number]:
                    mismatched += 1
            check = ledger.check()
            out.write(
                f"  reconciliation: {len(accounts)} accounts, debits posted = approvals"
                f" {'on every one' if not mismatched else f'MISMATCH on {mismatched}'};"
                f" ledger balanced (double entry): {check.balanced}\n"
            )
            ok &= not mismatched and check.balanced
            no_certificate = client_context(ca)
            old_protocol = client_context(ca, leaves["acquirer"].cert, leaves["acquirer"].key)
            old_protocol.minimum_version = ssl.TLSVersion.TLSv1_2
            old_protocol.maximum_version = ssl.TLSVersion.TLSv1_2
            refused = [await _refused(edge_port, no_certificate)]
            refused.append(await _refused(edge_port, old_protocol))
            deadline = time.perf_counter() + 5
            while service.edges[0].stats.tls_refused < 2 and time.perf_counter() < deadline:
                await asyncio.sleep(0.01)
            out.write(
                "  a terminal without a client certificate, one offering TLS 1.2: refused"
                f" {sum(refused)} of 2 (the edge logs each with the peer and the reason)\n"
            )
            ok &= all(refused) and service.edges[0].stats.tls_refused == 2

            _rule(out, "2. store-and-forward: replies lost, 91 at once, reversals forwarded")
            if service.reversals is None:
                raise RuntimeError("internal error: expected service.reversals is not None")
            faults.set(FaultPlan(drop=1.0))
            lost = _Traffic()
            await _terminal(edge_port, 90, 3, accounts[:1], lost, terminal_tls)
            stored = len(service.reversals.pending())
            out.write(
                f"  mainframe drops every reply: 3 purchases answered"
                f" {', '.join(sorted(lost.codes.elements()))}; {stored} reversal(s) stored\n"
            )
            faults.set(FaultPlan())
            deadline = time.perf_counter() + 15
            while service.reversals.pending() and time.perf_counter() < deadline:
                await asyncio.sleep(0.2)
            left = len(service.reversals.pending())
            restored = ledger.balances(accounts[0])
            expected = before[accounts[0]]
            if restored is None or expected is None:
                raise RuntimeError(
                    "internal error: expected restored is not None and expected is not None"
                )
            unchanged = expected.ledger - restored.ledger == traffic.approved_minor[accounts[0]]
            out.write(
                f"  mainframe answers again: {stored - left} reversal(s) acknowledged, {left}"
                f" pending; the lost postings are undone: {unchanged}\n"
            )
            ok &= left == 0 and unchanged

            await asyncio.sleep(0.2)  # the journal writer's group commit
            if service.journal is None:
                raise RuntimeError("internal error: expected service.journal is not None")
            rrn = f"{90 * 100_000 + 1:012d}"  # the first purchase whose reply was lost
            out.write(f"  the journal (isobridge trace {rrn}):\n")
            for line in format_trace(service.journal.trace(rrn)).splitlines():
                out.write(f"    {line}\n")

            _rule(out, "3. inbound clearing: pacs.008 -> credit postings -> pacs.002")
            if service.core is None:
                raise RuntimeError("internal error: expected service.core is not None")
            hub = service.hub
            pacs008 = hub.registry.get("iso20022:pacs.008")
            if not isinstance(pacs008, BatchAdapter):
                raise RuntimeError("internal error: expected isinstance(pacs008, BatchAdapter)")
            document = pacs008.encode_batch(
                [
                    _transfer(1, accounts[1], "150.00"),
                    _transfer(2, accounts[2], "75.50"),
                    _transfer(3, _UNKNOWN_ACCOUNT, "20.00"),
                ],
                EncodeContext(_TENANT),
            )
            outcome = await ClearingInbound(service.core, hub, tenant=_TENANT).process(document)
            report = parse_xml(outcome.status_report)
            statuses = [
                (e.findtext("{*}OrgnlEndToEndId"), e.findtext("{*}TxSts"),
                 e.findtext("{*}StsRsnInf/{*}Rsn/{*}Cd"))
                for e in report.iter("{*}TxInfAndSts")
            ]  # fmt: skip
            out.write(f"  pacs.008 with 3 transfers ({len(document)} B) -> pacs.002:\n")
            for end_to_end, tx_status, reason in statuses:
                out.write(f"    {end_to_end}: {tx_status}{f' {reason}' if reason else ''}\n")
            ok &= outcome.credited == 2 and outcome.rejected == 1

            _rule(out, "4. end of day: fixed-width statement extract -> camt.053")
            extract = home / "statement.fb120"
            with extract.open("wb") as sink:
                totals = write_statement(ledger, Records(), dt.date.today(), sink)
            camt = home / "statement.camt053.xml"
            from hub.cli import main as cli

            status = cli(
                [
                    "convert", str(extract), "--copybook", "corebank_statement",
                    "--mapping", "corebank-statement", "--to", "camt.053",
                    "--output", str(camt),
                ],
                stdout=io.StringIO(), stderr=io.StringIO(),
            )  # fmt: skip
            problems = SchemaValidator().validate(
                parse_xml(camt.read_bytes()), MESSAGE_TYPES["camt.053.001.08"]
            )
            entries = camt.read_bytes().count(b"<Ntry>")
            out.write(
                f"  extract: {extract.stat().st_size:,} B of 120-byte EBCDIC records"
                f" ({totals.accounts} accounts, {totals.details} postings) -> camt.053:"
                f" {camt.stat().st_size:,} B, {entries} entries,"
                f" XSD-valid: {status == 0 and not problems}\n"
            )
            ok &= status == 0 and not problems and entries == totals.details

            _rule(out, "hub summary")
            journal_report = await asyncio.to_thread(service.journal.verify)
            ok &= journal_report.ok
            edge = service.edges[0].stats
            core = service.core.stats
            parked = len(service.transport.dead_letters("unroutable")) + sum(
                len(service.transport.dead_letters(name)) for name in service.core_destinations
            )
            out.write(
                f"  edge: {edge.connections_total} connections (TLS 1.3, {edge.tls_refused}"
                f" handshakes refused), {edge.requests} requests, {edge.replies} replies,"
                f" {edge.format_errors} format errors\n"
                f"  core: {core.requests} requests, {core.approved} approved,"
                f" {core.declined} declined, {core.unknown_outcome} unknown outcomes"
                f" (reversed), {core.refused} refused before posting\n"
                f"  dead-letters: {parked}\n"
                f"  journal: {service.journal_writer.written if service.journal_writer else 0}"
                f" events, hash chain and checkpoints verified: {journal_report.ok}\n"
            )
    finally:
        await mainframe.close()
        ledger.close()
    return ok


def run_hub_demo(out: TextIO, *, terminals: int = 8, per_terminal: int = 150) -> bool:
    """Run the demo on a temporary directory; whether every check held."""
    with tempfile.TemporaryDirectory(prefix="isobridge-hub-demo-") as home:
        return asyncio.run(_demo(out, Path(home), terminals, per_terminal))
