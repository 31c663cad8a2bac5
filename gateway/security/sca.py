"""Strong customer authentication in the built-in authorization server: a TOTP second factor.

Standards: PSD2 RTS on strong customer authentication (Commission Delegated Regulation (EU)
2018/389: two independent factors; article 4(3)(b): at most five failed attempts in a row
before the PSU is locked out for a time), RFC 6238 (TOTP, :mod:`gateway.security.totp`)
and its section 5.2 (a code once accepted is not accepted again; a little clock skew is
allowed).

A PSU is enrolled once (:meth:`SecondFactor.enrol`, ``isobridge sca enrol PSU``): a random
secret, handed to the PSU's authenticator app as an ``otpauth://`` URI, stored in the
gateway's database (``gateway_sca_enrolments``, :mod:`gateway.store`) as AES-256-GCM
ciphertext under a key derived (HKDF-SHA256) from the hub's master keys, the same that
protect the vault and the journal; the associated data names the PSU and the master key
version, so a ciphertext copied to another PSU does not open. The TOTP parameters are kept
with the enrolment: the app was set up with them, so a later change of configuration
applies to new enrolments only.

:meth:`SecondFactor.verify` is one database transaction that locks the PSU's enrolment row
(``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite transactions here are ``BEGIN IMMEDIATE``),
so several gateway processes on one database agree on every attempt:

1. failed attempts older than ``lockout_seconds`` are forgotten; with ``max_attempts`` or
   more left the PSU is locked out, the code is not even looked at
   (:attr:`ScaOutcome.LOCKED_OUT`, with the seconds until the oldest failure ages out);
2. the code is compared (in constant time) with the codes of the current time step and
   ``skew_steps`` either side; no match is :attr:`ScaOutcome.WRONG_CODE`;
3. a match on a time step not newer than the newest step accepted before is
   :attr:`ScaOutcome.REPLAYED` (this refuses the same code twice, and an older code after
   a newer one); else the step becomes the newest accepted and the failures are cleared.

A wrong or replayed code counts as a failed attempt. Every attempt, accepted or not, goes
to the audit sinks (the journal, ``gateway.journaled.JournalScaAudit``; the Prometheus
counter, ``gateway.operations.Metrics.sca_attempt``) and to one log line with the PSU
masked (:func:`mask_psu`).
"""

from __future__ import annotations

import hmac
import logging
import math
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection, Engine, Row

from gateway.security.totp import (
    Algorithm,
    TotpParameters,
    hotp,
    new_secret,
    provisioning_uri,
    time_step,
)
from gateway.store import sca_enrolments_table, sca_failures_table, transaction
from journal import MasterKeys
from journal.keys import JournalKeyError
from vault.errors import MissingKeyError
from vault.keys import derive_subkey

__all__ = [
    "Enrolment",
    "ScaAttempt",
    "ScaAudit",
    "ScaKeyError",
    "ScaOutcome",
    "ScaRefusedError",
    "ScaSettings",
    "SecondFactor",
    "mask_psu",
]

_log = logging.getLogger("isobridge.gateway.sca")

_NONCE: Final = 12
_PURPOSE: Final = "isobridge/gateway/totp-secret"


class ScaOutcome(StrEnum):
    """What became of one second-factor attempt."""

    ACCEPTED = "accepted"
    WRONG_CODE = "wrong_code"
    REPLAYED = "replayed"
    LOCKED_OUT = "locked_out"
    NOT_ENROLLED = "not_enrolled"
    MISSING_CODE = "missing_code"


@dataclass(frozen=True, slots=True)
class ScaSettings:
    """``[gateway.sca]``: whether the built-in server asks for the second factor, the TOTP
    parameters of new enrolments, the clock skew allowed, and the lockout."""

    enabled: bool = True
    digits: int = 6
    step: int = 30
    algorithm: Algorithm = "SHA1"
    skew_steps: int = 1
    max_attempts: int = 5
    lockout_seconds: float = 900.0
    issuer_label: str = "isobridge"

    def __post_init__(self) -> None:
        TotpParameters(self.digits, self.step, self.algorithm)  # checks them
        if not 0 <= self.skew_steps <= 10:
            raise ValueError(f"skew_steps must be 0..10, not {self.skew_steps}")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.lockout_seconds <= 0:
            raise ValueError("lockout_seconds must be positive")

    @property
    def parameters(self) -> TotpParameters:
        """The TOTP parameters new enrolments get."""
        return TotpParameters(self.digits, self.step, self.algorithm)


