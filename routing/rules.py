"""Route rules as data: a TOML file that says where each canonical message goes.

The file is a list of rules and a fallback. **The first rule that matches wins**, in the order
of the file: there are no priorities, so reading the file top to bottom is reading what the
hub does. A rule matches when every condition it states holds; a key it leaves out is not a
condition. The ``[fallback]`` table is required: it names the destination of a message no rule
matches, or sends such a message to the dead-letter queue with a reason.

.. code-block:: toml

    token_bin_digits = 6            # leading PAN digits the vault keeps in tokens: 6 or 8

    [fallback]
    dead_letter = "no route for this message"   # or: destination = "hub.unrouted"

    [[rule]]
    name = "visa-eur-purchases"
    destination = "core.visa"
    kind = ["financial", "authorization"]       # MessageKind values
    function = "request"                        # request, response, advice, advice_response
    tenant = "acme"
    bin = ["400000-499999", "222100-272099"]    # BIN ranges, or single BINs (6 or 8 digits)
    processing_code = ["00", "01"]              # transaction type (2 digits) or all 6 digits
    currency = "EUR"                            # ISO 4217 alphabetic code of the amount
    amount = { min = "0.01", max = "5000.00", currency = "EUR" }   # both ends inclusive

A condition key takes one string or a list of strings (any of them). ``amount`` takes a table
with ``currency`` and ``min`` and/or ``max`` (decimal strings, inclusive): a message in another
currency does not match it. A message without the field a condition tests (no card token for
``bin``, no processing code, no amount) does not match that condition.

BINs are matched on the leading digits of the card token: the vault keeps the PAN's first six
digits by default, so a rules file names 6-digit BINs unless it declares
``token_bin_digits = 8`` (the vault then keeps eight), and only then may it name 8-digit BINs;
a 6-digit BIN or range also matches the 8-digit BINs under it.

Destinations are queue names: 1-255 characters of letters, digits, ``.``, ``_``, ``-`` and
``:``, starting with a letter or digit, and not ``amq.`` (reserved by RabbitMQ).

Everything is checked at load: a mistake raises :class:`RouteRulesError`, which names the
file, the rule (position and name), the key and what was expected, with the line when it can
be found. A rule that could never match (after a rule without conditions, or with the same
conditions as an earlier rule) is refused too.

Loading gives a :class:`RuleSet` (plain data); :func:`compile_rules` turns it into a
:class:`RouteTable`, whose :meth:`~RouteTable.match` runs per message on the hot path: rules
are indexed by message kind, values held in sets, BIN ranges merged and searched by bisection,
and each rule's result is built once. :meth:`~RouteTable.explain` tells which rule matched and,
for each rule before it, which condition failed.

>>> table = compile_rules(parse_rules('''
... [fallback]
... dead_letter = "no route"
... [[rule]]
... name = "big"
... destination = "core.review"
... amount = { min = "10000.00", currency = "EUR" }
... [[rule]]
... name = "eur"
... destination = "core.eur"
... currency = "EUR"
... ''', source="routes.toml"))
>>> from canonical_model.messages import CanonicalMessage, Identifiers, MessageKind
>>> from canonical_model.messages import MessageFunction
>>> from canonical_model.money import Money
>>> msg = CanonicalMessage(MessageKind.FINANCIAL, MessageFunction.REQUEST, "acme",
...                        Identifiers("m-1"), amount=Money.of("25.00", "EUR"))
>>> table.match(msg)
Route(destination='core.eur', rule='eur', reason="rule 2 'eur' matched")
>>> print(table.explain(msg))
rule 1 'big': no match
  amount: 25.00 EUR is below the minimum 10000.00 EUR
rule 2 'eur': MATCH -> core.eur
  currency: EUR is one of EUR
>>> parse_rules('[fallback]\\ndestination = "x"\\n[[rule]]\\nname = "a"\\n'
...             'destination = "q"\\nbin = "4000"\\n', source="routes.toml")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
routing.rules.RouteRulesError: routes.toml:6: rule 1 'a': key 'bin': '4000' is not a BIN: ...
"""

from __future__ import annotations

import bisect
import difflib
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from canonical_model.currency import UnknownCurrencyError, currency
from canonical_model.messages import CanonicalMessage, MessageFunction, MessageKind
from canonical_model.money import AmountError, Money

