"""Hypothesis strategies: canonical account-rail messages the ISO 20022 adapter must carry."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import strategies as st

from canonical_model import (
    Account,
    Agent,
    Agents,
    CanonicalMessage,
    Identifiers,
    MessageFunction,
    MessageKind,
    Money,
    OriginalTransaction,
    Party,
    PaymentTerms,
    PostalAddress,
    Status,
    TransactionStatus,
    currency,
)

IBANS = ("GB82WEST12345698765432", "DE89370400440532013000", "CH9300762011623852957")
BICS = ("DEUTDEFFXXX", "BARCGB22", "UBSWCHZH80A")
_TEXT = (
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefgh0123-", min_size=1, max_size=30)
    .map(str.strip)
    .filter(bool)
)
_IDS = st.text(alphabet="ABCDEFGHIJ0123456789-", min_size=1, max_size=35)
_TIMES = st.datetimes(
    min_value=dt.datetime(2026, 1, 1),
    max_value=dt.datetime(2026, 12, 31),
    timezones=st.just(dt.UTC),
).map(lambda t: t.replace(microsecond=0))


@st.composite
def amounts(draw: st.DrawFn) -> Money:
    ccy = currency(draw(st.sampled_from(["EUR", "USD", "JPY", "CHF", "GBP"])))
    units = draw(st.integers(min_value=1, max_value=10**9))
    return Money(Decimal(units).scaleb(-ccy.exponent), ccy)


addresses = st.builds(
    PostalAddress,
    street_name=st.none() | _TEXT,
    town_name=_TEXT,
    country=st.sampled_from(["DE", "GB", "CH"]),
    address_lines=st.lists(_TEXT, max_size=2).map(tuple),
)
parties = st.builds(Party, name=_TEXT, postal_address=st.none() | addresses)
agents = st.builds(Agent, bic=st.sampled_from(BICS))


@st.composite
def credit_transfers(
    draw: st.DrawFn, kind: MessageKind = MessageKind.FINANCIAL
) -> CanonicalMessage:
    """A financial request as pacs.008 carries it (UETR given, so no minting on encode), or
    with ``kind`` CREDIT_TRANSFER a customer initiation as pain.001 carries it."""
    return CanonicalMessage(
        kind=kind,
        function=MessageFunction.REQUEST,
        tenant="test-bank",
        ids=Identifiers(
            message_id="m",
            end_to_end_id=draw(_IDS),
            instruction_id=draw(st.none() | _IDS),
            uetr=str(draw(st.uuids(version=4))),
            source_message_id=draw(_IDS),
        ),
        transmitted_at=draw(_TIMES),
        settlement_date=draw(st.dates(dt.date(2026, 1, 1), dt.date(2026, 12, 31))),
        amount=draw(amounts()),
        debtor=draw(parties),
        debtor_account=Account(iban=draw(st.sampled_from(IBANS))),
        creditor=draw(parties),
        creditor_account=Account(iban=draw(st.sampled_from(IBANS))),
        agents=Agents(debtor_agent=draw(agents), creditor_agent=draw(agents)),
        remittance=tuple(draw(st.lists(_TEXT, max_size=2))),
        payment_terms=PaymentTerms(
            settlement_method=draw(st.sampled_from(["CLRG", "INDA", "INGA"])),
            charge_bearer=draw(st.sampled_from(["SLEV", "SHAR", "DEBT", "CRED"])),
        ),
    )


@st.composite
def status_reports(draw: st.DrawFn, kind: MessageKind = MessageKind.FINANCIAL) -> CanonicalMessage:
    """A financial response as pacs.002 carries it (pain.002 with kind CREDIT_TRANSFER)."""
    code = draw(
        st.sampled_from([TransactionStatus.ACSC, TransactionStatus.ACSP, TransactionStatus.RJCT])
    )
    reason = (
        draw(st.sampled_from(["AM04", "AC01", "FF01"])) if code is TransactionStatus.RJCT else None
    )
    return CanonicalMessage(
        kind=kind,
        function=MessageFunction.RESPONSE,
        tenant="test-bank",
        ids=Identifiers(
            message_id="m",
            end_to_end_id=draw(_IDS),
            uetr=str(draw(st.uuids(version=4))),
            source_message_id=draw(_IDS),
        ),
        transmitted_at=draw(_TIMES),
        original=OriginalTransaction(message_type="pacs.008.001.08", message_id=draw(_IDS)),
        status=Status(code, reason),
    )
