"""Random bytes for ids, drawn from the operating system 4 KiB at a time.

Every message a hub builds gets a random id (``uuid.uuid4()``, :func:`secrets.token_hex`);
each of those asks the kernel for 16 bytes with a ``getrandom`` system call of its own, a
few per card payment. Here the same source (:func:`os.urandom`, the kernel's CSPRNG) is read
4 KiB at a time and handed out in order, every byte once; a process started by ``fork``
forgets what its parent had drawn (:func:`os.register_at_fork`), so no two processes hand
out the same bytes. Thread-safe.

The formats are those of the functions they stand for: :func:`token_hex` is
:func:`secrets.token_hex`'s (``2 * size`` lowercase hex digits), :func:`uuid4_text` is
``str(uuid.uuid4())``'s (version 4, RFC 4122 variant, 36 characters).

>>> len(token_hex(16)), token_hex(16) != token_hex(16)
(32, True)
>>> import uuid
>>> text = uuid4_text()
>>> uuid.UUID(text).version, str(uuid.UUID(text)) == text
(4, True)
"""

from __future__ import annotations

import os
import threading
from typing import Final

__all__ = ["POOL_BYTES", "token_bytes", "token_hex", "uuid4_text"]

POOL_BYTES: Final = 4096
"""How many bytes are read from the operating system at a time."""


class _Pool:
    """Bytes from :func:`os.urandom`, each handed out once."""

    __slots__ = ("_buffer", "_lock", "_offset")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._offset = 0

    def take(self, size: int) -> bytes:
        if size > POOL_BYTES:
            return os.urandom(size)
        with self._lock:
            start = self._offset
            end = start + size
            if end > len(self._buffer):
                self._buffer = os.urandom(POOL_BYTES)
                start, end = 0, size
            self._offset = end
            return self._buffer[start:end]

    def forget(self) -> None:
        """Drop what was drawn (in a child after ``fork``: its parent hands those out)."""
        self._lock = threading.Lock()
        self._buffer = b""
        self._offset = 0


_POOL: Final = _Pool()
os.register_at_fork(after_in_child=_POOL.forget)


def token_bytes(size: int) -> bytes:
    """``size`` random bytes, as :func:`secrets.token_bytes`.

    >>> len(token_bytes(12)), token_bytes(0)
    (12, b'')
    """
    if size < 0:
        raise ValueError(f"size must not be negative, got {size}")
    return _POOL.take(size)


def token_hex(size: int) -> str:
    """``2 * size`` random hex digits, as :func:`secrets.token_hex`."""
    return token_bytes(size).hex()


def uuid4_text() -> str:
    """A random (version 4) UUID as text, as ``str(uuid.uuid4())``."""
    return _uuid4_text(_POOL.take(16))


def _uuid4_text(random: bytes) -> str:
    """``str(uuid.UUID(bytes=random, version=4))``, without building the UUID."""
    raw = bytearray(random)
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 4122 variant
    digits = raw.hex()
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