@dataclass(frozen=True, slots=True)
class Enrolment:
    """A PSU's second factor: the secret, its parameters, and the URI for the PSU's app."""

    psu: str
    secret: bytes
    parameters: TotpParameters
    uri: str

    def __repr__(self) -> str:
        return f"Enrolment(psu={mask_psu(self.psu)!r}, parameters={self.parameters!r})"


@dataclass(frozen=True, slots=True)
class ScaAttempt:
    """One attempt, as audited: whose, for which consent of which TPP, when, what became of
    it, the time step accepted, the failures now counted and, when locked out, the seconds
    until the PSU may try again."""

    psu: str
    outcome: ScaOutcome
    at: float
    consent_id: str
    tenant: str
    client_id: str
    failures: int
    max_attempts: int
    step: int | None = None
    retry_after: int | None = None


ScaAudit = Callable[[ScaAttempt], None]
"""Where attempts go besides the log (the journal, the metrics)."""


class ScaRefusedError(Exception):
    """The second factor was not accepted: :attr:`attempt` says why."""

    def __init__(self, attempt: ScaAttempt) -> None:
        super().__init__(f"strong customer authentication refused: {attempt.outcome}")
        self.attempt = attempt


class ScaKeyError(Exception):
    """A PSU's secret does not decrypt: its master key version is gone or the row was
    altered. Never holds key material."""


def mask_psu(psu: str) -> str:
    """The PSU as log lines show it.

    >>> mask_psu("alice"), mask_psu("bob")
    ('a***e', '***')
    """
    return f"{psu[0]}***{psu[-1]}" if len(psu) >= 4 else "***"


def _aad(psu: str, master_version: int) -> bytes:
    return f"isobridge/totp/{psu}/{master_version}".encode()


