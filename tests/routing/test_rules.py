"""Route rules: loading and its errors, matching, explain, and a reference implementation."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from canonical_model.messages import (
    CanonicalMessage,
    Card,
    Identifiers,
    MessageFunction,
    MessageKind,
    ProcessingCode,
)
from canonical_model.money import Money
from canonical_model.pan import PanToken, luhn_valid
from routing.rules import (
    AmountBand,
    BinRange,
    Fallback,
    Route,
    RouteRulesError,
    RouteTable,
    RuleSet,
    RuleSpec,
    compile_rules,
    load_rules,
    parse_rules,
    valid_destination,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "routing" / "examples" / "routes.toml"

RULES = """\
token_bin_digits = 6

[fallback]
dead_letter = "no route for this message"

[[rule]]
name = "network"
destination = "hub.network"
kind = "network_management"

[[rule]]
name = "visa-large"
destination = "core.review"
kind = ["financial", "authorization"]
bin = ["400000-499999"]
amount = { min = "5000.00", currency = "EUR" }

[[rule]]
name = "visa"
destination = "core.visa"
kind = ["financial", "authorization", "reversal"]
bin = ["400000-499999"]
processing_code = ["00", "01", "200000"]

[[rule]]
name = "acme-transfers"
destination = "clearing.sepa"
kind = "credit_transfer"
tenant = "acme"
currency = "EUR"
"""


def token(prefix: str, length: int = 16) -> PanToken:
    digits = prefix + "0" * (length - len(prefix) - 1) + "1"
    if luhn_valid(digits):
        digits = digits[:-1] + "2"
    return PanToken(digits)


def message(
    kind: MessageKind = MessageKind.FINANCIAL,
    *,
    function: MessageFunction = MessageFunction.REQUEST,
    tenant: str = "acme",
    bin_prefix: str | None = None,
    processing: str | None = None,
    amount: tuple[str, str] | None = None,
) -> CanonicalMessage:
    return CanonicalMessage(
        kind, function, tenant, Identifiers("m-1"),
        card=Card(token=token(bin_prefix)) if bin_prefix else None,
        processing=(
            ProcessingCode(processing[:2], processing[2:4], processing[4:6]) if processing else None
        ),
        amount=Money.of(*amount) if amount else None,
    )  # fmt: skip


@pytest.fixture(scope="module")
def table() -> RouteTable:
    return compile_rules(parse_rules(RULES, source="routes.toml"))


# --- matching --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("msg", "destination", "rule"),
    [
        (message(MessageKind.NETWORK_MANAGEMENT), "hub.network", "network"),
        (message(bin_prefix="411111", processing="000000", amount=("9000.00", "EUR")),
         "core.review", "visa-large"),
        (message(bin_prefix="411111", processing="000000", amount=("4999.99", "EUR")),
         "core.visa", "visa"),
        (message(bin_prefix="499999", processing="010000", amount=("9000.00", "USD")),
         "core.visa", "visa"),
        (message(MessageKind.REVERSAL, bin_prefix="400000", processing="200000"),
         "core.visa", "visa"),
        (message(MessageKind.CREDIT_TRANSFER, amount=("10.00", "EUR")),
         "clearing.sepa", "acme-transfers"),
    ],
)  # fmt: skip
def test_the_first_matching_rule_wins(
    table: RouteTable, msg: CanonicalMessage, destination: str, rule: str
) -> None:
    route = table.match(msg)
    assert (route.destination, route.rule, route.dead_letter) == (destination, rule, False)
    assert table.explain(msg).route == route


@pytest.mark.parametrize(
    "msg",
    [
        message(bin_prefix="510000", processing="000000"),  # not a Visa BIN
        message(bin_prefix="411111", processing="200001"),  # refund with other account types
        message(bin_prefix="411111", processing="310000"),  # balance enquiry code
        message(processing="000000"),  # no card at all
        message(bin_prefix="411111"),  # no processing code
        message(MessageKind.CREDIT_TRANSFER, tenant="beta", amount=("1.00", "EUR")),
        message(MessageKind.CREDIT_TRANSFER, amount=("1.00", "GBP")),
        message(MessageKind.CREDIT_TRANSFER),  # no amount, so no currency
    ],
)
def test_unmatched_messages_take_the_fallback(table: RouteTable, msg: CanonicalMessage) -> None:
    route = table.match(msg)
    assert route == Route(None, None, "no route for this message")
    assert route.dead_letter


def test_a_fallback_destination() -> None:
    text = RULES.replace('dead_letter = "no route for this message"', 'destination = "unrouted"')
    route = compile_rules(parse_rules(text)).match(message(MessageKind.STATEMENT))
    assert (route.destination, route.rule, route.dead_letter) == ("unrouted", None, False)


def test_amount_bounds_are_inclusive() -> None:
    table = compile_rules(parse_rules("""
        [fallback]
        destination = "other"
        [[rule]]
        name = "band"
        destination = "band"
        amount = { min = "10.00", max = "20.00", currency = "USD" }
    """))  # fmt: skip
    found = {
        value: table.match(message(amount=(value, "USD"))).destination
        for value in ("9.99", "10.00", "15.00", "20.00", "20.01")
    }
    assert found == {"9.99": "other", "10.00": "band", "15.00": "band", "20.00": "band",
                     "20.01": "other"}  # fmt: skip
    assert table.match(message(amount=("15.00", "EUR"))).destination == "other"


def test_eight_digit_bins_when_the_vault_keeps_eight_digits() -> None:
    table = compile_rules(parse_rules("""
        token_bin_digits = 8
        [fallback]
        destination = "other"
        [[rule]]
        name = "narrow"
        destination = "narrow"
        bin = ["42424200-42424249", "51000001"]
        [[rule]]
        name = "wide"
        destination = "wide"
        bin = "424242"
    """))  # fmt: skip
    assert table.match(message(bin_prefix="42424210")).destination == "narrow"
    assert table.match(message(bin_prefix="42424250")).destination == "wide"
    assert table.match(message(bin_prefix="51000001")).destination == "narrow"
    assert table.match(message(bin_prefix="51000002")).destination == "other"


def test_function_and_kind_conditions() -> None:
    table = compile_rules(parse_rules("""
        [fallback]
        destination = "other"
        [[rule]]
        name = "responses"
        destination = "replies"
        function = ["response", "advice_response"]
    """))  # fmt: skip
    response = message(function=MessageFunction.RESPONSE)
    assert table.match(response).destination == "replies"
    assert table.match(message()).destination == "other"


# --- explain ---------------------------------------------------------------------------------


def test_explain_names_the_failed_condition_of_each_earlier_rule(table: RouteTable) -> None:
    msg = message(bin_prefix="411111", processing="000000", amount=("25.00", "EUR"))
    assert str(table.explain(msg)).splitlines() == [
        "rule 1 'network': no match",
        "  kind: financial is not one of network_management",
        "rule 2 'visa-large': no match",
        "  amount: 25.00 EUR is below the minimum 5000.00 EUR",
        "rule 3 'visa': MATCH -> core.visa",
        "  kind: financial is one of authorization, financial, reversal",
        "  processing_code: 000000 (type 00) matches one of 00, 01, 200000",
        "  bin: 411111 is in 400000-499999",
    ]


def test_explain_of_an_unmatched_message_lists_every_rule_and_the_fallback(
    table: RouteTable,
) -> None:
    msg = message(MessageKind.CREDIT_TRANSFER, tenant="beta", amount=("10.00", "GBP"))
    explanation = table.explain(msg)
    assert [c.name for c in explanation.checks] == [
        "network", "visa-large", "visa", "acme-transfers"
    ]  # fmt: skip
    assert [str(c) for c in explanation.checks[3].failed] == [
        "tenant: beta is not one of acme",
        "currency: GBP is not one of EUR",
    ]
    assert str(explanation).splitlines()[-1] == (
        "no rule matched: fallback -> the dead-letter queue (no route for this message)"
    )


@pytest.mark.parametrize(
    ("msg", "line"),
    [
        (message(), "  bin: the message has no card token"),
        (message(bin_prefix="411111"), "  processing_code: the message has no processing code"),
        (message(bin_prefix="510510", processing="000000"),
         "  bin: 510510 is in none of 400000-499999"),
    ],
)  # fmt: skip
def test_explain_says_what_the_message_lacks(
    table: RouteTable, msg: CanonicalMessage, line: str
) -> None:
    assert line in str(table.explain(msg)).splitlines()


def test_amount_explanations() -> None:
    table = compile_rules(parse_rules("""
        [fallback]
        destination = "other"
        [[rule]]
        name = "band"
        destination = "band"
        amount = { min = "10.00", max = "20.00", currency = "USD" }
    """))  # fmt: skip

    def said(msg: CanonicalMessage) -> str:
        return str(table.explain(msg).checks[0].conditions[0])

    assert said(message()) == "amount: the message has no amount"
    assert said(message(amount=("5.00", "EUR"))) == (
        "amount: 5.00 EUR is not in USD, the currency of the rule's amount"
    )
    assert said(message(amount=("25.00", "USD"))) == (
        "amount: 25.00 USD is above the maximum 20.00 USD"
    )
    assert said(message(amount=("15.00", "USD"))) == "amount: 10.00 <= 15.00 <= 20.00 USD"


# --- load errors -----------------------------------------------------------------------------

HEAD = '[fallback]\ndestination = "unrouted"\n\n[[rule]]\nname = "r1"\ndestination = "q1"\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[fallback\n", "routes.toml:1: not valid TOML: "),
        ('[[rule]]\nname = "a"\ndestination = "q"\n',
         "routes.toml: no [fallback] table: say where unmatched messages go"),
        ('[fallback]\ndestination = "a"\ndead_letter = "b"\n',
         "routes.toml:1: key 'fallback': expected exactly one of destination"),
        ('[fallback]\ndestination = "amq.direct"\n',
         "routes.toml:1: key 'fallback': 'amq.direct' is not a queue name"),
        ('routes = 1\n[fallback]\ndestination = "a"\n',
         "routes.toml:1: key 'routes': unknown top-level key; expected token_bin_digits"),
        ('token_bin_digits = 7\n[fallback]\ndestination = "a"\n',
         "routes.toml:1: key 'token_bin_digits': expected 6 or 8, got 7"),
        (HEAD + 'kind = "purchase"\n',
         "routes.toml:7: rule 1 'r1': key 'kind': 'purchase' is not one of authorization, "
         "financial, reversal"),
        (HEAD + 'function = "reply"\n', "routes.toml:7: rule 1 'r1': key 'function': 'reply'"),
        (HEAD + 'kind = "finanical"\n',
         "balance_enquiry, statement; did you mean 'financial'?"),
        (HEAD + "tenant = []\n",
         "routes.toml:7: rule 1 'r1': key 'tenant': expected at least one value"),
        (HEAD + "tenant = 5\n",
         "routes.toml:7: rule 1 'r1': key 'tenant': expected a string or a list of strings, "
         "got an integer"),
        (HEAD + 'tenant = "a b"\n', "routes.toml:7: rule 1 'r1': key 'tenant': 'a b' is not"),
        (HEAD + 'bin = "4000"\n',
         "routes.toml:7: rule 1 'r1': key 'bin': '4000' is not a BIN: expected 6 digits"),
        (HEAD + 'bin = "42424242"\n', "8-digit BINs need token_bin_digits = 8"),
        (HEAD + 'bin = "499999-400000"\n', "'499999-400000': the range starts after it ends"),
        (HEAD + 'processing_code = "0"\n',
         "routes.toml:7: rule 1 'r1': key 'processing_code': '0' is not a processing code"),
        (HEAD + 'currency = "EURO"\n',
         "routes.toml:7: rule 1 'r1': key 'currency': 'EURO' is not an ISO 4217 currency code"),
        (HEAD + 'amount = "100"\n', "key 'amount': expected a table like { min"),
        (HEAD + 'amount = { min = "1.00" }\n', "key 'amount': needs a currency"),
        (HEAD + 'amount = { currency = "EUR" }\n', "key 'amount': needs min, max or both"),
        (HEAD + 'amount = { min = 1, currency = "EUR" }\n',
         "key 'amount': min: expected a decimal string like \"100.00\", got an integer"),
        (HEAD + 'amount = { min = "1.005", currency = "EUR" }\n',
         "key 'amount': min: 1.005 has more decimal places than EUR allows (2)"),
        (HEAD + 'amount = { min = "9.00", max = "1.00", currency = "EUR" }\n',
         "key 'amount': min 9.00 is above max 1.00"),
        (HEAD + 'amount = { low = "1.00", currency = "EUR" }\n', "unknown key 'low'"),
        (HEAD + 'colour = "red"\n',
         "routes.toml:7: rule 1 'r1': key 'colour': unknown key; a rule takes name, destination"),
        (HEAD.replace('"q1"', '"to core"'),
         "routes.toml:6: rule 1 'r1': key 'destination': 'to core' is not a destination"),
        (HEAD.replace('name = "r1"\n', ""), "routes.toml:4: rule 1: key 'name': expected a"),
        (HEAD + '\n[[rule]]\nname = "r1"\ndestination = "q2"\n',
         "routes.toml:9: rule 2 'r1': key 'name': the name is already used by rule 1"),
        (HEAD + '\n[[rule]]\nname = "r2"\ndestination = "q2"\ntenant = "a"\n',
         "routes.toml:8: rule 2 'r2': can never match: rule 1 'r1' before it has no condition"),
        (HEAD + 'tenant = ["b", "a"]\n[[rule]]\nname = "r2"\ndestination = "q2"\n'
         'tenant = ["a", "b", "a"]\n',
         "routes.toml:8: rule 2 'r2': can never match: rule 1 'r1' before it has the same "
         "conditions"),
    ],
)  # fmt: skip
def test_bad_rules_are_refused_with_file_line_rule_key_and_expectation(
    text: str, expected: str
) -> None:
    with pytest.raises(RouteRulesError) as caught:
        parse_rules(text, source="routes.toml")
    assert expected in str(caught.value)


def test_the_error_carries_its_parts() -> None:
    with pytest.raises(RouteRulesError) as caught:
        parse_rules(HEAD + 'currency = "XYZ"\n', source="r.toml")
    error = caught.value
    assert (error.source, error.line, error.rule_index, error.rule_name, error.key) == (
        "r.toml", 7, 1, "r1", "currency",
    )  # fmt: skip


def test_load_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "none.toml"
    with pytest.raises(RouteRulesError, match=r"none\.toml: cannot read"):
        load_rules(missing)
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'[fallback]\ndestination = "caf\xe9"\n')
    with pytest.raises(RouteRulesError, match=r"latin\.toml: not UTF-8"):
        load_rules(latin)


def test_the_example_file_loads() -> None:
    rules = load_rules(EXAMPLE)
    assert rules.source == str(EXAMPLE)
    assert len(rules.rules) >= 5
    assert rules.fallback.dead_letter


def test_destinations() -> None:
    assert valid_destination("core.visa:eu-1_b")
    assert not valid_destination("")
    assert not valid_destination(".hidden")
    assert not valid_destination("amq.topic")
    assert not valid_destination("x" * 256)
    assert valid_destination("x" * 255)


# --- against a reference implementation ------------------------------------------------------


def reference_route(rules: RuleSet, msg: CanonicalMessage) -> str | None:
    """What the module docstring says, written as plainly as possible."""
    digits = rules.token_bin_digits
    for rule in rules.rules:
        if rule.kinds and msg.kind not in rule.kinds:
            continue
        if rule.functions and msg.function not in rule.functions:
            continue
        if rule.tenants and msg.tenant not in rule.tenants:
            continue
        if rule.bins:
            card_token = msg.card.token if msg.card else None
            if card_token is None:
                continue
            bin_value = card_token.value[:digits]
            if not any(
                r.first.ljust(digits, "0") <= bin_value <= r.last.ljust(digits, "9")
                for r in rule.bins
            ):
                continue
        if rule.processing_codes:
            pc = msg.processing
            if pc is None:
                continue
            full = pc.transaction_type + pc.from_account_type + pc.to_account_type
            if (
                pc.transaction_type not in rule.processing_codes
                and full not in rule.processing_codes
            ):
                continue
        if rule.currencies and (
            msg.amount is None or msg.amount.currency.alpha not in rule.currencies
        ):
            continue
        if rule.amount is not None:
            band = rule.amount
            if msg.amount is None or msg.amount.currency.alpha != band.currency:
                continue
            if band.minimum is not None and msg.amount.amount < band.minimum:
                continue
            if band.maximum is not None and msg.amount.amount > band.maximum:
                continue
        return rule.destination
    return rules.fallback.destination


BIN_PREFIXES = ["400000", "411111", "499999", "510000", "555555", "222100"]
CURRENCIES = ["EUR", "USD", "JPY"]


@st.composite
def bin_ranges(draw: st.DrawFn) -> BinRange:
    first, last = sorted(draw(st.lists(st.sampled_from(BIN_PREFIXES), min_size=2, max_size=2)))
    return BinRange(first, last)


@st.composite
def amount_bands(draw: st.DrawFn) -> AmountBand:
    code = draw(st.sampled_from(CURRENCIES))
    ends = [draw(st.none() | st.integers(0, 300)) for _ in range(2)]
    if ends[0] is None and ends[1] is None:
        ends[0] = 100
    low, high = ends
    if low is not None and high is not None and low > high:
        low, high = high, low

    def money(value: int | None) -> Decimal | None:
        return None if value is None else Money.of(value, code).amount

    return AmountBand(code, money(low), money(high))


@st.composite
def rule_specs(draw: st.DrawFn, index: int) -> RuleSpec:
    def some(values: st.SearchStrategy[object], size: int = 3) -> tuple[object, ...]:
        return tuple(draw(st.lists(values, max_size=size, unique=True)))

    return RuleSpec(
        name=f"r{index}",
        destination=f"q{index}",
        kinds=some(st.sampled_from(list(MessageKind))),  # type: ignore[arg-type]
        functions=some(st.sampled_from(list(MessageFunction)), 2),  # type: ignore[arg-type]
        tenants=some(st.sampled_from(["acme", "beta"]), 1),  # type: ignore[arg-type]
        bins=some(bin_ranges(), 2),  # type: ignore[arg-type]
        processing_codes=some(st.sampled_from(["00", "01", "31", "000000", "003000"]), 2),  # type: ignore[arg-type]
        currencies=some(st.sampled_from(CURRENCIES), 2),  # type: ignore[arg-type]
        amount=draw(st.none() | amount_bands()),
    )


@st.composite
def rule_sets(draw: st.DrawFn) -> RuleSet:
    count = draw(st.integers(0, 6))
    return RuleSet(tuple(draw(rule_specs(i)) for i in range(count)), Fallback("fallback"))


@st.composite
def messages(draw: st.DrawFn) -> CanonicalMessage:
    code = draw(st.sampled_from(CURRENCIES))
    bin_prefix = draw(st.none() | st.sampled_from(BIN_PREFIXES))
    processing = draw(st.none() | st.sampled_from(["000000", "003000", "010000", "310000"]))
    amount = draw(st.none() | st.integers(0, 300))
    return message(
        draw(st.sampled_from(list(MessageKind))),
        function=draw(st.sampled_from(list(MessageFunction))),
        tenant=draw(st.sampled_from(["acme", "beta"])),
        bin_prefix=bin_prefix,
        processing=processing,
        amount=None if amount is None else (str(Money.of(amount, code).amount), code),
    )


@settings(max_examples=150, deadline=None)
@given(rules=rule_sets(), msgs=st.lists(messages(), min_size=1, max_size=8))
def test_match_and_explain_agree_with_the_reference(
    rules: RuleSet, msgs: list[CanonicalMessage]
) -> None:
    table = compile_rules(rules)
    for msg in msgs:
        route = table.match(msg)
        assert route.destination == reference_route(rules, msg)
        explanation = table.explain(msg)
        assert explanation.route == route
        assert [c.matched for c in explanation.checks].count(True) == (route.rule is not None)
        for check in explanation.checks[:-1] if route.rule else explanation.checks:
            assert check.failed, check


def test_a_ruleset_is_plain_data() -> None:
    rules = parse_rules(RULES)
    assert dataclasses.replace(rules, source="x").rules == rules.rules
    assert rules.rules[1].amount == AmountBand("EUR", Decimal("5000.00"), None)
