"""The gateway's seams to the rest of the hub: one method each, wired by the composition
root (:mod:`hub.gateway`), so the gateway knows no infrastructure.

- :class:`CoreBankingPort`: a canonical request to the core banking mainframe and its
  canonical reply (``hub.core.CoreBanking.handle`` has exactly this shape): a balance
  enquiry (``BALQ``) or a debit posting (``DEBT``).
- :class:`ClearingPublisher`: one ISO 20022 document (a pacs.008) onto the clearing
  system's queue; returns once the broker confirmed it.
- :class:`PaymentSagaPort`: starts a payment's outbound credit transfer saga (hold, pacs.008,
  settle on the clearing system's answer, recall on none: ``hub.sagas.service.PaymentSagas``
  has exactly this shape); the payment's status then follows the saga in the journal.
- :class:`StatementSource`: the booked entries of an account, from the mainframe's
  end-of-day statement extract.
- :class:`PaymentJournal`: events of a payment into the journal, and its status back from
  the journal's read model (ARCHITECTURE.md, invariant 4); :class:`PaymentHistory`: the
  payments it holds, to rebuild the gateway's after a restart.

:class:`AccountRecord` and :class:`AccountDirectory` say which accounts each PSU holds at
the bank (the authorization server offers them when the PSU authorises a consent).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from canonical_model.codes import Status
from canonical_model.messages import AdditionalAmount, CanonicalMessage, StatementEntry
from journal import EventKind, StoredEvent, TransactionView

__all__ = [
    "AccountDirectory",
    "AccountRecord",
    "BalanceEnquiries",
    "ClearingPublisher",
    "CoreBankingPort",
    "PaymentHistory",
    "PaymentJournal",
    "PaymentSagaPort",
    "StatementSource",
    "account_id_for",
    "new_id",
]


class CoreBankingPort(Protocol):
    """A canonical request to the core, its canonical reply (never raises for a request it
    cannot serve: the reply's status says why)."""

    async def handle(self, request: CanonicalMessage) -> CanonicalMessage: ...


@runtime_checkable
class BalanceEnquiries(Protocol):
    """A core that also answers a balance enquiry by account number alone
    (:meth:`hub.core.CoreBanking.balance_enquiry`): the status and the balances (ISO 8583
    field 54 amount types: ``01`` ledger, ``02`` available) that its :meth:`handle` would
    reply to a ``BALANCE_ENQUIRY``, without the canonical messages on the way."""

    async def balance_enquiry(
        self, tenant: str, account: str
    ) -> tuple[Status, tuple[AdditionalAmount, ...]]: ...


class ClearingPublisher(Protocol):
    """Publishes one ISO 20022 document to the clearing system (confirmed on return)."""

    async def publish(self, document: bytes, *, message_id: str) -> None: ...


class PaymentSagaPort(Protocol):
    """Starts the outbound saga of a canonical credit transfer; ``False`` for a repeat."""

    async def submit_payment(self, message: CanonicalMessage) -> bool: ...


class StatementSource(Protocol):
    """The statement entries booked on ``account`` (an IBAN or the bank's number)."""

    async def entries(self, account: str) -> Sequence[StatementEntry]: ...


class PaymentJournal(Protocol):
    """A payment's events in, its status (the journal's read model) out."""

    async def record(
        self,
        kind: EventKind,
        payment: CanonicalMessage,
        body: Mapping[str, Any],
        *,
        transaction_id: str,
        personal: Mapping[str, Any] | None = None,
    ) -> None: ...

    async def status(self, transaction_id: str) -> TransactionView | None: ...


class PaymentHistory(Protocol):
    """The payments the journal holds: each ``received`` event of the gateway's channel,
    its personal part decrypted (what :meth:`gateway.payments.PaymentService.restore`
    rebuilds its payments from after a restart)."""

    async def received(self) -> Sequence[StoredEvent]: ...


def new_id(prefix: str) -> str:
    """A fresh opaque id: ``prefix-`` and 96 random bits in hex, a ``g`` after every eight
    characters, so it never holds 13 digits in a row (the journal would take those for a
    card number) and stays within ISO 20022's 35 characters.

    >>> value = new_id("pmt")
    >>> len(value), value[:4], value.count("g") >= 2
    (30, 'pmt-', True)
    """
    raw = secrets.token_hex(12)
    return f"{prefix}-" + "g".join(raw[i : i + 8] for i in range(0, len(raw), 8))


def account_id_for(iban: str) -> str:
    """The OBIE ``AccountId`` of an account: stable, opaque, and not the IBAN itself.

    >>> account_id_for("DE89370400440532013000")[:4], len(account_id_for("GB29NWBK60161331926819"))
    ('acc-', 24)
    """
    return "acc-" + hashlib.sha256(iban.encode()).hexdigest()[:20]


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """An account a PSU holds: its IBAN, currency and name as the bank knows them."""

    psu: str
    iban: str
    currency: str
    name: str

    @property
    def account_id(self) -> str:
        """The OBIE ``AccountId``."""
        return account_id_for(self.iban)


class AccountDirectory:
    """Which PSU holds which accounts (configuration data)."""

    def __init__(self, records: Iterable[AccountRecord]) -> None:
        self._records = tuple(records)
        self._by_id = {record.account_id: record for record in self._records}

    def of(self, psu: str) -> tuple[AccountRecord, ...]:
        """The accounts of ``psu``."""
        return tuple(record for record in self._records if record.psu == psu)

    def by_id(self, account_id: str) -> AccountRecord | None:
        """The account with OBIE id ``account_id``."""
        return self._by_id.get(account_id)

    def by_iban(self, iban: str) -> AccountRecord | None:
        """The account with ``iban``."""
        return next((r for r in self._records if r.iban == iban), None)

    def psus(self) -> tuple[str, ...]:
        """Every PSU known."""
        return tuple(dict.fromkeys(record.psu for record in self._records))