class SecondFactor:
    """See the module docstring."""

    def __init__(
        self,
        engine: Engine,
        keys: MasterKeys,
        settings: ScaSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        audits: Sequence[ScaAudit] = (),
    ) -> None:
        self.engine = engine
        self.keys = keys
        self.settings = settings or ScaSettings()
        self.clock = clock
        self.audits = tuple(audits)

    # -- enrolment --------------------------------------------------------------------------

    def enrol(self, psu: str) -> Enrolment:
        """A new secret for ``psu`` (replacing any earlier one: the old app entry stops
        working), its failures cleared."""
        if not psu or len(psu) > 128:
            raise ValueError("a PSU id is 1..128 characters")
        parameters = self.settings.parameters
        secret = new_secret()
        version = self.keys.current_version
        nonce = secrets.token_bytes(_NONCE)
        sealed = nonce + AESGCM(self._key(version)).encrypt(nonce, secret, _aad(psu, version))
        row = {
            "secret": sealed,
            "master_version": version,
            "algorithm": parameters.algorithm,
            "digits": parameters.digits,
            "step": parameters.step,
            "enrolled_at": self.clock(),
            "last_step": None,
        }
        table = sca_enrolments_table
        with transaction(self.engine) as connection:
            replaced = connection.execute(
                update(table).where(table.c.psu == psu).values(row).returning(table.c.psu)
            ).first()
            if replaced is None:
                connection.execute(table.insert().values(psu=psu, **row))
            connection.execute(delete(sca_failures_table).where(sca_failures_table.c.psu == psu))
        uri = provisioning_uri(secret, psu, self.settings.issuer_label, parameters)
        return Enrolment(psu, secret, parameters, uri)

    def enrolment(self, psu: str) -> Enrolment | None:
        """``psu``'s enrolment (its secret decrypted), or None."""
        with transaction(self.engine) as connection:
            row = connection.execute(
                select(sca_enrolments_table).where(sca_enrolments_table.c.psu == psu)
            ).first()
        if row is None:
            return None
        secret, parameters = self._open(row)
        uri = provisioning_uri(secret, psu, self.settings.issuer_label, parameters)
        return Enrolment(psu, secret, parameters, uri)

    def unlock(self, psu: str) -> int:
        """Forget ``psu``'s failed attempts (an operator lifts a lockout): how many."""
        table = sca_failures_table
        with transaction(self.engine) as connection:
            return len(
                connection.execute(
                    delete(table).where(table.c.psu == psu).returning(table.c.failure_id)
                ).all()
            )

    # -- verification -----------------------------------------------------------------------

    def verify(
        self, psu: str, code: str, *, consent_id: str, tenant: str, client_id: str
    ) -> ScaAttempt:
        """Check ``psu``'s ``code`` (module docstring): the accepted attempt, or
        :class:`ScaRefusedError`. Audited either way."""
        now = self.clock()
        with transaction(self.engine) as connection:
            outcome, failures, step, retry_after = self._check(connection, psu, code, now)
        attempt = ScaAttempt(
            psu=psu,
            outcome=outcome,
            at=now,
            consent_id=consent_id,
            tenant=tenant,
            client_id=client_id,
            failures=failures,
            max_attempts=self.settings.max_attempts,
            step=step,
            retry_after=retry_after,
        )
        self._audit(attempt)
        if outcome is not ScaOutcome.ACCEPTED:
            raise ScaRefusedError(attempt)
        return attempt

    def _check(
        self, connection: Connection, psu: str, code: str, now: float
    ) -> tuple[ScaOutcome, int, int | None, int | None]:
        settings = self.settings
        enrolments, failures = sca_enrolments_table, sca_failures_table
        row = connection.execute(
            select(enrolments).where(enrolments.c.psu == psu).with_for_update()
        ).first()
        if row is None:
            return ScaOutcome.NOT_ENROLLED, 0, None, None
        window_start = now - settings.lockout_seconds
        connection.execute(
            delete(failures).where(failures.c.psu == psu, failures.c.failed_at <= window_start)
        )
        failed = list(
            connection.execute(
                select(failures.c.failed_at)
                .where(failures.c.psu == psu)
                .order_by(failures.c.failed_at)
            ).scalars()
        )
        if len(failed) >= settings.max_attempts:
            return ScaOutcome.LOCKED_OUT, len(failed), None, self._retry_after(failed, now)
        if not code:
            return ScaOutcome.MISSING_CODE, len(failed), None, None
        secret, parameters = self._open(row)
        matched = self._matching_step(secret, parameters, code, now)
        if matched is not None and (row.last_step is None or matched > row.last_step):
            connection.execute(
                update(enrolments).where(enrolments.c.psu == psu).values(last_step=matched)
            )
            connection.execute(delete(failures).where(failures.c.psu == psu))
            return ScaOutcome.ACCEPTED, 0, matched, None
        connection.execute(failures.insert().values(psu=psu, failed_at=now))
        failed.append(now)
        retry_after = (
            self._retry_after(failed, now) if len(failed) >= settings.max_attempts else None
        )
        outcome = ScaOutcome.WRONG_CODE if matched is None else ScaOutcome.REPLAYED
        return outcome, len(failed), matched, retry_after

    def _matching_step(
        self, secret: bytes, parameters: TotpParameters, code: str, now: float
    ) -> int | None:
        if len(code) != parameters.digits or not (code.isascii() and code.isdigit()):
            return None
        current = time_step(now, parameters)
        skew = self.settings.skew_steps
        matched: int | None = None
        for step in range(current - skew, current + skew + 1):  # every one: constant time
            expected = hotp(secret, step, parameters.digits, parameters.algorithm)
            if hmac.compare_digest(expected, code):
                matched = step
        return matched

    def _retry_after(self, failed: Sequence[float], now: float) -> int:
        """Seconds until fewer than ``max_attempts`` failures are inside the window."""
        oldest_that_locks = failed[len(failed) - self.settings.max_attempts]
        return max(1, math.ceil(oldest_that_locks + self.settings.lockout_seconds - now))

    # -- keys and audit ---------------------------------------------------------------------

    def _key(self, master_version: int) -> bytes:
        return derive_subkey(self.keys.master_key(master_version), _PURPOSE)

    def _open(self, row: Row[Any]) -> tuple[bytes, TotpParameters]:
        psu: str = row.psu
        version: int = row.master_version
        sealed: bytes = row.secret
        try:
            secret = AESGCM(self._key(version)).decrypt(
                sealed[:_NONCE], sealed[_NONCE:], _aad(psu, version)
            )
        except (InvalidTag, ValueError):
            raise ScaKeyError(
                f"the TOTP secret of PSU {mask_psu(psu)} does not decrypt under master key"
                f" version {version}"
            ) from None
        except (MissingKeyError, JournalKeyError) as exc:
            raise ScaKeyError(
                f"the TOTP secret of PSU {mask_psu(psu)} needs master key version {version}: {exc}"
            ) from None
        parameters = TotpParameters(row.digits, row.step, row.algorithm)
        return secret, parameters

    def _audit(self, attempt: ScaAttempt) -> None:
        _log.log(
            logging.INFO if attempt.outcome is ScaOutcome.ACCEPTED else logging.WARNING,
            "sca attempt psu=%s consent=%s client=%s outcome=%s failures=%d/%d%s",
            mask_psu(attempt.psu),
            attempt.consent_id,
            attempt.client_id,
            attempt.outcome.value,
            attempt.failures,
            attempt.max_attempts,
            f" retry_after={attempt.retry_after}" if attempt.retry_after is not None else "",
        )
        for audit in self.audits:
            audit(attempt)
