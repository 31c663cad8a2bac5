"""Who may see clear card numbers, and why: the detokenization policy.

Every detokenization names a :class:`Caller` (an identity and its roles) and a purpose
(``"encode:iso8583"``, ``"chargeback 2026-114"``). A :class:`DetokenizationPolicy` maps
roles to the purposes they may state, as shell-style patterns (:mod:`fnmatch`). A call is
allowed when one of the caller's roles has a pattern that matches the purpose, in the
tenant (a rule may be limited to some tenants). Everything else is refused. The vault
writes an audit record for every call, allowed or refused.

The hub's default (:data:`DEFAULT_POLICY`): an adapter that declares ``needs_clear_pan``
acts as role ``adapter:<name>`` and may state ``encode:<name>`` (and ``encode:<name>:...``);
an ``operator`` (the ``isobridge vault detokenize`` command) may state any purpose, which
the command requires and the audit keeps. A policy is plain data::

    DetokenizationPolicy.from_mapping({"adapter:iso8583": ["encode:iso8583*"], "fraud": ["case *"]})

>>> policy = DetokenizationPolicy.from_mapping({"fraud": ["case *"]})
>>> analyst = Caller("ana", frozenset({"fraud"}))
>>> policy.allows(analyst, "case 2026-114", tenant="acme")
True
>>> policy.allows(analyst, "marketing", tenant="acme")
False
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["DEFAULT_POLICY", "Caller", "DetokenizationPolicy", "PolicyRule", "adapter_caller"]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks: an identity (audited as is) and the roles the policy knows it by."""

    identity: str
    roles: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not self.identity.strip():
            raise ValueError("a caller needs an identity (it is audited)")


def adapter_caller(adapter_name: str) -> Caller:
    """The caller an adapter acts as: identity and role ``adapter:<name>``."""
    identity = f"adapter:{adapter_name}"
    return Caller(identity, frozenset({identity}))


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """Role ``role`` may state a purpose matching one of ``purposes`` in ``tenants`` (all if
    empty)."""

    role: str
    purposes: tuple[str, ...]
    tenants: frozenset[str] = frozenset()

    def allows(self, purpose: str, tenant: str) -> bool:
        if self.tenants and tenant not in self.tenants:
            return False
        return any(fnmatch.fnmatchcase(purpose, pattern) for pattern in self.purposes)


@dataclass(frozen=True, slots=True)
class DetokenizationPolicy:
    """The rules; a call no rule allows is refused."""

    rules: tuple[PolicyRule, ...] = ()

    @classmethod
    def from_mapping(
        cls, mapping: Mapping[str, Iterable[str]], tenants: Iterable[str] = ()
    ) -> DetokenizationPolicy:
        """A policy from ``{role: [purpose pattern, ...]}``, optionally for some tenants."""
        only = frozenset(tenants)
        return cls(tuple(PolicyRule(role, tuple(p), only) for role, p in mapping.items()))

    def allows(self, caller: Caller, purpose: str, *, tenant: str) -> bool:
        """Whether ``caller`` may see clear card numbers of ``tenant`` for ``purpose``."""
        if not purpose.strip():
            return False
        return any(
            rule.role in caller.roles and rule.allows(purpose, tenant) for rule in self.rules
        )

    def with_rules(self, *rules: PolicyRule) -> DetokenizationPolicy:
        """This policy plus ``rules``."""
        return DetokenizationPolicy(self.rules + rules)


DEFAULT_POLICY = DetokenizationPolicy.from_mapping(
    {"adapter:iso8583": ["encode:iso8583", "encode:iso8583:*"], "operator": ["*"]}
)
"""Adapters may detokenize to encode their own format; operators for a stated purpose."""