__all__ = [
    "AmountBand",
    "BinRange",
    "ConditionResult",
    "Explanation",
    "Fallback",
    "Route",
    "RouteRulesError",
    "RouteTable",
    "RuleCheck",
    "RuleSet",
    "RuleSpec",
    "compile_rules",
    "load_rules",
    "parse_rules",
    "valid_destination",
]

RULE_KEYS: Final = (
    "name",
    "destination",
    "kind",
    "function",
    "tenant",
    "bin",
    "processing_code",
    "currency",
    "amount",
)
TOP_KEYS: Final = ("token_bin_digits", "fallback", "rule")
_DESTINATION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,254}")
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


def valid_destination(name: str) -> bool:
    """Whether ``name`` is a queue-name-safe destination (see the module docstring).

    >>> valid_destination("core.visa"), valid_destination("amq.direct"), valid_destination("a b")
    (True, False, False)
    """
    return _DESTINATION.fullmatch(name) is not None and not name.startswith("amq.")


class RouteRulesError(ValueError):
    """A rules file that cannot be used: names the file, line, rule, key and what was expected."""

    def __init__(
        self,
        source: str,
        reason: str,
        *,
        line: int | None = None,
        rule_index: int | None = None,
        rule_name: str | None = None,
        key: str | None = None,
    ) -> None:
        where = source if line is None else f"{source}:{line}"
        parts = [where]
        if rule_index is not None:
            parts.append(f"rule {rule_index}" + (f" {rule_name!r}" if rule_name else ""))
        if key is not None:
            parts.append(f"key {key!r}")
        super().__init__(": ".join([*parts, reason]))
        self.source = source
        self.reason = reason
        self.line = line
        self.rule_index = rule_index
        self.rule_name = rule_name
        self.key = key


# --- the spec: plain data --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BinRange:
    """BINs ``first``..``last`` inclusive, as written (6 or 8 digits, both the same length)."""

    first: str
    last: str

    def __str__(self) -> str:
        return self.first if self.first == self.last else f"{self.first}-{self.last}"


