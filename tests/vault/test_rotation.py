"""Key rotation, retirement and master key re-wrapping, with thousands of tokens."""

from __future__ import annotations

import pytest

from tests.vault.conftest import VaultFactory, master_keys
from tests.vault.strategies import luhn_pans
from vault.errors import MissingKeyError
from vault.policy import Caller

OPERATOR = Caller("ops-1", frozenset({"operator"}))
CARDS = luhn_pans(3000, seed=11)


def test_rotation_reencrypts_every_row_and_loses_nothing(make_vault: VaultFactory) -> None:
    vault = make_vault()
    tokens = vault.tokenize_many(CARDS, tenant="acme")
    progress: list[tuple[int, int]] = []
    report = vault.rotate("acme", batch_size=700, progress=lambda d, t: progress.append((d, t)))
    assert (report.new_version, report.rows_reencrypted) == (2, len(CARDS))
    assert progress[0] == (0, len(CARDS))
    assert progress[-1] == (len(CARDS), len(CARDS))
    assert len(progress) == 1 + 5  # 3000 rows in batches of 700
    stats = vault.stats()[0]
    assert stats.rows_by_key_version == {2: len(CARDS)}
    # Another process, fresh from the database, reads every card back.
    reader = make_vault()
    assert reader.detokenize_many(tokens, tenant="acme", purpose="check", caller=OPERATOR) == CARDS
    assert vault.verify().ok


def test_new_tokens_use_the_new_version_and_old_versions_decrypt_until_retired(
    make_vault: VaultFactory,
) -> None:
    vault = make_vault()
    old = vault.tokenize_many(CARDS[:10], tenant="acme")
    other_process = make_vault()
    other_process.tokenize(CARDS[10], tenant="acme")  # caches version 1
    vault.rotate("acme")
    new = vault.tokenize(CARDS[11], tenant="acme")
    assert vault.stats()[0].rows_by_key_version == {2: 12}
    # A row written under version 1 after the rotation (a process that had not yet re-read
    # the keys) still decrypts, and keeps version 1 from retirement.
    late = other_process.tokenize(CARDS[12], tenant="acme")
    assert vault.stats()[0].rows_by_key_version == {1: 1, 2: 12}
    assert vault.retire_old_keys("acme") == []
    assert vault.detokenize(late, tenant="acme", purpose="x", caller=OPERATOR) == CARDS[12]
    vault.rotate("acme")
    assert vault.retire_old_keys("acme") == [1, 2]
    assert vault.stats()[0].key_versions == {1: "retired", 2: "retired", 3: "active"}
    assert make_vault().detokenize_many(
        [*old, new, late], tenant="acme", purpose="x", caller=OPERATOR
    ) == [*CARDS[:10], CARDS[11], CARDS[12]]


def test_a_row_under_a_retired_version_names_the_version(make_vault: VaultFactory) -> None:
    vault = make_vault()
    token = vault.tokenize(CARDS[0], tenant="acme")
    vault.rotate("acme")
    vault.retire_old_keys("acme")
    # Put the row back on version 1, as a restore from an old backup would.
    from sqlalchemy import update

    from vault.schema import TokenRow

    with vault.engine.begin() as connection:
        connection.execute(update(TokenRow).values(key_version=1))
    with pytest.raises(MissingKeyError, match="data key version 1 of tenant 'acme' is retired"):
        make_vault().detokenize(token, tenant="acme", purpose="x", caller=OPERATOR)
    report = vault.verify()
    assert not report.ok
    assert report.failures[0][1] == token.masked


def test_rewrap_moves_every_tenant_key_to_the_new_master_key(make_vault: VaultFactory) -> None:
    vault = make_vault(master_keys(1))
    tokens = {t: vault.tokenize(CARDS[0], tenant=t) for t in ("acme", "globex")}
    vault.rotate("acme")
    both = make_vault(master_keys(1, 2))
    assert both.rewrap() == 5  # 2 index keys + 3 data keys
    assert {s.tenant: s.master_versions for s in both.stats()} == {
        "acme": (2,),
        "globex": (2,),
    }
    only_new = make_vault(master_keys(2))
    for tenant, token in tokens.items():
        assert only_new.detokenize(token, tenant=tenant, purpose="x", caller=OPERATOR) == CARDS[0]
    with pytest.raises(MissingKeyError, match="master key version 2 is not in"):
        make_vault(master_keys(1)).detokenize(
            tokens["acme"], tenant="acme", purpose="x", caller=OPERATOR
        )


def test_rotating_an_unknown_tenant_is_refused(make_vault: VaultFactory) -> None:
    with pytest.raises(LookupError, match="no tenant 'nobody'"):
        make_vault().rotate("nobody")


def test_verify_counts_every_row(make_vault: VaultFactory) -> None:
    vault = make_vault()
    vault.tokenize_many(CARDS[:1200], tenant="acme")
    vault.tokenize_many(CARDS[:5], tenant="globex")
    seen: list[int] = []
    report = vault.verify(batch_size=500, progress=lambda done, total: seen.append(done))
    assert report.rows_checked == 1205
    assert report.ok
    assert seen == [500, 1000, 1205]
