"""The seeded accounts: a fixed, deterministic set, the same in every simulator.

:data:`SEED_ACCOUNTS` holds 20 customer accounts with IBAN-like numbers whose check digits
are valid (ISO 13616 mod 97): 16 in EUR (German format), 4 in GBP (UK format, the first
two being the well-known examples ``GB29NWBK60161331926819`` and ``GB94BARC10201530093459``
that the hub's fixtures use). Among them
the 13th is closed ("Closed Account"), the 2nd has a 1,000.00 overdraft limit
("Overdraft Gmbh"), the 12th starts empty. Each opening balance is booked as a CRDT posting
``SEED-<n>`` from the clearing account, so the seeded ledger already balances.

>>> SEED_ACCOUNTS[0].number
'DE89370400440532013000'
>>> iban_check_digits("DE", "370400440532013000")
'89'
>>> [a.name for a in SEED_ACCOUNTS if a.status == "closed"]
['Closed Account']
"""

from __future__ import annotations

from typing import Final, NamedTuple

from mainframe_sim.ledger import Ledger, clearing_account

__all__ = ["SEED_ACCOUNTS", "SeedAccount", "iban_check_digits", "seed_ledger"]


class SeedAccount(NamedTuple):
    """One seeded account; ``opening`` and ``overdraft_limit`` in minor units."""

    number: str
    name: str
    currency: str
    opening: int
    overdraft_limit: int = 0
    status: str = "open"


def iban_check_digits(country: str, bban: str) -> str:
    """The two IBAN check digits of ``country`` + ``bban`` (ISO 13616, mod 97)."""
    rearranged = bban + country + "00"
    digits = "".join(str(int(char, 36)) for char in rearranged)
    return f"{98 - int(digits) % 97:02d}"


def _iban(country: str, bban: str) -> str:
    return f"{country}{iban_check_digits(country, bban)}{bban}"


_NAMES: Final = (
    "Anna Schmidt", "Overdraft Gmbh", "Jonas Weber", "Lea Fischer", "Paul Wagner",
    "Mia Becker", "Elias Hoffmann", "Emma Schulz", "Noah Koch", "Sofia Richter",
    "Ben Klein", "Empty Account", "Closed Account", "Luca Wolf", "Lina Neumann",
    "Finn Schwarz", "Oliver Smith", "Amelia Jones", "Harry Taylor", "Isla Brown",
)  # fmt: skip


# The two examples of the IBAN registry and the hub's fixtures come first, then two more.
_GB_NUMBERS: Final = (
    "GB29NWBK60161331926819",
    "GB94BARC10201530093459",
    _iban("GB", "NWBK60161331926837"),
    _iban("GB", "NWBK60161331926838"),
)


def _seed_accounts() -> tuple[SeedAccount, ...]:
    seeded: list[SeedAccount] = []
    for index, name in enumerate(_NAMES, start=1):
        if index <= 16:
            number = _iban("DE", f"37040044{532013000 + index - 1:010d}")
            currency = "EUR"
        else:
            number = _GB_NUMBERS[index - 17]
            currency = "GBP"
        opening = 0 if name == "Empty Account" else 100_000 * index + 12_345
        seeded.append(
            SeedAccount(
                number, name, currency, opening,
                overdraft_limit=100_000 if name == "Overdraft Gmbh" else 0,
                status="closed" if name == "Closed Account" else "open",
            )
        )  # fmt: skip
    return tuple(seeded)


SEED_ACCOUNTS: Final[tuple[SeedAccount, ...]] = _seed_accounts()
"""The 20 seeded customer accounts."""


def seed_ledger(ledger: Ledger) -> int:
    """Create the seeded accounts and their opening balances; how many were created.

    Idempotent: accounts that exist already are left alone.
    """
    created = 0
    now = ledger.clock()
    with ledger.transaction() as book:
        for index, seed in enumerate(SEED_ACCOUNTS, start=1):
            if book.account(seed.number) is not None:
                continue
            book.add_account(seed.number, seed.name, seed.currency,
                             overdraft_limit=seed.overdraft_limit)  # fmt: skip
            if seed.opening:
                book.add_posting(
                    f"SEED-{index:04d}", "CRDT",
                    [(seed.number, seed.opening), (clearing_account(seed.currency), -seed.opening)],
                    booked_at=now, narrative="OPENING BALANCE",
                )  # fmt: skip
            created += 1
        if created:
            # Closed after the opening posting, so that a closed account still has a history.
            for seed in SEED_ACCOUNTS:
                if seed.status != "open":
                    book.set_status(seed.number, seed.status)
    return created