@dataclass(frozen=True, slots=True)
class AmountBand:
    """Amounts from ``minimum`` to ``maximum`` (inclusive, either may be open) in ``currency``."""

    currency: str
    minimum: Decimal | None = None
    maximum: Decimal | None = None


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """One rule as written: its conditions (empty: not a condition) and its destination."""

    name: str
    destination: str
    kinds: tuple[MessageKind, ...] = ()
    functions: tuple[MessageFunction, ...] = ()
    tenants: tuple[str, ...] = ()
    bins: tuple[BinRange, ...] = ()
    processing_codes: tuple[str, ...] = ()
    currencies: tuple[str, ...] = ()
    amount: AmountBand | None = None

    @property
    def matches_everything(self) -> bool:
        """Whether the rule states no condition at all."""
        return not (
            self.kinds or self.functions or self.tenants or self.bins or self.processing_codes
            or self.currencies or self.amount
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Fallback:
    """What happens to a message no rule matches: a destination, or a dead-letter reason."""

    destination: str | None = None
    dead_letter: str | None = None


@dataclass(frozen=True, slots=True)
class RuleSet:
    """A whole rules file: rules in order (first match wins), the fallback, token BIN digits."""

    rules: tuple[RuleSpec, ...]
    fallback: Fallback
    token_bin_digits: int = 6
    source: str = "<rules>"


# --- reading the file ------------------------------------------------------------------------


class _Lines:
    """Finds the line of a rule's key in the text, for error messages (best effort)."""

    def __init__(self, text: str) -> None:
        self._lines = text.splitlines()
        self._rule_starts = [
            number
            for number, line in enumerate(self._lines, start=1)
            if re.match(r"\s*\[\[\s*rule\s*\]\]", line)
        ]

    def of(self, rule_index: int | None, key: str | None) -> int | None:
        if rule_index is None:
            return self._top_line(key)
        if rule_index > len(self._rule_starts):
            return None  # rules written inline (rule = [...]): no header to point at
        start = self._rule_starts[rule_index - 1]
        end = (
            self._rule_starts[rule_index]
            if rule_index < len(self._rule_starts)
            else len(self._lines) + 1
        )
        if key is None:
            return start
        pattern = re.compile(rf"\s*{re.escape(key)}\s*=")
        for number in range(start + 1, end):
            if pattern.match(self._lines[number - 1]):
                return number
        return start

    def _top_line(self, key: str | None) -> int | None:
        if key is None:
            return None
        pattern = re.compile(rf"\s*(\[\s*{re.escape(key)}\s*\]|{re.escape(key)}\s*=)")
        for number, line in enumerate(self._lines, start=1):
            if pattern.match(line):
                return number
        return None


class _Reader:
    def __init__(self, source: str, lines: _Lines) -> None:
        self.source = source
        self.lines = lines
        self.rule_index: int | None = None
        self.rule_name: str | None = None

    def fail(self, reason: str, key: str | None = None) -> RouteRulesError:
        return RouteRulesError(
            self.source,
            reason,
            line=self.lines.of(self.rule_index, key),
            rule_index=self.rule_index,
            rule_name=self.rule_name,
            key=key,
        )

    def strings(self, table: Mapping[str, Any], key: str) -> tuple[str, ...]:
        value = table.get(key)
        if value is None:
            return ()
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise self.fail(f"expected a string or a list of strings, got {_toml_type(value)}", key)
        if not items:
            raise self.fail("expected at least one value (leave the key out to match any)", key)
        return tuple(items)

    def choices(self, table: Mapping[str, Any], key: str, allowed: Sequence[str]) -> list[str]:
        values = self.strings(table, key)
        for value in values:
            if value not in allowed:
                close = difflib.get_close_matches(value, allowed, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise self.fail(f"{value!r} is not one of {', '.join(allowed)}{hint}", key)
        return list(dict.fromkeys(values))


def _toml_type(value: object) -> str:
    names = {str: "a string", int: "an integer", float: "a float", bool: "a boolean"}
    names.update({list: "an array", dict: "a table"})
    return names.get(type(value), type(value).__name__)


_BIN = re.compile(r"(\d+)(?:\s*-\s*(\d+))?")


def _read_bins(reader: _Reader, rule: Mapping[str, Any], digits: int) -> tuple[BinRange, ...]:
    lengths = "6 digits" if digits == 6 else "6 or 8 digits"
    result = []
    for text in reader.strings(rule, "bin"):
        found = _BIN.fullmatch(text.strip())
        if found is None or any(
            len(part) not in (6, digits) for part in found.groups() if part is not None
        ):
            hint = ""
            if found is not None and len(found.group(1)) == 8:
                hint = " (8-digit BINs need token_bin_digits = 8, when the vault keeps 8)"
            raise reader.fail(
                f"{text!r} is not a BIN: expected {lengths}, or two joined by '-' "
                f"(a range like 400000-499999){hint}",
                "bin",
            )
        first, last = found.group(1), found.group(2) or found.group(1)
        if len(first) != len(last):
            raise reader.fail(f"{text!r}: both ends of a BIN range need the same length", "bin")
        if first > last:
            raise reader.fail(f"{text!r}: the range starts after it ends", "bin")
        result.append(BinRange(first, last))
    return tuple(result)


def _read_processing_codes(reader: _Reader, rule: Mapping[str, Any]) -> tuple[str, ...]:
    codes = reader.strings(rule, "processing_code")
    for code in codes:
        if not (code.isdigit() and code.isascii() and len(code) in (2, 6)):
            raise reader.fail(
                f"{code!r} is not a processing code: expected the transaction type (2 digits, "
                "e.g. '00') or the whole code (6 digits, e.g. '003000')",
                "processing_code",
            )
    return codes


def _read_currency(reader: _Reader, code: object, key: str) -> str:
    if not isinstance(code, str):
        raise reader.fail(f"expected an ISO 4217 currency code, got {_toml_type(code)}", key)
    try:
        found = currency(code)
    except UnknownCurrencyError:
        raise reader.fail(f"{code!r} is not an ISO 4217 currency code", key) from None
    return found.alpha


def _read_amount(reader: _Reader, rule: Mapping[str, Any]) -> AmountBand | None:
    table = rule.get("amount")
    if table is None:
        return None
    if not isinstance(table, dict):
        raise reader.fail(
            'expected a table like { min = "0.01", max = "100.00", currency = "EUR" }, '
            f"got {_toml_type(table)}",
            "amount",
        )
    unknown = sorted(set(table) - {"min", "max", "currency"})
    if unknown:
        raise reader.fail(f"unknown key {unknown[0]!r} (expected min, max, currency)", "amount")
    if "currency" not in table:
        raise reader.fail(
            "needs a currency: amounts in different currencies do not compare", "amount"
        )
    code = _read_currency(reader, table["currency"], "amount")
    bounds: dict[str, Decimal | None] = {"min": None, "max": None}
    for end in bounds:
        value = table.get(end)
        if value is None:
            continue
        if not isinstance(value, str):
            raise reader.fail(
                f'{end}: expected a decimal string like "100.00", got {_toml_type(value)}',
                "amount",
            )
        try:
            bounds[end] = Money.of(value, code).amount
        except AmountError as exc:
            raise reader.fail(f"{end}: {exc}", "amount") from None
    low, high = bounds["min"], bounds["max"]
    if low is None and high is None:
        raise reader.fail("needs min, max or both", "amount")
    if low is not None and high is not None and low > high:
        raise reader.fail(f"min {low} is above max {high}", "amount")
    return AmountBand(code, low, high)


def _read_rule(reader: _Reader, rule: object, digits: int) -> RuleSpec:
    if not isinstance(rule, dict):
        raise reader.fail(f"expected a table ([[rule]]), got {_toml_type(rule)}")
    name = rule.get("name")
    if not isinstance(name, str) or not name.strip():
        raise reader.fail("expected a non-empty string naming the rule", "name")
    reader.rule_name = name
    unknown = sorted(set(rule) - set(RULE_KEYS))
    if unknown:
        raise reader.fail(f"unknown key; a rule takes {', '.join(RULE_KEYS)}", unknown[0])
    destination = rule.get("destination")
    if not isinstance(destination, str) or not valid_destination(destination):
        raise reader.fail(
            f"{destination!r} is not a destination: expected a queue name (letters, digits, "
            "'.', '_', '-', ':', at most 255, not starting with 'amq.')",
            "destination",
        )
    tenants = reader.strings(rule, "tenant")
    for tenant in tenants:
        if _TENANT.fullmatch(tenant) is None:
            raise reader.fail(f"{tenant!r} is not a tenant id", "tenant")
    currencies = tuple(
        dict.fromkeys(
            _read_currency(reader, c, "currency") for c in reader.strings(rule, "currency")
        )
    )
    return RuleSpec(
        name=name,
        destination=destination,
        kinds=tuple(
            MessageKind(k) for k in reader.choices(rule, "kind", [k.value for k in MessageKind])
        ),
        functions=tuple(
            MessageFunction(f)
            for f in reader.choices(rule, "function", [f.value for f in MessageFunction])
        ),
        tenants=tuple(dict.fromkeys(tenants)),
        bins=_read_bins(reader, rule, digits),
        processing_codes=_read_processing_codes(reader, rule),
        currencies=currencies,
        amount=_read_amount(reader, rule),
    )


def _read_fallback(reader: _Reader, document: Mapping[str, Any]) -> Fallback:
    table = document.get("fallback")
    if table is None:
        raise reader.fail(
            "no [fallback] table: say where unmatched messages go "
            '(destination = "...") or that they are dead-lettered (dead_letter = "reason")'
        )
    if not isinstance(table, dict):
        raise reader.fail(f"expected a table, got {_toml_type(table)}", "fallback")
    unknown = sorted(set(table) - {"destination", "dead_letter"})
    if unknown or len(table) != 1:
        raise reader.fail(
            'expected exactly one of destination = "queue" or dead_letter = "reason"',
            "fallback",
        )
    if "destination" in table:
        destination = table["destination"]
        if not isinstance(destination, str) or not valid_destination(destination):
            raise reader.fail(f"{destination!r} is not a queue name", "fallback")
        return Fallback(destination=destination)
    reason = table["dead_letter"]
    if not isinstance(reason, str) or not reason.strip():
        raise reader.fail("dead_letter: expected the reason, a non-empty string", "fallback")
    return Fallback(dead_letter=reason)


def _conditions_of(rule: RuleSpec) -> tuple[object, ...]:
    """What a rule tests, order and repetition within a key aside."""
    return (
        frozenset(rule.kinds), frozenset(rule.functions), frozenset(rule.tenants),
        frozenset(rule.bins), frozenset(rule.processing_codes), frozenset(rule.currencies),
        rule.amount,
    )  # fmt: skip


def parse_rules(text: str, *, source: str = "<rules>") -> RuleSet:
    """Read and check rules from TOML ``text``; ``source`` names it in errors (a file path)."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11's error has no line attribute; its message ends "(at line N, column M)".
        found = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", str(exc))
        line = int(found.group(2)) if found else None
        if found is None and str(exc).endswith("(at end of document)"):
            line = text.count("\n") + (not text.endswith("\n"))
        reason = f"{found.group(1)} (column {found.group(3)})" if found else str(exc)
        raise RouteRulesError(source, f"not valid TOML: {reason}", line=line) from None
    reader = _Reader(source, _Lines(text))
    unknown = sorted(set(document) - set(TOP_KEYS))
    if unknown:
        raise reader.fail(
            f"unknown top-level key; expected {', '.join(TOP_KEYS)} ([[rule]] tables)",
            unknown[0],
        )
    digits = document.get("token_bin_digits", 6)
    if digits not in (6, 8) or isinstance(digits, bool):
        raise reader.fail(f"expected 6 or 8, got {digits!r}", "token_bin_digits")
    fallback = _read_fallback(reader, document)
    raw_rules = document.get("rule", [])
    if not isinstance(raw_rules, list):
        raise reader.fail("expected [[rule]] tables", "rule")
    rules: list[RuleSpec] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_rules, start=1):
        reader.rule_index, reader.rule_name = index, None
        rule = _read_rule(reader, raw, digits)
        if rule.name in seen:
            raise reader.fail(f"the name is already used by rule {seen[rule.name]}", "name")
        seen[rule.name] = index
        if rules and rules[-1].matches_everything:
            raise reader.fail(
                f"can never match: rule {index - 1} {rules[-1].name!r} before it has no "
                "condition and matches every message"
            )
        conditions = _conditions_of(rule)
        for earlier, other in enumerate(rules, start=1):
            if _conditions_of(other) == conditions:
                raise reader.fail(
                    f"can never match: rule {earlier} {other.name!r} before it has the same "
                    "conditions"
                )
        rules.append(rule)
    return RuleSet(tuple(rules), fallback, digits, source)


def load_rules(path: str | Path) -> RuleSet:
    """Read and check the rules file at ``path``; errors name the file (see the docstring)."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise RouteRulesError(source, f"cannot read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RouteRulesError(source, f"not UTF-8 (byte {exc.start})") from None
    return parse_rules(text, source=source)


# --- matching --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Route:
    """Where a message goes: ``destination``, or ``None`` for the dead-letter queue.

    ``rule`` is the name of the rule that matched (``None``: the fallback); ``reason`` says why
    in words (the dead-letter reason when the message is dead-lettered).
    """

    destination: str | None
    rule: str | None
    reason: str

    @property
    def dead_letter(self) -> bool:
        """Whether the message goes to the dead-letter queue (no rule, no fallback queue)."""
        return self.destination is None


class _Facts:
    """The values of one message that the conditions test, each computed once."""

    __slots__ = ("amount", "bin", "currency", "function", "pc_full", "pc_type", "tenant")

    def __init__(self, message: CanonicalMessage, digits: int) -> None:
        self.tenant = message.tenant
        self.function = message.function
        card = message.card
        token = card.token if card is not None else None
        self.bin = int(token.value[:digits]) if token is not None else None
        processing = message.processing
        if processing is None:
            self.pc_type: str | None = None
            self.pc_full: str | None = None
        else:
            self.pc_type = processing.transaction_type
            self.pc_full = (
                processing.transaction_type
                + processing.from_account_type
                + processing.to_account_type
            )
        amount = message.amount
        self.currency = amount.currency.alpha if amount is not None else None
        self.amount = amount.amount if amount is not None else None


class _Condition:
    key: str = ""

    def test(self, facts: _Facts) -> bool:
        raise NotImplementedError

    def describe(self, facts: _Facts) -> str:
        raise NotImplementedError


def _listed(values: Sequence[str] | frozenset[str]) -> str:
    return ", ".join(sorted(values))


class _FunctionIs(_Condition):
    key = "function"

    def __init__(self, functions: Sequence[MessageFunction]) -> None:
        self.functions = frozenset(functions)

    def test(self, facts: _Facts) -> bool:
        return facts.function in self.functions

    def describe(self, facts: _Facts) -> str:
        verb = "is one of" if self.test(facts) else "is not one of"
        return f"{facts.function.value} {verb} {_listed([f.value for f in self.functions])}"


class _TenantIs(_Condition):
    key = "tenant"

    def __init__(self, tenants: Sequence[str]) -> None:
        self.tenants = frozenset(tenants)

    def test(self, facts: _Facts) -> bool:
        return facts.tenant in self.tenants

    def describe(self, facts: _Facts) -> str:
        verb = "is one of" if self.test(facts) else "is not one of"
        return f"{facts.tenant} {verb} {_listed(self.tenants)}"


class _BinIn(_Condition):
    key = "bin"

    def __init__(self, ranges: Sequence[BinRange], digits: int) -> None:
        spans = sorted(
            (
                int(r.first.ljust(digits, "0")),
                int(r.last.ljust(digits, "9")),
            )
            for r in ranges
        )
        merged: list[list[int]] = []
        for low, high in spans:
            if merged and low <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], high)
            else:
                merged.append([low, high])
        self.starts = [low for low, _ in merged]
        self.ends = [high for _, high in merged]
        self.written = [str(r) for r in ranges]
        self.digits = digits

    def test(self, facts: _Facts) -> bool:
        value = facts.bin
        if value is None:
            return False
        at = bisect.bisect_right(self.starts, value) - 1
        return at >= 0 and value <= self.ends[at]

    def describe(self, facts: _Facts) -> str:
        if facts.bin is None:
            return "the message has no card token"
        shown = str(facts.bin).zfill(self.digits)
        verb = "is in" if self.test(facts) else "is in none of"
        return f"{shown} {verb} {', '.join(self.written)}"


