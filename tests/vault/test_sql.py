"""The persistent vault on SQLite and PostgreSQL: tokens, storage, policy, audit, deletion."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, text, update

from adapters.base import DecodeContext, EncodeContext
from adapters.iso8583.adapter import Iso8583Adapter
from adapters.iso8583.samples import sample_bytes
from canonical_model import PanToken, find_clear_pans, luhn_valid
from tests.vault.conftest import VaultFactory, master_keys
from tests.vault.strategies import luhn_pans, with_check_digit
from vault.errors import (
    DetokenizationDeniedError,
    ExpiredTokenError,
    InvalidPanError,
    UnknownTokenError,
    VaultError,
    VaultUnavailableError,
    WrongKeyError,
)
from vault.keys import EnvKeyProvider
from vault.policy import Caller, adapter_caller
from vault.schema import TokenRow
from vault.sql import SqlVault

ROOT = Path(__file__).resolve().parents[2]
VISA = "4111111111111111"
MASTERCARD = "5555555555554444"
AMEX = "378282246310005"
OPERATOR = Caller("ops-1", frozenset({"operator"}))
STRANGER = Caller("intruder", frozenset({"marketing"}))


def all_cells(vault: SqlVault) -> list[str]:
    """Every value of every vault table, as text (bytes decoded leniently)."""
    cells: list[str] = []
    with vault.engine.connect() as connection:
        for table in ("vault_tenants", "vault_data_keys", "vault_tokens", "vault_audit"):
            for row in connection.execute(text(f"SELECT * FROM {table}")):
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        cells.append(bytes(value).decode("latin-1"))
                    else:
                        cells.append(str(value))
    return cells


def test_tokens_keep_length_bin_and_last_four_and_fail_luhn(make_vault: VaultFactory) -> None:
    vault = make_vault()
    for pan in (VISA, MASTERCARD, AMEX, "6011111111111117", with_check_digit("400005665566555612")):
        token = vault.tokenize(pan, tenant="acme")
        assert len(token.value) == len(pan)
        assert token.value[:6] == pan[:6]
        assert token.value[-4:] == pan[-4:]
        assert not luhn_valid(token.value)
        assert token.value != pan


def test_tokens_converge_in_a_tenant_and_differ_across_tenants(make_vault: VaultFactory) -> None:
    vault = make_vault()
    first = vault.tokenize(VISA, tenant="acme")
    assert vault.tokenize(VISA, tenant="acme") == first
    assert vault.tokenize(VISA, tenant="globex") != first
    # A second process (its own engine, an empty cache) finds the same token in the database.
    assert make_vault().tokenize(VISA, tenant="acme") == first


def test_tokenize_many_is_convergent_with_tokenize(make_vault: VaultFactory) -> None:
    vault = make_vault()
    pans = [VISA, MASTERCARD, VISA, AMEX]
    tokens = vault.tokenize_many(pans, tenant="acme")
    assert tokens[0] == tokens[2]
    assert len(set(tokens)) == 3
    assert make_vault().tokenize_many(pans, tenant="acme") == tokens
    assert [vault.tokenize(p, tenant="acme") for p in pans] == tokens


def test_the_card_number_is_stored_only_as_ciphertext(make_vault: VaultFactory) -> None:
    vault = make_vault()
    token = vault.tokenize(VISA, tenant="acme")
    vault.detokenize(token, tenant="acme", purpose=f"check {VISA}", caller=OPERATOR)
    cells = all_cells(vault)
    assert not any(VISA in cell for cell in cells)
    assert not any(find_clear_pans(cell) for cell in cells)


def test_detokenize_gives_the_card_number_back_and_audits(make_vault: VaultFactory) -> None:
    vault = make_vault()
    tokens = vault.tokenize_many([VISA, AMEX], tenant="acme")
    assert vault.detokenize_many(tokens, tenant="acme", purpose="dispute 7", caller=OPERATOR) == [
        VISA,
        AMEX,
    ]
    log = vault.audit_log(tenant="acme")
    assert [(r.caller, r.purpose, r.token_masked, r.granted) for r in log] == [
        ("ops-1", "dispute 7", tokens[0].masked, True),
        ("ops-1", "dispute 7", tokens[1].masked, True),
    ]


def test_a_caller_the_policy_does_not_know_is_refused_and_audited(
    make_vault: VaultFactory,
) -> None:
    vault = make_vault()
    token = vault.tokenize(VISA, tenant="acme")
    with pytest.raises(DetokenizationDeniedError) as info:
        vault.detokenize(token, tenant="acme", purpose="newsletter", caller=STRANGER)
    assert isinstance(info.value, PermissionError)
    assert "intruder" in str(info.value)
    assert VISA not in str(info.value)
    record = vault.audit_log(tenant="acme")[-1]
    assert (record.caller, record.granted, record.reason) == ("intruder", False, "denied by policy")


def test_an_adapter_may_detokenize_only_to_encode_its_own_format(make_vault: VaultFactory) -> None:
    vault = make_vault()
    token = vault.tokenize(VISA, tenant="acme")
    iso = vault.for_caller(adapter_caller("iso8583"))
    assert iso.detokenize(token, tenant="acme", purpose="encode:iso8583") == VISA
    with pytest.raises(DetokenizationDeniedError):
        iso.detokenize(token, tenant="acme", purpose="export")
    other = vault.for_caller(adapter_caller("iso20022"))
    with pytest.raises(DetokenizationDeniedError):
        other.detokenize(token, tenant="acme", purpose="encode:iso20022")


def test_a_purpose_is_required(make_vault: VaultFactory) -> None:
    vault = make_vault()
    token = vault.tokenize(VISA, tenant="acme")
    with pytest.raises(ValueError, match="purpose"):
        vault.detokenize(token, tenant="acme", purpose=" ", caller=OPERATOR)


def test_a_card_number_written_in_the_purpose_is_masked_in_the_audit(
    make_vault: VaultFactory,
) -> None:
    vault = make_vault()
    token = vault.tokenize(VISA, tenant="acme")
    vault.detokenize(token, tenant="acme", purpose=f"customer read {MASTERCARD}", caller=OPERATOR)
    assert vault.audit_log()[-1].purpose == "customer read 555555******4444"


def test_another_tenants_token_is_unknown_and_the_refusal_audited(make_vault: VaultFactory) -> None:
    vault = make_vault()
    token = vault.tokenize(VISA, tenant="acme")
    vault.tokenize(MASTERCARD, tenant="globex")
    with pytest.raises(UnknownTokenError) as info:
        vault.detokenize(token, tenant="globex", purpose="probe", caller=OPERATOR)
    assert str(info.value) == f"no token {token.masked} in tenant 'globex'"
    record = vault.audit_log(tenant="globex")[-1]
    assert (record.granted, record.reason) == (False, "unknown token")


def test_a_token_of_a_tenant_that_never_existed_is_unknown(make_vault: VaultFactory) -> None:
    vault = make_vault()
    with pytest.raises(UnknownTokenError):
        vault.detokenize(
            PanToken("4111110000001112"), tenant="nobody", purpose="x", caller=OPERATOR
        )


def test_a_ciphertext_moved_to_another_row_does_not_decrypt(make_vault: VaultFactory) -> None:
    vault = make_vault()
    visa, master = vault.tokenize_many([VISA, MASTERCARD], tenant="acme")
    with vault.engine.begin() as connection:
        stolen = connection.execute(
            select(TokenRow.ciphertext).where(TokenRow.token == visa.value)
        ).scalar_one()
        connection.execute(
            update(TokenRow).where(TokenRow.token == master.value).values(ciphertext=stolen)
        )
    with pytest.raises(WrongKeyError) as info:
        make_vault().detokenize(master, tenant="acme", purpose="x", caller=OPERATOR)
    assert "altered or moved" in str(info.value)
    assert VISA not in str(info.value)
    report = vault.verify()
    assert report.rows_checked == 2
    assert [(tenant, masked) for tenant, masked, _ in report.failures] == [("acme", master.masked)]


def test_a_flipped_ciphertext_bit_is_detected(make_vault: VaultFactory) -> None:
    vault = make_vault()
    token = vault.tokenize(VISA, tenant="acme")
    with vault.engine.begin() as connection:
        sealed = connection.execute(
            select(TokenRow.ciphertext).where(TokenRow.token == token.value)
        ).scalar_one()
        tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
        connection.execute(update(TokenRow).values(ciphertext=tampered))
    with pytest.raises(WrongKeyError):
        make_vault().detokenize(token, tenant="acme", purpose="x", caller=OPERATOR)


def test_the_wrong_master_key_is_named(make_vault: VaultFactory) -> None:
    make_vault().tokenize(VISA, tenant="acme")
    wrong = EnvKeyProvider(environ={"ISOBRIDGE_MASTER_KEYS": EnvKeyProvider.format({1: bytes(32)})})
    with pytest.raises(WrongKeyError) as info:
        make_vault(wrong).tokenize(VISA, tenant="acme")
    assert str(info.value) == (
        "the index key of tenant 'acme' (version 1) does not unwrap under master key version 1:"
        " wrong master key, or the wrapped key was altered"
    )


def test_a_missing_master_key_version_is_named(make_vault: VaultFactory) -> None:
    make_vault(master_keys(1, 2)).tokenize(VISA, tenant="acme")
    with pytest.raises(VaultError, match="master key version 2 is not in"):
        make_vault(master_keys(1)).tokenize(VISA, tenant="acme")


@pytest.mark.parametrize(
    ("pan", "message"),
    [
        ("4111-1111-1111-1111", "not all of them digits"),
        ("41111111111", "got 11 digits"),
        ("41111111111111111111", "got 20 digits"),
        ("4111111111111112", "fails the Luhn check"),
    ],
)
def test_bad_card_numbers_are_refused_without_echo(
    make_vault: VaultFactory, pan: str, message: str
) -> None:
    with pytest.raises(InvalidPanError) as info:
        make_vault().tokenize(pan, tenant="acme")
    assert message in str(info.value)
    assert pan not in str(info.value)


def test_luhn_invalid_cards_are_accepted_when_configured(make_vault: VaultFactory) -> None:
    vault = make_vault(accept_luhn_invalid=True)
    token = vault.tokenize("4111111111111112", tenant="acme")
    assert not luhn_valid(token.value)
    assert vault.detokenize(token, tenant="acme", purpose="x", caller=OPERATOR) == (
        "4111111111111112"
    )


def test_a_token_expires_and_comes_back_when_the_card_is_seen_again(
    make_vault: VaultFactory,
) -> None:
    clock = [dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)]
    vault = make_vault(now=lambda: clock[0])
    token = vault.tokenize(VISA, tenant="acme", ttl=dt.timedelta(hours=1))
    assert vault.detokenize(token, tenant="acme", purpose="x", caller=OPERATOR) == VISA
    clock[0] += dt.timedelta(hours=2)
    with pytest.raises(ExpiredTokenError) as info:
        vault.detokenize(token, tenant="acme", purpose="x", caller=OPERATOR)
    assert "expired at 2026-11-29T13:00:00+00:00" in str(info.value)
    assert vault.audit_log()[-1].reason == "expired"
    assert vault.stats()[0].expired == 1
    assert vault.tokenize(VISA, tenant="acme", ttl=dt.timedelta(hours=1)) == token
    assert vault.detokenize(token, tenant="acme", purpose="x", caller=OPERATOR) == VISA


def test_purge_deletes_expired_tokens_only(make_vault: VaultFactory) -> None:
    clock = [dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)]
    vault = make_vault(now=lambda: clock[0])
    short = vault.tokenize(VISA, tenant="acme", ttl=dt.timedelta(minutes=5))
    kept = vault.tokenize(MASTERCARD, tenant="acme")
    clock[0] += dt.timedelta(minutes=6)
    assert vault.purge_expired() == 1
    with pytest.raises(UnknownTokenError):
        vault.detokenize(short, tenant="acme", purpose="x", caller=OPERATOR)
    assert vault.detokenize(kept, tenant="acme", purpose="x", caller=OPERATOR) == MASTERCARD


def test_a_deleted_token_is_gone(make_vault: VaultFactory) -> None:
    vault = make_vault()
    token = vault.tokenize(VISA, tenant="acme")
    assert vault.delete_token(token, tenant="acme") is True
    assert vault.delete_token(token, tenant="acme") is False
    with pytest.raises(UnknownTokenError):
        vault.detokenize(token, tenant="acme", purpose="x", caller=OPERATOR)


def test_shredding_a_tenant_destroys_its_keys_and_leaves_copies_unreadable(
    make_vault: VaultFactory,
) -> None:
    vault = make_vault()
    token = vault.tokenize(VISA, tenant="acme")
    other = vault.tokenize(VISA, tenant="globex")
    with vault.engine.connect() as connection:
        backup = [dict(row._mapping) for row in connection.execute(select(TokenRow))]
    assert vault.shred_tenant("acme") == 1
    # Restoring the rows from a backup does not bring the card back: the keys are gone.
    with vault.engine.begin() as connection:
        connection.execute(
            insert(TokenRow),
            [
                {k: v for k, v in row.items() if k != "id"}
                for row in backup
                if row["tenant"] == "acme"
            ],
        )
    with pytest.raises(UnknownTokenError):
        make_vault().detokenize(token, tenant="acme", purpose="x", caller=OPERATOR)
    assert vault.detokenize(other, tenant="globex", purpose="x", caller=OPERATOR) == VISA
    assert [s.tenant for s in vault.stats()] == ["globex"]


def test_two_processes_tokenizing_the_same_cards_at_once_get_one_token_each(
    database: tuple[str, dict[str, Any]],
) -> None:
    url, options = database
    search_path = options.get("connect_args", {}).get("options", "")
    script = f"""
