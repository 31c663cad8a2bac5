"""The vault's key hierarchy: master keys from a :class:`KeyProvider` wrap per-tenant keys.

Hierarchy
---------
::

    master key  (KeyProvider: key file, environment variable; an HSM or cloud KMS fits the
     |           same three methods)            versions 1, 2, ...; never stored by the vault
     +-- wraps  tenant data key     (AES-256; encrypts the PANs)         versions 1, 2, ...
     +-- wraps  tenant index key    (HMAC-SHA256 root of the fingerprint key, the token key
                                     and the FPE key, derived with HKDF-SHA256)

Every wrapped key is AES-256-GCM ciphertext (12-byte random nonce) whose associated data
names what it is, whose it is and which versions (:func:`key_aad`), so a wrapped key copied
to another tenant or version does not unwrap. A PAN is AES-256-GCM ciphertext under the
tenant's data key with associated data binding it to its tenant, token and key version
(:func:`pan_aad`).

The data key rotates (``isobridge vault rotate``): new rows use the new version, existing
rows are re-encrypted, old versions keep decrypting until retired. The index key does not
rotate with it: it is what makes the same PAN find the same token (the fingerprint), so
rotating it would mean re-fingerprinting every row; its version is recorded for the day
that is needed. A new master key version re-wraps every tenant key; the PAN rows are not
touched.

Providers
---------
- :class:`FileKeyProvider`: a JSON file (mode 0600) ``{"format": "isobridge-master-keys/1",
  "current": 2, "keys": {"1": "<base64>", "2": "<base64>"}}``; :meth:`FileKeyProvider.create`
  writes a new one, :meth:`FileKeyProvider.add_version` a new current version.
- :class:`EnvKeyProvider`: ``ISOBRIDGE_MASTER_KEYS="1:<base64>,2:<base64>"``; the highest
  version is current.

Errors: :class:`~vault.errors.MissingKeyError` for a key version the provider does not hold,
:class:`~vault.errors.WrongKeyError` when a key does not open what it should (wrong master
key, tampered wrapped key). Neither text holds key material.

>>> master = bytes(range(32))
>>> data_key = bytes(32)
>>> wrapped = wrap_key(master, data_key, key_aad("data", "acme", 1, 1))
>>> unwrap_key(master, wrapped, key_aad("data", "acme", 1, 1)) == data_key
True
>>> unwrap_key(master, wrapped, key_aad("data", "other", 1, 1))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
vault.errors.WrongKeyError: the data key of tenant 'other' (version 1) does not unwrap ...
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault.errors import KeyProviderError, MissingKeyError, WrongKeyError

__all__ = [
    "ENV_MASTER_KEYS",
    "KEY_FILE_FORMAT",
    "KEY_SIZE",
    "EnvKeyProvider",
    "FileKeyProvider",
    "KeyProvider",
    "derive_subkey",
    "key_aad",
    "new_key",
    "pan_aad",
    "unwrap_key",
    "wrap_key",
]

KEY_SIZE: Final = 32
"""Every key of the hierarchy is 256 bits."""

NONCE_SIZE: Final = 12
KEY_FILE_FORMAT: Final = "isobridge-master-keys/1"
ENV_MASTER_KEYS: Final = "ISOBRIDGE_MASTER_KEYS"


@runtime_checkable
class KeyProvider(Protocol):
    """Where master keys come from. The vault never stores them."""

    @property
    def current_version(self) -> int:
        """The version new wraps use."""
        ...

    def versions(self) -> tuple[int, ...]:
        """Every version this provider can open, ascending."""
        ...

    def master_key(self, version: int) -> bytes:
        """The 32-byte master key of ``version``; raises :class:`MissingKeyError`."""
        ...


def new_key() -> bytes:
    """A fresh random 256-bit key."""
    return secrets.token_bytes(KEY_SIZE)


def key_aad(kind: str, tenant: str, version: int, master_version: int) -> bytes:
    """Associated data of a wrapped tenant key: what, whose, which versions."""
    return f"isobridge/key/{kind}/{tenant}/{version}/{master_version}".encode()


def pan_aad(tenant: str, token: str, key_version: int) -> bytes:
    """Associated data of a PAN ciphertext: its tenant, its token, its data key version."""
    return f"isobridge/pan/{tenant}/{token}/{key_version}".encode()


def _parse_aad(aad: bytes) -> str:
    parts = aad.decode(errors="replace").split("/")
    if len(parts) == 6 and parts[1] == "key":
        _, _, kind, tenant, version, master = parts
        return (
            f"the {kind} key of tenant {tenant!r} (version {version}) does not unwrap under "
            f"master key version {master}"
        )
    return "a wrapped key does not unwrap"


def wrap_key(master: bytes, key: bytes, aad: bytes) -> bytes:
    """``key`` encrypted under ``master`` (AES-256-GCM): nonce + ciphertext + tag."""
    nonce = secrets.token_bytes(NONCE_SIZE)
    return nonce + AESGCM(master).encrypt(nonce, key, aad)


def unwrap_key(master: bytes, wrapped: bytes, aad: bytes) -> bytes:
    """The key inside ``wrapped``; raises :class:`WrongKeyError` if it does not open."""
    try:
        return AESGCM(master).decrypt(wrapped[:NONCE_SIZE], wrapped[NONCE_SIZE:], aad)
    except (InvalidTag, ValueError):
        raise WrongKeyError(
            f"{_parse_aad(aad)}: wrong master key, or the wrapped key was altered"
        ) from None


def derive_subkey(root: bytes, purpose: str) -> bytes:
    """A 256-bit key for ``purpose`` (``fingerprint``, ``token``, ``fpe``) from ``root``."""
    return HKDF(
        algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=purpose.encode()
    ).derive(root)


def _decode_key(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyProviderError(f"{where}: a key is not valid base64") from None
    if len(key) != KEY_SIZE:
        raise KeyProviderError(f"{where}: a key must be {KEY_SIZE} bytes, not {len(key)}")
    return key


def _encode_key(key: bytes) -> str:
    return base64.b64encode(key).decode()


class _StaticKeys:
    def __init__(self, keys: Mapping[int, bytes], current: int, where: str) -> None:
        if not keys:
            raise KeyProviderError(f"{where}: holds no master key")
        if current not in keys:
            raise KeyProviderError(f"{where}: current version {current} has no key")
        self._keys = dict(keys)
        self._current = current
        self._where = where

    @property
    def current_version(self) -> int:
        return self._current

    def versions(self) -> tuple[int, ...]:
        return tuple(sorted(self._keys))

    def master_key(self, version: int) -> bytes:
        key = self._keys.get(version)
        if key is None:
            raise MissingKeyError(
                f"master key version {version} is not in {self._where} "
                f"(it holds {', '.join(map(str, self.versions()))})"
            )
        return key


class EnvKeyProvider(_StaticKeys):
    """Master keys from an environment variable: ``"1:<base64>,2:<base64>"``."""

    def __init__(
        self, variable: str = ENV_MASTER_KEYS, environ: Mapping[str, str] | None = None
    ) -> None:
        env = os.environ if environ is None else environ
        where = f"${variable}"
        text = env.get(variable)
        if not text:
            raise MissingKeyError(f"{where} is not set: no master key")
        keys: dict[int, bytes] = {}
        for item in text.split(","):
            version, sep, encoded = item.strip().partition(":")
            if not sep or not version.isdigit():
                raise KeyProviderError(f"{where}: each entry must be <version>:<base64 key>")
            keys[int(version)] = _decode_key(encoded, where)
        super().__init__(keys, max(keys), where)

    @staticmethod
    def format(keys: Mapping[int, bytes]) -> str:
        """The variable's value for ``keys``."""
        return ",".join(f"{version}:{_encode_key(key)}" for version, key in sorted(keys.items()))

    def __repr__(self) -> str:
        return f"EnvKeyProvider({self._where!r}, versions={self.versions()})"


