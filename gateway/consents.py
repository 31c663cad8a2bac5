"""Consents: what a PSU allowed a TPP to do, and their life cycle (OBIE v4.0).

Standards: OBIE Read/Write API v4.0, account-access-consents (``OBReadConsent1`` /
``OBReadConsentResponse1``) and domestic-payment-consents (``OBWriteDomesticConsent4`` /
``OBWriteDomesticConsentResponse5``). v4.0 uses ISO-style status codes:

==========  =========================================================================
``AWAU``    awaiting authorisation: created by the TPP (client-credentials token)
``AUTH``    authorised by the PSU at the authorization server, accounts bound to it
``RJCT``    rejected by the PSU
``CANC``    (account access) deleted by the TPP
``EXPD``    (account access) past its ``ExpirationDateTime``
==========  =========================================================================

A payment consent is used once: :meth:`ConsentStore.consume` marks it and a second payment
on it is refused. Every consent belongs to the tenant (OAuth client) that created it; every
query names the tenant, so :meth:`ConsentStore.get` with another tenant finds nothing and a
TPP cannot even learn that another TPP's consent exists (strict tenant isolation).

The consents live in the gateway's database (``gateway_consents``, :mod:`gateway.store`),
shared by every gateway process and kept across restarts. Each change is one conditional
``UPDATE ... RETURNING`` (authorise only what awaits authorisation, use a payment consent
only while it is authorised and unused), so two processes racing on one consent cannot both
win. The store holds no card numbers or credentials, only the consent's request data, its
status and the bound accounts.

Reads on the hot path (every account request looks its consent up) are served from a small
per-process cache of *authorised* consents, checked against the database on every read:
one indexed read of the consent's status and use (:class:`gateway.store.RowReader`, a few
microseconds on SQLite), so a revocation or a use made by any process takes effect on the
next request everywhere; the rest of the row (the TPP's data, the PSU, the accounts, which
do not change once authorised) is reused for ``cache_ttl`` seconds (default 1; 0: every
read loads the row). A consent awaiting authorisation is never cached; expiry is checked
on every read, cached or not.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, or_, select, update
from sqlalchemy.engine import Connection, Engine

from gateway.ports import new_id
from gateway.store import RowReader, consents_table, transaction, utc

__all__ = ["Consent", "ConsentKind", "ConsentStatus", "ConsentStore"]


class ConsentKind(StrEnum):
    """Which API a consent belongs to."""

    ACCOUNT_ACCESS = "account-access"
    DOMESTIC_PAYMENT = "domestic-payment"


class ConsentStatus(StrEnum):
    """OBIE v4.0 consent status codes (module docstring)."""

    AWAU = "AWAU"
    AUTH = "AUTH"
    RJCT = "RJCT"
    CANC = "CANC"
    EXPD = "EXPD"


@dataclass(frozen=True, slots=True)
class Consent:
    """One consent: its request ``data`` and ``risk`` as the TPP sent them (validated),
    its status, and, once authorised, the PSU and the account ids bound to it."""

    consent_id: str
    kind: ConsentKind
    tenant: str
    status: ConsentStatus
    created_at: dt.datetime
    status_updated_at: dt.datetime
    data: Mapping[str, Any]
    risk: Mapping[str, Any]
    psu: str | None = None
    account_ids: tuple[str, ...] = ()
    consumed_by: str | None = None
    expires_at: dt.datetime | None = None


_T = consents_table
_ROW = select(_T).where(_T.c.consent_id == bindparam("p_id"))
_STATE = select(_T.c.status, _T.c.consumed_by).where(_T.c.consent_id == bindparam("p_id"))
_USE = (
    update(_T)
    .where(
        _T.c.consent_id == bindparam("p_id"),
        _T.c.tenant == bindparam("p_tenant"),
        _T.c.kind == ConsentKind.DOMESTIC_PAYMENT.value,
        _T.c.status == ConsentStatus.AUTH.value,
        _T.c.consumed_by.is_(None),
        or_(_T.c.expires_at.is_(None), _T.c.expires_at > bindparam("p_now")),
    )
    .values(consumed_by=bindparam("p_payment"))
    .returning(*_T.c)
)


class ConsentStore:
    """Consents by id, in the gateway's database (module docstring)."""

    def __init__(
        self,
        engine: Engine,
        *,
        now: Callable[[], dt.datetime] | None = None,
        cache_ttl: float = 1.0,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.cache_ttl = cache_ttl
        self.cache_size = cache_size
        self._now = now or (lambda: dt.datetime.now(dt.UTC))
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, Consent]] = OrderedDict()
        self._state = RowReader(engine, _STATE)

    def create(
        self,
        kind: ConsentKind,
        tenant: str,
        data: Mapping[str, Any],
        risk: Mapping[str, Any],
        *,
        expires_at: dt.datetime | None = None,
    ) -> Consent:
        """A new consent awaiting authorisation."""
        now = self._now()
        prefix = "aac" if kind is ConsentKind.ACCOUNT_ACCESS else "pdc"
        consent = Consent(
            consent_id=new_id(prefix),
            kind=kind,
            tenant=tenant,
            status=ConsentStatus.AWAU,
            created_at=now,
            status_updated_at=now,
            data=data,
            risk=risk,
            expires_at=expires_at,
        )
        with transaction(self.engine) as connection:
            connection.execute(
                consents_table.insert().values(
                    consent_id=consent.consent_id,
                    kind=kind.value,
                    tenant=tenant,
                    status=consent.status.value,
                    created_at=now,
                    status_updated_at=now,
                    expires_at=expires_at,
                    data=dict(data),
                    risk=dict(risk),
                    psu=None,
                    account_ids=[],
                    consumed_by=None,
                )
            )
        return consent

    def get(self, consent_id: str, tenant: str, kind: ConsentKind) -> Consent | None:
        """The consent if it exists, is of ``kind`` and belongs to ``tenant``; an account
        access consent past its expiry is reported ``EXPD``."""
        cached = self._cache.get(consent_id)
        consent: Consent | None = None
        if cached is not None and self._clock() - cached[0] < self.cache_ttl:
            consent = cached[1]
            if self._state.first(p_id=consent_id) != (consent.status.value, consent.consumed_by):
                consent = None  # revoked or used since, by this process or another
        if consent is None:
            consent = self._load(consent_id)
        return self._visible(consent, tenant, kind)

    def read(
        self, connection: Connection, consent_id: str, tenant: str, kind: ConsentKind
    ) -> Consent | None:
        """:meth:`get` on ``connection``, in the caller's transaction, never cached."""
        row = connection.execute(_ROW, {"p_id": consent_id}).first()
        return self._visible(None if row is None else _consent(row), tenant, kind)

    def _visible(self, consent: Consent | None, tenant: str, kind: ConsentKind) -> Consent | None:
        if consent is None or consent.tenant != tenant or consent.kind is not kind:
            return None
        expired = self._expired_at(consent)
        if expired is not None:
            return dataclasses.replace(
                consent, status=ConsentStatus.EXPD, status_updated_at=expired
            )
        return consent

    def authorise(
        self,
        consent_id: str,
        tenant: str,
        kind: ConsentKind,
        psu: str,
        account_ids: tuple[str, ...],
    ) -> Consent | None:
        """The PSU authorised the consent and chose ``account_ids``; None if it cannot be
        (unknown, another tenant's, not awaiting authorisation, expired)."""
        return self._change(
            consent_id,
            tenant,
            kind,
            awaiting=True,
            status=ConsentStatus.AUTH.value,
            psu=psu,
            account_ids=list(account_ids),
        )

    def reject(self, consent_id: str, tenant: str, kind: ConsentKind) -> Consent | None:
        """The PSU refused the consent."""
        return self._change(
            consent_id, tenant, kind, awaiting=True, status=ConsentStatus.RJCT.value
        )

    def revoke(self, consent_id: str, tenant: str) -> bool:
        """The TPP deleted an account access consent; False if it is not theirs."""
        changed = self._change(
            consent_id, tenant, ConsentKind.ACCOUNT_ACCESS, status=ConsentStatus.CANC.value
        )
        return changed is not None

    def consume(self, consent_id: str, tenant: str, payment_id: str) -> Consent | None:
        """Mark an authorised payment consent used by ``payment_id``; None if it is not
        authorised, expired or already used (by this process or any other)."""
        with transaction(self.engine) as connection:
            return self.use(connection, consent_id, tenant, payment_id)

    def use(
        self, connection: Connection, consent_id: str, tenant: str, payment_id: str
    ) -> Consent | None:
        """:meth:`consume` in the caller's transaction on ``connection`` (a payment's:
        rolled back with it, the consent is unused again)."""
        self._cache.pop(consent_id, None)
        row = connection.execute(
            _USE,
            {"p_id": consent_id, "p_tenant": tenant, "p_now": self._now(), "p_payment": payment_id},
        ).first()
        return None if row is None else _consent(row)

    def count(self) -> int:
        """How many consents the store holds."""
        with transaction(self.engine) as connection:
            return int(
                connection.execute(select(func.count()).select_from(consents_table)).scalar_one()
            )

    def _expired_at(self, consent: Consent) -> dt.datetime | None:
        """When an awaiting or authorised consent expired; None if it has not."""
        if consent.status not in (ConsentStatus.AWAU, ConsentStatus.AUTH):
            return None
        expires = consent.expires_at
        return expires if expires is not None and self._now() >= expires else None

    def _load(self, consent_id: str) -> Consent | None:
        with transaction(self.engine) as connection:
            row = connection.execute(_ROW, {"p_id": consent_id}).first()
        if row is None:
            return None
        consent = _consent(row)
        if consent.status is ConsentStatus.AUTH and self.cache_ttl > 0:
            self._cache[consent_id] = (self._clock(), consent)
            self._cache.move_to_end(consent_id)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.pop(consent_id, None)
        return consent

    def _change(
        self,
        consent_id: str,
        tenant: str,
        kind: ConsentKind,
        *,
        awaiting: bool = False,
        live: bool = False,
        conditions: tuple[ColumnElement[bool], ...] = (),
        **values: Any,
    ) -> Consent | None:
        """One conditional ``UPDATE`` of the tenant's consent: the updated consent, or None
        when no row matched. ``awaiting``: only while ``AWAU``; ``awaiting`` and ``live``:
        only before its expiry."""
        table = consents_table
        now = self._now()
        where = [
            table.c.consent_id == consent_id,
            table.c.tenant == tenant,
            table.c.kind == kind.value,
            *conditions,
        ]
        if awaiting:
            where.append(table.c.status == ConsentStatus.AWAU.value)
        if awaiting or live:
            where.append(or_(table.c.expires_at.is_(None), table.c.expires_at > now))
        if "status" in values:
            values["status_updated_at"] = now
        self._cache.pop(consent_id, None)
        with transaction(self.engine) as connection:
            row = connection.execute(
                update(table).where(*where).values(**values).returning(*table.c)
            ).first()
        return None if row is None else _consent(row)


def _consent(row: Any) -> Consent:
    return Consent(
        consent_id=row.consent_id,
        kind=ConsentKind(row.kind),
        tenant=row.tenant,
        status=ConsentStatus(row.status),
        created_at=utc(row.created_at),
        status_updated_at=utc(row.status_updated_at),
        data=row.data,
        risk=row.risk,
        psu=row.psu,
        account_ids=tuple(row.account_ids),
        consumed_by=row.consumed_by,
        expires_at=None if row.expires_at is None else utc(row.expires_at),
    )
