"""The journal's key seam: master keys, tenant keys, the checkpoint signing key."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import create_engine

from journal.keys import (
    JournalKeyError,
    MasterKeys,
    StaticMasterKeys,
    TenantKeyring,
    public_key_bytes,
    signing_key,
)
from journal.migrate import upgrade
from tests.journal.conftest import MASTER_KEY_1, MASTER_KEY_2, master_keys
from vault.keys import EnvKeyProvider

NOW = dt.datetime(2026, 11, 29, 5, 0, tzinfo=dt.UTC)


def test_the_vaults_key_providers_fit_the_seam() -> None:
    provider = EnvKeyProvider(
        environ={"ISOBRIDGE_MASTER_KEYS": EnvKeyProvider.format({1: MASTER_KEY_1})}
    )
    assert isinstance(provider, MasterKeys)
    assert public_key_bytes(signing_key(provider, 1)) == public_key_bytes(
        signing_key(master_keys(1), 1)
    )


def test_static_master_keys() -> None:
    keys = StaticMasterKeys({1: MASTER_KEY_1, 2: MASTER_KEY_2})
    assert keys.current_version == 2
    assert repr(keys) == "StaticMasterKeys(versions=[1, 2])"
    with pytest.raises(JournalKeyError, match="version 3 is not available"):
        keys.master_key(3)
    with pytest.raises(JournalKeyError, match="32 bytes"):
        StaticMasterKeys({1: b"short"})
    with pytest.raises(JournalKeyError, match="at least one"):
        StaticMasterKeys({})


def test_signing_keys_differ_per_master_version() -> None:
    keys = master_keys(1, 2)
    assert public_key_bytes(signing_key(keys, 1)) != public_key_bytes(signing_key(keys, 2))


def test_tenant_keys_are_created_once_and_bound_to_their_tenant() -> None:
    engine = create_engine("sqlite://")
    upgrade(engine)
    keyring = TenantKeyring(master_keys(1))
    with engine.begin() as connection:
        first = keyring.current_keys(connection, ["acme", "globex"], NOW)
        again = TenantKeyring(master_keys(1)).current_keys(connection, ["acme"], NOW)
        assert first["acme"][0] == again["acme"][0] == 1
        nonce = bytes(12)
        sealed = first["acme"][1].encrypt(nonce, b"secret", b"aad")
        assert again["acme"][1].decrypt(nonce, sealed, b"aad") == b"secret"
        with pytest.raises(InvalidTag):
            first["globex"][1].decrypt(nonce, sealed, b"aad")
        connection.exec_driver_sql(
            "UPDATE journal_tenant_keys SET tenant = 'globex2' WHERE tenant = 'globex'"
        )
        connection.exec_driver_sql(
            "UPDATE journal_tenant_keys SET tenant = 'globex' WHERE tenant = 'acme'"
        )
        with pytest.raises(JournalKeyError, match=r"tenant 'globex' \(version 1\) does not unwrap"):
            TenantKeyring(master_keys(1)).readable_keys(connection, ["globex"])
    engine.dispose()
