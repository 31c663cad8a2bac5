"""Hypothesis strategies for canonical messages (shared by the canonical-model tests)."""

from __future__ import annotations

import datetime as dt

from hypothesis import strategies as st

from canonical_model import (
    CURRENCIES,
    Acceptor,
    Account,
    AdditionalAmount,
    Agent,
    Agents,
    Balance,
    BusinessHeader,
    CanonicalMessage,
    Card,
    EmvTag,
    Extension,
    Identifiers,
    MessageFunction,
    MessageKind,
    Money,
    NetworkAction,
    NetworkManagement,
    OriginalCode,
    OriginalTransaction,
    PanToken,
    Party,
    PaymentTerms,
    PostalAddress,
    ProcessingCode,
    Statement,
    StatementEntry,
    Status,
    TransactionStatus,
    luhn_valid,
)

text = st.text(min_size=1, max_size=20)
digits = st.text(alphabet="0123456789", min_size=1, max_size=12)
currencies = st.sampled_from(sorted({c.alpha for c in CURRENCIES.values()})).map(
    lambda code: CURRENCIES[code]
)


@st.composite
def money(draw: st.DrawFn, signed: bool = False) -> Money:
    ccy = draw(currencies)
    units = draw(st.integers(min_value=-(10**12) if signed else 0, max_value=10**12))
    return Money.from_minor_units(units, ccy)


@st.composite
def tokens(draw: st.DrawFn) -> PanToken:
    value = draw(st.text(alphabet="0123456789", min_size=12, max_size=19))
    if luhn_valid(value):
        last = (int(value[-1]) + 1) % 10
        value = value[:-1] + str(last)
    return PanToken(value)


aware_datetimes = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)
)
optional_text = st.none() | text

cards = st.builds(
    Card,
    token=st.none() | tokens(),
    expiry=st.none() | st.text(alphabet="0123456789", min_size=4, max_size=4),
    sequence_number=st.none() | st.just("001"),
    service_code=st.none() | st.just("201"),
    emv=st.lists(
        st.builds(EmvTag, tag=st.sampled_from(["9F26", "9F02", "82"]), value=st.just("0A0B")),
        max_size=3,
    ).map(tuple),
    dropped=st.lists(st.sampled_from(["track2", "pin_block"]), max_size=2, unique=True).map(tuple),
)
agents = st.builds(
    Agents,
    acquirer=st.none() | st.builds(Agent, member_id=digits),
    debtor_agent=st.none() | st.builds(Agent, bic=st.just("DEUTDEFFXXX")),
)
statuses = st.builds(
    Status,
    code=st.sampled_from(TransactionStatus),
    reason=st.none() | st.sampled_from(["AM04", "AC01", "NARR"]),
    original=st.none() | st.builds(OriginalCode, scheme=st.just("iso8583"), code=digits),
    additional_info=optional_text,
)

statements = st.builds(
    Statement,
    statement_id=text,
    account=st.builds(Account, iban=optional_text, currency=st.none() | st.just("EUR")),
    created_at=st.none() | aware_datetimes,
    balances=st.lists(
        st.builds(
            Balance,
            type_code=st.sampled_from(["OPBD", "CLBD"]),
            amount=money(),
            credit=st.booleans(),
            date=st.none() | st.dates(),
        ),
        max_size=2,
    ).map(tuple),
    entry_count=st.none() | st.integers(0, 10**6),
)
statement_entries = st.builds(
    StatementEntry,
    amount=money(),
    credit=st.booleans(),
    status=st.sampled_from(["BOOK", "PDNG"]),
    booking_date=st.none() | st.dates(),
    counterparty=st.none() | st.builds(Party, name=optional_text),
    remittance=st.lists(text, max_size=2).map(tuple),
)

messages = st.builds(
    CanonicalMessage,
    kind=st.sampled_from(MessageKind),
    function=st.sampled_from(MessageFunction),
    tenant=text,
    ids=st.builds(
        Identifiers,
        message_id=text,
        end_to_end_id=optional_text,
        instruction_id=optional_text,
        uetr=st.none() | st.uuids().map(str),
        correlation_key=optional_text,
        source_message_id=optional_text,
        batch_id=optional_text,
    ),
    repeat=st.booleans(),
    transmitted_at=st.none() | aware_datetimes,
    local_time=st.none() | st.times(),
    local_date=st.none() | st.dates(),
    settlement_date=st.none() | st.dates(),
    processing=st.none()
    | st.builds(
        ProcessingCode,
        transaction_type=st.just("31"),
        from_account_type=st.sampled_from(["00", "10"]),
    ),
    amount=st.none() | money(),
    additional_amounts=st.lists(
        st.builds(
            AdditionalAmount,
            account_type=st.just("10"),
            amount_type=st.just("01"),
            amount=money(signed=True),
        ),
        max_size=2,
    ).map(tuple),
    card=st.none() | cards,
    acceptor=st.none() | st.builds(Acceptor, terminal_id=optional_text, merchant_id=optional_text),
    debtor=st.none()
    | st.builds(
        Party,
        name=optional_text,
        postal_address=st.none()
        | st.builds(
            PostalAddress,
            town_name=optional_text,
            country=st.none() | st.just("DE"),
            address_lines=st.lists(text, max_size=2).map(tuple),
            floor=optional_text,
        ),
    ),
    debtor_account=st.none() | st.builds(Account, iban=optional_text, other_id=optional_text),
    agents=st.none() | agents,
    original=st.none()
    | st.builds(OriginalTransaction, message_type=optional_text, transmitted_at=aware_datetimes),
    status=st.none() | statuses,
    approval_code=optional_text,
    network=st.none()
    | st.builds(NetworkManagement, action=st.sampled_from(NetworkAction), information_code=digits),
    remittance=st.lists(text, max_size=2).map(tuple),
    extensions=st.lists(st.builds(Extension, key=text, value=text), max_size=2).map(tuple),
    instructed_amount=st.none() | money(),
    payment_terms=st.none()
    | st.builds(
        PaymentTerms,
        settlement_method=st.none() | st.sampled_from(["CLRG", "INDA", "INGA"]),
        charge_bearer=st.none() | st.sampled_from(["SLEV", "SHAR", "DEBT", "CRED"]),
        requested_execution_date=st.none() | st.dates(),
    ),
    business_header=st.none()
    | st.builds(
        BusinessHeader,
        sender=optional_text,
        created_at=st.none() | aware_datetimes,
        duplicate=st.booleans(),
    ),
    ultimate_creditor=st.none() | st.builds(Party, name=optional_text),
    statement=st.none() | statements,
    statement_entry=st.none() | statement_entries,
)

__all__ = ["messages", "money", "tokens"]
