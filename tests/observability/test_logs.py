"""The masking of log lines (card numbers, track data, PIN blocks) and the JSON format."""

from __future__ import annotations

import contextvars
import io
import json
import logging
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanContext

from canonical_model.messages import (
    Acceptor,
    CanonicalMessage,
    Identifiers,
    MessageFunction,
    MessageKind,
)
from observability.logs import (
    JsonFormatter,
    LoggingConfig,
    MaskingFilter,
    bind,
    bind_message,
    bound_fields,
    configure_logging,
    mask_sensitive,
    may_hold_card_data,
)
from tests.vault.strategies import pans_of_length

PAN = "4111111111111111"
PIN_BLOCK = "0412AC89ABCDEF67"

card_numbers = st.integers(min_value=13, max_value=19).flatmap(pans_of_length)
separators = st.sampled_from([" ", "-"])


@given(prefix=st.text(), pan=card_numbers, suffix=st.text())
def test_a_card_number_anywhere_in_any_text_is_masked(prefix: str, pan: str, suffix: str) -> None:
    assert pan not in mask_sensitive(prefix + pan + suffix)


@given(
    prefix=st.text(),
    pan=card_numbers,
    suffix=st.text(),
    separator=separators,
    cuts=st.lists(st.integers(min_value=1, max_value=18), max_size=4),
)
def test_a_card_number_written_in_groups_is_masked(
    prefix: str, pan: str, suffix: str, separator: str, cuts: list[int]
) -> None:
    points = sorted({cut for cut in cuts if cut < len(pan)})
    groups = [pan[a:b] for a, b in zip([0, *points], [*points, len(pan)], strict=True)]
    written = separator.join(groups)
    masked = mask_sensitive(f"{prefix} {written} {suffix}")
    assert written not in masked
    assert pan not in masked.replace(" ", "").replace("-", "")


@given(
    st.text(alphabet=st.characters(exclude_categories=["Nd"], exclude_characters="abcdefABCDEF"))
)
def test_text_without_digits_or_hex_is_left_as_it_is(text: str) -> None:
    assert mask_sensitive(text) == text


