"""Master key providers and key wrapping."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from vault.errors import KeyProviderError, MissingKeyError, WrongKeyError
from vault.keys import (
    EnvKeyProvider,
    FileKeyProvider,
    KeyProvider,
    derive_subkey,
    key_aad,
    new_key,
    unwrap_key,
    wrap_key,
)


def test_a_key_file_is_created_owner_only_and_grows_versions(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "master.json"
    provider = FileKeyProvider.create(path)
    assert isinstance(provider, KeyProvider)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (provider.current_version, provider.versions()) == (1, (1,))
    first = provider.master_key(1)
    assert provider.add_version() == 2
    again = FileKeyProvider(path)
    assert (again.current_version, again.versions()) == (2, (1, 2))
    assert again.master_key(1) == first
    assert again.master_key(2) != first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "master.json" in repr(again)
    assert first.hex() not in repr(again)


def test_a_key_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "master.json"
    FileKeyProvider.create(path)
    with pytest.raises(KeyProviderError, match="exists already"):
        FileKeyProvider.create(path)


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.json"
    FileKeyProvider.create(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyProviderError, match="readable by others: chmod 600 it"):
        FileKeyProvider(path)


def test_a_missing_key_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(MissingKeyError, match="isobridge vault init"):
        FileKeyProvider(tmp_path / "nope.json")


@pytest.mark.parametrize(
    "body",
    ['{"format": "other"}', "not json", '{"format": "isobridge-master-keys/1", "current": 1}'],
)
def test_a_malformed_key_file_is_named(tmp_path: Path, body: str) -> None:
    path = tmp_path / "master.json"
    path.write_text(body)
    path.chmod(0o600)
    with pytest.raises(KeyProviderError, match="not an isobridge-master-keys/1 file"):
        FileKeyProvider(path)


def test_environment_keys_current_is_the_highest_version() -> None:
    value = EnvKeyProvider.format({1: bytes(32), 3: bytes(range(32))})
    provider = EnvKeyProvider(environ={"ISOBRIDGE_MASTER_KEYS": value})
    assert (provider.current_version, provider.versions()) == (3, (1, 3))
    with pytest.raises(MissingKeyError, match="master key version 2 is not in"):
        provider.master_key(2)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "is not set"),
        ("abc", "each entry must be <version>:<base64 key>"),
        ("1:!!!", "not valid base64"),
        ("1:AAAA", "must be 32 bytes, not 3"),
    ],
)
def test_bad_environment_keys_are_named(value: str, message: str) -> None:
    with pytest.raises((KeyProviderError, MissingKeyError), match=message):
        EnvKeyProvider(environ={"ISOBRIDGE_MASTER_KEYS": value})


def test_wrapped_keys_are_bound_to_their_tenant_and_versions() -> None:
    master, key = new_key(), new_key()
    wrapped = wrap_key(master, key, key_aad("data", "acme", 2, 1))
    assert unwrap_key(master, wrapped, key_aad("data", "acme", 2, 1)) == key
    for aad in (
        key_aad("data", "acme", 1, 1),
        key_aad("index", "acme", 2, 1),
        key_aad("data", "acme", 2, 2),
    ):
        with pytest.raises(WrongKeyError):
            unwrap_key(master, wrapped, aad)
    with pytest.raises(WrongKeyError):
        unwrap_key(new_key(), wrapped, key_aad("data", "acme", 2, 1))


def test_subkeys_differ_by_purpose() -> None:
    root = new_key()
    keys = {derive_subkey(root, p) for p in ("fingerprint", "token", "fpe")}
    assert len(keys) == 3
    assert derive_subkey(root, "token") == derive_subkey(root, "token")
