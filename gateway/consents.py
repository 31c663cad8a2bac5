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
on it is refused. Every consent belongs to the tenant (OAuth client) that created it;
:meth:`ConsentStore.get` with another tenant finds nothing, so a TPP cannot even learn that
another TPP's consent exists (strict tenant isolation).

The store is a one-process map behind :class:`ConsentStore`; it holds no card numbers or
credentials, only the consent's request data, its status and the bound accounts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from gateway.ports import new_id

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


class ConsentStore:
    """Consents by id (module docstring)."""

    def __init__(self, *, now: Callable[[], dt.datetime] | None = None) -> None:
        self._consents: dict[str, Consent] = {}
        self._now = now or (lambda: dt.datetime.now(dt.UTC))

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
        self._consents[consent.consent_id] = consent
        return consent

    def get(self, consent_id: str, tenant: str, kind: ConsentKind) -> Consent | None:
        """The consent if it exists, is of ``kind`` and belongs to ``tenant``; an account
        access consent past its expiry is reported ``EXPD``."""
        consent = self._consents.get(consent_id)
        if consent is None or consent.tenant != tenant or consent.kind is not kind:
            return None
        if (
            consent.expires_at is not None
            and consent.status in (ConsentStatus.AWAU, ConsentStatus.AUTH)
            and self._now() >= consent.expires_at
        ):
            consent = self._replace(consent, status=ConsentStatus.EXPD)
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
        (unknown, another tenant's, not awaiting authorisation)."""
        consent = self.get(consent_id, tenant, kind)
        if consent is None or consent.status is not ConsentStatus.AWAU:
            return None
        return self._replace(consent, status=ConsentStatus.AUTH, psu=psu, account_ids=account_ids)

    def reject(self, consent_id: str, tenant: str, kind: ConsentKind) -> Consent | None:
        """The PSU refused the consent."""
        consent = self.get(consent_id, tenant, kind)
        if consent is None or consent.status is not ConsentStatus.AWAU:
            return None
        return self._replace(consent, status=ConsentStatus.RJCT)

    def revoke(self, consent_id: str, tenant: str) -> bool:
        """The TPP deleted an account access consent; False if it is not theirs."""
        consent = self.get(consent_id, tenant, ConsentKind.ACCOUNT_ACCESS)
        if consent is None:
            return False
        self._replace(consent, status=ConsentStatus.CANC)
        return True

    def consume(self, consent_id: str, tenant: str, payment_id: str) -> Consent | None:
        """Mark an authorised payment consent used by ``payment_id``; None if it is not
        authorised or already used."""
        consent = self.get(consent_id, tenant, ConsentKind.DOMESTIC_PAYMENT)
        if consent is None or consent.status is not ConsentStatus.AUTH or consent.consumed_by:
            return None
        return self._replace(consent, consumed_by=payment_id)

    def count(self) -> int:
        """How many consents the store holds."""
        return len(self._consents)

    def _replace(self, consent: Consent, **changes: Any) -> Consent:
        if "status" in changes:
            changes["status_updated_at"] = self._now()
        updated = dataclasses.replace(consent, **changes)
        self._consents[consent.consent_id] = updated
        return updated