class _ProcessingCodeIs(_Condition):
    key = "processing_code"

    def __init__(self, codes: Sequence[str]) -> None:
        self.types = frozenset(c for c in codes if len(c) == 2)
        self.full = frozenset(c for c in codes if len(c) == 6)
        self.written = list(codes)

    def test(self, facts: _Facts) -> bool:
        return facts.pc_type in self.types or facts.pc_full in self.full

    def describe(self, facts: _Facts) -> str:
        if facts.pc_full is None:
            return "the message has no processing code"
        verb = "matches one of" if self.test(facts) else "matches none of"
        return f"{facts.pc_full} (type {facts.pc_type}) {verb} {', '.join(self.written)}"


class _CurrencyIs(_Condition):
    key = "currency"

    def __init__(self, currencies: Sequence[str]) -> None:
        self.currencies = frozenset(currencies)

    def test(self, facts: _Facts) -> bool:
        return facts.currency in self.currencies

    def describe(self, facts: _Facts) -> str:
        if facts.currency is None:
            return "the message has no amount"
        verb = "is one of" if self.test(facts) else "is not one of"
        return f"{facts.currency} {verb} {_listed(self.currencies)}"


class _AmountIn(_Condition):
    key = "amount"

    def __init__(self, band: AmountBand) -> None:
        self.band = band

    def test(self, facts: _Facts) -> bool:
        band = self.band
        amount = facts.amount
        return (
            amount is not None
            and facts.currency == band.currency
            and (band.minimum is None or amount >= band.minimum)
            and (band.maximum is None or amount <= band.maximum)
        )

    def describe(self, facts: _Facts) -> str:
        band = self.band
        if facts.amount is None:
            return "the message has no amount"
        shown = f"{facts.amount} {facts.currency}"
        if facts.currency != band.currency:
            return f"{shown} is not in {band.currency}, the currency of the rule's amount"
        if band.minimum is not None and facts.amount < band.minimum:
            return f"{shown} is below the minimum {band.minimum} {band.currency}"
        if band.maximum is not None and facts.amount > band.maximum:
            return f"{shown} is above the maximum {band.maximum} {band.currency}"
        low = "" if band.minimum is None else f"{band.minimum} <= "
        high = "" if band.maximum is None else f" <= {band.maximum}"
        return f"{low}{facts.amount}{high} {band.currency}"


