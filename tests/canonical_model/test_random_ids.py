"""Random ids from the pool: the formats of the functions they stand for, every byte handed
out once, across threads and across a fork."""

from __future__ import annotations

import os
import re
import threading
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canonical_model.random_ids import POOL_BYTES, _uuid4_text, token_bytes, token_hex, uuid4_text


@given(st.binary(min_size=16, max_size=16))
def test_uuid4_text_is_what_uuid_writes_for_the_same_bytes(raw: bytes) -> None:
    assert _uuid4_text(raw) == str(uuid.UUID(bytes=raw, version=4))


def test_uuid4_texts_are_version_4_uuids_as_uuid_writes_them() -> None:
    for _ in range(1000):
        text = uuid4_text()
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert str(parsed) == text


@pytest.mark.parametrize("size", [0, 1, 12, 16, POOL_BYTES - 1, POOL_BYTES, POOL_BYTES + 1])
def test_tokens_have_their_size(size: int) -> None:
    assert len(token_bytes(size)) == size
    assert re.fullmatch(f"[0-9a-f]{{{2 * size}}}", token_hex(size))


def test_a_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="size must not be negative, got -1"):
        token_bytes(-1)


def test_no_bytes_are_handed_out_twice_across_refills() -> None:
    drawn = [token_bytes(16) for _ in range(3 * POOL_BYTES // 16 + 7)]
    assert len(set(drawn)) == len(drawn)


def test_threads_drawing_at_once_never_get_the_same_bytes() -> None:
    drawn: list[list[bytes]] = [[] for _ in range(8)]

    def draw(into: list[bytes]) -> None:
        for _ in range(3000):
            into.append(token_bytes(16))

    threads = [threading.Thread(target=draw, args=(into,)) for into in drawn]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [value for into in drawn for value in into]
    assert len(everything) == 24_000 and len(set(everything)) == len(everything)


def test_a_forked_child_never_hands_out_what_its_parent_hands_out() -> None:
    token_bytes(16)  # the pool holds bytes the parent has not handed out yet
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child process
        try:
            os.write(write_end, token_bytes(16))
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        from_child = os.read(read_end, 16)
    finally:
        os.close(read_end)
        os.waitpid(child, 0)
    assert len(from_child) == 16
    assert from_child != token_bytes(16)
