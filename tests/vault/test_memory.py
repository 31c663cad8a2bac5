"""The in-memory vault (vault.memory): convergence, tenants, audit, secrecy, threads, collisions."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings

from adapters.base import DecodeContext, PanDetokenizer, PanTokenizer
from canonical_model.pan import PanToken, find_clear_pans, luhn_valid, mask_pan
from tests.vault.strategies import bucket, pans, tenants, with_check_digit
from vault import (
    DEFAULT_MAX_ATTEMPTS,
    DetokenizationRecord,
    InMemoryVault,
    InvalidPanError,
    TokenPolicy,
    TokenSpaceExhaustedError,
    UnknownTokenError,
    VaultError,
    derive_token,
)

FINGERPRINT_KEY = b"f" * 32
TOKEN_KEY = b"t" * 32
NOW = dt.datetime(2026, 11, 28, 16, 30, tzinfo=dt.UTC)
VISA = "4111111111111111"
MASTERCARD = "5500005555555559"
AMEX = "378282246310005"


def keyed_vault(
    *,
    policy: TokenPolicy | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> InMemoryVault:
    """A vault with fixed keys and a fixed clock: the same tokens and records in every run."""
    return InMemoryVault(
        fingerprint_key=FINGERPRINT_KEY,
        token_key=TOKEN_KEY,
        policy=policy or TokenPolicy(),
        max_attempts=max_attempts,
        clock=lambda: NOW,
    )


def find_collision() -> tuple[str, str, str]:
    """(tenant, a, b): two card numbers of one 12-digit bucket (ten card numbers, 90 tokens)
    whose first candidates under TOKEN_KEY are the same token."""
    candidates = bucket("411111", "1111")
    for n in range(10_000):
        tenant = f"tenant-{n}"
        seen: dict[str, str] = {}
        for pan in candidates:
            value = derive_token(pan, tenant, TOKEN_KEY).value
            if value in seen:
                return tenant, seen[value], pan
            seen[value] = pan
    raise AssertionError("no collision found")  # pragma: no cover


COLLISION = find_collision()


# --- the protocols of adapters.base ---------------------------------------------------------


def test_the_vault_is_a_tokenizer_and_a_detokenizer_for_the_adapters() -> None:
    vault = keyed_vault()
    tokenizer: PanTokenizer = vault  # checked structurally by mypy
    detokenizer: PanDetokenizer = vault
    token = DecodeContext(tenant="acme", tokenizer=vault).tokenize(VISA)
    assert tokenizer.tokenize(VISA, tenant="acme") == token
    assert detokenizer.detokenize(token, tenant="acme", purpose="test") == VISA


# --- tokenization ---------------------------------------------------------------------------


@settings(max_examples=200)
@given(pan=pans, tenant=tenants)
def test_tokenize_then_detokenize_round_trips(pan: str, tenant: str) -> None:
    vault = keyed_vault()
    token = vault.tokenize(pan, tenant=tenant)
    assert isinstance(token, PanToken)
    assert len(token.value) == len(pan)
    assert token.value[:6] == pan[:6]
    assert token.value[-4:] == pan[-4:]
    assert not luhn_valid(token.value)
    assert vault.detokenize(token, tenant=tenant, purpose="round trip") == pan


@given(pan=pans, tenant=tenants)
def test_tokens_converge_within_a_tenant(pan: str, tenant: str) -> None:
    vault = keyed_vault()
    first = vault.tokenize(pan, tenant=tenant)
    vault.tokenize(MASTERCARD, tenant=tenant)
    assert vault.tokenize(pan, tenant=tenant) == first
    assert vault.token_count(tenant) == (1 if pan == MASTERCARD else 2)


def test_tokens_differ_between_tenants() -> None:
    vault = keyed_vault()
    for pan in (VISA, MASTERCARD, AMEX, with_check_digit("601100000000000000")):
        tokens = {vault.tokenize(pan, tenant=t) for t in ("bank-a", "bank-b", "bank-c")}
        assert len(tokens) == 3


def test_the_same_keys_give_the_same_tokens_and_fresh_keys_do_not() -> None:
    pan = with_check_digit("401288888888188188")  # 19 digits: 9 derived, 1e-9 to collide
    assert keyed_vault().tokenize(pan, tenant="acme") == keyed_vault().tokenize(pan, tenant="acme")
    assert InMemoryVault().tokenize(pan, tenant="acme") != InMemoryVault().tokenize(
        pan, tenant="acme"
    )


def test_tokens_follow_the_policy() -> None:
    vault = keyed_vault(policy=TokenPolicy(keep_first=8, keep_last=4))
    assert vault.policy == TokenPolicy(keep_first=8, keep_last=4)
    token = vault.tokenize(VISA, tenant="acme")
    assert token.value[:8] == VISA[:8]
    assert token.value[-4:] == VISA[-4:]
    short = with_check_digit("41111111111")  # 12 digits: 6 + 4 kept, 2 derived
    assert vault.tokenize(short, tenant="acme").value[:6] == short[:6]


def test_the_first_token_is_the_first_candidate() -> None:
    vault = keyed_vault()
    assert vault.tokenize(VISA, tenant="acme") == derive_token(VISA, "acme", TOKEN_KEY)


@pytest.mark.parametrize(
    "pan",
    ["4111111111111112", "4111 1111 1111 1111", "41111111", "", "4111111111111111111111"],
)
def test_an_invalid_card_number_is_refused_without_showing_it(pan: str) -> None:
    vault = keyed_vault()
    with pytest.raises(InvalidPanError) as info:
        vault.tokenize(pan, tenant="acme")
    assert not pan or pan not in str(info.value)
    assert isinstance(info.value, ValueError)
    assert vault.token_count() == 0


def test_an_empty_tenant_is_refused() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        keyed_vault().tokenize(VISA, tenant="")


# --- detokenization -------------------------------------------------------------------------


def test_a_token_of_another_tenant_is_refused_like_an_unknown_one() -> None:
    vault = keyed_vault()
    token = vault.tokenize(VISA, tenant="bank-a")
    vault.tokenize(MASTERCARD, tenant="bank-b")
    with pytest.raises(UnknownTokenError) as wrong_tenant:
        vault.detokenize(token, tenant="bank-b", purpose="encode")
    never_issued = PanToken(token.value[:6] + "000000" + token.value[-4:])
    if luhn_valid(never_issued.value):  # pragma: no cover - depends on the fixed keys
        pytest.fail("pick another never-issued token")
    with pytest.raises(UnknownTokenError) as unknown:
        vault.detokenize(never_issued, tenant="bank-b", purpose="encode")
    assert str(wrong_tenant.value) == f"no token {token.masked} in tenant 'bank-b'"
    assert str(unknown.value) == f"no token {never_issued.masked} in tenant 'bank-b'"
    assert isinstance(wrong_tenant.value, LookupError)
    assert isinstance(wrong_tenant.value, VaultError)
    assert VISA not in str(wrong_tenant.value)
    assert token.value not in str(wrong_tenant.value)


def test_a_tenant_that_never_tokenized_has_no_tokens() -> None:
    vault = keyed_vault()
    token = vault.tokenize(VISA, tenant="bank-a")
    with pytest.raises(UnknownTokenError):
        vault.detokenize(token, tenant="nobody", purpose="encode")


@pytest.mark.parametrize("purpose", ["", "   "])
def test_detokenization_needs_a_purpose(purpose: str) -> None:
    vault = keyed_vault()
    token = vault.tokenize(VISA, tenant="acme")
    with pytest.raises(ValueError, match="needs a purpose"):
        vault.detokenize(token, tenant="acme", purpose=purpose)
    assert vault.audit_log() == ()


def test_detokenize_wants_a_pan_token() -> None:
    vault = keyed_vault()
    vault.tokenize(VISA, tenant="acme")
    with pytest.raises(TypeError, match="must be a PanToken"):
        vault.detokenize(VISA, tenant="acme", purpose="encode")  # type: ignore[arg-type]
    assert vault.audit_log() == ()


# --- the audit trail ------------------------------------------------------------------------


def test_every_detokenization_is_audited_granted_or_refused() -> None:
    vault = keyed_vault()
    visa = vault.tokenize(VISA, tenant="bank-a")
    mastercard = vault.tokenize(MASTERCARD, tenant="bank-b")
    vault.detokenize(visa, tenant="bank-a", purpose="encode:iso8583")
    with pytest.raises(UnknownTokenError):
        vault.detokenize(visa, tenant="bank-b", purpose="encode:iso8583")
    vault.detokenize(mastercard, tenant="bank-b", purpose="chargeback")
    assert vault.audit_log() == (
        DetokenizationRecord("bank-a", visa.masked, "encode:iso8583", NOW, granted=True),
        DetokenizationRecord("bank-b", visa.masked, "encode:iso8583", NOW, granted=False),
        DetokenizationRecord("bank-b", mastercard.masked, "chargeback", NOW, granted=True),
    )
    assert [r.purpose for r in vault.audit_log(tenant="bank-b")] == [
        "encode:iso8583",
        "chargeback",
    ]
    assert vault.audit_log(tenant="nobody") == ()


def test_audit_records_are_frozen_and_in_utc() -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    vault = InMemoryVault(clock=lambda: dt.datetime(2026, 11, 28, 17, 30, tzinfo=paris))
    token = vault.tokenize(VISA, tenant="acme")
    vault.detokenize(token, tenant="acme", purpose="encode")
    (record,) = vault.audit_log()
    assert record.at == NOW
    assert record.at.tzinfo is dt.UTC
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.purpose = "other"  # type: ignore[misc]


def test_the_default_clock_is_utc_now() -> None:
    vault = InMemoryVault()
    token = vault.tokenize(VISA, tenant="acme")
    before = dt.datetime.now(dt.UTC)
    vault.detokenize(token, tenant="acme", purpose="encode")
    after = dt.datetime.now(dt.UTC)
    (record,) = vault.audit_log()
    assert before <= record.at <= after
    assert record.at.tzinfo is dt.UTC


def test_a_naive_clock_is_refused() -> None:
    vault = InMemoryVault(clock=lambda: dt.datetime(2026, 11, 28, 16, 30))
    token = vault.tokenize(VISA, tenant="acme")
    with pytest.raises(ValueError, match="timezone-aware"):
        vault.detokenize(token, tenant="acme", purpose="encode")


def test_a_card_number_written_into_the_purpose_is_masked_in_the_audit() -> None:
    vault = keyed_vault()
    token = vault.tokenize(VISA, tenant="acme")
    vault.detokenize(token, tenant="acme", purpose=f"dispute for {MASTERCARD} and {VISA}")
    (record,) = vault.audit_log()
    assert record.purpose == f"dispute for {mask_pan(MASTERCARD)} and {mask_pan(VISA)}"


# --- secrets stay secret --------------------------------------------------------------------


def test_no_card_number_token_or_key_in_repr_errors_or_audit() -> None:
    vault = keyed_vault()
    card_numbers = [VISA, MASTERCARD, AMEX]
    tokens = [vault.tokenize(pan, tenant="acme") for pan in card_numbers]
    for token in tokens:
        vault.detokenize(token, tenant="acme", purpose="encode")
    texts = [repr(vault), str(vault), repr(vault.audit_log()), str(vault.audit_log())]
    with pytest.raises(UnknownTokenError) as unknown:
        vault.detokenize(tokens[0], tenant="other", purpose="encode")
    with pytest.raises(InvalidPanError) as invalid:
        vault.tokenize(VISA[:-1] + "2", tenant="acme")
    texts += [str(unknown.value), repr(unknown.value), str(invalid.value), repr(invalid.value)]
    assert repr(vault) == (
        "InMemoryVault(policy=TokenPolicy(keep_first=6, keep_last=4), "
        "tenants=1, tokens=3, audit_records=4)"
    )
    secrets = [*card_numbers, VISA[:-1] + "2", *(t.value for t in tokens)]
    secrets += [repr(FINGERPRINT_KEY), repr(TOKEN_KEY), FINGERPRINT_KEY.hex(), TOKEN_KEY.hex()]
    for text in texts:
        assert find_clear_pans(text) == []
        for secret in secrets:
            assert secret not in text
        assert "f" * 32 not in text
        assert "t" * 32 not in text


def test_random_keys_are_never_shown() -> None:
    vault = InMemoryVault()
    vault.tokenize(VISA, tenant="acme")
    assert repr(vault).startswith("InMemoryVault(policy=TokenPolicy(")
    assert not hasattr(vault, "__dict__")


@pytest.mark.parametrize("argument", ["fingerprint_key", "token_key"])
def test_short_keys_are_refused_without_showing_them(argument: str) -> None:
    with pytest.raises(ValueError, match="at least 32 bytes, got 11") as info:
        InMemoryVault(**{argument: b"hunter2-key"})  # type: ignore[arg-type]
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(("max_attempts", "error"), [(0, ValueError), (True, TypeError)])
def test_max_attempts_is_a_positive_int(max_attempts: int, error: type[Exception]) -> None:
    with pytest.raises(error, match="max_attempts must be"):
        keyed_vault(max_attempts=max_attempts)


def test_the_policy_must_be_a_token_policy() -> None:
    with pytest.raises(TypeError, match="policy must be a TokenPolicy"):
        InMemoryVault(policy=(6, 4))  # type: ignore[arg-type]


# --- forgetting a tenant --------------------------------------------------------------------


def test_forget_tenant_deletes_its_tokens_only() -> None:
    vault = keyed_vault()
    a_visa = vault.tokenize(VISA, tenant="bank-a")
    vault.tokenize(MASTERCARD, tenant="bank-a")
    b_visa = vault.tokenize(VISA, tenant="bank-b")
    vault.detokenize(a_visa, tenant="bank-a", purpose="before")
    assert vault.forget_tenant("bank-a") == 2
    assert vault.forget_tenant("bank-a") == 0
    assert vault.token_count("bank-a") == 0
    assert vault.token_count() == 1
    with pytest.raises(UnknownTokenError):
        vault.detokenize(a_visa, tenant="bank-a", purpose="after")
    assert vault.detokenize(b_visa, tenant="bank-b", purpose="after") == VISA
    assert len(vault.audit_log(tenant="bank-a")) == 2  # the audit trail stays
    # Tokenizing again starts from empty tables: the same keys give the same first token.
    assert vault.tokenize(VISA, tenant="bank-a") == a_visa


# --- threads --------------------------------------------------------------------------------


class _SlowVault(InMemoryVault):
    """Derivation made slow, so that threads would interleave inside tokenize if they could."""

    def _candidate(self, pan: str, tenant: str, attempt: int) -> PanToken:
        time.sleep(0.002)
        return super()._candidate(pan, tenant, attempt)


def _run_at_once(threads: int, work: list[tuple[str, str]], vault: InMemoryVault) -> list[PanToken]:
    barrier = threading.Barrier(threads)

    def run(job: tuple[str, str]) -> PanToken:
        barrier.wait()
        return vault.tokenize(job[0], tenant=job[1])

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(run, work))


def test_threads_tokenizing_the_same_card_number_get_one_token() -> None:
    vault = _SlowVault(fingerprint_key=FINGERPRINT_KEY, token_key=TOKEN_KEY)
    vault.tokenize(MASTERCARD, tenant="acme")  # the tenant's tables exist before the race
    tokens = _run_at_once(16, [(VISA, "acme")] * 16, vault)
    assert len(set(tokens)) == 1
    assert vault.token_count() == 2
    assert vault.detokenize(tokens[0], tenant="acme", purpose="test") == VISA


def test_threads_tokenizing_a_crowded_bucket_get_distinct_tokens() -> None:
    vault = _SlowVault(fingerprint_key=FINGERPRINT_KEY, token_key=TOKEN_KEY)
    tenant, _, _ = COLLISION  # a tenant where two of the bucket collide on attempt 0
    card_numbers = bucket("411111", "1111")
    work = [(pan, tenant) for pan in card_numbers for _ in range(2)]
    tokens = _run_at_once(len(work), work, vault)
    by_pan: dict[str, set[PanToken]] = {}
    for (pan, _), token in zip(work, tokens, strict=True):
        by_pan.setdefault(pan, set()).add(token)
    assert all(len(issued) == 1 for issued in by_pan.values())
    assert len({next(iter(issued)) for issued in by_pan.values()}) == len(card_numbers)
    for pan, issued in by_pan.items():
        assert vault.detokenize(next(iter(issued)), tenant=tenant, purpose="test") == pan


# --- collisions and the attempt budget ------------------------------------------------------


def test_a_collision_moves_on_to_the_next_attempt() -> None:
    tenant, first, second = COLLISION
    assert derive_token(first, tenant, TOKEN_KEY) == derive_token(second, tenant, TOKEN_KEY)
    vault = keyed_vault()
    token_first = vault.tokenize(first, tenant=tenant)
    token_second = vault.tokenize(second, tenant=tenant)
    assert token_first == derive_token(first, tenant, TOKEN_KEY)
    assert token_second != token_first
    retried = [derive_token(second, tenant, TOKEN_KEY, attempt=n) for n in range(1, 10)]
    assert token_second == next(t for t in retried if t != token_first)
    assert vault.detokenize(token_first, tenant=tenant, purpose="test") == first
    assert vault.detokenize(token_second, tenant=tenant, purpose="test") == second
    # Convergence comes from the fingerprint table, not from deriving again.
    assert vault.tokenize(second, tenant=tenant) == token_second


def test_which_card_number_retries_depends_on_who_came_first() -> None:
    tenant, first, second = COLLISION
    vault = keyed_vault()
    assert vault.tokenize(second, tenant=tenant) == derive_token(second, tenant, TOKEN_KEY)
    assert vault.tokenize(first, tenant=tenant) != derive_token(first, tenant, TOKEN_KEY)


def test_a_whole_twelve_digit_bucket_gets_distinct_tokens() -> None:
    vault = keyed_vault()
    tenant = COLLISION[0]
    card_numbers = bucket("411111", "1111")
    tokens = [vault.tokenize(pan, tenant=tenant) for pan in card_numbers]
    assert len(set(tokens)) == len(card_numbers) == 10  # of 90 possible tokens
    assert all(t.value[:6] == "411111" and t.value[-4:] == "1111" for t in tokens)


def test_running_out_of_attempts_raises_token_space_exhausted() -> None:
    tenant, first, second = COLLISION
    vault = keyed_vault(max_attempts=1)
    assert vault.max_attempts == 1
    vault.tokenize(first, tenant=tenant)
    with pytest.raises(TokenSpaceExhaustedError) as info:
        vault.tokenize(second, tenant=tenant)
    text = str(info.value)
    assert second not in text
    assert mask_pan(second) in text
    assert "1 candidate(s)" in text
    assert isinstance(info.value, RuntimeError)
    assert isinstance(info.value, VaultError)
    assert vault.token_count() == 1  # nothing half-issued
    with pytest.raises(TokenSpaceExhaustedError):  # and again, no state left behind
        vault.tokenize(second, tenant=tenant)


class _StuckDerivation(InMemoryVault):
    """A broken derivation: every candidate is the same token."""

    attempts: list[int]

    def _candidate(self, pan: str, tenant: str, attempt: int) -> PanToken:
        self.attempts.append(attempt)
        return PanToken("4111111111111112")


def test_a_derivation_that_always_collides_stops_after_the_attempt_budget() -> None:
    vault = _StuckDerivation()
    vault.attempts = []
    vault.tokenize(VISA, tenant="acme")
    vault.attempts.clear()
    with pytest.raises(TokenSpaceExhaustedError, match=f"{DEFAULT_MAX_ATTEMPTS} candidate"):
        vault.tokenize(MASTERCARD, tenant="acme")
    assert vault.attempts == list(range(DEFAULT_MAX_ATTEMPTS))
    # Another tenant has its own tables: the same token is free there.
    assert vault.tokenize(MASTERCARD, tenant="other").value == "4111111111111112"