import sys
from tests.vault.conftest import master_keys
from vault.sql import SqlVault
options = {{"connect_args": {{"options": {search_path!r}}}}} if {search_path!r} else {{}}
engine = SqlVault.create_engine({url!r}, **options)
vault = SqlVault(engine, master_keys(1))
pans = [line.strip() for line in sys.stdin if line.strip()]
tokens = [vault.tokenize(pan, tenant="race").value for pan in pans]
print("\\n".join(tokens))
"""
    pans = luhn_pans(300, seed=7)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate("\n".join(pans), timeout=180) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    first, second = (out.split() for out, _ in outputs)
    assert first == second
    assert len(set(first)) == len(set(pans))
    vault = SqlVault(SqlVault.create_engine(url, **options), master_keys(1))
    try:
        assert vault.stats()[0].tokens == len(set(pans))
        assert (
            vault.detokenize_many(
                [PanToken(t) for t in first[:20]], tenant="race", purpose="x", caller=OPERATOR
            )
            == pans[:20]
        )
    finally:
        vault.close()


def test_iso8583_adapter_tokenizes_and_detokenizes_through_the_vault(
    make_vault: VaultFactory,
) -> None:
    vault = make_vault()
    adapter = Iso8583Adapter("ascii")
    payload = sample_bytes("0420-reversal-advice", "ascii")
    message = adapter.decode(payload, DecodeContext("acme", vault))
    assert message.card is not None and message.card.token is not None
    later = make_vault()  # another process encodes it
    context = EncodeContext.for_adapter(
        adapter, "acme", later.for_caller(adapter_caller("iso8583"))
    )
    assert adapter.encode(message, context) == payload
    record = later.audit_log()[-1]
    assert (record.caller, record.purpose, record.granted) == (
        "adapter:iso8583",
        "encode:iso8583",
        True,
    )


def test_an_unreachable_database_is_a_vault_unavailable_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing-dir' / 'vault.db'}"
    with pytest.raises(VaultUnavailableError) as info:
        SqlVault.open(url, master_keys(1))
    assert isinstance(info.value, RuntimeError)
    assert "unable to open database file" in str(info.value)


def test_a_database_without_the_schema_asks_for_vault_init(tmp_path: Path) -> None:
    with pytest.raises(VaultError, match="run `isobridge vault init`"):
        SqlVault.open(f"sqlite:///{tmp_path / 'empty.db'}", master_keys(1))
    vault = SqlVault.open(f"sqlite:///{tmp_path / 'empty.db'}", master_keys(1), create=True)
    vault.close()
