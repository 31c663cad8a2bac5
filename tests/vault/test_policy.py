"""The detokenization policy."""

from __future__ import annotations

import pytest

from vault.policy import DEFAULT_POLICY, Caller, DetokenizationPolicy, PolicyRule, adapter_caller


def test_default_policy_lets_adapters_encode_their_own_format_only() -> None:
    iso = adapter_caller("iso8583")
    assert DEFAULT_POLICY.allows(iso, "encode:iso8583", tenant="t")
    assert DEFAULT_POLICY.allows(iso, "encode:iso8583:ebcdic-cp037", tenant="t")
    assert not DEFAULT_POLICY.allows(iso, "encode:iso20022", tenant="t")
    assert not DEFAULT_POLICY.allows(adapter_caller("iso20022"), "encode:iso20022", tenant="t")


def test_operators_need_a_purpose() -> None:
    operator = Caller("ops", frozenset({"operator"}))
    assert DEFAULT_POLICY.allows(operator, "chargeback 1", tenant="t")
    assert not DEFAULT_POLICY.allows(operator, "   ", tenant="t")


def test_rules_may_be_limited_to_tenants() -> None:
    policy = DetokenizationPolicy().with_rules(PolicyRule("fraud", ("case *",), frozenset({"a"})))
    analyst = Caller("ana", frozenset({"fraud"}))
    assert policy.allows(analyst, "case 9", tenant="a")
    assert not policy.allows(analyst, "case 9", tenant="b")


def test_no_role_no_access() -> None:
    assert not DEFAULT_POLICY.allows(Caller("x"), "anything", tenant="t")


def test_a_caller_needs_an_identity() -> None:
    with pytest.raises(ValueError, match="identity"):
        Caller(" ")
