"""Masking helpers and the logging filter."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canonical_model import find_clear_pans
from tests.vault.strategies import pans
from vault.masking import (
    PanMaskingFilter,
    install_pan_masking,
    mask_first6_last4,
    mask_fully,
    mask_text,
)


def test_display_forms() -> None:
    assert mask_first6_last4("378282246310005") == "378282*****0005"
    assert mask_fully("378282246310005") == "***********0005"
    assert mask_fully("378282246310005", keep_last=0) == "*" * 15
    with pytest.raises(ValueError, match="at most the last four"):
        mask_fully("4111111111111111", keep_last=5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4111111111111111", "411111******1111"),
        ("pan=4111111111111111;", "pan=411111******1111;"),
        ("4111 1111 1111 1111", "411111******1111"),
        ("4111-1111-1111-1111 ok", "411111******1111 ok"),
        ("3782 822463 10005", "378282*****0005"),
        ("4111111111111112", "4111111111111112"),  # fails Luhn: not a card number
        ("order 123456789012", "order 123456789012"),  # 12 digits
        ("stan 000123 rrn 633216000002", "stan 000123 rrn 633216000002"),
        ("4111 1111 1111 1111 2026", "411111******1111 2026"),
        ("12 4111-1111-1111-1111", "12 411111******1111"),
    ],
)
def test_mask_text(text: str, expected: str) -> None:
    assert mask_text(text) == expected


@given(pan=pans, before=st.text(max_size=20), after=st.text(max_size=20))
def test_no_card_number_survives_masking(pan: str, before: str, after: str) -> None:
    text = f"{before} {pan} {after}"
    masked = mask_text(text)
    assert pan not in masked or len(pan) < 13
    assert find_clear_pans(masked) == []


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("tests.vault.masking")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    install_pan_masking(logger)
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def test_the_filter_masks_messages_arguments_and_tracebacks(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.info("declined %s for %s", "4111111111111111", "acme")
    try:
        raise ValueError("bad card 5555 5555 5555 4444")
    except ValueError:
        logger.exception("while processing 378282246310005")
    output = stream.getvalue()
    assert find_clear_pans(output.replace(" ", "")) == []
    assert "declined 411111******1111 for acme" in output
    assert "bad card 555555******4444" in output
    assert "while processing 378282*****0005" in output


def test_installing_twice_adds_one_filter(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, _ = captured
    install_pan_masking(logger)
    filters = [f for f in logger.handlers[0].filters if isinstance(f, PanMaskingFilter)]
    assert len(filters) == 1
