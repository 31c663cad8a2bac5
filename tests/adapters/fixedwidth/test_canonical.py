"""The record mapper's conversions, cross-checked against the standard library."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import AdapterDecodeError
from adapters.fixedwidth.adapter import FixedWidthAdapter
from tests.adapters.fixedwidth.strategies import reply_values
from tests.support import decode_context, fixed_vault

_MOMENTS = st.one_of(
    st.integers(0, 10**14 - 1),
    st.datetimes(dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31)).map(
        lambda d: int(d.strftime("%Y%m%d%H%M%S").zfill(14))
    ),
    # a valid moment with one two-digit part pushed out of range (month 13, hour 24, ...)
    st.tuples(st.integers(1, 9999), st.integers(0, 4), st.integers(0, 99)).map(
        lambda t: int(f"{t[0]:04d}{'0101000000'[: t[1] * 2]}{t[2]:02d}".ljust(14, "0"))
    ),
)


@settings(max_examples=200, deadline=None)
@given(reply_values(), _MOMENTS)
def test_datetime_fields_decode_as_strptime_reads_them(values: dict[str, object], at: int) -> None:
    """``convert = "datetime"`` (CB-RP-POSTED-AT): the moment ``strptime`` reads from the
    14 digits, in UTC; a record whose digits are no moment is a decode error."""
    adapter = FixedWidthAdapter("corebank-reply")
    record = adapter.mapper.codec.encode({**values, "CB-RP-POSTED-AT": at})
    try:
        expected: dt.datetime | None = (
            dt.datetime.strptime(f"{at:014d}", "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC)
            if at
            else None
        )
    except ValueError:
        expected = None
        invalid = True
    else:
        invalid = False
    try:
        message = adapter.decode(record, decode_context(fixed_vault()))
    except AdapterDecodeError as exc:
        assert invalid, exc
        assert "CB-RP-POSTED-AT" in str(exc)
        return
    assert not invalid
    assert message.transmitted_at == expected


@settings(max_examples=300, deadline=None)
@given(
    reply_values(),
    st.sampled_from(["", "BALQ", "DEBT", "ZZZZ"]),
    st.sampled_from(["", "EUR", "XXQ"]),
    st.sampled_from([0, 20261129093000, 20261399000000]),
)
def test_status_and_amounts_are_what_the_full_decode_gives(
    values: dict[str, object], tran_code: str, currency: str, posted_at: int
) -> None:
    """``RecordMapper.status_and_amounts`` (the balance enquiry's reply, hub.core): the
    status and the balances of ``to_canonical``'s message, or a decode error when it has
    one (an unknown tran code, an amount without currency, a moment that is none)."""
    mapper = FixedWidthAdapter("corebank-reply").mapper
    changed = dict(values)
    if tran_code:
        changed["CB-RP-TRAN-CODE"] = tran_code
    if currency:
        changed["CB-RP-CURRENCY"] = currency
    if posted_at:
        changed["CB-RP-POSTED-AT"] = posted_at
    fields = mapper.codec.decode(mapper.codec.encode(changed))
    try:
        message = mapper.to_canonical(fields, tenant="t", message_id="m")
    except AdapterDecodeError as full:
        try:
            mapper.status_and_amounts(fields)
        except AdapterDecodeError as light:
            assert str(light) == str(full)
        else:
            raise AssertionError(f"no error where the full decode has one: {full}")
    else:
        assert mapper.status_and_amounts(fields) == (message.status, message.additional_amounts)
