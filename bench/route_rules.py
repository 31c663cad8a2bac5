"""Benchmark: compiled route rules against a hand-written if-chain doing the same match.

The rules are the example file (``routing/examples/routes.toml``, 7 rules and a dead-letter
fallback). The floor is ``hand_written_route``: the same rules as plain Python, the way one
would code them without a rules file. Both run over the same mix of messages (card
authorizations, purchases, refunds, balance enquiries and reversals on several BINs, credit
transfers of two tenants, responses, network management), and must agree on every message
before anything is timed. Also timed, for scale: ``explain``.

Run::

    .venv/bin/python -m bench.route_rules [--messages 2000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path

from canonical_model.messages import (
    Account,
    CanonicalMessage,
    Card,
    Identifiers,
    MessageFunction,
    MessageKind,
    ProcessingCode,
)
from canonical_model.money import Money
from canonical_model.pan import PanToken, luhn_valid
from routing.rules import compile_rules, load_rules

EXAMPLE = Path(__file__).resolve().parent.parent / "routing" / "examples" / "routes.toml"
DEAD_LETTER = None

_CARD_KINDS = frozenset({MessageKind.AUTHORIZATION, MessageKind.FINANCIAL, MessageKind.REVERSAL})
_LARGE = Decimal("10000.00")


def hand_written_route(message: CanonicalMessage) -> str | None:
    """``routes.toml`` written by hand: the floor."""
    kind = message.kind
    if kind is MessageKind.NETWORK_MANAGEMENT:
        return "hub.network"
    if message.function in (MessageFunction.RESPONSE, MessageFunction.ADVICE_RESPONSE):
        return "hub.replies"
    amount = message.amount
    if (
        kind in (MessageKind.AUTHORIZATION, MessageKind.FINANCIAL)
        and amount is not None
        and amount.currency.alpha == "EUR"
        and amount.amount >= _LARGE
    ):
        return "core.review"
    processing = message.processing
    if kind in _CARD_KINDS and processing is not None:
        card = message.card
        if (
            processing.transaction_type in ("00", "01", "20")
            and card is not None
            and card.token is not None
        ):
            bin_value = int(card.token.value[:6])
            if (
                400000 <= bin_value <= 499999
                or 510000 <= bin_value <= 559999
                or 222100 <= bin_value <= 272099
            ):
                return "core.cards"
    if (
        kind in (MessageKind.FINANCIAL, MessageKind.BALANCE_ENQUIRY)
        and processing is not None
        and processing.transaction_type == "31"
    ):
        return "core.balances"
    account_kinds = (MessageKind.CREDIT_TRANSFER, MessageKind.RETURN, MessageKind.CANCELLATION)
    if (
        kind in account_kinds
        and message.tenant == "acme"
        and amount is not None
        and amount.currency.alpha == "EUR"
    ):
        return "clearing.sepa"
    if kind in account_kinds or kind is MessageKind.STATUS_REPORT:
        return "core.accounts"
    return DEAD_LETTER


def _token(rng: random.Random, prefix: str) -> PanToken:
    digits = prefix + "".join(rng.choice("0123456789") for _ in range(16 - len(prefix)))
    if luhn_valid(digits):
        digits = digits[:-1] + str((int(digits[-1]) + 1) % 10)
    return PanToken(digits)


def messages(count: int, seed: int = 7) -> list[CanonicalMessage]:
    """A reproducible mix of card-rail and account-rail messages."""
    rng = random.Random(seed)
    bins = ["411111", "424242", "510510", "555555", "222300", "601100", "356600"]
    result = []
    for number in range(count):
        ids = Identifiers(f"m-{number}")
        tenant = rng.choice(["acme", "beta"])
        draw = rng.random()
        if draw < 0.6:
            kind = rng.choice([MessageKind.AUTHORIZATION, MessageKind.FINANCIAL,
                               MessageKind.REVERSAL])  # fmt: skip
            function = MessageFunction.RESPONSE if rng.random() < 0.1 else MessageFunction.REQUEST
            code = rng.choice(["00", "00", "00", "01", "20", "31"])
            amount = Money.of(f"{rng.randint(1, 1_500_000) / 100:.2f}", rng.choice(["EUR", "USD"]))
            result.append(CanonicalMessage(
                kind, function, tenant, ids,
                processing=ProcessingCode(code), amount=amount,
                card=Card(token=_token(rng, rng.choice(bins))),
            ))  # fmt: skip
        elif draw < 0.95:
            kind = rng.choice([MessageKind.CREDIT_TRANSFER, MessageKind.RETURN,
                               MessageKind.STATUS_REPORT])  # fmt: skip
            amount = Money.of(f"{rng.randint(1, 900_000) / 100:.2f}", rng.choice(["EUR", "GBP"]))
            result.append(CanonicalMessage(
                kind, MessageFunction.REQUEST, tenant, ids, amount=amount,
                debtor_account=Account(iban="DE89370400440532013000"),
            ))  # fmt: skip
        else:
            result.append(CanonicalMessage(
                MessageKind.NETWORK_MANAGEMENT, MessageFunction.REQUEST, tenant, ids,
            ))  # fmt: skip
    return result


def _rate(route: Callable[[CanonicalMessage], object], batch: Sequence[CanonicalMessage]) -> float:
    start = time.perf_counter()
    for message in batch:
        route(message)
    return len(batch) / (time.perf_counter() - start)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)

    table = compile_rules(load_rules(EXAMPLE))
    batch = messages(args.messages)
    for message in batch:
        expected = hand_written_route(message)
        found = table.match(message).destination
        if found != expected:
            print(f"disagree on {message.ids.message_id}: {found} != {expected}", file=sys.stderr)
            return 1
    used = {table.match(m).rule for m in batch}
    print(f"{len(batch)} messages, {len(used)} of {len(table.rules.rules) + 1} routes used")

    timings: dict[str, list[float]] = {"if-chain": [], "match": [], "explain": []}
    for _ in range(args.rounds):
        timings["if-chain"].append(_rate(hand_written_route, batch))
        timings["match"].append(_rate(table.match, batch))
        timings["explain"].append(_rate(table.explain, batch[: max(1, len(batch) // 10)]))
    floor = statistics.median(timings["if-chain"])
    print(f"{'path':<34} {'matches/s':>12} {'us/match':>9} {'x floor':>8}")
    for name, label in (
        ("if-chain", "hand-written if-chain (floor)"),
        ("match", "RouteTable.match"),
        ("explain", "RouteTable.explain"),
    ):
        rate = statistics.median(timings[name])
        print(f"{label:<34} {rate:>12,.0f} {1e6 / rate:>9.2f} {floor / rate:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
