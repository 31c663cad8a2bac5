"""OBIE error bodies: every refusal the gateway makes is an ``OBErrorResponse1``.

Standard: UK Open Banking Read/Write API v4.0 (``OBErrorResponse1`` / ``OBError1`` in the
account-information and payment-initiation OpenAPI files, ``gateway/specs/``). An error body
is ``{"Id", "Code", "Message", "Errors": [{"ErrorCode", "Message", "Path"?}]}``.

v4.0 makes ``ErrorCode`` a four-character code (``OBInternalErrorResponseError1Code``,
example ``U001``) whose values live in Open Banking's external code set, which is not in the
project's copy of the specification. The table :data:`ERROR_CODES` is therefore ours: one
four-character code per v3.1 textual code (``UK.OBIE.Field.Missing``...), which is kept in
the error's ``Message`` so a reader knows what each means. Replace the codes here, and only
here, when the external code set is added.

The high-level ``Code`` is the HTTP status and its reason phrase (``400 BadRequest``), as
the v3.1 examples do. ``Id`` is the request's ``x-fapi-interaction-id`` (the audit handle).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "ERROR_CODES",
    "ErrorItem",
    "ObieError",
    "error_body",
]

ERROR_CODES: Final[Mapping[str, str]] = {
    "UK.OBIE.Field.Expected": "U001",
    "UK.OBIE.Field.Invalid": "U002",
    "UK.OBIE.Field.InvalidDate": "U003",
    "UK.OBIE.Field.Missing": "U004",
    "UK.OBIE.Field.Unexpected": "U005",
    "UK.OBIE.Header.Invalid": "U006",
    "UK.OBIE.Header.Missing": "U007",
    "UK.OBIE.Resource.ConsentMismatch": "U008",
    "UK.OBIE.Resource.InvalidConsentStatus": "U009",
    "UK.OBIE.Resource.InvalidFormat": "U010",
    "UK.OBIE.Resource.NotFound": "U011",
    "UK.OBIE.Rules.AfterCutOffDateTime": "U012",
    "UK.OBIE.Rules.DuplicateReference": "U013",
    "UK.OBIE.Signature.Invalid": "U014",
    "UK.OBIE.Signature.InvalidClaim": "U015",
    "UK.OBIE.Signature.Malformed": "U016",
    "UK.OBIE.Signature.Missing": "U017",
    "UK.OBIE.Signature.MissingClaim": "U018",
    "UK.OBIE.Signature.Unexpected": "U019",
    "UK.OBIE.Unsupported.AccountIdentifier": "U020",
    "UK.OBIE.Unsupported.AccountSecondaryIdentifier": "U021",
    "UK.OBIE.Unsupported.Currency": "U022",
    "UK.OBIE.Unsupported.Frequency": "U023",
    "UK.OBIE.Unsupported.LocalInstrument": "U024",
    "UK.OBIE.Unsupported.Scheme": "U025",
    "UK.OBIE.Reauthenticate": "U026",
    "UK.OBIE.Rules.ResourceAlreadyExists": "U027",
    "UK.OBIE.UnexpectedError": "U028",
    # ours, beyond the v3.1 list: token, scope, rate and size refusals
    "UK.OBIE.Token.Invalid": "U029",
    "UK.OBIE.Token.InsufficientScope": "U030",
    "UK.OBIE.Rules.RateLimited": "U031",
    "UK.OBIE.Rules.PayloadTooLarge": "U032",
    "UK.OBIE.Rules.InsufficientFunds": "U033",
    "UK.OBIE.Rules.ServiceUnavailable": "U034",
    # strong customer authentication in the built-in authorization server
    "UK.OBIE.Sca.CodeInvalid": "U035",
    "UK.OBIE.Sca.CodeReplayed": "U036",
    "UK.OBIE.Sca.LockedOut": "U037",
    "UK.OBIE.Sca.NotEnrolled": "U038",
}

_REASONS: Final[Mapping[int, str]] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    422: "UnprocessableEntity",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}


@dataclass(frozen=True, slots=True)
class ErrorItem:
    """One ``OBError1``: a v3.1 textual code (mapped by :data:`ERROR_CODES`), what is wrong,
    and the JSON path or header it is about."""

    name: str
    message: str
    path: str | None = None

    def __post_init__(self) -> None:
        if self.name not in ERROR_CODES:
            raise ValueError(f"unknown OBIE error {self.name}")

    def to_json(self) -> dict[str, str]:
        """The ``OBError1`` object."""
        text = f"{self.message} ({self.name})"
        item = {"ErrorCode": ERROR_CODES[self.name], "Message": text[:500]}
        if self.path:
            item["Path"] = self.path[:500]
        return item


@dataclass(slots=True)
class ObieError(Exception):
    """A refusal: the HTTP status, the errors, and any headers to send with it
    (``WWW-Authenticate``, ``Retry-After``, ``Allow``)."""

    status: int
    errors: Sequence[ErrorItem]
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def single(
        cls,
        status: int,
        name: str,
        message: str,
        path: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ObieError:
        """An error with one item."""
        return cls(status, (ErrorItem(name, message, path),), dict(headers or {}))

    def __str__(self) -> str:
        return f"{self.status}: " + "; ".join(item.message for item in self.errors)


def error_body(status: int, errors: Sequence[ErrorItem], interaction_id: str) -> dict[str, Any]:
    """The ``OBErrorResponse1`` for ``errors`` (at least one)."""
    if not errors:
        errors = (ErrorItem("UK.OBIE.UnexpectedError", "the request failed"),)
    reason = _REASONS.get(status, "Error")
    return {
        "Id": interaction_id[:40],
        "Code": f"{status} {reason}"[:40],
        "Message": errors[0].message[:500],
        "Errors": [item.to_json() for item in errors],
    }