@dataclass(frozen=True, slots=True)
class ConditionResult:
    """One condition of a rule tested against a message: whether it held, and why."""

    key: str
    held: bool
    detail: str

    def __str__(self) -> str:
        return f"{self.key}: {self.detail}"


@dataclass(frozen=True, slots=True)
class RuleCheck:
    """One rule tested against a message, with every condition's result."""

    index: int
    name: str
    destination: str
    matched: bool
    conditions: tuple[ConditionResult, ...]

    @property
    def failed(self) -> tuple[ConditionResult, ...]:
        """The conditions that did not hold."""
        return tuple(c for c in self.conditions if not c.held)


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a message goes where it goes: the rules tested, in order, up to the one that
    matched (all of them when none did), and the route."""

    route: Route
    checks: tuple[RuleCheck, ...]

    def __str__(self) -> str:
        lines = []
        for check in self.checks:
            if check.matched:
                lines.append(f"rule {check.index} {check.name!r}: MATCH -> {check.destination}")
                shown = check.conditions
            else:
                lines.append(f"rule {check.index} {check.name!r}: no match")
                shown = check.failed
            lines.extend(f"  {c}" for c in shown)
            if check.matched and not check.conditions:
                lines.append("  (no conditions: matches every message)")
        if self.route.rule is None:
            where = self.route.destination or "the dead-letter queue"
            lines.append(f"no rule matched: fallback -> {where} ({self.route.reason})")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    index: int
    spec: RuleSpec
    kind: frozenset[MessageKind] | None
    conditions: tuple[_Condition, ...]
    tests: tuple[Callable[[_Facts], bool], ...]
    route: Route


def _compile_rule(index: int, spec: RuleSpec, digits: int) -> _CompiledRule:
    conditions: list[_Condition] = []
    # Cheapest and most selective first; the kind is handled by the index.
    if spec.tenants:
        conditions.append(_TenantIs(spec.tenants))
    if spec.functions:
        conditions.append(_FunctionIs(spec.functions))
    if spec.currencies:
        conditions.append(_CurrencyIs(spec.currencies))
    if spec.processing_codes:
        conditions.append(_ProcessingCodeIs(spec.processing_codes))
    if spec.bins:
        conditions.append(_BinIn(spec.bins, digits))
    if spec.amount is not None:
        conditions.append(_AmountIn(spec.amount))
    return _CompiledRule(
        index=index,
        spec=spec,
        kind=frozenset(spec.kinds) if spec.kinds else None,
        conditions=tuple(conditions),
        tests=tuple(c.test for c in conditions),
        route=Route(spec.destination, spec.name, f"rule {index} {spec.name!r} matched"),
    )


class RouteTable:
    """Compiled rules: :meth:`match` for the hot path, :meth:`explain` for people."""

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self._digits = rules.token_bin_digits
        self._compiled = tuple(
            _compile_rule(i, spec, self._digits) for i, spec in enumerate(rules.rules, start=1)
        )
        self._by_kind: dict[MessageKind, tuple[_CompiledRule, ...]] = {
            kind: tuple(r for r in self._compiled if r.kind is None or kind in r.kind)
            for kind in MessageKind
        }
        fallback = rules.fallback
        if fallback.destination is not None:
            self.fallback = Route(fallback.destination, None, "no rule matched: fallback")
        else:
            self.fallback = Route(None, None, fallback.dead_letter or "no route")

    def match(self, message: CanonicalMessage) -> Route:
        """The route of ``message``: the first rule whose conditions all hold, else the
        fallback."""
        facts = _Facts(message, self._digits)
        for rule in self._by_kind[message.kind]:
            for test in rule.tests:
                if not test(facts):
                    break
            else:
                return rule.route
        return self.fallback

    def explain(self, message: CanonicalMessage) -> Explanation:
        """Which rule matched and why; for each rule before it, which conditions failed."""
        facts = _Facts(message, self._digits)
        checks = []
        for rule in self._compiled:
            results = []
            if rule.kind is not None:
                verb = "is one of" if message.kind in rule.kind else "is not one of"
                kinds = _listed([k.value for k in rule.kind])
                results.append(
                    ConditionResult(
                        "kind", message.kind in rule.kind, f"{message.kind.value} {verb} {kinds}"
                    )
                )
            results.extend(
                ConditionResult(c.key, c.test(facts), c.describe(facts)) for c in rule.conditions
            )
            matched = all(r.held for r in results)
            checks.append(
                RuleCheck(
                    rule.index, rule.spec.name, rule.spec.destination, matched, tuple(results)
                )
            )
            if matched:
                return Explanation(rule.route, tuple(checks))
        return Explanation(self.fallback, tuple(checks))


def compile_rules(rules: RuleSet) -> RouteTable:
    """The :class:`RouteTable` of ``rules``, ready for :meth:`RouteTable.match`."""
    return RouteTable(rules)