@given(st.text(alphabet="0123456789abcdefABCDEF =-^;?%Bb'\"Dpinblock_52:[]x\\", max_size=80))
def test_the_quick_test_never_lets_card_data_through(text: str) -> None:
    if not may_hold_card_data(text):
        assert mask_sensitive(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4111111111111111", "411111******1111"),
        ("card 4111 1111 1111 1111 declined", "card **** **** **** 1111 declined"),
        ("card 3782-822463-10005", "card ****-******-*0005"),
        ("4111111111112 fails Luhn", "4111111111112 fails Luhn"),
        ("stan 000042 rrn 000000000042 amount 1000", "stan 000042 rrn 000000000042 amount 1000"),
        # a raw ISO 8583 message: field 2's length prefix, the PAN, then fields 3 and 4
        ("0200...164111111111111111000000000000001000", "0200...1" + "*" * 31 + "1000"),
        (";4111111111111111=25121011234567890?", ";411111******1111=*****************?"),
        ("35=4111111111111111D25121011234567890F", "35=411111******1111D******************"),
        ("%B4111111111111111^DOE/JOHN^2512101000?", "%B411111******1111^********^**********?"),
        (f"pin_block={PIN_BLOCK}", "pin_block=****************"),
        (f"PIN data [{PIN_BLOCK}]", "PIN data [****************]"),
        (f"{{'52': '{PIN_BLOCK}', '11': '000042'}}", "{'52': '****************', '11': '000042'}"),
        ("{'52': b'\\x04\\x12\\xac\\x89\\xab\\xcd\\xef\\x67'}", "{'52': b'********'}"),
        (f"DE52={PIN_BLOCK * 2}", "DE52=" + "*" * 32),
        ("took 52 ms for 12 messages", "took 52 ms for 12 messages"),
    ],
)
def test_masked_forms(text: str, expected: str) -> None:
    assert mask_sensitive(text) == expected


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A third-party-named logger whose records reach a handler carrying the filter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s %(card)s"))
    logger = logging.getLogger("pika.adapters.test_masking")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def test_the_filter_masks_messages_arguments_extras_tracebacks_and_stacks(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.warning("card %s", PAN, extra={"card": f"track ;{PAN}=2512101?"})
    try:
        raise ValueError(f"bad card {PAN} pin_block={PIN_BLOCK}")
    except ValueError:
        logger.exception("failed on %s", PAN, extra={"card": "-"}, stack_info=True)
    # a broken record is still written, masked
    logger.error("%s %d", "unformattable", extra={"card": "-"})
    written = stream.getvalue()
    assert PAN not in written
    assert PIN_BLOCK not in written
    assert "2512101" not in written
    assert "ValueError: bad card 411111******1111 pin_block=****************" in written
    assert "Stack (most recent call last)" in written
    assert "unformattable" in written


def _message() -> CanonicalMessage:
    return CanonicalMessage(
        MessageKind.FINANCIAL,
        MessageFunction.REQUEST,
        "bank-a",
        Identifiers("m-1", end_to_end_id="000000000042", instruction_id="000042"),
        acceptor=Acceptor(terminal_id="TERM0001"),
    )


def test_json_lines_carry_the_trace_the_tenant_and_the_message_ids() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskingFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("isobridge.test_json")
    logger.addHandler(handler)
    logger.propagate = False
    tracer = TracerProvider(shutdown_on_exit=False).get_tracer("test")

    def log() -> SpanContext:
        logger.warning("outside")
        with tracer.start_as_current_span("edge receive") as span:
            bind_message(_message())
            with bind(listener="pos"):
                logger.warning("card %s refused", PAN, extra={"attempt": 2})
            try:
                raise RuntimeError(PAN)
            except RuntimeError:
                logger.exception("boom")
        return span.get_span_context()

    try:
        context = contextvars.copy_context().run(log)  # bind_message stays in there
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    outside, refused, boom = (json.loads(line) for line in stream.getvalue().splitlines())
    assert set(outside) == {"time", "level", "logger", "message"}
    assert outside["time"].endswith("+00:00")
    assert refused == {
        "time": refused["time"],
        "level": "warning",
        "logger": "isobridge.test_json",
        "message": "card 411111******1111 refused",
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "tenant": "bank-a",
        "message_id": "m-1",
        "end_to_end_id": "000000000042",
        "stan": "000042",
        "terminal_id": "TERM0001",
        "listener": "pos",
        "attempt": 2,
    }
    assert "listener" not in boom  # the bound field ended with its block
    assert boom["exception"].endswith("RuntimeError: 411111******1111")
    assert PAN not in stream.getvalue()


def test_bound_fields_belong_to_their_context() -> None:
    assert bound_fields() == {}
    with bind(tenant="acme"):
        assert bound_fields() == {"tenant": "acme"}
    assert bound_fields() == {}


def test_configure_logging_installs_one_masking_handler_and_masks_others() -> None:
    root = logging.getLogger()
    level = root.level
    foreign = logging.StreamHandler(io.StringIO())
    # A library's logger with a handler of its own (uvicorn's is configured by any uvicorn
    # that an earlier test ran in this process, so a logger of no library is used).
    uvicorn = logging.getLogger("isobridge_test_vendor.error")
    uvicorn.addHandler(foreign)
    first, second = io.StringIO(), io.StringIO()
    try:
        configure_logging(LoggingConfig("json", "INFO"), first, force=True)
        handler = configure_logging(LoggingConfig("json", "INFO"), second, force=True)
        assert handler is not None
        logging.getLogger("isobridge.test").info("card %s", PAN)
        uvicorn.warning("client sent %s", PAN)
    finally:
        if handler is not None:
            root.removeHandler(handler)
        uvicorn.removeHandler(foreign)
        root.setLevel(level)
    assert first.getvalue() == ""  # replaced, not doubled
    lines = [json.loads(line) for line in second.getvalue().splitlines()]
    assert [line["message"] for line in lines] == [
        "card 411111******1111",
        "client sent 411111******1111",
    ]
    assert isinstance(foreign.stream, io.StringIO)
    assert foreign.stream.getvalue() == "client sent 411111******1111\n"


def test_a_bad_configuration_is_refused_with_the_known_values() -> None:
    with pytest.raises(ValueError, match="unknown log format 'xml'"):
        LoggingConfig("xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        LoggingConfig("json", "loud")
