"""Masking one value: card numbers, IBANs, account numbers and other ids, names, free text.

Every masked value is a keyed, deterministic function of the value (the same input gives the
same output under the same key, in every file and every run), keeps the value's format, and
never reveals it. :class:`Masker` holds the key; the format modules (``iso8583``,
``iso20022``, ``fixedwidth`` beside this one) decide which value gets which rule.

Rules (:data:`RULES`)
    ``pan``
        A card number (12-19 digits). The first :attr:`Masker.pan_keep_first` digits (the
        BIN, 6 by default; fewer when that would leave under 6 digits to encrypt) are kept so
        that routing by BIN still works in test; the digits after it, up to the check digit,
        are encrypted with NIST FF1 (:class:`vault.fpe.FF1`, a permutation of the digit
        strings of that length); the Luhn check digit is computed again. The last four are
        *not* kept: with them the BIN and the last four are exactly what a PCI DSS receipt
        shows, which would tie a test record to a real cardholder, and only 5 or 6 digits
        would be left to permute. A Luhn-valid card number gives a Luhn-valid masked number
        (the adapters refuse others with 14); a number that fails the check gives one that
        fails it by the same amount. Because FF1 is a permutation, two card numbers never
        collide: joins on the masked card number are exact.
    ``iban``
        ISO 13616: the country, the length and the national bank (and branch) identifier
        (:data:`BANK_ID_LENGTH`; none kept for a country not in that table) are kept, the
        account part is masked as ``id``, and the two check digits are computed again (ISO
        7064 MOD 97-10), so the masked IBAN passes ``isobridge validate``. A check digit of
        the national BBAN format (Belgium, France, Italy, Spain...) is not recomputed.
    ``account``
        An account identification of any form: a valid IBAN is masked as ``iban``, 12-19
        digits (a card-funded account, or the vault's card token, which fails the Luhn check
        on purpose and keeps failing it) as ``pan``, anything else as ``id``.
    ``id``
        Digits stay digits, letters stay letters of the same case, every other character
        stays where it is. Six or more digits are encrypted together with FF1 (a tweak made
        from the value's shape), fewer by keyed substitution; letters by keyed substitution.
        A value that did not look like a card number (a Luhn-valid run of 13-19 digits) never
        becomes one: the encryption is repeated (cycle walking, still a permutation) until
        it does not.
    ``name``
        A person or party name becomes a realistic one ("Maria Keller"), picked by an HMAC
        of the name with case and spaces normalised, so "JOHN SMITH" and "John  Smith" get
        the same name, written in the original's case. Different names can get the same
        fake name (joins use ids, not names).
    ``text``
        Free text (narratives, remittance information, street names): each letter becomes a
        keyed letter of the same case, each digit a keyed digit, everything else stays. The
        length and character classes are kept, so the text fits wherever the original did.
    ``date``
        A birth date ``YYYY-MM-DD`` or ``YYYYMMDD``: a keyed day of the same year.
    ``binary``
        Hex text (a PIN block): keyed bytes of the same length.

Keys
    :meth:`MaskingKey.from_master` derives the masking key from a vault master key with
    HKDF-SHA256 and its own purpose (``isobridge/mask/v1``), so masked values are unrelated
    to the vault's tokens; :meth:`MaskingKey.from_passphrase` stretches a passphrase with
    scrypt; :meth:`MaskingKey.random` makes a throwaway key (consistent within one run).
    The FF1 key and the substitution key are derived from the masking key in turn.

Errors are :class:`MaskingError` (a ``ValueError``) with a reason that never holds the value.

>>> masker = Masker(MaskingKey(bytes(32)))
>>> pan = masker.pan("4111111111111111")
>>> pan[:6], len(pan), pan != "4111111111111111"
('411111', 16, True)
>>> from canonical_model.pan import luhn_valid
>>> luhn_valid(pan), masker.pan("4111111111111111") == pan
(True, True)
>>> from adapters.iso20022.rules import iban_problem
>>> iban = masker.iban("DE89370400440532013000")
>>> iban[:2], iban[4:12], iban_problem(iban) is None
('DE', '37040044', True)
>>> masker.text("Invoice 42, Acme")  # doctest: +SKIP
'Xqhwxod 07, Pmzi'
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from adapters.iso20022.rules import iban_problem
from canonical_model.pan import contains_clear_pan, find_clear_pans
from vault.fpe import FF1
from vault.keys import KEY_SIZE, derive_subkey

__all__ = [
    "BANK_ID_LENGTH",
    "RULES",
    "Masker",
    "MaskingError",
    "MaskingKey",
    "RecordMaskingError",
    "iban_check_digits",
    "luhn_check_digit",
    "sensitive_content",
]

RULES: Final = ("pan", "iban", "account", "id", "name", "text", "date", "binary")
"""The masking rules a field can be given (besides ``keep`` and ``drop``)."""

_PURPOSE: Final = b"isobridge/mask/v1"
_MIN_PASSPHRASE: Final = 16
_PLACEHOLDERS: Final = frozenset({"NOTPROVIDED", "NOT PROVIDED", "UNKNOWN", "N/A", "NONE"})
_MIN_FF1_DIGITS: Final = 6
_MAX_WALK: Final = 1000
_CACHE_SIZE: Final = 1024
_UPPER: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOWER: Final = _UPPER.lower()
_DIGITS: Final = "0123456789"
_LUHN_DOUBLED: Final = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)
_DATE_DASHED: Final = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_DATE_PLAIN: Final = re.compile(r"(\d{4})(\d{2})(\d{2})")

# National bank identifier (bank code plus branch code, where the registry has one) at the
# start of the BBAN, in characters, after the SWIFT IBAN registry. Kept by the ``iban`` rule.
BANK_ID_LENGTH: Final[dict[str, int]] = {
    "AT": 5, "BE": 3, "BG": 8, "CH": 5, "CY": 8, "CZ": 4, "DE": 8, "DK": 4, "EE": 2,
    "ES": 8, "FI": 3, "FR": 10, "GB": 10, "GR": 7, "HR": 7, "HU": 7, "IE": 10, "IS": 4,
    "IT": 11, "LI": 5, "LT": 5, "LU": 3, "LV": 4, "MC": 10, "MT": 9, "NL": 4, "NO": 4,
    "PL": 8, "PT": 8, "RO": 4, "SE": 3, "SI": 5, "SK": 4, "SM": 11,
}  # fmt: skip

_GIVEN_NAMES: Final = (
    "Ada", "Alma", "Anton", "Aria", "Bruno", "Carla", "Chen", "Dario", "Elena", "Emil",
    "Fatima", "Felix", "Greta", "Hana", "Hugo", "Ines", "Ivan", "Jonas", "Julia", "Kaito",
    "Lara", "Leon", "Lina", "Luca", "Maja", "Marek", "Maria", "Mateo", "Mila", "Nadia",
    "Nils", "Nora", "Omar", "Oskar", "Paula", "Priya", "Rafael", "Rosa", "Sami", "Sara",
    "Soren", "Tariq", "Tessa", "Timo", "Vera", "Viktor", "Yara", "Zofia",
)  # fmt: skip
_FAMILY_NAMES: Final = (
    "Almeida", "Bauer", "Berg", "Costa", "Dahl", "Duarte", "Eklund", "Falk", "Ferrari",
    "Fischer", "Garcia", "Haas", "Hansen", "Horvat", "Ibsen", "Jansen", "Keller", "Kowal",
    "Lange", "Laine", "Lindqvist", "Moreau", "Morel", "Navarro", "Nowak", "Okafor",
    "Olsen", "Park", "Petrov", "Quinn", "Rossi", "Sato", "Schulz", "Silva", "Sorensen",
    "Tanaka", "Torres", "Varga", "Vogel", "Wagner", "Weber", "Yilmaz", "Zeller",
)  # fmt: skip


class MaskingError(ValueError):
    """A value that its rule cannot mask; the text never holds the value."""


class RecordMaskingError(MaskingError):
    """A failure inside a file: which message or record, which field, which byte offset."""

    def __init__(
        self,
        reason: str,
        *,
        record: int,
        field: str | None = None,
        offset: int | None = None,
        unit: str = "record",
    ) -> None:
        where = f"{unit} {record}"
        if field is not None:
            where += f", field {field}"
        if offset is not None:
            where += f" (offset {offset})"
        super().__init__(f"{where}: {reason}")
        self.reason = reason
        self.record = record
        self.field = field
        self.offset = offset


_IBAN_IN_TEXT: Final = re.compile(r"(?<![A-Z0-9])[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}(?![A-Z0-9])")


_TIMESTAMP: Final = re.compile(r"20\d\d(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])")


def sensitive_content(text: str) -> str | None:
    """What sensitive value ``text`` holds in clear ("a card number", "an IBAN"), or None:
    the check on every value that no rule masked.

    A Luhn-valid run of 13-19 digits is a card number unless it starts with a date
    ``20YYMMDD`` (a time stamp in a message id: no card scheme issues numbers from 2000 to
    2220, and one run in ten passes the Luhn check by chance).

    >>> sensitive_content("20230604011104238Sc04Step1MsgId") is None
    True
    >>> sensitive_content("card 4111111111111111"), sensitive_content("GB82WEST12345698765432")
    ('a card number', 'an IBAN')
    """
    if contains_clear_pan(text) and any(
        _TIMESTAMP.match(pan) is None for pan in find_clear_pans(text)
    ):
        return "a card number"
    if any(iban_problem(m.group()) is None for m in _IBAN_IN_TEXT.finditer(text)):
        return "an IBAN"
    return None


@dataclass(frozen=True, slots=True, repr=False)
class MaskingKey:
    """The 256-bit root of every masking key. Its repr never shows it."""

    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_SIZE:
            raise MaskingError(f"a masking key has {KEY_SIZE} bytes, got {len(self.secret)}")

    def __repr__(self) -> str:
        return "MaskingKey(<secret>)"

    @classmethod
    def from_master(cls, master: bytes) -> MaskingKey:
        """The masking key of a vault master key (HKDF-SHA256, its own purpose)."""
        return cls(derive_subkey(master, _PURPOSE.decode()))

    @classmethod
    def from_passphrase(cls, passphrase: str) -> MaskingKey:
        """A key stretched from a passphrase of at least 16 characters (scrypt)."""
        if len(passphrase) < _MIN_PASSPHRASE:
            raise MaskingError(
                f"a masking passphrase needs at least {_MIN_PASSPHRASE} characters,"
                f" got {len(passphrase)}"
            )
        kdf = Scrypt(salt=_PURPOSE, length=KEY_SIZE, n=2**15, r=8, p=1)
        return cls(kdf.derive(passphrase.encode()))

    @classmethod
    def random(cls) -> MaskingKey:
        """A fresh key: consistent within one run, never reproducible after it."""
        return cls(secrets.token_bytes(KEY_SIZE))


def luhn_check_digit(body: str) -> str:
    """The digit that makes ``body + digit`` pass the Luhn check."""
    total = 0
    for position, char in enumerate(reversed(body)):
        value = ord(char) - 48
        total += _LUHN_DOUBLED[value] if position % 2 == 0 else value
    return str(-total % 10)


def iban_check_digits(country: str, bban: str) -> str:
    """The ISO 7064 MOD 97-10 check digits of an IBAN of ``country`` and ``bban``."""
    rearranged = bban + country + "00"
    number = int("".join(str(int(char, 36)) for char in rearranged))
    return f"{98 - number % 97:02d}"


def _ascii_digits(value: str) -> bool:
    return value.isascii() and value.isdigit()


class Masker:
    """Masks values under one :class:`MaskingKey`; results are cached (bounded)."""

    def __init__(self, key: MaskingKey, *, pan_keep_first: int = 6) -> None:
        if not 0 <= pan_keep_first <= 8:
            raise MaskingError(f"pan_keep_first must be 0 to 8, got {pan_keep_first}")
        self.pan_keep_first = pan_keep_first
        self._ff1 = FF1(derive_subkey(key.secret, "ff1"))
        self._substitution = derive_subkey(key.secret, "substitution")
        self._names = derive_subkey(key.secret, "names")
        self.pan = functools.lru_cache(maxsize=_CACHE_SIZE)(self._pan)
        self.iban = functools.lru_cache(maxsize=_CACHE_SIZE)(self._iban)
        self.identifier = functools.lru_cache(maxsize=_CACHE_SIZE)(self._identifier)
        self.name = functools.lru_cache(maxsize=_CACHE_SIZE)(self._name)
        self.text = functools.lru_cache(maxsize=_CACHE_SIZE)(self._text)

    def __repr__(self) -> str:
        return f"Masker(pan_keep_first={self.pan_keep_first})"

    def apply(self, rule: str, value: str) -> str:
        """``value`` masked by ``rule`` (one of :data:`RULES`); a placeholder that ISO 20022
        writes for what is not known (``NOTPROVIDED``) is no value and stays."""
        if value.strip().upper() in _PLACEHOLDERS:
            return value
        if rule == "pan":
            return self.pan(value)
        if rule == "iban":
            return self.iban(value)
        if rule == "account":
            return self.account(value)
        if rule == "id":
            return self.identifier(value)
        if rule == "name":
            return self.name(value)
        if rule == "text":
            return self.text(value)
        if rule == "date":
            return self.date(value)
        if rule == "binary":
            return self.binary(value)
        raise MaskingError(f"unknown masking rule {rule!r} (rules: {', '.join(RULES)})")

    # -- card numbers -------------------------------------------------------------------

    def _pan(self, pan: str) -> str:
        if not (_ascii_digits(pan) and 12 <= len(pan) <= 19):
            raise MaskingError(f"a card number has 12 to 19 digits, got {len(pan)} characters")
        keep = min(self.pan_keep_first, len(pan) - 1 - _MIN_FF1_DIGITS)
        body = self._ff1.encrypt(pan[keep:-1], b"pan")
        masked = pan[:keep] + body
        # Keep the check digit's distance from the right one: 0 for a valid card number.
        offset = (int(pan[-1]) - int(luhn_check_digit(pan[:-1]))) % 10
        return masked + str((int(luhn_check_digit(masked)) + offset) % 10)

    # -- accounts -----------------------------------------------------------------------

    def _iban(self, iban: str) -> str:
        problem = iban_problem(iban)
        if problem is not None:
            raise MaskingError(f"not a valid IBAN: {problem}")
        country, bban = iban[:2], iban[4:]
        keep = min(BANK_ID_LENGTH.get(country, 0), len(bban) - 1)
        masked = bban[:keep] + self._alphanumeric(bban[keep:], b"iban:" + country.encode())
        return country + iban_check_digits(country, masked) + masked

    def account(self, value: str) -> str:
        """``value`` as an IBAN, a card number (or card token) or an id, whichever it is."""
        if iban_problem(value) is None:
            return self.iban(value)
        if _ascii_digits(value) and 12 <= len(value) <= 19:
            return self.pan(value)
        return self.identifier(value)

    def _identifier(self, value: str) -> str:
        return self._alphanumeric(value, b"id")

    def _alphanumeric(self, value: str, purpose: bytes) -> str:
        """Digits by FF1 (6 or more) or substitution, letters by substitution, in place."""
        looked_like_pan = contains_clear_pan(value)
        digits = "".join(char for char in value if _ascii_digits(char))
        shape = "".join("9" if _ascii_digits(c) else "A" if c.isalpha() else c for c in value)
        tweak = hashlib.sha256(purpose + b"\0" + shape.encode()).digest()
        letters = self._stream(b"letters", purpose, value, 0)
        attempt = 0
        while True:
            if len(digits) >= _MIN_FF1_DIGITS:
                # Cycle walking: encrypting again stays a permutation of the digit strings.
                digits = self._ff1.encrypt(digits, tweak)
            else:
                digits = "".join(
                    _DIGITS[b % 10] for b in self._stream(b"digits", purpose, value, attempt)
                )[: len(digits)]
            masked = _fill(value, digits, letters)
            if looked_like_pan or not contains_clear_pan(masked):
                return masked
            attempt += 1
            if attempt > _MAX_WALK:
                raise MaskingError("no masked form that does not look like a card number")

    # -- names and text -----------------------------------------------------------------

    def _name(self, value: str) -> str:
        normalised = " ".join(value.split()).casefold()
        if not normalised:
            return value
        attempt = 0
        while True:
            digest = hmac.new(
                self._names, f"{attempt}\0{normalised}".encode(), hashlib.sha256
            ).digest()
            given = _GIVEN_NAMES[int.from_bytes(digest[:4], "big") % len(_GIVEN_NAMES)]
            family = _FAMILY_NAMES[int.from_bytes(digest[4:8], "big") % len(_FAMILY_NAMES)]
            fake = f"{given} {family}"
            if fake.casefold() != normalised:
                break
            attempt += 1
        if value.isupper():
            return fake.upper()
        if value.islower():
            return fake.lower()
        return fake

    def _text(self, value: str) -> str:
        looked_like_pan = contains_clear_pan(value)
        for attempt in range(_MAX_WALK):
            stream = self._stream(b"text", b"", value, attempt)
            out = []
            for char, byte in zip(value, stream, strict=False):
                if _ascii_digits(char):
                    out.append(_DIGITS[byte % 10])
                elif char.isalpha():
                    out.append((_LOWER if char.islower() else _UPPER)[byte % 26])
                else:
                    out.append(char)
            masked = "".join(out)
            if looked_like_pan or not contains_clear_pan(masked):
                return masked
        raise MaskingError("no masked form that does not look like a card number")

    def date(self, value: str) -> str:
        """A keyed day of the same year, in the same form (``YYYY-MM-DD`` or ``YYYYMMDD``)."""
        dashed = _DATE_DASHED.fullmatch(value)
        found = dashed or _DATE_PLAIN.fullmatch(value)
        if found is None:
            raise MaskingError("a date is YYYY-MM-DD or YYYYMMDD")
        try:
            year = int(found.group(1))
            dt.date(year, int(found.group(2)), int(found.group(3)))
        except ValueError:
            raise MaskingError("not a real date") from None
        days = (dt.date(year + 1, 1, 1) - dt.date(year, 1, 1)).days
        offset = int.from_bytes(self._stream(b"date", b"", value, 0)[:4], "big") % days
        masked = dt.date(year, 1, 1) + dt.timedelta(days=offset)
        return masked.isoformat() if dashed else masked.strftime("%Y%m%d")

    def binary(self, value: str) -> str:
        """Hex text (a PIN block, key material) as keyed bytes of the same length."""
        if len(value) % 2 or not re.fullmatch(r"[0-9A-Fa-f]*", value):
            raise MaskingError("binary data must be hex text")
        return self._stream(b"binary", b"", value, 0)[: len(value) // 2].hex().upper()

    def _stream(self, kind: bytes, purpose: bytes, value: str, attempt: int) -> bytes:
        """Keyed bytes for ``value``, at least as many as it has characters."""
        seed = kind + b"\0" + purpose + b"\0" + str(attempt).encode() + b"\0" + value.encode()
        blocks = []
        for counter in range(len(value) // 32 + 1):
            blocks.append(
                hmac.new(
                    self._substitution, counter.to_bytes(4, "big") + seed, hashlib.sha256
                ).digest()
            )
        return b"".join(blocks)


def _fill(template: str, digits: str, letters: bytes) -> str:
    """``template`` with its ASCII digits replaced in order by ``digits`` and its letters
    by keyed ASCII letters of the same case."""
    out = []
    digit_index = 0
    for index, char in enumerate(template):
        if _ascii_digits(char):
            out.append(digits[digit_index])
            digit_index += 1
        elif char.isalpha():
            byte = letters[index]
            out.append((_LOWER if char.islower() else _UPPER)[byte % 26])
        else:
            out.append(char)
    return "".join(out)