class FileKeyProvider(_StaticKeys):
    """Master keys from a JSON key file readable by its owner only."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        where = f"key file {self.path}"
        try:
            mode = self.path.stat().st_mode
            raw = self.path.read_text()
        except FileNotFoundError:
            raise MissingKeyError(
                f"{where} does not exist (create it with `isobridge vault init`)"
            ) from None
        except OSError as exc:
            raise KeyProviderError(f"{where}: {exc.strerror}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyProviderError(f"{where} is readable by others: chmod 600 it")
        try:
            data = json.loads(raw)
            if data.get("format") != KEY_FILE_FORMAT:
                raise KeyProviderError(f"{where}: not an {KEY_FILE_FORMAT} file")
            keys = {int(v): _decode_key(k, where) for v, k in data["keys"].items()}
            current = int(data["current"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise KeyProviderError(f"{where}: not an {KEY_FILE_FORMAT} file") from None
        super().__init__(keys, current, where)

    @classmethod
    def create(cls, path: str | os.PathLike[str]) -> FileKeyProvider:
        """Write a new key file with one fresh master key (version 1); refuses to overwrite."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        cls._write(target, {1: new_key()}, 1, exclusive=True)
        return cls(target)

    def add_version(self) -> int:
        """Add a fresh master key as the new current version; returns its number."""
        version = max(self._keys) + 1
        keys = {**self._keys, version: new_key()}
        self._write(self.path, keys, version, exclusive=False)
        self._keys, self._current = keys, version
        return version

    @staticmethod
    def _write(path: Path, keys: Mapping[int, bytes], current: int, *, exclusive: bool) -> None:
        body = json.dumps(
            {
                "format": KEY_FILE_FORMAT,
                "current": current,
                "keys": {str(v): _encode_key(k) for v, k in sorted(keys.items())},
            },
            indent=2,
        )
        temporary = path.with_name(path.name + ".tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        if exclusive and path.exists():
            raise KeyProviderError(f"key file {path} exists already; refusing to overwrite it")
        descriptor = os.open(temporary, flags, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(body + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)

    def __repr__(self) -> str:
        return f"FileKeyProvider({str(self.path)!r}, versions={self.versions()})"
