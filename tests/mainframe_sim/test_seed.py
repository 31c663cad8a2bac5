"""The seeded accounts."""

from __future__ import annotations

from mainframe_sim.ledger import Ledger
from mainframe_sim.seed import SEED_ACCOUNTS, iban_check_digits, seed_ledger


def test_seed_numbers_are_valid_ibans_and_unique() -> None:
    numbers = [seed.number for seed in SEED_ACCOUNTS]
    assert len(numbers) == len(set(numbers)) == 20
    for number in numbers:
        rearranged = number[4:] + number[:4]
        assert int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1, number
        assert iban_check_digits(number[:2], number[4:]) == number[2:4]


def test_seeding_books_opening_balances_and_is_idempotent(ledger: Ledger) -> None:
    assert seed_ledger(ledger) == 0
    customers = ledger.accounts()
    assert [a.number for a in customers] == sorted(s.number for s in SEED_ACCOUNTS)
    by_number = {a.number: a for a in customers}
    for seed in SEED_ACCOUNTS:
        account = by_number[seed.number]
        assert (account.ledger_balance, account.status, account.overdraft_limit) == (
            seed.opening, seed.status, seed.overdraft_limit,
        )  # fmt: skip
    check = ledger.check()
    assert check.balanced
    assert check.postings == sum(1 for s in SEED_ACCOUNTS if s.opening)
    assert {a.number for a in ledger.accounts(kind="gl")} == {"GL-CLEARING-EUR", "GL-CLEARING-GBP"}
